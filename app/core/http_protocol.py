"""uvicorn's httptools protocol with a capped header block and timed-out slow clients.

uvicorn buffers a header block without limit and never times out a client that sends its
headers or body slowly (only idle keep-alive connections are closed). This protocol adds:

- a cap on the bytes of a request's header block: over it, 431 and the connection is closed;
- a deadline for the whole header block, from the connection (or the end of the previous
  request) to the blank line: past it, 408 and close (a silent connection is just closed);
- a deadline for the whole body once the headers are in: past it, 408 and close;
- a write timeout: a connection whose writes stay paused that long (the client stopped
  reading, so the transport's buffer is full) is aborted; its response, e.g. an SSE stream,
  ends, and the client resumes (`Last-Event-ID`) when it reads again.

The httptools parser is kept (it is uvicorn's fast default); the limits are enforced around
it, in `data_received` and the parser callbacks.
"""

import asyncio
import json
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.core.errors import PROBLEM_JSON


class EdgeLimits:
    """The limits a connection is held to (read from settings by `taskexec serve`)."""

    def __init__(
        self,
        *,
        max_header_bytes: int,
        header_timeout: float,
        body_timeout: float,
        write_timeout: float,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout


def problem_bytes(status: int, code: str, title: str, detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json response that closes the connection."""
    body = json.dumps(
        {
            "type": f"urn:taskexec:problem:{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    head = (
        f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that enforces `limits` (see the module docstring)."""

    limits = EdgeLimits(
        max_header_bytes=65536, header_timeout=10.0, body_timeout=30.0, write_timeout=30.0
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_headers = True
        self._header_bytes = 0
        self._bytes_seen = False
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_limits(cls, limits: EdgeLimits) -> type["GuardedHttpToolsProtocol"]:
        """A subclass bound to `limits` (uvicorn takes a protocol class, not an instance)."""
        return cast(type[GuardedHttpToolsProtocol], type(cls.__name__, (cls,), {"limits": limits}))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_timer(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.resume_writing()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self.limits.write_timeout, self._write_timed_out
            )

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self.flow is not None:
            super().resume_writing()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self.logger.info(
            "client did not read for %g s; closing its connection", self.limits.write_timeout
        )
        # Not close(): that would wait for the buffer to drain, which is what never happens.
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._bytes_seen = True
            self._header_bytes += len(data)
            if self._header_bytes - len(data) > self.limits.max_header_bytes:
                self._header_too_large()
                return
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.limits.max_header_bytes:
            self._header_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            # A request pipelined or sent after a keep-alive pause: its headers' clock starts.
            self._start_timer(self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._start_timer(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_timer()
        self._in_headers = True
        self._header_bytes = 0
        self._bytes_seen = False
        super().on_message_complete()

    def _start_timer(self, seconds: float) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started and not self._in_headers
        if (self._in_headers and self._bytes_seen) or (not self._in_headers and not answered):
            what = "headers" if self._in_headers else "body"
            seconds = self.limits.header_timeout if self._in_headers else self.limits.body_timeout
            self.logger.info("request %s not received within %g s; closing", what, seconds)
            self.transport.write(
                problem_bytes(
                    408,
                    "request_timeout",
                    "Request timeout",
                    f"The request {what} did not arrive within {seconds:g} seconds.",
                )
            )
        self.transport.close()

    def _header_too_large(self) -> None:
        self._stop_timer()
        self._in_headers = False
        if self.transport.is_closing():
            return
        limit = self.limits.max_header_bytes
        self.logger.info("request header block over %d bytes; closing", limit)
        self.transport.write(
            problem_bytes(
                431,
                "header_too_large",
                "Request header fields too large",
                f"The request's header block exceeds the limit of {limit} bytes.",
            )
        )
        self.transport.close()
