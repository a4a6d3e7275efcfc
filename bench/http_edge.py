"""The HTTP edge under hostile clients: a huge header block, slow headers, a trickling body.

Prints the server's RSS before and after one client sends `--header-mib` MiB of headers, and
how long the server takes to close a client that sends headers (or a body) one byte every
`--gap` seconds (given up after `--give-up` seconds).

    .venv/bin/python bench/http_edge.py                        # this tree
    .venv/bin/python bench/http_edge.py --source /tmp/base     # another checkout
"""

import argparse
import select
import socket
import tempfile
import time
from pathlib import Path

from serverproc import ROOT, Server


def huge_headers(server: Server, mib: int) -> str:
    before = server.rss()
    sent = 0
    outcome = "accepted everything"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        chunk = b"a" * 65536
        try:
            while sent < mib * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError as exc:
            outcome = f"closed after {sent / 1024:.0f} KiB ({type(exc).__name__})"
        else:
            sock.settimeout(2)
            try:
                answer = sock.recv(200)
                if answer:
                    outcome = f"answered {answer.split(b' ', 2)[1].decode()} and closed"
            except TimeoutError:
                pass
        after = server.rss()
    return f"{mib} MiB header block: {outcome}; RSS {before:.0f} -> {after:.0f} MiB"


def slow_client(server: Server, head: bytes, trickle: bytes, gap: float, give_up: float) -> str:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        started = time.monotonic()
        for byte in trickle:
            if time.monotonic() - started > give_up:
                return f"still open after {give_up:.0f} s"
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], gap)
            if readable:
                answer = sock.recv(200)
                status = answer.split(b" ", 2)[1].decode() if answer else "nothing"
                return f"closed after {time.monotonic() - started:.1f} s (answer: {status})"
        return f"closed after {time.monotonic() - started:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--header-mib", type=int, default=300)
    parser.add_argument("--gap", type=float, default=2.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), source=args.source)
        try:
            print(huge_headers(server, args.header_mib))
            slow_headers = slow_client(
                server,
                b"GET /health HTTP/1.1\r\nHost: x\r\n",
                b"X-Slow: " + b"a" * 200,
                args.gap,
                args.give_up,
            )
            print(f"headers, 1 byte / {args.gap:g} s: {slow_headers}")
            body = b'{"params": {"name": "' + b"x" * 200 + b'"}}'
            slow_body = slow_client(
                server,
                b"POST /api/v1/tasks/greet_user/$execute HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n",
                body,
                args.gap,
                args.give_up,
            )
            print(f"body, 1 byte / {args.gap:g} s: {slow_body}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
