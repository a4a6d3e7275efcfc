"""The `taskexec` command: serve, worker, migrate."""

import argparse
import logging
from collections.abc import Sequence

from app.core.logging import configure_logging, uvicorn_log_config
from app.core.settings import Settings

logger = logging.getLogger(__name__)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.db.migrate import upgrade
    from app.main import create_app

    overrides: dict[str, object] = {"auto_migrate": False}
    if args.no_worker:
        overrides["run_worker"] = False
    if settings.auto_migrate:
        upgrade(settings.database_url)
    app = create_app(settings.model_copy(update=overrides))
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_level),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import downgrade, upgrade

    if args.downgrade:
        downgrade(settings.database_url, args.revision)
    else:
        upgrade(settings.database_url, args.revision)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker_process import run_workers

    if args.processes is not None:
        settings = settings.model_copy(update={"worker_processes": args.processes})
    return run_workers(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskexec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="migrate the database (unless TASKEXEC_AUTO_MIGRATE=false), then serve"
    )
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-worker", action="store_true", help="serve the API only")
    serve.set_defaults(handler=_serve)
    migrate = sub.add_parser("migrate", help="migrate the database (default: to head)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(handler=_migrate)
    worker = sub.add_parser("worker", help="run worker processes without the HTTP API")
    worker.add_argument(
        "--processes", type=int, default=None, help="worker processes (TASKEXEC_WORKER_PROCESSES)"
    )
    worker.set_defaults(handler=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    result: int = args.handler(args, settings)
    return result
