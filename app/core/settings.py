"""Service settings: the one place that reads the environment."""

import json
import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidatorFunctionWrapHandler, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_concurrency() -> int:
    # Twice the cores: tasks are usually I/O bound, and sync ones sit in threads.
    return max(2, 2 * (os.cpu_count() or 1))


class Settings(BaseSettings):
    """Every setting, read from `TASKEXEC_*` environment variables (or a `.env` file)."""

    model_config = SettingsConfigDict(env_prefix="TASKEXEC_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/taskexec.db"
    auto_migrate: bool = True
    max_concurrency: int = Field(default_factory=_default_concurrency, ge=1, le=10_000)
    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # "module:attribute": the hooks object `taskexec serve` and `taskexec worker` call.
    hooks: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    load_examples: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    http_write_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    run_worker: bool = True
    worker_processes: int = Field(default=1, ge=1, le=256)
    poll_interval: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    # A worker whose heartbeat row is older than this is dead (unset: the lease).
    worker_timeout_seconds: float | None = Field(default=None, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    tag_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    retention_seconds: float | None = Field(default=None, gt=0)
    retention_batch: int = Field(default=500, ge=1, le=100_000)
    max_log_lines: int = Field(default=1000, ge=0, le=1_000_000)
    max_worker_losses: int = Field(default=3, ge=0, le=1000)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    # Bytes each job may store (UTF-8): over a bound, texts are cut with a marker and a
    # result fails its job.
    max_log_line_bytes: int = Field(default=32 * 1024, ge=256)
    max_log_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_result_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_error_message_bytes: int = Field(default=8 * 1024, ge=256)
    max_traceback_bytes: int = Field(default=64 * 1024, ge=1024)
    sync_executor: Literal["thread", "process"] = "thread"
    max_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    page_limit_default: int = Field(default=50, ge=1)
    page_limit_max: int = Field(default=500, ge=1)
    page_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    page_count_max: int = Field(default=10_000, ge=1)
    tree_max_nodes: int = Field(default=2000, ge=1, le=100_000)
    max_children: int = Field(default=10_000, ge=1, le=1_000_000)
    max_waiting_parents: int = Field(default=1000, ge=0, le=100_000)
    expose_traceback_paths: bool = False
    # FastAPI's own OpenTelemetry spans, metrics and logs of requests (with a configured
    # provider). Off: FastAPI does not look for providers on every request.
    opentelemetry: bool = False
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ui: bool = True
    # Signs dashboard session cookies; unset, each process makes a random one at start.
    ui_secret: SecretStr | None = Field(default=None, min_length=16)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    run_schedules: bool = True
    schedule_poll_interval: float = Field(default=1.0, gt=0, le=3600)
    schedule_max_catchup: int = Field(default=100, ge=1, le=10_000)
    schedule_grace_seconds: float = Field(default=60.0, ge=0)
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_artifact_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    hook_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    callback_secret: str | None = Field(default=None, min_length=1)
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    callback_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    callback_max_attempts: int = Field(default=8, ge=1, le=100)
    callback_backoff_seconds: float = Field(default=2.0, ge=0, le=3600)
    callback_backoff_max_seconds: float = Field(default=600.0, ge=0, le=86400)
    callback_poll_interval: float = Field(default=5.0, gt=0, le=3600)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("task_modules", "api_keys", "callback_allowed_hosts", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys", mode="wrap")
    @classmethod
    def _keys_or_nothing(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        """Fail closed: a value that is set but names no key must not turn auth off."""
        keys = handler(value)
        if not keys and value not in ("", [], None):
            raise ValueError(
                f"{value!r} names no key; give comma-separated keys, or leave it empty to "
                "turn authentication off"
            )
        return keys

    @field_validator("tag_limits", mode="before")
    @classmethod
    def _parse_tag_limits(cls, value: object) -> object:
        """`gpu=1,io=8` (or a JSON object / dict)."""
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("{"):
                return json.loads(stripped)
            limits: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in stripped.split(","))):
                tag, sep, number = part.partition("=")
                if not sep or not tag.strip():
                    raise ValueError(f"tag limit {part!r} must look like tag=N")
                limits[tag.strip()] = number.strip()
            return limits
        return value

    @field_validator("tag_limits")
    @classmethod
    def _positive_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for tag, limit in value.items():
            if limit < 1:
                raise ValueError(f"tag limit for {tag!r} must be at least 1")
        return value

    @field_validator("callback_allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower() for host in value]

    @property
    def worker_timeout(self) -> float:
        return self.worker_timeout_seconds or self.lease_seconds

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
