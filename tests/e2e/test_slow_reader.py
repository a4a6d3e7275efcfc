"""A client that stops reading a stream is disconnected after the write timeout, and can
resume from the last event it read (real server, raw sockets, bounded in time)."""

import json
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory
from tests.helpers import poll_until

pytestmark = pytest.mark.e2e

JOB_ID = "01M8000000000000000000STRM"
EVENTS = 300
EVENT_BYTES = 32 * 1024


def insert_running_job_with_events(db_path: Path) -> None:
    """A running job (no lease, so nothing recovers it) with EVENTS large log events."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO jobs (id, task_name, status, params, priority, run_at, created_at,"
            " attempts, max_attempts, event_seq) VALUES (?, 'ghost', 'running', '{}', 0, ?, ?,"
            " 1, 1, ?)",
            (JOB_ID, now, now, EVENTS),
        )
        data = json.dumps({"level": "INFO", "logger": "t", "message": "m" * EVENT_BYTES})
        conn.executemany(
            "INSERT INTO job_events (job_id, seq, type, created_at, data)"
            " VALUES (?, ?, 'log', ?, ?)",
            [(JOB_ID, seq, now, data) for seq in range(1, EVENTS + 1)],
        )


def test_a_client_that_stops_reading_is_disconnected_and_resumes(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(env={"TASKEXEC_HTTP_WRITE_TIMEOUT_SECONDS": "1"})
    insert_running_job_with_events(server.db_path)
    sock = socket.socket()
    # A small receive window, so the server's buffer fills after a few events.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET /api/v1/jobs/{JOB_ID}/$stream HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        poll_until(
            lambda: "did not read for 1 s" in server.log_path.read_text(),
            within=20,
            what="the server to close the connection of a client that does not read",
        )
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1.1 200")
    seen = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
    assert len(seen) < EVENTS, "the stream was not cut"

    last = seen[-1] if seen else 0
    with (
        server.client() as client,
        client.stream(
            "GET", f"/api/v1/jobs/{JOB_ID}/$stream", headers={"Last-Event-ID": str(last)}
        ) as response,
    ):
        assert response.status_code == 200
        first_id = next(line[4:] for line in response.iter_lines() if line.startswith("id: "))
    assert int(first_id) == last + 1
    with server.client() as client:
        assert client.get("/health").status_code == 200
