"""The FastAPI application: GraphQL, exports, OAuth2 endpoints, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from strawberry.fastapi import GraphQLRouter

from cityos.platform.api.bodylimit import LimitBody
from cityos.platform.api.exports import EXPOSED_HEADERS, exports_router
from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.api.graphql.schema import build_schema
from cityos.platform.api.ratelimit import RateLimited, RateLimiter, open_storage
from cityos.platform.api.throttle import OAUTH_RATE, ThrottleOAuth, rate_limited_response
from cityos.platform.domain.errors import CityosError, PermissionDenied
from cityos.platform.runtime import Runtime
from cityos.platform.security import Principal

log = logging.getLogger(__name__)

INVALID_TOKEN_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Unauthenticated(Exception):
    """A bearer token was given but is not valid: answer 401, never read anonymously."""


def principal_of(request: Request, runtime: Runtime, anonymous_scopes: frozenset[str]) -> Principal:
    """The caller: anonymous without a token; a verified client with one; else 401."""
    header = request.headers.get("authorization")
    if header is None:
        return Principal(client_id=None, scopes=anonymous_scopes)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or runtime.token_verifier is None:
        raise Unauthenticated()
    try:
        client_id, scopes = runtime.token_verifier.verify(token.strip())
    except PermissionDenied:
        raise Unauthenticated() from None
    return Principal(client_id=client_id, scopes=scopes)


def source_ip(request: Request) -> str | None:
    """The caller's address (uvicorn puts the X-Forwarded-For one here for trusted proxies)."""
    return request.client.host if request.client is not None else None


class Gatekeeper:
    """Who calls, and whether they still have request budget: for /graphql and the exports."""

    def __init__(
        self, runtime: Runtime, anonymous_scopes: frozenset[str], limiter: RateLimiter
    ) -> None:
        self.runtime = runtime
        self.anonymous_scopes = anonymous_scopes
        self.limiter = limiter

    async def admit(self, request: Request) -> Principal:
        """The verified caller, counted against its rate limit (client id, else source IP).

        A bad token is counted against the source IP and then refused with 401.
        """
        try:
            principal = principal_of(request, self.runtime, self.anonymous_scopes)
        except Unauthenticated:
            await self.limiter.hit("api", f"ip:{source_ip(request)}")
            raise
        if principal.client_id is not None:
            await self.limiter.hit("api", f"client:{principal.client_id}")
        else:
            await self.limiter.hit("api", f"ip:{source_ip(request)}")
        return principal


def create_app(
    runtime: Runtime,
    *,
    anonymous_scopes: frozenset[str] = frozenset(),
    rate_limiter: RateLimiter | None = None,
    oauth_rate_limiter: RateLimiter | None = None,
) -> FastAPI:
    """Build the HTTP application; only `cityos demo` grants anonymous callers any scope.

    The rate limiters default to the configured rate and storage (tests pass their own).
    """
    api_settings = runtime.settings.api
    app = FastAPI(
        title="cityos",
        description="Omaezaki city's data-linkage platform",
        docs_url="/docs" if api_settings.dev_mode else None,
        redoc_url=None,
        openapi_url="/openapi.json" if api_settings.dev_mode else None,
    )
    if rate_limiter is None or oauth_rate_limiter is None:
        storage = open_storage(api_settings.rate_limit_storage.get_secret_value())
        rate_limiter = rate_limiter or RateLimiter(api_settings.rate_limit, storage)
        oauth_rate_limiter = oauth_rate_limiter or RateLimiter(OAUTH_RATE, storage)
    gatekeeper = Gatekeeper(runtime, anonymous_scopes, rate_limiter)
    app.add_middleware(LimitBody)
    app.add_middleware(ThrottleOAuth, limiter=oauth_rate_limiter)
    if api_settings.cors_origins:  # outermost, so that 401, 413 and 429 carry CORS headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "WWW-Authenticate", *EXPOSED_HEADERS],
        )

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_request: Request, _exc: Unauthenticated) -> JSONResponse:
        return JSONResponse(
            {"errors": [{"message": "invalid token", "extensions": {"code": "UNAUTHENTICATED"}}]},
            status_code=401,
            headers=INVALID_TOKEN_HEADERS,
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return rate_limited_response(exc)

    async def context_getter(request: Request) -> GraphQLContext:
        return GraphQLContext(
            runtime=runtime,
            principal=await gatekeeper.admit(request),
            source_ip=source_ip(request),
        )

    graphql: GraphQLRouter[GraphQLContext, None] = GraphQLRouter(
        build_schema(dev_mode=api_settings.dev_mode),
        context_getter=context_getter,
        graphql_ide="graphiql" if api_settings.dev_mode else None,
        allow_queries_via_get=False,
    )
    app.include_router(graphql, prefix="/graphql")
    app.include_router(exports_router(runtime, admit=gatekeeper.admit, source_ip=source_ip))
    if runtime.auth is not None:  # /oauth/* and /.well-known/* of the authorization server
        app.include_router(runtime.auth.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        for name, ping in (("catalog", runtime.catalog.ping), ("timeseries", runtime.store.ping)):
            try:
                await asyncio.to_thread(ping)
                checks[name] = "ok"
            except CityosError as exc:
                checks[name] = f"unavailable: {exc}"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    return app
