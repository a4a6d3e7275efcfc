"""Worker ids, and telling whether the process behind one (on this host) is gone.

An id is `host:pid:<process start>-<random>`. A worker whose process no longer exists, or
whose pid now belongs to a process started at another time (a restart that got the same pid),
is dead: its jobs are recovered at once instead of after their lease.
"""

import os
import socket
from pathlib import Path

from app.core.clock import new_id


def make_worker_id() -> str:
    start = process_start(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{start or 0}-{new_id()[-6:]}"


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses).
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_dead_local_worker(worker_id: str) -> bool:
    """A worker id names a worker on this host whose process is gone."""
    host, _, rest = worker_id.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    started_text, dash, _ = token.partition("-")
    recorded = int(started_text) if dash and started_text.isdigit() else None
    if pid == os.getpid():
        # This process: only ids it made itself (same start) are alive.
        own = process_start(pid)
        return recorded is None or (own is not None and recorded != own)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    current = process_start(pid)
    return recorded is not None and current is not None and recorded != current
