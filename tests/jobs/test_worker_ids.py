"""Worker ids: a worker on this host whose process is gone (or whose pid was reused) is dead."""

import os
import socket

from app.jobs.worker_ids import is_dead_local_worker, make_worker_id, process_start
from tests.jobs.helpers import exited_pid

HOST = socket.gethostname()


def test_an_id_this_process_made_is_alive() -> None:
    worker_id = make_worker_id()
    assert worker_id.startswith(f"{HOST}:{os.getpid()}:")
    assert not is_dead_local_worker(worker_id)


def test_this_pid_with_another_start_is_a_dead_predecessor() -> None:
    start = process_start(os.getpid())
    assert start is not None
    assert is_dead_local_worker(f"{HOST}:{os.getpid()}:{start - 1}-abcdef")
    assert is_dead_local_worker(f"{HOST}:{os.getpid()}:abc123")


def test_a_pid_that_exited_is_dead() -> None:
    assert is_dead_local_worker(f"{HOST}:{exited_pid()}:1-abcdef")


def test_a_live_pid_is_alive_unless_it_was_reused() -> None:
    parent = os.getppid()
    start = process_start(parent)
    assert start is not None
    assert not is_dead_local_worker(f"{HOST}:{parent}:{start}-abcdef")
    assert not is_dead_local_worker(f"{HOST}:{parent}:abc123")
    assert is_dead_local_worker(f"{HOST}:{parent}:{start + 1}-abcdef")


def test_another_host_or_a_malformed_id_is_never_judged_dead() -> None:
    assert not is_dead_local_worker(f"elsewhere.invalid:{exited_pid()}:1-abcdef")
    assert not is_dead_local_worker(f"{HOST}:notapid:1-abcdef")
    assert not is_dead_local_worker("bench:0:claim")
