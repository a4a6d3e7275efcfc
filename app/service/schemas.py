"""Service-level schemas."""

from pydantic import BaseModel


class ServiceInfo(BaseModel):
    """How the service names and describes itself (OpenAPI title, `/api/v1/info`)."""

    display_name: str
    version: str = "0.1.0"
    description: str | None = None


class HealthRead(BaseModel):
    status: str
    checks: dict[str, str] = {}


class InfoRead(BaseModel):
    display_name: str
    version: str
    description: str | None
    database: str
    max_concurrency: int
    worker: bool
    tasks: int
