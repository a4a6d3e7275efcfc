"""A `taskexec serve` process for benchmarks: start it from a source tree, read its RSS.

`--source DIR` in the benchmarks that use this runs the server from another checkout of the
project (e.g. `git archive <commit> | tar -x -C DIR`), to print before/after side by side.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVE = (sys.executable, "-m", "app", "serve", "--host", "127.0.0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`python -m app serve` on a free port; `stop()` kills it."""

    def __init__(self, workdir: Path, *, source: Path = ROOT, env: dict[str, str] | None = None):
        self.port = free_port()
        self.log = workdir / f"server-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
        full_env.update(
            {
                "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
                "TASKEXEC_LOG_LEVEL": "warning",
                "PYTHONPATH": str(source),
                **(env or {}),
            }
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*SERVE, "--port", str(self.port)],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"server did not start; see {self.log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
