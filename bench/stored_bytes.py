"""What a careless task costs in stored bytes, on a real server and SQLite file.

Starts `taskexec serve` on a fresh SQLite file with a small task module, runs one job per
scenario (a 20 MiB exception message, 100 log lines of 1 MiB, a 50 MB result), and prints for
each: the job's status and error type, how much the database files grew (main file + WAL), and
the size of a job-list page (`GET /api/v1/jobs?limit=50`) afterwards.

    .venv/bin/python bench/stored_bytes.py
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from serverproc import free_port

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024

TASKS = textwrap.dedent(
    """
    import logging

    from app import TaskRegistry
    from app.jobs.context import JobContext


    @TaskRegistry.register("big_error")
    def big_error(mib: int) -> None:
        raise ValueError("x" * (mib * 1024 * 1024))


    @TaskRegistry.register("big_logs")
    def big_logs(lines: int, mib: int, ctx: JobContext) -> int:
        line = "y" * (mib * 1024 * 1024)
        for _ in range(lines):
            ctx.logger.info(line)
        return lines


    @TaskRegistry.register("big_result")
    def big_result(mb: int) -> str:
        return "z" * (mb * 1000 * 1000)
    """
)

SCENARIOS = [
    ("20 MiB exception message", "big_error", {"mib": 20}),
    ("100 log lines of 1 MiB", "big_logs", {"lines": 100, "mib": 1}),
    ("50 MB result", "big_result", {"mb": 50}),
]


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskexec-bytes-") as tmp:
        workdir = Path(tmp)
        (workdir / "bytes_tasks.py").write_text(TASKS)
        db = workdir / "bytes.db"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
        env.update(
            {
                "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
                "TASKEXEC_TASK_MODULES": "bytes_tasks",
                "TASKEXEC_LOG_LEVEL": "warning",
                "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
            }
        )
        log = (workdir / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if client.get("/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit((workdir / "server.log").read_text())
                    time.sleep(0.1)
                print(
                    f"{'scenario':28} {'status':10} {'error type':20} {'db growth':>12} "
                    f"{'list page':>12}"
                )
                for title, task, params in SCENARIOS:
                    before = db_bytes(db)
                    response = client.post(
                        f"/api/v1/tasks/{task}/$execute", json={"params": params}
                    )
                    response.raise_for_status()
                    job_id = response.json()["job_id"]
                    job = client.get(f"/api/v1/jobs/{job_id}", params={"wait": 60}).json()
                    grown = db_bytes(db) - before
                    page = client.get("/api/v1/jobs", params={"limit": 50})
                    error = (job.get("error") or {}).get("type", "-")
                    print(
                        f"{title:28} {job['status']:10} {error:20} {grown / MIB:9.2f} MiB "
                        f"{len(page.content) / MIB:9.3f} MiB"
                    )
                print(f"database files in total: {db_bytes(db) / MIB:.2f} MiB")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
            log.close()


if __name__ == "__main__":
    main()
