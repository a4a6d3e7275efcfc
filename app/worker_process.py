"""`taskexec worker`: worker processes without the HTTP API."""

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Iterable

from app.core.logging import configure_logging
from app.core.settings import Settings
from app.main import load_tasks
from app.runtime import start_runtime

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, stop_signals: Iterable[signal.Signals]) -> int:
    """Run one worker until one of `stop_signals` arrives, then stop gracefully."""
    load_tasks(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    runtime = await start_runtime(settings, run_worker=True)
    logger.info("worker running", extra={"worker_id": runtime.worker and runtime.worker.worker_id})
    try:
        await stop.wait()
    finally:
        await runtime.close()
    return 0


def _child(settings: Settings) -> None:
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings, stop_signals=(signal.SIGINT, signal.SIGTERM)))


def run_workers(settings: Settings) -> int:
    """Run `settings.worker_processes` workers; SIGTERM/SIGINT stop them all gracefully."""
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    if settings.worker_processes == 1:
        return asyncio.run(run_worker(settings, stop_signals=stop_signals))
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(settings,), name=f"taskexec-worker-{n}")
        for n in range(settings.worker_processes)
    ]
    for child in children:
        child.start()

    def forward(_signum: int, _frame: object) -> None:
        # Each child stops gracefully on SIGTERM (grace period, then hand back).
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return max((child.exitcode or 0 for child in children), default=0)
