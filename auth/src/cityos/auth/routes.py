"""The HTTP face of the authorization server: FastAPI routes around authlib's core."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    InvalidClientError,
    InvalidRequestError,
)
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cityos.auth.oauth import AUTH_METHODS, GRANT_TYPES, FormRequest, OAuthServer, Response
from cityos.platform.domain.model import SCOPES

if TYPE_CHECKING:
    from cityos.auth.plugin import BuiltinAuth

MAX_FORM_BYTES = 16_384
FORM_TYPE = "application/x-www-form-urlencoded"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
INTROSPECTION_PATH = "/oauth/introspect"
REVOCATION_PATH = "/oauth/revoke"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"


def _error(error: OAuth2Error) -> Response:
    status, body, headers = error()
    return int(status), dict(body), list(headers)


def _json(response: Response) -> JSONResponse:
    status, body, headers = response
    extra = {name: value for name, value in headers if name.lower() != "content-type"}
    return JSONResponse(body, status_code=status, headers=extra)


def _check_basic_header(request: Request) -> None:
    """InvalidClientError (401) for an Authorization header authlib could not decode."""
    header = request.headers.get("authorization")
    if header is None:
        return
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError(status_code=401, description="use HTTP Basic authentication")
    try:
        base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError):
        raise InvalidClientError(
            status_code=401, description="malformed HTTP Basic credentials"
        ) from None


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, each parameter at most once (RFC 6749 §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequestError(f"send the parameters as {FORM_TYPE}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequestError("request body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeError, ValueError):
        raise InvalidRequestError("malformed form body") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequestError("a parameter is repeated")
        form[name] = value
    if request.headers.get("authorization") and "client_secret" in form:
        raise InvalidRequestError("use one client authentication method, not two")
    _check_basic_header(request)
    return form


def metadata(issuer: str) -> dict[str, Any]:
    """RFC 8414 authorization server metadata for `issuer` (its endpoints live under it)."""
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "scopes_supported": sorted(SCOPES),
        "response_types_supported": [],
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": [],
    }


def build_router(auth: BuiltinAuth) -> APIRouter:
    """The `/oauth/*` and `/.well-known/*` routes of `auth`."""
    router = APIRouter(tags=["oauth"])

    async def handle(
        request: Request,
        call: Callable[[OAuthServer, FormRequest], Response],
        required: tuple[str, ...] = (),
    ) -> JSONResponse:
        try:
            form = await _form(request)
            for name in required:
                if not form.get(name):
                    raise InvalidRequestError(f"missing parameter {name}")
            oauth_request = FormRequest(
                method=request.method,
                uri=str(request.url),
                headers=request.headers,
                form=form,
                issuer=auth.issuer_for(str(request.base_url)),
                source_ip=request.client.host if request.client is not None else None,
            )
        except OAuth2Error as error:  # includes insecure_transport: plain HTTP off loopback
            return _json(_error(error))
        return _json(await asyncio.to_thread(call, auth.oauth, oauth_request))

    @router.post(TOKEN_PATH, summary="Access token (client_credentials, RFC 6749 §4.4)")
    async def token(request: Request) -> JSONResponse:
        return await handle(
            request, lambda server, req: server.create_token_response(req), ("grant_type",)
        )

    @router.post(INTROSPECTION_PATH, summary="Token introspection (RFC 7662)")
    async def introspect(request: Request) -> JSONResponse:
        return await handle(
            request, lambda server, req: server.create_endpoint_response("introspection", req)
        )

    @router.post(REVOCATION_PATH, summary="Token revocation (RFC 7009)")
    async def revoke(request: Request) -> JSONResponse:
        return await handle(
            request, lambda server, req: server.create_endpoint_response("revocation", req)
        )

    @router.get(METADATA_PATH, summary="Authorization server metadata (RFC 8414)")
    async def server_metadata(request: Request) -> JSONResponse:
        return JSONResponse(metadata(auth.issuer_for(str(request.base_url))))

    @router.get(JWKS_PATH, summary="Public signing keys (RFC 7517)")
    async def jwks() -> JSONResponse:
        keys = await asyncio.to_thread(auth.jwks)
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})

    return router
