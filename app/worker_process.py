"""`taskexec worker`: a worker process without the HTTP API."""

import asyncio
import logging
import signal
from collections.abc import Iterable

from app.core.settings import Settings
from app.main import load_tasks
from app.runtime import start_runtime

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, stop_signals: Iterable[signal.Signals]) -> int:
    """Run a worker until one of `stop_signals` arrives, then stop gracefully."""
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
