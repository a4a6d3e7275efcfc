"""A real HTTP listener on 127.0.0.1 that records the callbacks POSTed to it.

It owns a port from the start but listens only after `start()`, so a test can let the first
deliveries fail (connection refused) and bring it up later.
"""

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers import free_port

MAX_BODY = 1024 * 1024


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    # Dispatchers send up to 16 callbacks at once; the default backlog of 5 would refuse some.
    request_queue_size = 128


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str


class CallbackReceiver:
    """Records every POST; answers `status` (200 unless told otherwise)."""

    def __init__(self, status: int = 200) -> None:
        self.port = free_port()
        self.status = status
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length", "0")), MAX_BODY)
                body = self.rfile.read(length).decode()
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver._changed:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body))
                    receiver._changed.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until `count` requests arrived; fail after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} callbacks in {timeout}s")
            return list(self.received)
