"""Jinja2 templates of the dashboard, with the filters they use."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import Response

from app.ui.session import COOKIE_NAME, COOKIE_PATH, SESSION_SECONDS, Session, signer_of

HERE = Path(__file__).parent
NONE = "\N{EN DASH}"
MAX_SHOWN_CHARS = 64 * 1024


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """`3 s`, `5 min`, `2 h`, `4 d`: how long before now."""
    if moment is None:
        return NONE
    return duration((now or datetime.now(UTC)) - moment)


def until(moment: datetime | None, now: datetime | None = None) -> str:
    """How long from now to `moment` (`0 ms` once it has passed)."""
    if moment is None:
        return NONE
    return duration(max(timedelta(0), moment - (now or datetime.now(UTC))))


def duration(value: Any) -> str:
    if value is None:
        return NONE
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(moment: datetime | None) -> str:
    if moment is None:
        return NONE
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """Indented JSON, cut at 64 KiB so one huge result cannot swamp the page."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_SHOWN_CHARS:
        return text[:MAX_SHOWN_CHARS] + f"\n… ({len(text) - MAX_SHOWN_CHARS} more characters)"
    return text


def count(value: int, cap: int) -> str:
    return f"{cap:,}+" if value > cap else f"{value:,}"


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader([HERE / "templates", HERE / "static"]),
        autoescape=select_autoescape(["html"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=ago, until=until, duration=duration, when=when, pretty=pretty, count=count
    )
    return Jinja2Templates(env=env)


def templates_of(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.ui_templates
    return templates


def render(
    request: Request,
    session: Session | None,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A page or fragment; a session made for this request is stored in its cookie."""
    base = {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "auth_required": signer_of(request).auth_required,
        "now": datetime.now(UTC),
        "path": request.url.path,
    }
    response = templates_of(request).TemplateResponse(
        request, name, {**base, **context}, status_code=status_code, headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    if session is not None and session.fresh:
        set_session_cookie(request, response, session)
    return response


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        signer_of(request).cookie_value(session),
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
