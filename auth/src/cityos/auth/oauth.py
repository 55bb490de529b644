"""authlib's framework-neutral OAuth2 core, wired to the catalog, our keys and our verifier.

authlib ships no Starlette/FastAPI server, so `routes.py` parses the HTTP request into a
`FormRequest` and turns the `(status, body, headers)` that authlib returns into a response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from authlib.oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    ClientMixin,
    InvalidScopeError,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    ClientCredentialsGrant,
)
from authlib.oauth2.rfc6749.requests import (  # type: ignore[import-untyped]
    BasicOAuth2Payload,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]

from cityos.auth.claims import InvalidToken, Parsed, parse
from cityos.auth.hashing import SecretChecker
from cityos.platform.domain.model import CLIENTS_ADMIN, SCOPES, OAuthClient
from cityos.platform.ports import Catalog, IssuedToken

# authlib's grants log every issued token in full at DEBUG ("Issue token {...}"): keep them
# out of any log, whatever level the operator turns on (a bearer token in a log is a leak).
logging.getLogger("authlib.oauth2.rfc6749.grants").setLevel(logging.INFO)

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPES = ["client_credentials"]
Response = tuple[int, dict[str, Any], list[tuple[str, str]]]


def safe_text(text: str, limit: int = 200) -> str:
    """`text` reduced to the characters RFC 6749 allows in an error_description."""
    kept = "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
    return kept[:limit]


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2 request whose urlencoded form the HTTP layer has parsed already."""

    def __init__(
        self,
        *,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        form: dict[str, str],
        issuer: str,
        source_ip: str | None = None,
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)
        self.issuer = issuer
        self.source_ip = source_ip

    @property
    def form(self) -> dict[str, str]:
        """The request body's parameters."""
        return self._form

    @property
    def args(self) -> dict[str, str]:
        """Query parameters (the endpoints read none)."""
        return {}


