"""Logging in to the dashboard with an API key, logging out, and its static files."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from starlette.responses import FileResponse, RedirectResponse, Response

from app.core.errors import NotFoundError
from app.ui.render import HERE, render, set_session_cookie
from app.ui.session import (
    COOKIE_NAME,
    COOKIE_PATH,
    Session,
    check_origin,
    checked_session,
    current_session,
    signer_of,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

STATIC = HERE / "static"
STATIC_FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


def safe_next(target: str | None) -> str:
    """Only a dashboard path may be the place to go after logging in (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


@router.get("/login")
async def show_login(request: Request, next: str | None = None) -> Response:
    if not signer_of(request).auth_required:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, None, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
async def log_in(
    request: Request,
    key: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/ui",
) -> Response:
    check_origin(request)
    signer = signer_of(request)
    if not signer.auth_required:
        return RedirectResponse(safe_next(next), status_code=303)
    fingerprint = signer.check_key(key.strip())
    if fingerprint is None:
        context = {"next": safe_next(next), "error": "That key is not valid."}
        return render(request, None, "login.html", context, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, signer.new(fingerprint))
    return response


@router.post("/logout")
async def log_out(session: Annotated[Session, Depends(checked_session)]) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.get("/static/{name}")
async def static_file(
    name: Annotated[str, PathParam(max_length=100)],
    session: Annotated[Session, Depends(current_session)],
) -> Response:
    """The vendored scripts and the stylesheet (for a logged-in browser only)."""
    path: Path | None = STATIC_FILES.get(name)
    if path is None:
        raise NotFoundError(f"No static file {name!r}.")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "private, max-age=3600"},
    )
