"""Revoked tokens and clients, answered from memory; revocation is never undone."""

from __future__ import annotations

import threading
from datetime import timedelta

from cityos.auth.clock import Clock, to_datetime
from cityos.platform.domain.model import RevokedToken
from cityos.platform.ports import Catalog

PURGE_AFTER = timedelta(hours=1)
"""Revoked-token records are deleted this long after the token would have expired."""


class Revocations:
    """In-process sets of revoked token ids (jti) and revoked clients.

    A revocation made through this process is in the sets before the call returns, so the token
    or client stops working here at once. Revocations made by other processes (the CLI, other
    replicas) arrive with `load()`, which the auth server runs every few seconds. Loading only
    ever adds: a revocation is permanent, so a load that raced with a local revocation cannot
    lose it.
    """

    def __init__(self, catalog: Catalog, *, clock: Clock) -> None:
        self._catalog = catalog
        self._clock = clock
        self._tokens: dict[str, float] = {}  # jti -> expiry (epoch seconds)
        self._clients: frozenset[str] = frozenset()
        self._loaded = False
        self._lock = threading.Lock()

    def load(self) -> None:
        """Merge the revocations stored in the catalog into the in-process sets."""
        now = self._clock()
        stored = self._catalog.list_revoked_tokens(expiring_after=to_datetime(now))
        revoked_clients = {c.id for c in self._catalog.list_oauth_clients() if c.revoked}
        with self._lock:
            tokens = {jti: exp for jti, exp in self._tokens.items() if exp > now}
            tokens.update((t.jti, t.expires_at.timestamp()) for t in stored)
            self._tokens = tokens
            self._clients = self._clients | revoked_clients
            self._loaded = True

    def ensure_loaded(self) -> None:
        """Load once, on first use."""
        if not self._loaded:
            self.load()

    def token_revoked(self, jti: str) -> bool:
        """Whether the token with this id was revoked."""
        return jti in self._tokens

    def client_revoked(self, client_id: str) -> bool:
        """Whether this client was revoked."""
        return client_id in self._clients

    def revoke_token(self, *, jti: str, client_id: str, expires_at: float) -> None:
        """Store a token's revocation, then refuse it here; forget long-expired ones."""
        now = self._clock()
        if expires_at <= now:
            return  # expired tokens are refused anyway
        self._catalog.revoke_token(
            RevokedToken(
                jti=jti,
                client_id=client_id,
                expires_at=to_datetime(expires_at),
                revoked_at=to_datetime(now),
            )
        )
        with self._lock:
            self._tokens = {**self._tokens, jti: expires_at}
        self._catalog.purge_revoked_tokens(expired_before=to_datetime(now) - PURGE_AFTER)

    def client_was_revoked(self, client_id: str) -> None:
        """Refuse a client's tokens here from now on (after the catalog stored the revocation)."""
        with self._lock:
            self._clients = self._clients | {client_id}
