"""`/api/v1/artifacts`: stored results and tracebacks."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.artifacts.models import Artifact
from app.artifacts.repository import ArtifactRepository
from app.artifacts.schemas import ArtifactRead, shown
from app.core.clock import ULID_PATTERN
from app.core.deps import ListSessionDep, PageDep, ReadSessionDep, SettingsDep
from app.core.errors import NotFoundError
from app.core.pagination import PAGING_NOTE, Page
from app.core.settings import Settings

router = APIRouter(prefix="/api/v1/artifacts", tags=["Artifacts"])

ArtifactId = Annotated[str, Path(pattern=ULID_PATTERN, description="The artifact's ULID.")]


def _read(artifact: Artifact, settings: Settings) -> ArtifactRead:
    return shown(
        ArtifactRead.model_validate(artifact), expose_paths=settings.expose_traceback_paths
    )


@router.get(
    "",
    response_model=Page[ArtifactRead],
    description=f"Artifacts, newest first, optionally only those of one job. {PAGING_NOTE}",
)
async def list_artifacts(
    session: ListSessionDep,
    settings: SettingsDep,
    page: PageDep,
    job_id: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
) -> Page[ArtifactRead]:
    """Artifacts, newest first, optionally only those of one job."""
    rows, total = await ArtifactRepository(session).list_page(
        job_id=job_id.upper() if job_id else None,
        limit=page.limit,
        offset=page.offset,
        max_bytes=page.max_bytes,
        count_max=page.count_max,
    )
    return Page(
        items=[_read(row, settings) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{artifact_id}",
    response_model=ArtifactRead,
    responses={404: {"description": "No artifact with this id."}},
)
async def get_artifact(
    artifact_id: ArtifactId, session: ReadSessionDep, settings: SettingsDep
) -> ArtifactRead:
    """One artifact. For a job run, `data` is `{task_name, params, result, error}`."""
    artifact = await ArtifactRepository(session).get(artifact_id.upper())
    if artifact is None:
        raise NotFoundError(f"Artifact {artifact_id} does not exist.")
    return _read(artifact, settings)