class ClientModel(ClientMixin):  # type: ignore[misc]
    """An OAuth client as authlib's grants and endpoints see it."""

    def __init__(self, client: OAuthClient, secret_hash: str, checker: SecretChecker) -> None:
        self.client = client
        self._secret_hash = secret_hash
        self._checker = checker

    def get_client_id(self) -> str:
        """The client id."""
        return self.client.id

    def get_default_redirect_uri(self) -> None:
        """No redirects: only the client_credentials grant is offered."""
        return None

    def requested(self, scope: str | None) -> frozenset[str]:
        """The scopes of a request: those asked for, or all granted ones when none are asked."""
        words = frozenset((scope or "").split())
        return words if words else self.client.scopes

    def get_allowed_scope(self, scope: str | None) -> str:
        """The scope string a token gets (validated before by the grant)."""
        return " ".join(sorted(self.requested(scope)))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """No redirect URI is ever valid."""
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        """Whether the secret matches the stored hash."""
        return self._checker.check(self.client.id, client_secret, self._secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """HTTP Basic and form parameters, at every endpoint."""
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        """No authorization endpoint, so no response type."""
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        """Only client_credentials."""
        return grant_type in GRANT_TYPES


class TokenModel(TokenMixin):  # type: ignore[misc]
    """One of our access tokens as the introspection and revocation endpoints see it."""

    def __init__(self, claims: dict[str, Any], *, now: float) -> None:
        self.claims = claims
        self._now = now

    @property
    def client_id(self) -> str:
        """The client the token was issued to."""
        return str(self.claims.get("client_id", ""))

    def check_client(self, client: ClientModel) -> bool:
        """Its own client, or a client granted clients:admin, may introspect or revoke it."""
        return self.client_id == client.get_client_id() or CLIENTS_ADMIN in client.client.scopes

    def get_scope(self) -> str:
        """The token's scope string."""
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        """Its lifetime in seconds."""
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        """Whether it has expired."""
        return self._now >= float(self.claims["exp"])

    def is_revoked(self) -> bool:
        """Revoked tokens never become a TokenModel for introspection."""
        return False

    def get_user(self) -> None:
        """No resource owner in client_credentials."""
        return None

    def get_client(self) -> None:
        """Not needed by the endpoints used."""
        return None


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4 with client authentication by HTTP Basic or form parameters."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        """invalid_scope for unknown scopes and for scopes the client was not granted."""
        requested = frozenset((self.request.payload.scope or "").split())
        unknown = requested - SCOPES
        if unknown:
            raise InvalidScopeError(safe_text(f"unknown scope: {' '.join(sorted(unknown))}"))
        client: ClientModel = self.request.client
        ungranted = requested - client.client.scopes
        if ungranted:
            raise InvalidScopeError(
                safe_text(f"not granted to this client: {' '.join(sorted(ungranted))}")
            )

    def generate_token(
        self,
        user: object = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """Sign an access token for the request's issuer (no refresh token)."""
        client: ClientModel = self.request.client
        server: OAuthServer = self.server
        issued = server.issue(client.client.id, client.requested(scope), self.request.issuer)
        return {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": " ".join(sorted(issued.scopes)),
        }


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: a client may introspect its own tokens; a clients:admin client, any."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenModel | None:
        """The token if it is ours and valid now (signature, claims, not revoked), else None."""
        server: OAuthServer = self.server
        try:
            claims = server.active_claims(parse(token_string))
        except InvalidToken:
            return None
        return TokenModel(claims, now=server.now())

    def check_permission(self, token: TokenModel, client: ClientModel, request: object) -> bool:
        """See the class docstring."""
        return token.check_client(client)

    def introspect_token(self, token: TokenModel) -> dict[str, Any]:
        """The RFC 7662 members of an active token."""
        claims = token.claims
        payload: dict[str, Any] = {
            name: claims[name]
            for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti")
            if name in claims
        }
        return {"active": True, "token_type": "Bearer", **payload}


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a client may revoke its own tokens; a clients:admin client, any."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenModel | None:
        """Any token we signed for our audience (expired and revoked ones too), else None."""
        server: OAuthServer = self.server
        try:
            claims = server.authentic_claims(parse(token_string))
        except InvalidToken:
            return None  # RFC 7009 §2.2: an invalid token needs no revocation; answer 200
        return TokenModel(claims, now=server.now())

    def revoke_token(self, token: TokenModel, request: FormRequest) -> None:
        """Refuse the token from now on, and audit who revoked it."""
        server: OAuthServer = self.server
        server.revoke(token.claims, request.client.get_client_id(), request.source_ip)


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's AuthorizationServer on the catalog; responses stay (status, body, headers)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        issue: Callable[[str, frozenset[str], str], IssuedToken],
        active_claims: Callable[[Parsed], dict[str, Any]],
        authentic_claims: Callable[[Parsed], dict[str, Any]],
        revoke: Callable[[dict[str, Any], str, str | None], None],
        now: Callable[[], float],
    ) -> None:
        super().__init__(scopes_supported=sorted(SCOPES))
        self._catalog = catalog
        self._checker = SecretChecker()
        self.issue = issue
        self.active_claims = active_claims
        self.authentic_claims = authentic_claims
        self.revoke = revoke
        self.now = now
        self.register_grant(ClientCredentials)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> ClientModel | None:
        """The client, unless unknown or revoked."""
        client = self._catalog.get_oauth_client(client_id)
        if client is None or client.revoked:
            return None
        secret_hash = self._catalog.oauth_client_secret_hash(client_id)
        if secret_hash is None:
            return None
        return ClientModel(client, secret_hash, self._checker)

    def save_token(self, token: dict[str, Any], request: object) -> None:
        """Nothing to store: access tokens are self-contained JWTs."""

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No signal system here."""

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        """The HTTP layer already built the request."""
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Response:
        """Keep authlib's answer as a tuple; `routes.py` makes the HTTP response."""
        return status, body, list(headers)
