"""The HTTP floor: the least a FastAPI app can do for an `$execute` call.

It validates the same body as taskexec's `$execute` (a pydantic model with `params` and the
execution options) and answers 202 with a new id, storing nothing. `bench/http_floor.py` runs
it beside taskexec, under the same uvicorn, with the same client, so the difference between the
two is what taskexec costs per job on top of HTTP itself.

    .venv/bin/python -m uvicorn --app-dir bench floor_app:app --port 8001
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, status
from pydantic import BaseModel, ConfigDict, Field

from app.core.clock import new_id


class FloorExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    delay: float | None = Field(default=None, ge=0, le=366 * 86400)
    run_at: datetime | None = None
    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0, le=100)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class FloorAccepted(BaseModel):
    job_id: str
    message: str


app = FastAPI(title="floor")


@app.post(
    "/api/v1/tasks/{name}/$execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FloorAccepted,
)
async def execute_task(
    name: Annotated[str, Path(pattern=r"^[a-zA-Z0-9_-]+$")],
    body: Annotated[FloorExecuteRequest | None, Body()] = None,
) -> FloorAccepted:
    job_id = new_id()
    return FloorAccepted(job_id=job_id, message=f"Task '{name}' submitted. Job ID: {job_id}")


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
