"""`taskexec-client`: call a taskexec server from the shell.

Exit codes: 0 done (a job that completed), 1 failed (a job that failed or was canceled, or an
error answer), 2 usage (bad arguments, or params the server rejected), 3 server unreachable.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from taskexec_client import display
from taskexec_client._version import __version__
from taskexec_client.client import Client
from taskexec_client.config import API_KEY_ENV, URL_ENV
from taskexec_client.errors import BadRequest, JobFailed, ServerUnavailable, TaskexecError

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3


def _write(text: str, stream: Any = None) -> None:
    (stream or sys.stdout).write(text + "\n")


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`: the value as JSON when it parses (`n=3`, `ok=true`, `xs=[1,2]`,
    `s='"3"'`), else the plain string (`name=Alice`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    parser = argparse.ArgumentParser(
        prog="taskexec-client",
        description="Run and follow taskexec tasks over its REST API.",
        epilog="Exit codes: 0 completed, 1 failed, 2 usage, 3 server unreachable.",
    )
    parser.add_argument("--url", help=f"server URL (default ${URL_ENV} or http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help=f"API key (default ${API_KEY_ENV})")
    parser.add_argument(
        "--http-timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    tasks = sub.add_parser("tasks", parents=[common], help="list tasks")
    tasks.add_argument("--tags", help="comma-separated; tasks with all of them")
    task = sub.add_parser("task", parents=[common], help="show one task")
    task.add_argument("name")
    run = sub.add_parser("run", parents=[common], help="submit a task (and wait for it)")
    run.add_argument("name")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        type=parse_param,
        default=[],
        metavar="KEY=VALUE",
        help="a parameter; VALUE is parsed as JSON when it parses, else taken as a string",
    )
    run.add_argument("--wait", action="store_true", help="follow the job and print its result")
    run.add_argument("--idempotency-key", help="submit at most once under this key")
    jobs = sub.add_parser("jobs", parents=[common], help="list jobs, newest first")
    jobs.add_argument("--status")
    jobs.add_argument("--task")
    jobs.add_argument("--limit", type=int, default=20)
    job = sub.add_parser("job", parents=[common], help="show one job")
    job.add_argument("job_id", metavar="ID")
    logs = sub.add_parser("logs", parents=[common], help="print a job's log lines")
    logs.add_argument("job_id", metavar="ID")
    logs.add_argument("--follow", "-f", action="store_true", help="until the job ends")
    cancel = sub.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job_id", metavar="ID")
    return parser


def _run(client: Client, args: argparse.Namespace) -> int:
    params = dict(args.param)
    job = client.submit(args.name, params, idempotency_key=args.idempotency_key)
    if not args.wait:
        _write(display.dump_json(display.job_json(job)) if args.json else job.id)
        return OK
    progress = display.ProgressDisplay(sys.stderr, job.id)
    try:
        for event in client.events(job.id):
            progress.show(event)
    finally:
        progress.close()
    try:
        result = client.result(job.id)
    except JobFailed as exc:
        if args.json:
            error = {"type": exc.error_type, "message": exc.message, "traceback": exc.traceback}
            _write(display.dump_json({"job_id": job.id, "status": exc.job.status, "error": error}))
        else:
            _write(exc.traceback or f"{exc.error_type}: {exc.message}", sys.stderr)
            _write(f"job {job.id} {exc.job.status}: {exc.error_type}: {exc.message}", sys.stderr)
        return FAILED
    if args.json:
        _write(display.dump_json({"job_id": job.id, "status": "completed", "result": result}))
    else:
        _write(display.dump_json(result))
    return OK


def _command(client: Client, args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(client, args)
    if args.command == "tasks":
        tags = [t for t in (args.tags or "").split(",") if t]
        found = client.tasks(tags)
        if args.json:
            _write(display.dump_json([t.raw for t in found]))
        for t in [] if args.json else found:
            _write(display.task_line(t))
    elif args.command == "task":
        info = client.task(args.name)
        _write(display.dump_json(info.raw) if args.json else display.task_text(info))
    elif args.command == "jobs":
        page = client.jobs(status=args.status, task=args.task, limit=args.limit)
        if args.json:
            _write(display.dump_json([job.raw for job in page.items]))
        for job in [] if args.json else page.items:
            _write(display.job_line(job))
    elif args.command in ("job", "cancel"):
        job = client.get(args.job_id) if args.command == "job" else client.cancel(args.job_id)
        _write(display.dump_json(job.raw) if args.json else display.job_text(job))
    elif args.command == "logs":
        for line in client.logs(args.job_id, follow=args.follow):
            _write(display.dump_json(line.__dict__) if args.json else display.log_text(line))
            sys.stdout.flush()
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `taskexec-client`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        with Client(args.url, api_key=args.api_key, timeout=args.http_timeout) as client:
            return _command(client, args)
    except ServerUnavailable as exc:
        _write(f"taskexec-client: server unreachable: {exc.detail}", sys.stderr)
        return UNREACHABLE
    except BadRequest as exc:
        _write(f"taskexec-client: {exc.detail}", sys.stderr)
        for error in exc.errors:
            loc = ".".join(str(part) for part in error.get("loc", []))
            _write(f"  {loc}: {error.get('msg')}", sys.stderr)
        return USAGE
    except TaskexecError as exc:
        _write(f"taskexec-client: {exc}", sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130
