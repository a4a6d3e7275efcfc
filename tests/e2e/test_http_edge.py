"""The HTTP edge of a real server: header blocks are capped, slow clients are timed out.

Raw sockets against `taskexec serve`, every read bounded by a socket timeout.
"""

import json
import select
import socket

import pytest

from tests.e2e.conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.e2e

HEADER_LIMIT = 8192
TIMEOUT_ENV = {
    "TASKEXEC_HTTP_MAX_HEADER_BYTES": str(HEADER_LIMIT),
    "TASKEXEC_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "TASKEXEC_HTTP_BODY_TIMEOUT_SECONDS": "1",
}
# Far longer than the configured timeouts: a server that never times out fails the test.
READ_TIMEOUT = 10.0


@pytest.fixture
def edge_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(env=TIMEOUT_ENV)


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT)
    sock.settimeout(READ_TIMEOUT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the read times out)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            # Closed with unread bytes still in the server's buffer: a reset, not a FIN.
            return data
        except TimeoutError:
            pytest.fail(f"the server kept the connection open; got so far: {data[:200]!r}")
        if not chunk:
            return data
        data += chunk


def _status_and_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_header_block_over_the_cap_is_refused_with_431(edge_server: ServerProcess) -> None:
    with _connect(edge_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        # Up to 64x the cap, stopping as soon as the server answers.
        for _ in range(64 * HEADER_LIMIT // len(line)):
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0)[0]:
                break
        response = _read_until_closed(sock)
    status, body = _status_and_body(response)
    assert status == 431
    problem = json.loads(body)
    assert problem["code"] == "header_too_large"
    assert str(HEADER_LIMIT) in problem["detail"]


def _trickle(sock: socket.socket, data: bytes, *, gap: float) -> bytes:
    """Send `data` one byte per `gap` seconds until the server answers or closes; return the
    answer. Fails the test if the server read it all without a word."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return _read_until_closed(sock)
        readable, _, _ = select.select([sock], [], [], gap)
        if readable:
            return _read_until_closed(sock)
    pytest.fail(f"the server read {len(data)} bytes sent one per {gap} s without timing out")


def test_headers_that_never_end_are_timed_out_with_408(edge_server: ServerProcess) -> None:
    with _connect(edge_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # One byte a second, well under the cap: only a time limit can end it.
        response = _trickle(sock, b"X-Slow: " + b"a" * 30, gap=1.0)
    status, body = _status_and_body(response)
    assert status == 408
    assert json.loads(body)["code"] == "request_timeout"


def test_a_silent_connection_is_closed(edge_server: ServerProcess) -> None:
    with _connect(edge_server) as sock:
        assert _read_until_closed(sock) == b""


def test_a_body_that_trickles_is_timed_out_with_408(edge_server: ServerProcess) -> None:
    body = b'{"params": {"name": "' + b"x" * 30 + b'"}}'
    with _connect(edge_server) as sock:
        sock.sendall(
            b"POST /api/v1/tasks/greet/$execute HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        response = _trickle(sock, body, gap=1.0)
    status, payload = _status_and_body(response)
    assert status == 408
    assert json.loads(payload)["code"] == "request_timeout"


def test_requests_on_a_kept_alive_connection_still_work(edge_server: ServerProcess) -> None:
    with _connect(edge_server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            response = b""
            while not response.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, "the server closed a healthy keep-alive connection"
                response += chunk
            assert _status_and_body(response)[0] == 200
