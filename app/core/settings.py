"""Service settings: the one place that reads the environment."""

import json
import os
from typing import Annotated, Literal

from pydantic import Field, field_validator
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
    load_examples: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    run_worker: bool = True
    worker_processes: int = Field(default=1, ge=1, le=256)
    poll_interval: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    tag_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    retention_seconds: float | None = Field(default=None, gt=0)
    retention_batch: int = Field(default=500, ge=1, le=100_000)
    max_log_lines: int = Field(default=1000, ge=0, le=1_000_000)
    max_worker_losses: int = Field(default=3, ge=0, le=1000)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    max_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    page_limit_default: int = Field(default=50, ge=1)
    page_limit_max: int = Field(default=500, ge=1)
    tree_max_nodes: int = Field(default=2000, ge=1, le=100_000)
    max_children: int = Field(default=10_000, ge=1, le=1_000_000)
    max_waiting_parents: int = Field(default=1000, ge=0, le=100_000)
    expose_traceback_paths: bool = False
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("task_modules", "api_keys", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
