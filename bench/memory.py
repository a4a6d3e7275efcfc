"""Server RSS under big list pages and under SSE clients that never read.

`lists`: 500 jobs with `--item-kib` KiB of params each; one `GET /jobs?limit=500`.
`sse`: one running job with `--events` events of `--item-kib` KiB; `--clients` raw sockets
open its stream and never read. Prints RSS (current and peak) before and after.

    .venv/bin/python bench/memory.py lists
    .venv/bin/python bench/memory.py sse --source /tmp/base     # another checkout
"""

import argparse
import json
import socket
import tempfile
import time
from pathlib import Path

import httpx
from bulk import insert_events, insert_jobs, job_id
from serverproc import ROOT, Server


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def lists(server: Server, db: Path, item_kib: int) -> None:
    params = json.dumps({"pad": "x" * (item_kib * 1024)})
    insert_jobs(db, 500, params_json=params)
    before = server.rss()
    started = time.monotonic()
    response = httpx.get(f"{server.url}/api/v1/jobs", params={"limit": 500}, timeout=300)
    took = time.monotonic() - started
    page = response.json()
    print(
        f"GET /jobs?limit=500 ({item_kib} KiB params each): {response.status_code}, "
        f"{len(page['items'])} items, {len(response.content) / 2**20:.1f} MiB body, "
        f"{took:.2f} s; RSS {before:.0f} -> {server.rss():.0f} MiB, "
        f"peak {peak_mib(server.proc.pid):.0f} MiB"
    )


def sse(server: Server, db: Path, item_kib: int, events: int, clients: int) -> None:
    insert_jobs(db, 1, status="running")
    insert_events(db, job_id(0), events, item_kib * 1024)
    before = server.rss()
    sockets = []
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET /api/v1/jobs/{job_id(0)}/$stream HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sockets.append(sock)
    for wait in (5, 40):
        time.sleep(wait - (5 if wait == 40 else 0))
        alive = httpx.get(f"{server.url}/health", timeout=10).status_code
        print(
            f"{clients} non-reading SSE clients, {events} events x {item_kib} KiB, "
            f"after {wait} s: RSS {before:.0f} -> {server.rss():.0f} MiB, "
            f"peak {peak_mib(server.proc.pid):.0f} MiB, /health {alive}"
        )
    for sock in sockets:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["lists", "sse"])
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--item-kib", type=int, default=1024)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), source=args.source)
        try:
            db = Path(tmp) / "bench.db"
            if args.mode == "lists":
                lists(server, db, args.item_kib)
            else:
                sse(server, db, args.item_kib, args.events, args.clients)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
