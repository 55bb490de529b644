"""Verification of bearer tokens: this server's own (RFC 9068) and an external issuer's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cityos.auth.claims import (
    InvalidToken,
    Parsed,
    Verified,
    check_audience,
    check_signature,
    check_times,
    parse,
    scopes_of,
    string_claim,
)
from cityos.auth.clock import Clock
from cityos.auth.external import ExternalVerifier
from cityos.auth.keyring import ALGORITHMS, KeyRing
from cityos.auth.revocations import Revocations

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def looks_like_server_url(value: str) -> bool:
    """Whether `value` is an http(s) URL without query or fragment (an issuer identifier)."""
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and not (parts.query or parts.fragment)
    )


class LocalVerifier:
    """Verifies tokens this authorization server signed.

    Checks: typ `at+jwt`, an accepted algorithm (ES256 only: never `none`, never HMAC), a
    known and still-valid kid, the signature, `iss`, `aud`, `exp`, `nbf`, `iat`, and that
    neither the token (`jti`) nor its client is revoked.

    Issuer: the configured one must match exactly. Without one the server names itself by the
    URL it was reached at, so any http(s) URL is accepted as `iss`, since the signature by one
    of our own keys is what proves the token is ours.
    """

    def __init__(
        self,
        *,
        keys: KeyRing,
        revocations: Revocations,
        issuer: str | None,
        audience: str,
        clock: Clock,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    def _check_issuer(self, claims: dict[str, Any]) -> None:
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise InvalidToken("claim 'iss' missing")
        ok = iss == self._issuer if self._issuer is not None else looks_like_server_url(iss)
        if not ok:
            raise InvalidToken(f"wrong issuer {iss!r}")

    def authentic(self, parsed: Parsed) -> dict[str, Any]:
        """The claims of a token we signed for our audience (expiry and revocation unchecked)."""
        typ = parsed.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken(f"typ {typ!r} is not at+jwt")
        kid = parsed.header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("kid missing")
        if parsed.header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {parsed.header.get('alg')!r} is not accepted")
        key = self._keys.public_key(kid)
        if key is None:
            raise InvalidToken(f"unknown or expired key {kid!r}")
        check_signature(parsed, key, ALGORITHMS)
        claims = parsed.claims
        self._check_issuer(claims)
        check_audience(claims, self._audience)
        return claims

    def verify(self, parsed: Parsed) -> Verified:
        """Every check, revocation included."""
        claims = self.authentic(parsed)
        check_times(claims, now=self._clock(), require_iat=True)
        jti = string_claim(claims, "jti")
        client_id = string_claim(claims, "client_id")
        self._revocations.ensure_loaded()
        if self._revocations.token_revoked(jti):
            raise InvalidToken("token revoked")
        if self._revocations.client_revoked(client_id):
            raise InvalidToken("client revoked")
        return Verified(client_id=client_id, scopes=scopes_of(claims.get("scope")), claims=claims)


class Verifier:
    """The `TokenVerifier` port: routes a token by its `iss` to the external or local checks."""

    def __init__(
        self,
        *,
        local: LocalVerifier,
        external: ExternalVerifier | None,
        on_use: Callable[[], None] = lambda: None,
    ) -> None:
        self._local = local
        self._external = external
        self._on_use = on_use

    def check(self, token: str) -> Verified:
        """The verified token, or InvalidToken."""
        self._on_use()
        parsed = parse(token)
        if self._external is not None and parsed.claims.get("iss") == self._external.issuer:
            return self._external.verify(parsed)
        return self._local.verify(parsed)

    def verify(self, token: str) -> tuple[str, frozenset[str]]:
        """Return (client_id, scopes) or raise PermissionDenied (InvalidToken)."""
        verified = self.check(token)
        return verified.client_id, verified.scopes
