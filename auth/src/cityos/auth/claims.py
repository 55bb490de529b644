"""Parsing a compact JWS and checking the registered JWT claims (RFC 7519, RFC 9068)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jws import CompactSignature, extract_compact, validate_compact

from cityos.platform.domain.errors import PermissionDenied

LEEWAY_SECONDS = 10
"""Tolerated clock difference between the issuer and this process."""
_MAX_TOKEN_LENGTH = 16_384


class InvalidToken(PermissionDenied):
    """A bearer token that must be refused with 401 invalid_token; the message says why."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified access token: the caller, its scopes and every claim."""

    client_id: str
    scopes: frozenset[str]
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A compact JWS split into its header and (not yet verified) claims."""

    jws: CompactSignature
    header: dict[str, Any]
    claims: dict[str, Any]


def parse(token: str) -> Parsed:
    """Split a compact JWS; InvalidToken unless it has a JSON header and a JSON object payload."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken("token too long")
    try:
        jws = extract_compact(token.encode("ascii"))
        claims = json.loads(jws.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken(f"malformed token: {exc}") from None
    header = dict(jws.headers())
    if not isinstance(claims, dict):
        raise InvalidToken("token payload is not a JSON object")
    if "crit" in header or "b64" in header:
        raise InvalidToken("critical header parameters are not supported")
    return Parsed(jws=jws, header=header, claims=claims)


def check_signature(parsed: Parsed, key: Key, algorithms: tuple[str, ...]) -> None:
    """InvalidToken unless the token is signed by `key` with one of `algorithms`."""
    alg = parsed.header.get("alg")
    if alg not in algorithms:
        raise InvalidToken(f"algorithm {alg!r} is not accepted")
    if key.alg is not None and key.alg != alg:
        raise InvalidToken(f"key {parsed.header.get('kid')!r} is for {key.alg}, not {alg}")
    try:
        valid = validate_compact(parsed.jws, key, algorithms=[alg])
    except JoseError as exc:
        raise InvalidToken(f"signature not verifiable: {exc}") from None
    if not valid:
        raise InvalidToken("bad signature")


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f"claim {name!r} missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name!r} is not a number")
    return float(value)


def check_times(claims: dict[str, Any], *, now: float, require_iat: bool) -> None:
    """InvalidToken if the token has expired, is not yet valid or was issued in the future."""
    exp = _number(claims, "exp", required=True)
    assert exp is not None
    if now >= exp + LEEWAY_SECONDS:
        raise InvalidToken("token expired")
    nbf = _number(claims, "nbf", required=False)
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise InvalidToken("token not yet valid (nbf)")
    iat = _number(claims, "iat", required=require_iat)
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise InvalidToken("token issued in the future (iat)")


def check_audience(claims: dict[str, Any], audience: str) -> None:
    """InvalidToken unless `aud` is `audience` or a list containing it."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list):
        ok = audience in aud
    else:
        ok = False
    if not ok:
        raise InvalidToken(f"audience {aud!r} is not {audience!r}")


def string_claim(claims: dict[str, Any], name: str) -> str:
    """A required non-empty string claim."""
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"claim {name!r} missing or not a string")
    return value


def scopes_of(value: Any) -> frozenset[str]:
    """Scopes from a space-separated string or a list of strings (absent: none)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(word for item in value for word in item.split())
    raise InvalidToken("scope claim is neither a string nor a list of strings")
