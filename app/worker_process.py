"""`taskexec worker`: worker processes without the HTTP API."""

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections.abc import Iterable

from prometheus_client import start_http_server

from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.settings import Settings
from app.main import load_hooks, load_tasks
from app.runtime import Runtime, start_runtime

logger = logging.getLogger(__name__)

GAUGE_REFRESH_SECONDS = 10.0


async def run_worker(settings: Settings, *, stop_signals: Iterable[signal.Signals]) -> int:
    """Run one worker until one of `stop_signals` arrives, then stop gracefully."""
    load_tasks(settings)
    hooks = load_hooks(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, registry=metrics.registry)
    runtime = await start_runtime(settings, run_worker=True, metrics=metrics, hooks=hooks)
    logger.info("worker running", extra={"worker_id": runtime.worker and runtime.worker.worker_id})
    gauges = None
    if settings.worker_metrics_port is not None:
        gauges = asyncio.create_task(_refresh_queue_gauges(metrics, runtime))
    try:
        await stop.wait()
    finally:
        if gauges is not None:
            gauges.cancel()
        await runtime.close()
    return 0


async def _refresh_queue_gauges(metrics: Metrics, runtime: Runtime) -> None:
    """Keep the queue gauges of a worker's metrics port current (the API reads them per scrape)."""
    while True:
        try:
            await metrics.refresh_queue(runtime.database, runtime.scheduler.registry.names())
        except Exception:
            logger.warning("could not refresh queue metrics", exc_info=True)
        await asyncio.sleep(GAUGE_REFRESH_SECONDS)


def _child(settings: Settings, index: int) -> None:
    if settings.worker_metrics_port is not None:
        # One metrics port per worker process: the configured one, then the next ones.
        port = settings.worker_metrics_port + index
        settings = settings.model_copy(update={"worker_metrics_port": port})
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings, stop_signals=(signal.SIGINT, signal.SIGTERM)))


def run_workers(settings: Settings) -> int:
    """Run `settings.worker_processes` workers; SIGTERM/SIGINT stop them all gracefully.

    A child that dies (killed, crashed) is replaced after a short pause; its jobs are
    recovered like any dead worker's.
    """
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    if settings.worker_processes == 1:
        return asyncio.run(run_worker(settings, stop_signals=stop_signals))
    context = multiprocessing.get_context("spawn")
    stopping = False

    def spawn(n: int) -> "multiprocessing.process.BaseProcess":
        child = context.Process(target=_child, args=(settings, n), name=f"taskexec-worker-{n}")
        child.start()
        return child

    children = [spawn(n) for n in range(settings.worker_processes)]

    def forward(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        # Each child stops gracefully on SIGTERM (grace period, then hand back).
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        multiprocessing.connection.wait([child.sentinel for child in children])
        if stopping:
            break
        for n, child in enumerate(children):
            if not child.is_alive():
                logger.warning(
                    "worker process exited; starting another",
                    extra={"pid": child.pid, "exitcode": child.exitcode},
                )
                time.sleep(1.0)
                if not stopping:
                    children[n] = spawn(n)
    for child in children:
        child.join()
    return max((child.exitcode or 0 for child in children), default=0)
