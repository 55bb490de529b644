"""The authorization server through the real HTTP app: tokens, refusals, introspection, revocation.

Every refused token is refused the way a partner meets it: `POST /graphql` answers 401 with
`WWW-Authenticate: Bearer error="invalid_token"`, never an anonymous read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from cityos.auth import hashing
from cityos.auth.plugin import BuiltinAuth
from cityos.platform.api.app import create_app
from cityos.platform.config import AuthSettings, Settings
from cityos.platform.domain.model import CLIENTS_ADMIN, Device, Domain, Sensor
from cityos.platform.ports import ClientSecret
from cityos.platform.runtime import Runtime

BASE = "https://testserver"
SENSORS = "{ sensors { nodes { id domain } totalCount } }"
INVALID_TOKEN = 'Bearer error="invalid_token"'
PARTNER_SCOPES = frozenset({"tourism:read", "disaster:read", "export:read"})


class FakeClock:
    """Epoch seconds that tests move by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    runtime: Runtime
    auth: BuiltinAuth
    http: TestClient
    clock: FakeClock

    def token_response(self, client: ClientSecret, **form: str) -> httpx.Response:
        return self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", **form},
            auth=(client.client.id, client.client_secret),
        )

    def token(self, client: ClientSecret, **form: str) -> str:
        response = self.token_response(client, **form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def graphql(self, token: str | None, query: str = SENSORS) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.http.post("/graphql", json={"query": query}, headers=headers)

    def sensor_domains(self, token: str | None) -> set[str]:
        response = self.graphql(token)
        assert response.status_code == 200, response.text
        return {node["domain"] for node in response.json()["data"]["sensors"]["nodes"]}

    def assert_refused(self, token: str) -> None:
        response = self.graphql(token)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == INVALID_TOKEN
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    def other_auth(self, **auth_changes: Any) -> BuiltinAuth:
        """Another authorization server on the same catalog (another process, the CLI)."""
        settings = self.runtime.settings
        changed = settings.model_copy(
            update={"auth": settings.auth.model_copy(update=auth_changes)}
        )
        return BuiltinAuth(changed, self.runtime.catalog, clock=self.clock)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """PBKDF2 at 1,000 rounds in tests (the default is 600,000, checked in the unit tests)."""
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)


def add_sensors(runtime: Runtime) -> None:
    for device_id, domain in (("port", Domain.DISASTER), ("cape", Domain.TOURISM)):
        device = Device(id=device_id, name=device_id, domain=domain, payload_format="json")
        sensor = Sensor(
            id=f"{device_id}.level",
            device_id=device_id,
            quantity="level",
            unit="m",
            domain=domain,
            name=f"{device_id} level",
        )
        runtime.catalog.add_device(device, [sensor])


def open_stack(tmp_path: Path, auth_settings: AuthSettings | None = None) -> Iterator[Stack]:
    settings = Settings(data_dir=tmp_path / "data", auth=auth_settings or AuthSettings())
    runtime = Runtime.open(settings)
    assert runtime.auth is not None
    runtime.auth.close()
    clock = FakeClock()
    auth = BuiltinAuth(settings, runtime.catalog, clock=clock)
    runtime.auth, runtime.token_verifier = auth, auth.verifier
    add_sensors(runtime)
    http = TestClient(create_app(runtime), base_url=BASE)
    yield Stack(runtime=runtime, auth=auth, http=http, clock=clock)
    runtime.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from open_stack(tmp_path)


@pytest.fixture
def partner(stack: Stack) -> ClientSecret:
    return stack.auth.add_client(name="surf partner", scopes=PARTNER_SCOPES)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
    )


