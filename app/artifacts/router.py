"""`/api/v1/artifacts`: stored results, named artifacts and their trees; and a job's named
artifacts at `/api/v1/jobs/{id}/artifacts`."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from app.artifacts.hierarchy import DEFAULT_HIERARCHY, ArtifactHierarchy
from app.artifacts.kinds import ARTIFACT_NAME_RE
from app.artifacts.models import Artifact
from app.artifacts.repository import ArtifactRepository
from app.artifacts.schemas import ArtifactRead, ArtifactTree, shown
from app.artifacts.tree import MAX_TREE_DEPTH, read_tree
from app.core.clock import ULID_PATTERN
from app.core.deps import ListSessionDep, PageDep, ReadSessionDep, SettingsDep
from app.core.errors import NotFoundError
from app.core.pagination import PAGING_NOTE, Page
from app.core.settings import Settings
from app.jobs.models import Job

router = APIRouter(prefix="/api/v1/artifacts", tags=["Artifacts"])
job_artifacts_router = APIRouter(prefix="/api/v1/jobs", tags=["Artifacts"])

ArtifactId = Annotated[str, Path(pattern=ULID_PATTERN, description="The artifact's ULID.")]
JobId = Annotated[str, Path(pattern=ULID_PATTERN, description="The job's ULID.")]
ArtifactName = Annotated[str, Path(pattern=ARTIFACT_NAME_RE.pattern, max_length=200)]
_UNKNOWN = {"description": "Unknown artifact."}
_NO_JOB = {"description": "Unknown job, or no artifact of that name."}


def _read(artifact: Artifact, settings: Settings) -> ArtifactRead:
    return shown(
        ArtifactRead.model_validate(artifact), expose_paths=settings.expose_traceback_paths
    )


def _page(
    rows: list[Artifact], total: int, page: PageDep, settings: Settings
) -> Page[ArtifactRead]:
    items = [_read(row, settings) for row in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


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
    return _page(rows, total, page, settings)


@router.get("/{artifact_id}", response_model=ArtifactRead, responses={404: _UNKNOWN})
async def get_artifact(
    artifact_id: ArtifactId, session: ReadSessionDep, settings: SettingsDep
) -> ArtifactRead:
    """One artifact. For a job run, `data` is `{task_name, params, result, error}`."""
    artifact = await ArtifactRepository(session).get(artifact_id.upper())
    if artifact is None:
        raise NotFoundError(f"Artifact {artifact_id} does not exist.")
    return _read(artifact, settings)


@router.get("/{artifact_id}/tree", response_model=ArtifactTree, responses={404: _UNKNOWN})
async def get_artifact_tree(
    artifact_id: ArtifactId,
    session: ReadSessionDep,
    request: Request,
    depth: Annotated[
        int, Query(ge=0, le=MAX_TREE_DEPTH, description="Levels below the artifact to include.")
    ] = 8,
) -> ArtifactTree:
    """The artifact and its descendants (at most 1,000 nodes), each with its level's label in
    the service's artifact hierarchy. `truncated` tells when bounds left nodes out."""
    repo = ArtifactRepository(session)
    root = await repo.get(artifact_id.upper())
    if root is None:
        raise NotFoundError(f"Artifact {artifact_id} does not exist.")
    hierarchy: ArtifactHierarchy = getattr(
        request.app.state, "artifact_hierarchy", DEFAULT_HIERARCHY
    )
    return await read_tree(repo, root, hierarchy, depth=depth)


async def _require_job(session: ReadSessionDep, job_id: str) -> None:
    if await session.get(Job, job_id) is None:
        raise NotFoundError(f"Job {job_id} does not exist.")


@job_artifacts_router.get(
    "/{job_id}/artifacts",
    response_model=Page[ArtifactRead],
    responses={404: _NO_JOB},
    description=f"The job's artifacts, newest first. {PAGING_NOTE}",
)
async def list_job_artifacts(
    job_id: JobId, session: ReadSessionDep, settings: SettingsDep, page: PageDep
) -> Page[ArtifactRead]:
    """The job's artifacts (its `result` and those its task added), newest first."""
    await _require_job(session, job_id.upper())
    rows, total = await ArtifactRepository(session).list_page(
        job_id=job_id.upper(),
        limit=page.limit,
        offset=page.offset,
        max_bytes=page.max_bytes,
        count_max=page.count_max,
    )
    return _page(rows, total, page, settings)


@job_artifacts_router.get(
    "/{job_id}/artifacts/{name}", response_model=ArtifactRead, responses={404: _NO_JOB}
)
async def get_job_artifact(
    job_id: JobId, name: ArtifactName, session: ReadSessionDep, settings: SettingsDep
) -> ArtifactRead:
    """One artifact of the job by name (`result` is the record of its run)."""
    await _require_job(session, job_id.upper())
    artifact = await ArtifactRepository(session).get_named(job_id.upper(), name)
    if artifact is None:
        raise NotFoundError(f"Job {job_id} has no artifact named {name!r}.")
    return _read(artifact, settings)
