"""Dashboard sessions: a signed HttpOnly cookie, and the CSRF token derived from it.

The cookie is `<nonce>.<expires>.<key fingerprint>.<signature>`, signed with HMAC-SHA256 under
`TASKEXEC_UI_SECRET` (or a random per-process secret). With API keys on, the fingerprint ties
the session to the key that opened it, so removing a key ends its sessions. The CSRF token is
an HMAC of the nonce: a page carries it in its forms and in the `X-CSRF-Token` header of its
htmx requests, and a cross-site page can neither read it nor forge it.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request

from app.core.errors import AppError

COOKIE_NAME = "taskexec_ui"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 12 * 3600
ANONYMOUS = "-"


class CsrfError(AppError):
    status, code, title = 403, "csrf_failed", "Forbidden"


class LoginRequiredError(Exception):
    """No valid session while API keys are on: the dashboard sends the browser to log in."""


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int
    key_fingerprint: str
    csrf_token: str
    fresh: bool = False  # made for this request: the response must set the cookie


class SessionSigner:
    """Makes and checks session cookies for one secret and one set of API keys."""

    def __init__(self, secret: bytes, api_keys: list[str]) -> None:
        self._secret = secret
        self._keys = {self._fingerprint(key): key.encode() for key in api_keys}

    @property
    def auth_required(self) -> bool:
        return bool(self._keys)

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def _fingerprint(self, key: str) -> str:
        return self._mac(f"key.{key}")[:16]

    def check_key(self, supplied: str) -> str | None:
        """The fingerprint of the API key `supplied` matches, or None."""
        for fingerprint, key in self._keys.items():
            if secrets.compare_digest(supplied.encode(), key):
                return fingerprint
        return None

    def new(self, key_fingerprint: str = ANONYMOUS) -> Session:
        nonce = secrets.token_urlsafe(16)
        expires = int(time.time()) + SESSION_SECONDS
        return Session(nonce, expires, key_fingerprint, self._csrf(nonce), fresh=True)

    def _csrf(self, nonce: str) -> str:
        return self._mac(f"csrf.{nonce}")

    def cookie_value(self, session: Session) -> str:
        body = f"{session.nonce}.{session.expires}.{session.key_fingerprint}"
        return f"{body}.{self._mac(body)}"

    def load(self, value: str | None) -> Session | None:
        """The session a cookie carries, if it is genuine, unexpired and its key still valid."""
        if not value or len(value) > 300:
            return None
        parts = value.split(".")
        if len(parts) != 4:
            return None
        nonce, expires, fingerprint, signature = parts
        if not hmac.compare_digest(signature, self._mac(f"{nonce}.{expires}.{fingerprint}")):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        if self.auth_required and fingerprint not in self._keys:
            return None
        if not self.auth_required and fingerprint != ANONYMOUS:
            return None
        return Session(nonce, int(expires), fingerprint, self._csrf(nonce))

    def check_csrf(self, session: Session, token: str | None) -> None:
        if session.fresh or not token or not hmac.compare_digest(token, session.csrf_token):
            raise CsrfError("The form is stale or did not come from this dashboard; reload it.")


def signer_of(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.ui_signer
    return signer


async def current_session(request: Request) -> Session:
    """The request's session; with API keys on, a missing or bad one means logging in."""
    signer = signer_of(request)
    session = signer.load(request.cookies.get(COOKIE_NAME))
    if session is not None:
        return session
    if signer.auth_required:
        raise LoginRequiredError
    return signer.new()


async def checked_session(request: Request) -> Session:
    """`current_session` for a state-changing request: same origin and a valid CSRF token."""
    session = await current_session(request)
    check_origin(request)
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        token = value if isinstance(value, str) else None
    signer_of(request).check_csrf(session, token)
    return session


def check_origin(request: Request) -> None:
    """Browsers send `Origin` on POSTs: a request from another site is refused outright."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin not in (f"http://{host}", f"https://{host}"):
        raise CsrfError("The request came from another site.")
