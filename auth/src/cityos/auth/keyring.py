"""The authorization server's signing keys: one signs, retired ones verify until tokens expire."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from joserfc.jwk import ECKey

from cityos.auth.clock import Clock, to_datetime
from cityos.platform.domain.errors import AlreadyExists
from cityos.platform.domain.model import SigningKey
from cityos.platform.ports import Catalog, SigningKeyInfo

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
"""Tokens are signed with ECDSA P-256 (RFC 7518 ES256)."""
ALGORITHMS = (ALGORITHM,)
GRACE_SECONDS = 60
"""A retired key stays valid this long past the token lifetime: other processes may sign with it
until they reload the keys (every few seconds), and clocks of replicas may differ a little."""
PURGE_AFTER = timedelta(days=1)
"""Private keys are deleted this long after they stopped verifying."""
_MISS_RELOAD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A stored key with its parsed private and public halves."""

    record: SigningKey
    private: ECKey
    public: ECKey
    published_until: float | None


def new_signing_key(now: float) -> SigningKey:
    """A fresh P-256 key; its kid is its RFC 7638 thumbprint."""
    key = ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()
    private = {**key.as_dict(private=True), "kid": kid, "alg": ALGORITHM, "use": "sig"}
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        private_jwk=json.dumps(private, sort_keys=True),
        created_at=to_datetime(now),
    )


class KeyRing:
    """Signing keys loaded from the catalog; reloads on an unknown kid and when told to."""

    def __init__(self, catalog: Catalog, *, token_ttl: int, clock: Clock) -> None:
        self._catalog = catalog
        self._ttl = token_ttl
        self._clock = clock
        self._keys: dict[str, _Loaded] = {}
        self._loaded = False
        self._last_miss_reload = float("-inf")
        self._lock = threading.Lock()

    def _published_until(self, record: SigningKey) -> float | None:
        if record.retired_at is None:
            return None
        return record.retired_at.timestamp() + self._ttl + GRACE_SECONDS

    def reload(self) -> None:
        """Read the keys from the catalog (forgetting ones that were deleted)."""
        keys: dict[str, _Loaded] = {}
        for record in self._catalog.list_signing_keys():
            if record.algorithm not in ALGORITHMS:
                log.warning(
                    "signing key %s has unsupported algorithm %s", record.kid, record.algorithm
                )
                continue
            private = ECKey.import_key(json.loads(record.private_jwk))
            public = ECKey.import_key(private.as_dict(private=False))
            keys[record.kid] = _Loaded(record, private, public, self._published_until(record))
        self._keys = keys
        self._loaded = True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self.reload()

    def _active(self) -> _Loaded | None:
        active = [k for k in self._keys.values() if k.published_until is None]
        return max(active, key=lambda k: k.record.created_at) if active else None

    def signing_key(self) -> tuple[str, ECKey]:
        """The kid and private key to sign with now (the first key is made on first use)."""
        self._ensure_loaded()
        active = self._active()
        if active is None:
            with self._lock:
                self.reload()
                active = self._active()
                if active is None:
                    self._add(new_signing_key(self._clock()))
                    active = self._active()
        assert active is not None
        return active.record.kid, active.private

    def _add(self, record: SigningKey) -> None:
        try:
            self._catalog.add_signing_key(record)
        except AlreadyExists:  # practically impossible: kids are thumbprints of new keys
            log.warning("signing key %s already stored", record.kid)
        self.reload()

    def _usable(self, loaded: _Loaded) -> bool:
        return loaded.published_until is None or self._clock() < loaded.published_until

    def public_key(self, kid: str) -> ECKey | None:
        """The verification key `kid` if it still verifies; an unknown kid reloads (at most 1/s)."""
        self._ensure_loaded()
        loaded = self._keys.get(kid)
        if loaded is None:
            now = time.monotonic()
            if now - self._last_miss_reload < _MISS_RELOAD_SECONDS:
                return None
            self._last_miss_reload = now
            self.reload()
            loaded = self._keys.get(kid)
        if loaded is None or not self._usable(loaded):
            return None
        return loaded.public

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """The JWK Set of the public keys that still verify (RFC 7517)."""
        self._ensure_loaded()
        self.signing_key()
        return {
            "keys": [
                {**loaded.public.as_dict(private=False), "kid": kid, "alg": ALGORITHM, "use": "sig"}
                for kid, loaded in sorted(self._keys.items(), key=lambda i: i[1].record.created_at)
                if self._usable(loaded)
            ]
        }

    def rotate(self) -> SigningKeyInfo:
        """Sign with a new key from now on; delete private keys that verify nothing any more."""
        now = self._clock()
        with self._lock:
            self._catalog.delete_signing_keys(
                retired_before=to_datetime(now - self._ttl - GRACE_SECONDS) - PURGE_AFTER
            )
            record = new_signing_key(now)
            self._add(record)
        return self.info(record)

    def info(self, record: SigningKey) -> SigningKeyInfo:
        """The public facts about a stored key."""
        until = self._published_until(record)
        return SigningKeyInfo(
            kid=record.kid,
            algorithm=record.algorithm,
            created_at=record.created_at,
            retired_at=record.retired_at,
            published_until=None if until is None else to_datetime(until),
        )

    def infos(self) -> list[SigningKeyInfo]:
        """Every stored key, oldest first (read fresh from the catalog)."""
        with self._lock:
            self.reload()
        return [self.info(k.record) for k in sorted(self._keys.values(), key=_created)]


def _created(loaded: _Loaded) -> float:
    return loaded.record.created_at.timestamp()
