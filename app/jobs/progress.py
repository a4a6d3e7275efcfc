"""Coalesced progress writes: a task may report progress as often as it likes."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.jobs.context import ProgressUpdate

logger = logging.getLogger(__name__)


class ProgressSink:
    """Receives progress from any thread and writes only the latest value, one write at a time."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write: Callable[[ProgressUpdate], Awaitable[None]],
    ) -> None:
        self._loop = loop
        self._write = write
        self._latest: ProgressUpdate | None = None
        self._flusher: asyncio.Task[None] | None = None

    def __call__(self, update: ProgressUpdate) -> None:
        """Thread-safe entry point handed to `JobContext`."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._offer(update)
        else:
            self._loop.call_soon_threadsafe(self._offer, update)

    def _offer(self, update: ProgressUpdate) -> None:
        self._latest = update
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._latest is not None:
            update, self._latest = self._latest, None
            try:
                await self._write(update)
            except Exception:
                logger.warning("could not store job progress", exc_info=True)

    async def close(self) -> None:
        """Wait for the last pending write."""
        if self._flusher is not None:
            await self._flusher
