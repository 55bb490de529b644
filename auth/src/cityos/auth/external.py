"""Tokens of an external identity provider (e.g. Keycloak), verified with its JWKS."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from cityos.auth.claims import (
    InvalidToken,
    Parsed,
    Verified,
    check_audience,
    check_signature,
    check_times,
    scopes_of,
)
from cityos.auth.clock import Clock
from cityos.platform.domain.errors import ConfigError

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""Asymmetric algorithms only: never `none`, never HMAC (whose key would be public here)."""
_ASYMMETRIC = (RSAKey, ECKey, OKPKey)
MAX_JWKS_BYTES = 1_000_000

Fetch = Callable[[str], bytes]


def fetch_url(url: str, *, timeout: float = 5.0) -> bytes:
    """GET a JWKS document (http or https only)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"JWKS URL must be http(s): {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    return body


class JwksCache:
    """An external issuer's public keys: fetched on first use, refetched on an unknown kid.

    Refetches triggered by unknown kids happen at most every `min_refetch_seconds` (a flood of
    tokens with made-up kids must not become a flood of requests to the IdP); the whole set is
    refreshed after `max_age_seconds` anyway. If a fetch fails the keys already known are kept.
    """

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetch = fetch_url,
        min_refetch_seconds: float = 10.0,
        max_age_seconds: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._min_refetch = min_refetch_seconds
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._keys: dict[str | None, Key] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0

    def _refetch(self) -> None:
        self._attempted_at = self._monotonic()
        self.fetches += 1
        try:
            document = json.loads(self._fetch(self.url))
            key_set = KeySet.import_key_set(document)
        except (OSError, ValueError, TypeError, KeyError, JoseError) as exc:
            log.warning("cannot fetch the JWKS at %s: %s", self.url, exc)
            return
        keys: dict[str | None, Key] = {}
        for key in key_set:
            if not isinstance(key, _ASYMMETRIC) or key.get("use", "sig") != "sig":
                continue  # symmetric keys and encryption keys never verify tokens
            keys[key.kid] = key
        if len(keys) == 1:
            keys[None] = next(iter(keys.values()))  # a token without kid may use the only key
        self._keys = keys
        self._fetched_at = self._monotonic()

    def key(self, kid: str | None) -> Key | None:
        """The key `kid` (None: the only key), refetching the set when it is stale or lacks it."""
        now = self._monotonic()
        stale = now - self._fetched_at > self._max_age
        if stale or kid not in self._keys:
            with self._lock:
                now = self._monotonic()
                stale = now - self._fetched_at > self._max_age
                if (stale or kid not in self._keys) and (
                    now - self._attempted_at >= self._min_refetch
                ):
                    self._refetch()
        return self._keys.get(kid)


class ExternalVerifier:
    """Verifies tokens of one external issuer: its JWKS, our audience, its scope claim."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks: JwksCache,
        audience: str,
        scope_claim: str,
        clock: Clock,
    ) -> None:
        self.issuer = issuer
        self._jwks = jwks
        self._audience = audience
        self._scope_claim = scope_claim
        self._clock = clock

    def verify(self, parsed: Parsed) -> Verified:
        """Check signature, issuer, audience and times; map the scope claim."""
        kid = parsed.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")
        if parsed.header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {parsed.header.get('alg')!r} is not accepted")
        key = self._jwks.key(kid)
        if key is None:
            raise InvalidToken(f"unknown key {kid!r} of issuer {self.issuer}")
        check_signature(parsed, key, ALGORITHMS)
        claims = parsed.claims
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer")
        check_audience(claims, self._audience)
        check_times(claims, now=self._clock(), require_iat=False)
        client_id = next(
            (claims[name] for name in ("client_id", "azp", "sub") if claims.get(name)), None
        )
        if not isinstance(client_id, str):
            raise InvalidToken("token names no client (client_id, azp or sub)")
        return Verified(
            client_id=client_id,
            scopes=scopes_of(claims.get(self._scope_claim)),
            claims=claims,
        )
