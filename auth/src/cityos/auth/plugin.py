"""The built-in authorization server behind the `AuthServer` port (entry point `builtin`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from cityos.auth.claims import Parsed, string_claim
from cityos.auth.clock import Clock, system_clock, to_datetime
from cityos.auth.external import ExternalVerifier, Fetch, JwksCache, fetch_url
from cityos.auth.hashing import generate_client_id, generate_client_secret, hash_secret
from cityos.auth.keyring import KeyRing
from cityos.auth.oauth import OAuthServer
from cityos.auth.refresher import Refresher
from cityos.auth.revocations import Revocations
from cityos.auth.routes import build_router
from cityos.auth.tokens import TokenIssuer
from cityos.auth.verifier import LocalVerifier, Verifier
from cityos.platform.config import Settings
from cityos.platform.domain.errors import CityosError, ConfigError, InvalidInput, NotFound
from cityos.platform.domain.model import SCOPES, AuditEvent, OAuthClient
from cityos.platform.ports import (
    Catalog,
    ClientRevoked,
    ClientSecret,
    IssuedToken,
    SigningKeyInfo,
    TokenVerifier,
)

REFRESH_SECONDS = 2.0
"""How often a serving process picks up revocations and keys made by other processes."""
MAX_NAME_LENGTH = 200

log = logging.getLogger(__name__)


def check_scopes(scopes: frozenset[str]) -> frozenset[str]:
    """`scopes` if every one is known, else InvalidInput naming the unknown ones."""
    unknown = scopes - SCOPES
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {' '.join(sorted(unknown))}; known: {' '.join(sorted(SCOPES))}",
            field="scopes",
        )
    return scopes


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(
            f"client name must be 1..{MAX_NAME_LENGTH} printable characters", field="name"
        )
    return name


class BuiltinAuth:
    """OAuth2 authorization server, token verifier and client administration in one object."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        clock: Clock = system_clock,
        fetch: Fetch = fetch_url,
        refresh_seconds: float = REFRESH_SECONDS,
        jwks_min_refetch_seconds: float = 10.0,
    ) -> None:
        config = settings.auth
        self._catalog = catalog
        self._clock = clock
        self._issuer = config.issuer
        self.keys = KeyRing(catalog, token_ttl=config.token_ttl_seconds, clock=clock)
        self.revocations = Revocations(catalog, clock=clock)
        self._tokens = TokenIssuer(
            keys=self.keys,
            audience=config.audience,
            ttl_seconds=config.token_ttl_seconds,
            clock=clock,
        )
        self._local = LocalVerifier(
            keys=self.keys,
            revocations=self.revocations,
            issuer=config.issuer,
            audience=config.audience,
            clock=clock,
        )
        self._refresher = Refresher(self._refresh, interval=refresh_seconds)
        self._verifier = Verifier(
            local=self._local,
            external=_external(
                settings, clock=clock, fetch=fetch, min_refetch=jwks_min_refetch_seconds
            ),
            on_use=self._refresher.maybe,
        )
        self.oauth = OAuthServer(
            catalog=catalog,
            issue=lambda client_id, scopes, issuer: self._tokens.issue(
                client_id=client_id, scopes=scopes, issuer=issuer
            ),
            active_claims=self._active_claims,
            authentic_claims=self._local.authentic,
            revoke=self._revoke_token,
            now=clock,
        )
        self._router = build_router(self)

    # ------------------------------------------------------------ the port

    @property
    def router(self) -> APIRouter:
        """The `/oauth/*` and `/.well-known/*` routes."""
        return self._router

    @property
    def verifier(self) -> TokenVerifier:
        """Verifies our tokens and the external issuer's."""
        return self._verifier

    def add_client(self, *, name: str, scopes: frozenset[str]) -> ClientSecret:
        """Register a client granted `scopes`; its secret is returned once."""
        client = OAuthClient(
            id=generate_client_id(),
            name=_check_name(name),
            scopes=check_scopes(scopes),
            created_at=to_datetime(self._clock()),
        )
        secret = generate_client_secret()
        self._catalog.add_oauth_client(client, secret_hash=hash_secret(secret))
        return ClientSecret(client=client, client_secret=secret)

    def get_client(self, client_id: str) -> OAuthClient | None:
        """One client, or None."""
        return self._catalog.get_oauth_client(client_id)

    def list_clients(self) -> list[OAuthClient]:
        """All clients, ordered by id."""
        return self._catalog.list_oauth_clients()

    def _client(self, client_id: str) -> OAuthClient:
        client = self._catalog.get_oauth_client(client_id)
        if client is None:
            raise NotFound(f"no OAuth client {client_id!r}")
        if client.revoked:
            raise ClientRevoked(f"OAuth client {client_id!r} is revoked")
        return client

    def rotate_client_secret(self, client_id: str) -> ClientSecret:
        """A new secret; the old one stops working, tokens already issued stay valid."""
        self._client(client_id)
        secret = generate_client_secret()
        client = self._catalog.set_oauth_client_secret(client_id, hash_secret(secret))
        return ClientSecret(client=client, client_secret=secret)

    def revoke_client(self, client_id: str) -> OAuthClient:
        """Revoke a client: no new tokens, and its tokens are refused here at once."""
        client = self._catalog.revoke_oauth_client(client_id)
        self.revocations.client_was_revoked(client_id)
        return client

    def issue_token(
        self, client_id: str, *, scopes: frozenset[str] | None = None, issuer: str | None = None
    ) -> IssuedToken:
        """A token for a client without HTTP (all its scopes when `scopes` is None)."""
        client = self._client(client_id)
        wanted = client.scopes if scopes is None else check_scopes(scopes)
        if not wanted <= client.scopes:
            raise InvalidInput(
                f"client {client_id} was not granted {' '.join(sorted(wanted - client.scopes))}",
                field="scopes",
            )
        name = issuer or self._issuer
        if name is None:
            raise ConfigError("no issuer: set CITYOS__AUTH__ISSUER (or pass the server URL)")
        return self._tokens.issue(client_id=client_id, scopes=wanted, issuer=name)

    def signing_keys(self) -> list[SigningKeyInfo]:
        """The stored signing keys, oldest first."""
        return self.keys.infos()

    def rotate_signing_key(self) -> SigningKeyInfo:
        """Sign with a new key; older keys stay published until their tokens have expired."""
        return self.keys.rotate()

    def close(self) -> None:
        """Stop background refreshes."""
        self._refresher.close()

    # ------------------------------------------------------------ used by the routes

    def issuer_for(self, base_url: str) -> str:
        """The configured issuer, else the URL this request reached the server at."""
        return self._issuer if self._issuer is not None else base_url.rstrip("/")

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """The published public keys."""
        return self.keys.jwks()

    def _active_claims(self, parsed: Parsed) -> dict[str, Any]:
        """Claims of one of our tokens that is valid now (introspection)."""
        return self._local.verify(parsed).claims

    def _revoke_token(self, claims: dict[str, Any], actor: str, source_ip: str | None) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            jti = string_claim(claims, "jti")
            owner = string_claim(claims, "client_id")
            self.revocations.revoke_token(jti=jti, client_id=owner, expires_at=float(exp))
            self._audit_revocation(jti=jti, owner=owner, actor=actor, source_ip=source_ip)

    def _audit_revocation(self, *, jti: str, owner: str, actor: str, source_ip: str | None) -> None:
        """Record a token revocation (it has happened: a failed record is logged, not undone)."""
        event = AuditEvent(
            time=to_datetime(self._clock()),
            client_id=actor,
            operation="revokeToken",
            resources=(f"token:{jti}",),
            details={"kind": "admin", "outcome": "ok", "via": "oauth", "token_client": owner},
            source_ip=source_ip,
        )
        try:
            self._catalog.append_audit([event])
        except CityosError as exc:
            log.error("audit event NOT recorded: revokeToken of %s by %s: %s", jti, actor, exc)

    def _refresh(self) -> None:
        self.revocations.load()
        self.keys.reload()


def _external(
    settings: Settings, *, clock: Clock, fetch: Fetch, min_refetch: float
) -> ExternalVerifier | None:
    config = settings.auth
    if config.external_issuer is None and config.external_jwks_url is None:
        return None
    if config.external_issuer is None or config.external_jwks_url is None:
        raise ConfigError(
            "an external identity provider needs both CITYOS__AUTH__EXTERNAL_ISSUER and "
            "CITYOS__AUTH__EXTERNAL_JWKS_URL"
        )
    return ExternalVerifier(
        issuer=config.external_issuer,
        jwks=JwksCache(config.external_jwks_url, fetch=fetch, min_refetch_seconds=min_refetch),
        audience=config.audience,
        scope_claim=config.external_scope_claim,
        clock=clock,
    )


def create_auth(settings: Settings, *, catalog: Catalog) -> BuiltinAuth:
    """Entry point `cityos.auth: builtin`."""
    return BuiltinAuth(settings, catalog)
