"""Tokens of an external identity provider (Keycloak style), verified by its JWKS URL.

A local HTTP server plays the IdP: it serves a JWKS for key pairs generated here, and the
tests rotate its keys the way Keycloak does (new key published, old one kept or dropped).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from cityos.auth.external import JwksCache
from cityos.auth.plugin import BuiltinAuth
from cityos.platform.api.app import create_app
from cityos.platform.config import AuthSettings, Settings
from cityos.platform.domain.errors import ConfigError
from cityos.platform.domain.model import Device, Domain, Sensor
from cityos.platform.runtime import Runtime

ISSUER = "https://idp.example.jp/realms/omaezaki"
CERTS_PATH = "/realms/omaezaki/protocol/openid-connect/certs"
QUERY = "{ sensors { nodes { domain } } }"


@dataclass
class FakeIdp:
    """Serves `jwks` at CERTS_PATH and counts the requests; `down` answers 503."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    requests: int = 0
    down: bool = False
    url: str = ""


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True
    )


def publish(idp: FakeIdp, *keys: RSAKey | OctKey) -> None:
    idp.jwks = {"keys": [key.as_dict(private=isinstance(key, OctKey)) for key in keys]}


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    state = FakeIdp()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.down or self.path != CERTS_PATH:
                self.send_response(503 if state.down else 404)
                self.end_headers()
                return
            body = json.dumps(state.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}{CERTS_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def keycloak_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "exp": now + 300,
        "iat": now,
        "jti": "5e0f2c1a-idp",
        "iss": ISSUER,
        "aud": ["cityos", "account"],
        "sub": "8d1c-service-account",
        "typ": "Bearer",
        "azp": "surf-forecast-app",
        "scope": "openid profile tourism:read email",
    }
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def sign(key: RSAKey, claims: dict[str, Any], alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "typ": "JWT", "kid": key.kid}, claims, key, algorithms=[alg])


@dataclass
class Api:
    runtime: Runtime
    http: TestClient

    def get(self, token: str) -> tuple[int, set[str]]:
        response = self.http.post(
            "/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code != 200:
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            return response.status_code, set()
        return 200, {node["domain"] for node in response.json()["data"]["sensors"]["nodes"]}


def open_api(
    tmp_path: Path, idp: FakeIdp, *, min_refetch: float = 0.0, **auth: Any
) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth=AuthSettings(external_issuer=ISSUER, external_jwks_url=idp.url, **auth),
    )
    runtime = Runtime.open(settings)
    assert runtime.auth is not None
    runtime.auth.close()
    builtin = BuiltinAuth(settings, runtime.catalog, jwks_min_refetch_seconds=min_refetch)
    runtime.auth, runtime.token_verifier = builtin, builtin.verifier
    for device_id, domain in (("cape", Domain.TOURISM), ("port", Domain.DISASTER)):
        runtime.catalog.add_device(
            Device(id=device_id, name=device_id, domain=domain, payload_format="json"),
            [
                Sensor(
                    id=f"{device_id}.x",
                    device_id=device_id,
                    quantity="x",
                    unit="m",
                    domain=domain,
                    name="x",
                )
            ],
        )
    yield Api(runtime=runtime, http=TestClient(create_app(runtime), base_url="https://testserver"))
    runtime.close()


@pytest.fixture
def api(tmp_path: Path, idp: FakeIdp) -> Iterator[Api]:
    yield from open_api(tmp_path, idp)


def test_a_keycloak_token_is_accepted_with_its_scope_claim_mapped(api: Api, idp: FakeIdp) -> None:
    key = rsa_key("kc-1")
    publish(idp, key)
    token = sign(key, keycloak_claims())
    assert api.get(token) == (200, {"TOURISM"})
    assert api.get(sign(key, keycloak_claims(scope="tourism:read disaster:read"))) == (
        200,
        {"TOURISM", "DISASTER"},
    )
    assert api.get(token) == (200, {"TOURISM"})
    assert idp.requests == 1  # the JWKS is cached


def test_key_rotation_at_the_idp_is_followed(api: Api, idp: FakeIdp) -> None:
    old, new = rsa_key("kc-1"), rsa_key("kc-2")
    publish(idp, old)
    old_token = sign(old, keycloak_claims())
    assert api.get(old_token) == (200, {"TOURISM"})
    publish(idp, old, new)  # the IdP adds a key and starts signing with it
    assert api.get(sign(new, keycloak_claims())) == (200, {"TOURISM"})
    assert idp.requests == 2  # one refetch, for the unknown kid
    assert api.get(old_token) == (200, {"TOURISM"})
    publish(idp, new)  # the old key is dropped: its tokens go with it once refetched
    newest = rsa_key("kc-3")
    publish(idp, new, newest)
    assert api.get(sign(newest, keycloak_claims())) == (200, {"TOURISM"})
    assert api.get(old_token) == (401, set())


