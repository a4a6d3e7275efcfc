"""Completion callbacks: when a job with a `callback_url` ends, POST its summary there.

The job's outbox row (`callback_deliveries`, written with the job) is the durable record. A
`CallbackDispatcher` runs in every process that starts a runtime: woken by the event bus and by
a timer, it leases due deliveries of ended jobs, POSTs each (signed per Standard Webhooks when
`TASKEXEC_CALLBACK_SECRET` is set), and records every attempt as a job event. Failures are
retried with exponential backoff, across restarts, up to `TASKEXEC_CALLBACK_MAX_ATTEMPTS`.
Nothing here runs in a worker's transaction or holds a worker's slot.
"""

import asyncio
import contextlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from app.core.clock import isoformat, utcnow
from app.core.errors import BadRequestError
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.callback_models import DeliveryState
from app.jobs.callback_store import claim_due, settle
from app.jobs.decisions import backoff_delay
from app.jobs.events import EventBus
from app.jobs.models import Job
from app.jobs.schemas import JobRead
from app.jobs.store.job_store import JobStore

logger = logging.getLogger(__name__)

CALLBACK_ATTEMPTED = "callback_attempted"
CALLBACK_DELIVERED = "callback_delivered"
CALLBACK_FAILED = "callback_failed"
BATCH = 16  # deliveries in flight per pass
MAX_ERROR_CHARS = 500


def host_allowed(host: str, allowed: list[str]) -> bool:
    """`host` is listed, or is a subdomain of a `*.domain` entry."""
    host = host.lower()
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
        if host == entry:
            return True
    return False


def check_callback_url(url: str | None, allowed_hosts: list[str]) -> str | None:
    """The URL, if callbacks may be sent there; `BadRequestError` otherwise.

    With `TASKEXEC_CALLBACK_ALLOWED_HOSTS` empty no callback URL is accepted.
    """
    if url is None:
        return None
    if not allowed_hosts:
        raise BadRequestError(
            "Callbacks are disabled: TASKEXEC_CALLBACK_ALLOWED_HOSTS lists no hosts."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError(f"callback_url {url!r} must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise BadRequestError("callback_url must not carry credentials.")
    if not host_allowed(parts.hostname, allowed_hosts):
        raise BadRequestError(
            f"callback_url host {parts.hostname!r} is not in TASKEXEC_CALLBACK_ALLOWED_HOSTS."
        )
    return url


@dataclass(frozen=True)
class CallbackConfig:
    allowed_hosts: list[str]
    secret: str | None = None
    timeout: float = 10.0
    max_attempts: int = 8
    backoff: float = 2.0
    backoff_max: float = 600.0
    poll_interval: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "CallbackConfig":
        return cls(
            allowed_hosts=settings.callback_allowed_hosts,
            secret=settings.callback_secret,
            timeout=settings.callback_timeout_seconds,
            max_attempts=settings.callback_max_attempts,
            backoff=settings.callback_backoff_seconds,
            backoff_max=settings.callback_backoff_max_seconds,
            poll_interval=settings.callback_poll_interval,
        )


def callback_body(job: JobRead) -> str:
    """The POSTed summary: `{"type": "job.<status>", "timestamp", "data": <the job>}`."""
    payload = {
        "type": f"job.{job.status.value}",
        "timestamp": isoformat(utcnow()),
        "data": job.model_dump(mode="json"),
    }
    return json.dumps(payload, separators=(",", ":"))


class CallbackDispatcher:
    """Delivers due callbacks; many may run (one per process) without double delivery."""

    def __init__(
        self, database: Database, config: CallbackConfig, *, owner: str, bus: EventBus
    ) -> None:
        self.database = database
        self.config = config
        self.owner = owner
        self.bus = bus
        self._signer = Webhook(config.secret) if config.secret else None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout), follow_redirects=False, trust_env=False
        )

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """Run the dispatch loop (`deliver_due` also works without it)."""
        self.bus.listen(self.wake)
        self._task = asyncio.create_task(self._loop(), name=f"callbacks {self.owner}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("callback dispatch failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            await asyncio.sleep(0.05)  # coalesce bursts of wake-ups into one pass

    async def deliver_due(self) -> int:
        """One pass: lease due deliveries and send them; returns how many were attempted."""
        now = utcnow()
        lease = timedelta(seconds=self.config.timeout * 2 + 30)
        async with self.database.transaction() as session:
            claimed = await claim_due(
                session, owner=self.owner, now=now, lease_until=now + lease, limit=BATCH
            )
        if claimed:
            await asyncio.gather(*(self._deliver(job_id, attempt) for job_id, attempt in claimed))
        return len(claimed)

    async def _deliver(self, job_id: str, attempt: int) -> None:
        async with self.database.read_session() as session:
            job = await session.get(Job, job_id)
        if job is None or job.callback_url is None:
            return  # deleted meanwhile: its outbox row went with it
        host = urlsplit(job.callback_url).hostname or ""
        if not host_allowed(host, self.config.allowed_hosts):
            # The list changed since the job was queued: never call a host no longer allowed.
            refusal = f"host {host!r} is no longer in TASKEXEC_CALLBACK_ALLOWED_HOSTS"
            await self._record(job_id, self.config.max_attempts, None, refusal)
            return
        status_code, error = await self._post(job)
        await self._record(job_id, attempt, status_code, error)

    async def _post(self, job: Job) -> tuple[int | None, str | None]:
        client, url = self._client, job.callback_url
        if url is None:
            return None, "the job has no callback_url"
        body = callback_body(JobRead.from_job(job))
        sent_at = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": f"msg_{job.id}",
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if self._signer is not None:
            headers["webhook-signature"] = self._signer.sign(f"msg_{job.id}", sent_at, body)
        try:
            async with asyncio.timeout(self.config.timeout * 2):
                async with client.stream("POST", url, content=body, headers=headers) as response:
                    if 200 <= response.status_code < 300:
                        return response.status_code, None
                    return response.status_code, f"HTTP {response.status_code}"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]

    async def _record(
        self, job_id: str, attempt: int, status_code: int | None, error: str | None
    ) -> None:
        now = utcnow()
        tried = {"attempt": attempt, "status_code": status_code, "error": error}
        events: list[tuple[str, dict[str, Any]]]
        if error is None:
            values: dict[str, Any] = {"state": DeliveryState.DELIVERED.value, "delivered_at": now}
            events = [(CALLBACK_ATTEMPTED, tried), (CALLBACK_DELIVERED, tried)]
        elif attempt >= self.config.max_attempts:
            values = {"state": DeliveryState.FAILED.value, "last_error": error}
            events = [(CALLBACK_ATTEMPTED, tried), (CALLBACK_FAILED, tried)]
        else:
            delay = backoff_delay(
                attempt,
                self.config.backoff,
                self.config.backoff_max,
                0.25,
                random.random(),  # noqa: S311 - jitter, not a secret
            )
            retry_at = now + timedelta(seconds=delay)
            values = {"next_attempt_at": retry_at, "last_error": error}
            events = [(CALLBACK_ATTEMPTED, {**tried, "next_attempt_at": isoformat(retry_at)})]
        async with self.database.transaction() as session:
            if not await settle(session, job_id, owner=self.owner, values=values):
                logger.warning("callback lease was lost", extra={"job_id": job_id})
                return
            effects = await JobStore.append_in(session, job_id, events)
        self.bus.publish(effects.changed)
        if error is not None:
            logger.warning("callback attempt failed", extra={"job_id": job_id, "attempt": attempt})
