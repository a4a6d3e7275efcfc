"""Ids: ULIDs of the current millisecond, in creation order, in Crockford base32."""

import os
import re
import time

import ulid

from app.core import clock
from app.core.clock import ULID_PATTERN, _UlidSource, new_id


def test_an_id_is_a_ulid_of_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_id()
    after = time.time_ns() // 1_000_000

    assert re.fullmatch(ULID_PATTERN, job_id)
    assert job_id == job_id.upper()
    parsed = ulid.from_str(job_id)
    assert parsed.str == job_id
    assert before <= parsed.timestamp().int <= after


def test_ids_sort_in_creation_order_and_never_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_of_one_millisecond_count_up_and_roll_into_the_next() -> None:
    source = _UlidSource()
    ahead = time.time_ns() // 1_000_000 + 60_000  # a millisecond the clock has not reached
    source._start(ahead)
    source._last_random = 2**80 - 2

    last_of_ms, rolled = source.new(), source.new()

    first = ulid.from_str(last_of_ms)
    second = ulid.from_str(rolled)
    assert (first.timestamp().int, first.randomness().int) == (ahead, 2**80 - 1)
    assert second.timestamp().int == ahead + 1
    assert last_of_ms < rolled


def test_a_forked_child_does_not_continue_its_parents_sequence() -> None:
    new_id()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report where its sequence stands, before making any id
        os.close(reader)
        os.write(writer, str(clock._ids._last_ms).encode())
        os._exit(0)
    os.close(writer)
    child_last_ms = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    # The child starts afresh (new random bits for its first id), even within the parent's
    # millisecond: two children forked together cannot make the same ids.
    assert clock._ids._last_ms > 0
    assert child_last_ms == "0"
