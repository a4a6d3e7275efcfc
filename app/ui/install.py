"""Mounting the dashboard on an app (`ServiceBuilder.with_ui()`)."""

import secrets
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from app.core.settings import Settings
from app.ui import actions, auth, job_page, pages, schedule_pages
from app.ui.render import make_templates
from app.ui.session import LoginRequiredError, SessionSigner


def install_ui(app: FastAPI, settings: Settings, api_keys: list[str]) -> None:
    """Serve the dashboard at `/ui` (and send `/` there)."""
    secret = (
        settings.ui_secret.get_secret_value().encode()
        if settings.ui_secret is not None
        else secrets.token_bytes(32)
    )
    app.state.ui_signer = SessionSigner(secret, api_keys)
    app.state.ui_templates = make_templates()
    app.add_exception_handler(LoginRequiredError, _to_login)
    for module in (auth, pages, job_page, actions, schedule_pages):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/ui", status_code=307)


async def _to_login(request: Request, exc: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/ui/login?next=" + quote(here)
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