def test_a_list_valued_scope_claim_under_another_name(tmp_path: Path, idp: FakeIdp) -> None:
    key = rsa_key("kc-1")
    publish(idp, key)
    for api in open_api(tmp_path, idp, external_scope_claim="cityos_scopes"):
        claims = keycloak_claims(cityos_scopes=["disaster:read", "tourism:read"])
        assert api.get(sign(key, claims)) == (200, {"TOURISM", "DISASTER"})
        assert api.get(sign(key, keycloak_claims())) == (200, set())  # `scope` is not read
        assert api.get(sign(key, keycloak_claims(cityos_scopes=[1, 2]))) == (401, set())


def test_bad_external_tokens_are_refused(api: Api, idp: FakeIdp) -> None:
    key = rsa_key("kc-1")
    publish(idp, key)
    refused = [
        sign(key, keycloak_claims(aud="account")),
        sign(key, keycloak_claims(aud=None)),
        sign(key, keycloak_claims(exp=int(time.time()) - 60)),
        sign(key, keycloak_claims(nbf=int(time.time()) + 600)),
        sign(key, keycloak_claims(azp=None, sub=None)),
        sign(rsa_key("kc-1"), keycloak_claims()),  # same kid, another key
        sign(key, keycloak_claims(iss="https://evil.example/realms/omaezaki")),
    ]
    for token in refused:
        assert api.get(token) == (401, set())
    assert api.get(sign(key, keycloak_claims())) == (200, {"TOURISM"})


def test_symmetric_keys_and_alg_none_never_verify(api: Api, idp: FakeIdp) -> None:
    key = rsa_key("kc-1")
    oct_key = OctKey.generate_key(256, parameters={"kid": "hs"})
    publish(idp, key, oct_key)
    claims = keycloak_claims()
    hs = jwt.encode({"alg": "HS256", "kid": "hs"}, claims, oct_key, algorithms=["HS256"])
    assert api.get(hs) == (401, set())
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "kid": "kc-1"}).encode())
    signing_input = f"{head}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert api.get(f"{signing_input}.{b64(mac)}") == (401, set())
    none = (
        f"{b64(json.dumps({'alg': 'none', 'kid': 'kc-1'}).encode())}.{signing_input.split('.')[1]}."
    )
    assert api.get(none) == (401, set())


def test_an_unreachable_idp_means_401_then_recovery(api: Api, idp: FakeIdp) -> None:
    key = rsa_key("kc-1")
    publish(idp, key)
    idp.down = True
    token = sign(key, keycloak_claims())
    assert api.get(token) == (401, set())
    idp.down = False
    assert api.get(token) == (200, {"TOURISM"})
    idp.down = True  # keys already fetched keep working while the IdP is down
    assert api.get(token) == (200, {"TOURISM"})


def test_our_own_tokens_still_work_beside_the_external_issuer(api: Api) -> None:
    assert api.runtime.auth is not None
    client = api.runtime.auth.add_client(name="p", scopes=frozenset({"disaster:read"}))
    token = api.runtime.auth.issue_token(client.client.id, issuer="https://testserver")
    assert api.get(token.access_token) == (200, {"DISASTER"})


def test_unknown_kids_refetch_at_most_every_interval() -> None:
    fetched: list[float] = []
    now = [1000.0]
    key = rsa_key("kc-1")

    def fetch(url: str) -> bytes:
        fetched.append(now[0])
        return json.dumps({"keys": [key.as_dict()]}).encode()

    cache = JwksCache(
        "http://idp/certs", fetch=fetch, min_refetch_seconds=10, monotonic=lambda: now[0]
    )
    assert cache.key("kc-1") is not None
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        assert cache.key(kid) is None
    assert fetched == [1000.0]
    now[0] += 10
    assert cache.key("made-up-4") is None
    assert fetched == [1000.0, 1010.0]
    now[0] += 3601  # stale: refreshed even for a known kid
    assert cache.key("kc-1") is not None
    assert len(fetched) == 3


def test_half_an_external_configuration_stops_start_up(tmp_path: Path) -> None:
    for auth in (
        AuthSettings(external_issuer=ISSUER),
        AuthSettings(external_jwks_url="http://127.0.0.1:1/certs"),
    ):
        with pytest.raises(ConfigError, match="EXTERNAL_ISSUER"):
            Runtime.open(Settings(data_dir=tmp_path / "data", auth=auth))
