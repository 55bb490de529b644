"""OAuth client administration through GraphQL: scope, results, paging, effect on tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.config import READ_SCOPES, Settings
from cityos.platform.domain.model import CLIENTS_ADMIN, SCOPES
from cityos.platform.runtime import Runtime

ADMIN = frozenset({CLIENTS_ADMIN, "tourism:read", "export:read"})

ADD = """
mutation($input: AddClientInput!) {
  addClient(input: $input) {
    __typename
    ... on ClientCredentials { clientId clientSecret client { id name scopes revoked createdAt } }
    ... on InputError { message field }
  }
}"""
ROTATE = """
mutation($id: ID!) {
  rotateClientSecret(id: $id) {
    __typename
    ... on ClientCredentials { clientId clientSecret client { rotatedAt } }
    ... on InputError { message field }
    ... on NotFoundError { message id }
  }
}"""
REVOKE = """
mutation($id: ID!) {
  revokeClient(id: $id) {
    __typename
    ... on OAuthClient { id revoked revokedAt }
    ... on NotFoundError { message id }
  }
}"""
CLIENTS = """
query($first: Int, $after: String) {
  clients(first: $first, after: $after) {
    nodes { id name scopes revoked } pageInfo { hasNextPage endCursor } totalCount
  }
}"""
CLIENT = "query($id: ID!) { client(id: $id) { id name scopes } }"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    yield runtime
    runtime.close()


def gql(
    runtime: Runtime,
    scopes: frozenset[str],
    query: str,
    token: str | None = None,
    **variables: Any,
) -> dict[str, Any]:
    client = TestClient(create_app(runtime, anonymous_scopes=scopes), base_url="https://testserver")
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def add(runtime: Runtime, name: str = "surf partner", scopes: list[str] | None = None) -> Any:
    result = gql(runtime, ADMIN, ADD, input={"name": name, "scopes": scopes or ["tourism:read"]})[
        "data"
    ]["addClient"]
    return result


def test_add_client_returns_the_secret_once_and_it_gets_tokens(runtime: Runtime) -> None:
    result = add(runtime, scopes=["tourism:read", "export:read"])
    assert result["__typename"] == "ClientCredentials"
    assert result["client"]["id"] == result["clientId"]
    assert result["client"]["scopes"] == ["export:read", "tourism:read"]
    assert result["client"]["revoked"] is False
    stored = runtime.catalog.oauth_client_secret_hash(result["clientId"])
    assert stored is not None
    assert result["clientSecret"] not in stored
    assert hashing.verify_secret(result["clientSecret"], stored)
    http = TestClient(create_app(runtime), base_url="https://testserver")
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(result["clientId"], result["clientSecret"]),
    )
    assert token.json()["scope"] == "export:read tourism:read"


@pytest.mark.parametrize(
    ("scopes", "fragment"),
    [
        (["tourism:read", "root"], "unknown scope(s) root"),
        (["health:read"], "you can only grant scopes you hold yourself: health:read"),
        (["devices:admin", "tourism:read"], "hold yourself: devices:admin"),
    ],
)
def test_add_client_refuses_unknown_and_unheld_scopes(
    runtime: Runtime, scopes: list[str], fragment: str
) -> None:
    result = add(runtime, scopes=scopes)
    assert result["__typename"] == "InputError"
    assert result["field"] == "scopes"
    assert fragment in result["message"]
    assert runtime.catalog.list_oauth_clients() == []


def test_add_client_refuses_a_bad_name(runtime: Runtime) -> None:
    for name in ("", "  ", "x" * 201, "tab\tname"):
        result = add(runtime, name=name)
        assert (result["__typename"], result["field"]) == ("InputError", "name")


def test_every_operation_needs_clients_admin(runtime: Runtime) -> None:
    everything_else = frozenset(SCOPES - {CLIENTS_ADMIN})
    for query, variables in (
        (CLIENTS, {}),
        (CLIENT, {"id": "x"}),
        (ADD, {"input": {"name": "n", "scopes": []}}),
        (ROTATE, {"id": "x"}),
        (REVOKE, {"id": "x"}),
    ):
        body = gql(runtime, everything_else, query, **variables)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
    assert runtime.catalog.list_oauth_clients() == []


def test_clients_are_listed_and_paged_by_id(runtime: Runtime) -> None:
    ids = sorted(add(runtime, name=f"partner {n}")["clientId"] for n in range(3))
    first = gql(runtime, ADMIN, CLIENTS, first=2)["data"]["clients"]
    assert [node["id"] for node in first["nodes"]] == ids[:2]
    assert first["totalCount"] == 3
    assert first["pageInfo"]["hasNextPage"] is True
    rest = gql(runtime, ADMIN, CLIENTS, first=2, after=first["pageInfo"]["endCursor"])
    assert [node["id"] for node in rest["data"]["clients"]["nodes"]] == ids[2:]
    assert rest["data"]["clients"]["pageInfo"]["hasNextPage"] is False
    one = gql(runtime, ADMIN, CLIENT, id=ids[1])["data"]["client"]
    assert one["id"] == ids[1]
    assert gql(runtime, ADMIN, CLIENT, id="nope")["data"]["client"] is None
    too_many = gql(runtime, ADMIN, CLIENTS, first=1001)
    assert too_many["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


def test_rotate_gives_a_new_secret_and_refuses_unknown_and_revoked(runtime: Runtime) -> None:
    added = add(runtime)
    rotated = gql(runtime, ADMIN, ROTATE, id=added["clientId"])["data"]["rotateClientSecret"]
    assert rotated["__typename"] == "ClientCredentials"
    assert rotated["clientSecret"] != added["clientSecret"]
    assert rotated["client"]["rotatedAt"] is not None
    stored = runtime.catalog.oauth_client_secret_hash(added["clientId"])
    assert stored is not None
    assert hashing.verify_secret(rotated["clientSecret"], stored)
    assert not hashing.verify_secret(added["clientSecret"], stored)
    missing = gql(runtime, ADMIN, ROTATE, id="nope")["data"]["rotateClientSecret"]
    assert missing == {
        "__typename": "NotFoundError",
        "message": "no OAuth client 'nope'",
        "id": "nope",
    }
    gql(runtime, ADMIN, REVOKE, id=added["clientId"])
    revoked = gql(runtime, ADMIN, ROTATE, id=added["clientId"])["data"]["rotateClientSecret"]
    assert revoked["__typename"] == "InputError"
    assert "revoked" in revoked["message"]


def test_revoking_a_client_through_graphql_stops_its_tokens_at_once(runtime: Runtime) -> None:
    assert runtime.auth is not None
    added = add(runtime, scopes=["tourism:read"])
    token = runtime.auth.issue_token(added["clientId"], issuer="https://testserver").access_token
    admin = runtime.auth.add_client(name="admin", scopes=frozenset({CLIENTS_ADMIN}))
    admin_token = runtime.auth.issue_token(admin.client.id, issuer="https://testserver")
    query = "{ sensors { totalCount } }"
    assert "data" in gql(runtime, frozenset(), query, token=token)
    result = gql(runtime, frozenset(), REVOKE, token=admin_token.access_token, id=added["clientId"])
    revoked = result["data"]["revokeClient"]
    assert (revoked["id"], revoked["revoked"]) == (added["clientId"], True)
    assert revoked["revokedAt"] is not None
    http = TestClient(create_app(runtime), base_url="https://testserver")
    response = http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    again = gql(runtime, ADMIN, REVOKE, id=added["clientId"])["data"]["revokeClient"]
    assert again == revoked  # idempotent, first revocation time kept
    assert gql(runtime, ADMIN, REVOKE, id="nope")["data"]["revokeClient"]["__typename"] == (
        "NotFoundError"
    )


def test_demo_anonymous_read_scopes_cannot_administer_clients(runtime: Runtime) -> None:
    body = gql(runtime, READ_SCOPES, CLIENTS)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
