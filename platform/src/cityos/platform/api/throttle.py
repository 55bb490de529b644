"""429 answers, and the per-address limit in front of the OAuth endpoints."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cityos.platform.api.graphql.errors import RATE_LIMITED
from cityos.platform.api.ratelimit import RateLimited, RateLimiter

OAUTH_RATE = "60/minute"
"""POSTs to /oauth/* per source address: each one checks a client secret (PBKDF2, ~0.3 s CPU)."""


def rate_limited_response(exc: RateLimited) -> JSONResponse:
    """HTTP 429 in the GraphQL error shape, with Retry-After in whole seconds."""
    return JSONResponse(
        {"errors": [{"message": str(exc), "extensions": {"code": RATE_LIMITED}}]},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


class ThrottleOAuth:
    """ASGI middleware: POSTs to /oauth/* count against their source address's limit."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 429 without reaching the endpoint once the address's budget is spent."""
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/oauth/")
        ):
            client = scope.get("client")
            try:
                await self.limiter.hit("oauth", f"ip:{client[0] if client else None}")
            except RateLimited as exc:
                await rate_limited_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