def resign(stack: Stack, token: str, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """The token with changed header/claims, properly signed with the server's current key."""
    old_header, old_claims = parts(token)
    _kid, key = stack.auth.keys.signing_key()
    new_claims = {k: v for k, v in {**old_claims, **claims}.items() if v is not None}
    new_header = {k: v for k, v in {**old_header, **(header or {})}.items() if v is not None}
    return sign_es256(new_header, new_claims, key)


def sign_es256(header: dict[str, Any], claims: dict[str, Any], key: ECKey) -> str:
    """A compact JWS signed by hand (no library checks of what goes into the header)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# ---------------------------------------------------------------- issuing


def test_client_credentials_with_basic_auth_gives_an_rfc9068_token(
    stack: Stack, partner: ClientSecret
) -> None:
    response = stack.token_response(partner)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "disaster:read export:read tourism:read"
    header, claims = parts(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    jwks = stack.http.get("/.well-known/jwks.json").json()
    assert [key["kid"] for key in jwks["keys"]] == [header["kid"]]
    assert all("d" not in key for key in jwks["keys"])  # no private parts published
    assert claims["iss"] == BASE
    assert claims["aud"] == "cityos"
    assert claims["sub"] == claims["client_id"] == partner.client.id
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - stack.clock.now) < 2
    assert len(claims["jti"]) >= 16
    assert stack.sensor_domains(body["access_token"]) == {"DISASTER", "TOURISM"}


def test_client_authentication_by_form_parameters(stack: Stack, partner: ClientSecret) -> None:
    response = stack.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.client.id,
            "client_secret": partner.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    assert stack.sensor_domains(response.json()["access_token"]) == {"DISASTER", "TOURISM"}


def test_a_subset_of_the_granted_scopes_can_be_requested(
    stack: Stack, partner: ClientSecret
) -> None:
    response = stack.token_response(partner, scope="tourism:read")
    assert response.json()["scope"] == "tourism:read"
    token = response.json()["access_token"]
    assert parts(token)[1]["scope"] == "tourism:read"
    assert stack.sensor_domains(token) == {"TOURISM"}
    # an empty scope parameter means "all granted scopes", like none at all
    assert stack.token_response(partner, scope="").json()["scope"] == (
        "disaster:read export:read tourism:read"
    )


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [
        ("health:read", "not granted to this client: health:read"),
        ("tourism:read clients:admin", "not granted to this client: clients:admin"),
        ("tourism:read root", "unknown scope: root"),
        ('evil"\\scope\u00e9', "unknown scope: evilscope"),
    ],
)
def test_a_scope_that_was_not_granted_is_refused(
    stack: Stack, partner: ClientSecret, scope: str, fragment: str
) -> None:
    response = stack.token_response(partner, scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert fragment in response.json()["error_description"]


def test_wrong_basic_credentials_are_invalid_client_401_with_www_authenticate(
    stack: Stack, partner: ClientSecret
) -> None:
    for user, password in ((partner.client.id, "wrong"), ("unknown", partner.client_secret)):
        response = stack.http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(user, password)
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic ")
    garbage = stack.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic %%%not-base64"},
    )
    assert garbage.status_code == 401
    assert garbage.headers["www-authenticate"].startswith("Basic ")


def test_wrong_form_credentials_and_none_at_all_are_invalid_client(
    stack: Stack, partner: ClientSecret
) -> None:
    for form in (
        {"client_id": partner.client.id, "client_secret": "wrong"},
        {"client_id": "unknown", "client_secret": "x"},
        {},
    ):
        response = stack.http.post(
            "/oauth/token", data={"grant_type": "client_credentials", **form}
        )
        assert response.status_code in (400, 401)
        assert response.json()["error"] == "invalid_client"


def test_unsupported_grant_types_and_malformed_requests(
    stack: Stack, partner: ClientSecret
) -> None:
    for grant in ("password", "authorization_code", "refresh_token"):
        response = stack.token_response(partner, grant_type=grant)
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"
    auth = (partner.client.id, partner.client_secret)
    no_grant = stack.http.post("/oauth/token", data={"scope": "tourism:read"}, auth=auth)
    assert no_grant.json()["error"] == "invalid_request"
    as_json = stack.http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    repeated = stack.http.post(
        "/oauth/token",
        content="grant_type=client_credentials&scope=tourism:read&scope=health:read",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=auth,
    )
    assert repeated.json()["error"] == "invalid_request"
    two_methods = stack.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": partner.client_secret},
        auth=auth,
    )
    assert two_methods.json()["error"] == "invalid_request"
    assert stack.http.get("/oauth/token").status_code == 405


def test_plain_http_off_loopback_is_refused(stack: Stack, partner: ClientSecret) -> None:
    plain = TestClient(create_app(stack.runtime), base_url="http://cityos.example.jp")
    response = plain.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.client.id, partner.client_secret),
    )
    assert (response.status_code, response.json()["error"]) == (400, "insecure_transport")
    loopback = TestClient(create_app(stack.runtime), base_url="http://127.0.0.1:8000")
    response = loopback.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.client.id, partner.client_secret),
    )
    assert response.status_code == 200
    assert parts(response.json()["access_token"])[1]["iss"] == "http://127.0.0.1:8000"


def test_a_revoked_client_gets_no_token(stack: Stack, partner: ClientSecret) -> None:
    stack.auth.revoke_client(partner.client.id)
    response = stack.token_response(partner)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_rotated_secret_replaces_the_old_one(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    rotated = stack.auth.rotate_client_secret(partner.client.id)
    assert stack.token_response(partner).status_code == 401
    assert stack.token_response(rotated).status_code == 200
    assert stack.sensor_domains(token) == {"DISASTER", "TOURISM"}  # issued tokens stay valid


def test_metadata_follows_rfc8414(stack: Stack) -> None:
    document = stack.http.get("/.well-known/oauth-authorization-server").json()
    metadata = AuthorizationServerMetadata(document)
    for key in metadata.REGISTRY_KEYS:
        # response_types_supported is [] on purpose: there is no authorization endpoint
        # (authlib's validator wants at least one, RFC 8414 does not say so)
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()
    assert document["response_types_supported"] == []
    assert "authorization_endpoint" not in document
    assert document["issuer"] == BASE
    assert document["token_endpoint"] == f"{BASE}/oauth/token"
    assert document["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert document["introspection_endpoint"] == f"{BASE}/oauth/introspect"
    assert document["revocation_endpoint"] == f"{BASE}/oauth/revoke"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"tourism:read", "export:read", "clients:admin"} <= set(document["scopes_supported"])


# ---------------------------------------------------------------- refused tokens


def test_an_expired_token_is_refused(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    stack.clock.now += 899
    assert stack.sensor_domains(token) == {"DISASTER", "TOURISM"}
    stack.clock.now += 12  # past exp and the 10 s leeway
    stack.assert_refused(token)


def test_a_token_that_is_not_yet_valid_is_refused(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    stack.assert_refused(resign(stack, token, nbf=int(stack.clock.now) + 60))
    stack.assert_refused(resign(stack, token, iat=int(stack.clock.now) + 60))
    stack.clock.now -= 3600  # the verifier's clock is behind the issuer's by an hour
    stack.assert_refused(token)


def test_a_token_without_required_claims_is_refused(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    for claim in ("exp", "iat", "jti", "client_id", "iss", "aud"):
        stack.assert_refused(resign(stack, token, **{claim: None}))
    stack.assert_refused(resign(stack, token, exp="tomorrow"))
    assert stack.sensor_domains(resign(stack, token)) == {"DISASTER", "TOURISM"}


def test_a_wrong_issuer_is_refused(tmp_path: Path) -> None:
    issuer = "https://api.cityos.example.jp"
    for stack in open_stack(tmp_path, AuthSettings(issuer=issuer)):
        partner = stack.auth.add_client(name="p", scopes=PARTNER_SCOPES)
        token = stack.token(partner)
        assert parts(token)[1]["iss"] == issuer
        assert stack.http.get("/.well-known/oauth-authorization-server").json()["issuer"] == issuer
        assert stack.sensor_domains(token) == {"DISASTER", "TOURISM"}
        stack.assert_refused(resign(stack, token, iss=BASE))
        stack.assert_refused(resign(stack, token, iss=issuer + "/"))


def test_without_a_configured_issuer_only_server_urls_pass(
    stack: Stack, partner: ClientSecret
) -> None:
    token = stack.token(partner)
    for iss in ("cityos", "urn:cityos", "https://x.example/?q=1", 42):
        stack.assert_refused(resign(stack, token, iss=iss))


def test_a_wrong_audience_is_refused(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    for aud in ("other-api", ["other-api"], None):
        stack.assert_refused(resign(stack, token, aud=aud))
    assert stack.sensor_domains(resign(stack, token, aud=["other-api", "cityos"])) == {
        "DISASTER",
        "TOURISM",
    }
    elsewhere = stack.other_auth(audience="other-api")
    stack.assert_refused(elsewhere.issue_token(partner.client.id, issuer=BASE).access_token)


def test_a_bad_signature_is_refused(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    stack.assert_refused(f"{head}.{payload}.{flipped}")
    # claims changed after signing
    _, claims = parts(token)
    forged = b64(json.dumps({**claims, "scope": "health:read clients:admin"}).encode())
    stack.assert_refused(f"{head}.{forged}.{signature}")
    # signed by another key that claims the server's kid
    stranger = ECKey.generate_key("P-256", private=True)
    header, _ = parts(token)
    stack.assert_refused(jwt.encode(header, claims, stranger, algorithms=["ES256"]))


def test_alg_none_is_refused(stack: Stack, partner: ClientSecret) -> None:
    header, claims = parts(stack.token(partner))
    for alg in ("none", "None", "NONE"):
        head = b64(json.dumps({**header, "alg": alg}).encode())
        unsigned = f"{head}.{b64(json.dumps(claims).encode())}."
        stack.assert_refused(unsigned)


def test_hs256_signed_with_the_public_key_is_refused(stack: Stack, partner: ClientSecret) -> None:
    header, claims = parts(stack.token(partner))
    public_jwk = next(
        k
        for k in stack.http.get("/.well-known/jwks.json").json()["keys"]
        if k["kid"] == header["kid"]
    )
    pem = ECKey.import_key(public_jwk).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, json.dumps(public_jwk).encode(), public_jwk["x"].encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = (
                f"{b64(json.dumps({**header, 'alg': alg}).encode())}."
                f"{b64(json.dumps(claims).encode())}"
            )
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            stack.assert_refused(f"{signing_input}.{b64(mac)}")


def test_other_asymmetric_algorithms_and_token_types_are_refused(
    stack: Stack, partner: ClientSecret
) -> None:
    token = stack.token(partner)
    header, claims = parts(token)
    rsa = RSAKey.generate_key(2048, private=True)
    stack.assert_refused(jwt.encode({**header, "alg": "RS256"}, claims, rsa, algorithms=["RS256"]))
    for typ in ("JWT", "at+JWT-not", None):
        stack.assert_refused(resign(stack, token, header={"typ": typ}))
    stack.assert_refused(resign(stack, token, header={"kid": "unknown-kid"}))
    stack.assert_refused(resign(stack, token, header={"crit": ["exp"]}))
    stack.assert_refused(resign(stack, token, header={"b64": False}))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer not.a.jwt", "Bearer a.b", "Bearer ....", "Basic dXNlcjpwdw=="],
)
def test_malformed_authorization_is_401_never_anonymous(stack: Stack, authorization: str) -> None:
    response = stack.http.post(
        "/graphql", json={"query": SENSORS}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN


def test_no_token_is_anonymous_and_sees_no_domain_data(stack: Stack) -> None:
    assert stack.sensor_domains(None) == set()


# ---------------------------------------------------------------- revocation


def revoke(stack: Stack, client: ClientSecret, token: str) -> httpx.Response:
    return stack.http.post(
        "/oauth/revoke", data={"token": token}, auth=(client.client.id, client.client_secret)
    )


def test_a_revoked_token_stops_working_at_once(stack: Stack, partner: ClientSecret) -> None:
    token, other = stack.token(partner), stack.token(partner)
    response = revoke(stack, partner, token)
    assert (response.status_code, response.json()) == (200, {})
    stack.assert_refused(token)
    assert stack.sensor_domains(other) == {"DISASTER", "TOURISM"}
    assert revoke(stack, partner, token).status_code == 200  # idempotent
    (stored,) = stack.runtime.catalog.list_revoked_tokens(
        expiring_after=stack.runtime.catalog.list_oauth_clients()[0].created_at
    )
    assert stored.jti == parts(token)[1]["jti"]
    events = stack.runtime.catalog.list_audit(client_id=partner.client.id)
    revocations = [event for event in events if event.operation == "revokeToken"]
    assert len(revocations) == 2  # each revocation request is on record, with no token in it
    assert revocations[0].resources == (f"token:{stored.jti}",)
    assert revocations[0].details["token_client"] == partner.client.id
    assert revocations[0].source_ip is not None
    assert token not in repr(events)


def test_revocation_needs_the_tokens_own_client_or_clients_admin(
    stack: Stack, partner: ClientSecret
) -> None:
    token = stack.token(partner)
    stranger = stack.auth.add_client(name="stranger", scopes=frozenset({"tourism:read"}))
    response = revoke(stack, stranger, token)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert stack.sensor_domains(token) == {"DISASTER", "TOURISM"}
    unauthenticated = stack.http.post("/oauth/revoke", data={"token": token})
    assert unauthenticated.status_code == 401
    admin = stack.auth.add_client(name="admin", scopes=frozenset({CLIENTS_ADMIN}))
    assert revoke(stack, admin, token).status_code == 200
    stack.assert_refused(token)


def test_revoking_garbage_or_a_foreign_token_is_ok(stack: Stack, partner: ClientSecret) -> None:
    assert revoke(stack, partner, "not-a-token").status_code == 200
    missing = stack.http.post(
        "/oauth/revoke", data={}, auth=(partner.client.id, partner.client_secret)
    )
    assert missing.json()["error"] == "invalid_request"


def test_a_revoked_client_s_tokens_stop_working_at_once(
    stack: Stack, partner: ClientSecret
) -> None:
    token = stack.token(partner)
    stack.auth.revoke_client(partner.client.id)
    stack.assert_refused(token)


def test_revocations_by_another_process_arrive_within_the_refresh_interval(
    stack: Stack, partner: ClientSecret
) -> None:
    tokens = [stack.token(partner) for _ in range(2)]
    assert stack.sensor_domains(tokens[0]) == {"DISASTER", "TOURISM"}  # loads the sets
    cli = stack.other_auth()  # e.g. `cityos clients revoke` or another replica
    cli.revocations.revoke_token(
        jti=parts(tokens[1])[1]["jti"],
        client_id=partner.client.id,
        expires_at=stack.clock.now + 900,
    )
    cli.close()
    deadline = time.monotonic() + 10
    while stack.graphql(tokens[1]).status_code != 401:
        assert time.monotonic() < deadline, "the revocation never arrived"
        time.sleep(0.2)
    cli = stack.other_auth()
    cli.revoke_client(partner.client.id)
    cli.close()
    while stack.graphql(tokens[0]).status_code != 401:
        assert time.monotonic() < deadline, "the client revocation never arrived"
        time.sleep(0.2)


# ---------------------------------------------------------------- introspection


def introspect(stack: Stack, client: ClientSecret | None, token: str) -> httpx.Response:
    auth = None if client is None else (client.client.id, client.client_secret)
    return stack.http.post("/oauth/introspect", data={"token": token}, auth=auth)


def test_introspection_of_an_active_token(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner, scope="tourism:read")
    body = introspect(stack, partner, token).json()
    _, claims = parts(token)
    assert body == {
        "active": True,
        "token_type": "Bearer",
        "scope": "tourism:read",
        "client_id": partner.client.id,
        "sub": partner.client.id,
        "aud": "cityos",
        "iss": BASE,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
    }


def test_introspection_says_inactive_for_bad_expired_revoked_and_foreign_tokens(
    stack: Stack, partner: ClientSecret
) -> None:
    inactive = {"active": False}
    assert introspect(stack, partner, "garbage").json() == inactive
    token = stack.token(partner)
    stranger = stack.auth.add_client(name="stranger", scopes=frozenset({"tourism:read"}))
    assert introspect(stack, stranger, token).json() == inactive  # not its token
    admin = stack.auth.add_client(name="admin", scopes=frozenset({CLIENTS_ADMIN}))
    assert introspect(stack, admin, token).json()["active"] is True
    revoked = stack.token(partner)
    revoke(stack, partner, revoked)
    assert introspect(stack, partner, revoked).json() == inactive
    stack.clock.now += 1000
    assert introspect(stack, partner, token).json() == inactive


def test_only_an_authenticated_client_may_introspect(stack: Stack, partner: ClientSecret) -> None:
    token = stack.token(partner)
    for client in (None, ClientSecret(client=partner.client, client_secret="wrong")):
        response = introspect(stack, client, token)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert "active" not in response.json()
    stack.auth.revoke_client(partner.client.id)
    assert introspect(stack, partner, token).status_code == 401


# ---------------------------------------------------------------- signing keys


def test_key_rotation_keeps_issued_tokens_valid(stack: Stack, partner: ClientSecret) -> None:
    old = stack.token(partner)
    old_kid = parts(old)[0]["kid"]
    stack.clock.now += 1
    rotated = stack.auth.rotate_signing_key()
    new = stack.token(partner)
    assert parts(new)[0]["kid"] == rotated.kid != old_kid
    kids = [key["kid"] for key in stack.http.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [old_kid, rotated.kid]
    assert stack.sensor_domains(old) == stack.sensor_domains(new) == {"DISASTER", "TOURISM"}
    infos = stack.auth.signing_keys()
    assert [(k.kid, k.retired_at is None) for k in infos] == [(old_kid, False), (rotated.kid, True)]
    # once every token the old key signed has expired, it is no longer published or accepted
    stack.clock.now += 900 + 60 + 1
    kids = [key["kid"] for key in stack.http.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [rotated.kid]
    stack.assert_refused(resign(stack, old, header={"kid": old_kid}))


def test_a_key_rotated_by_another_process_is_used_and_accepted(
    stack: Stack, partner: ClientSecret
) -> None:
    before = stack.token(partner)
    cli = stack.other_auth()  # `cityos keys rotate` runs in its own process
    rotated = cli.rotate_signing_key()
    from_cli = cli.issue_token(partner.client.id, issuer=BASE)
    cli.close()
    assert parts(from_cli.access_token)[0]["kid"] == rotated.kid
    # the serving process has never seen this kid: it reloads the keys and accepts the token
    assert stack.sensor_domains(from_cli.access_token) == {"DISASTER", "TOURISM"}
    assert stack.sensor_domains(before) == {"DISASTER", "TOURISM"}
    assert parts(stack.token(partner))[0]["kid"] == rotated.kid


def test_old_private_keys_are_deleted_by_a_later_rotation(stack: Stack) -> None:
    first = stack.auth.rotate_signing_key()
    stack.auth.rotate_signing_key()
    stack.clock.now += 900 + 60 + 86400 + 1
    third = stack.auth.rotate_signing_key()
    kids = [key.kid for key in stack.auth.signing_keys()]
    assert first.kid not in kids
    assert kids[-1] == third.kid
