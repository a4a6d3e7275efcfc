"""Optional API-key authentication for the `/api/v1` routes."""

import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request

from app.core.errors import AppError


class UnauthorizedError(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


def api_key_dependency(keys: list[str]) -> Callable[[Request], Awaitable[None]]:
    """A dependency that accepts `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    encoded = [key.encode() for key in keys]

    async def require_api_key(request: Request) -> None:
        supplied = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if supplied is None and authorization.lower().startswith("bearer "):
            supplied = authorization[7:].strip()
        if supplied is None or not any(
            secrets.compare_digest(supplied.encode(), key) for key in encoded
        ):
            raise UnauthorizedError("A valid API key is required (Authorization: Bearer <key>).")

    return require_api_key
