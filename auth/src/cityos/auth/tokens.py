"""Issuing RFC 9068 JWT access tokens signed with the current key (kid in the header)."""

from __future__ import annotations

import secrets

from joserfc import jwt

from cityos.auth.clock import Clock
from cityos.auth.keyring import ALGORITHM, KeyRing
from cityos.platform.ports import IssuedToken


class TokenIssuer:
    """Signs access tokens: `iss`, `sub` = `client_id`, `aud`, `iat`, `exp`, `jti`, `scope`."""

    def __init__(self, *, keys: KeyRing, audience: str, ttl_seconds: int, clock: Clock) -> None:
        self._keys = keys
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock

    @property
    def ttl_seconds(self) -> int:
        """Lifetime of the tokens issued."""
        return self._ttl

    def issue(self, *, client_id: str, scopes: frozenset[str], issuer: str) -> IssuedToken:
        """A signed access token for a client with exactly `scopes`."""
        kid, key = self._keys.signing_key()
        now = int(self._clock())
        claims = {
            "iss": issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": self._audience,
            "iat": now,
            "exp": now + self._ttl,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(scopes)),
        }
        header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": kid}
        token = jwt.encode(header, claims, key, algorithms=[ALGORITHM])
        return IssuedToken(access_token=token, expires_in=self._ttl, scopes=scopes)
