"""The `taskexec` command: serve, worker, migrate.

Operator mistakes (a bad setting, a task module that cannot be imported, an unknown migration
revision, a port in use) end in one line on stderr and a non-zero exit, not a traceback.
"""

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from pydantic import ValidationError

from app.core.logging import configure_logging, uvicorn_log_config
from app.core.settings import Settings

logger = logging.getLogger(__name__)

USAGE_ERROR = 2


class CliError(Exception):
    """A failure the operator can fix; shown as one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a busy port fails before migrating or starting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
        raise CliError(f"cannot listen on {host}:{port}: the address {reason}") from None
    sock.set_inheritable(True)
    return sock


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.core.heap import settle_heap
    from app.core.http_protocol import EdgeLimits, GuardedHttpToolsProtocol
    from app.db.migrate import upgrade
    from app.main import create_app

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    sock = _bind(host, port)
    overrides: dict[str, object] = {"auto_migrate": False}
    if args.no_worker:
        overrides["run_worker"] = False
    # Tasks first: a module that cannot be imported stops the command before any change.
    app = create_app(settings.model_copy(update=overrides))
    if settings.auto_migrate:
        _run_migration(upgrade, settings.database_url, "head")
    protocol = GuardedHttpToolsProtocol.with_limits(
        EdgeLimits(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            write_timeout=settings.http_write_timeout_seconds,
        )
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_level),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )
    server = uvicorn.Server(config)
    # Set up: the app, its routes and validators live as long as the process.
    settle_heap()
    server.run(sockets=[sock])
    return 0


def _run_migration(step: Callable[[str, str], None], database_url: str, revision: str) -> None:
    from alembic.util import CommandError

    try:
        step(database_url, revision)
    except CommandError as exc:
        raise CliError(f"migration failed: {exc}") from None


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import downgrade, upgrade

    _run_migration(downgrade if args.downgrade else upgrade, settings.database_url, args.revision)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.main import load_hooks, load_tasks
    from app.worker_process import run_workers

    # Import the task and hooks modules here first: one that fails stops the command with one
    # line, instead of every worker process failing (and being restarted) with a traceback.
    load_tasks(settings)
    load_hooks(settings)
    if args.processes is not None:
        settings = settings.model_copy(update={"worker_processes": args.processes})
    return run_workers(settings)


def _version() -> str:
    try:
        return version("taskexec")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskexec",
        description="Run registered Python functions as durable REST jobs. Every setting is a "
        "TASKEXEC_* environment variable (see the README); options here override them.",
    )
    parser.add_argument("--version", action="version", version=f"taskexec {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="migrate the database (unless TASKEXEC_AUTO_MIGRATE=false), then serve the API "
        "and a worker",
    )
    serve.add_argument("--host", default=None, help="address to listen on (TASKEXEC_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (TASKEXEC_PORT)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only, no embedded worker (TASKEXEC_RUN_WORKER=false)",
    )
    serve.set_defaults(handler=_serve)
    migrate = sub.add_parser(
        "migrate", help="migrate the database named by TASKEXEC_DATABASE_URL (default: to head)"
    )
    migrate.add_argument(
        "revision", nargs="?", default="head", help="target revision id, or head (default)"
    )
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(handler=_migrate)
    worker = sub.add_parser("worker", help="run worker processes without the HTTP API")
    worker.add_argument(
        "--processes", type=int, default=None, help="worker processes (TASKEXEC_WORKER_PROCESSES)"
    )
    worker.set_defaults(handler=_worker)
    return parser


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        names = [str(part) for part in error["loc"]]
        setting = f"TASKEXEC_{names[0].upper()}" if names else "settings"
        parts.append(f"{setting}: {error['msg']}")
    return "invalid setting: " + "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    from app.main import TaskModuleError

    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
        result: int = args.handler(args, settings)
    except ValidationError as exc:
        return _fail(_settings_problem(exc), USAGE_ERROR)
    except (CliError, TaskModuleError) as exc:
        return _fail(str(exc), getattr(exc, "exit_code", 1))
    return result


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"taskexec: error: {message}\n")
    return code
