"""Optional API-key authentication for the `/api/v1` routes.

A key goes in `Authorization: Bearer <key>` or `X-API-Key: <key>`. Both are declared as
OpenAPI security schemes (so Swagger UI offers its Authorize button), and a 401 carries a
`WWW-Authenticate` challenge.
"""

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ClassVar

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.core.errors import AppError

REALM = "taskexec"
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerKey",
    description="An API key as a bearer token: `Authorization: Bearer <key>`.",
)
header_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description="An API key in the `X-API-Key` header.",
)
# The extra response of every guarded route, for the OpenAPI.
UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (see the security schemes)."}
}


class UnauthorizedError(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


def api_key_dependency(
    keys: list[str],
) -> Callable[[HTTPAuthorizationCredentials | None, str | None], Awaitable[None]]:
    """A dependency that accepts `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    encoded = [key.encode() for key in keys]

    async def require_api_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        header: Annotated[str | None, Depends(header_scheme)],
    ) -> None:
        supplied = header if header is not None else bearer and bearer.credentials.strip()
        if not supplied or not any(
            secrets.compare_digest(supplied.encode(), key) for key in encoded
        ):
            raise UnauthorizedError("A valid API key is required (Authorization: Bearer <key>).")

    return require_api_key
