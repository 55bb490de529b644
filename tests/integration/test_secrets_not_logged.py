"""Client secrets and access tokens never reach a log record or the audit log, at any level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from apikit import BASE, SENSORS_QUERY, fetch_token, gql, post_graphql, seed
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.config import Settings
from cityos.platform.runtime import Runtime

ADD_CLIENT = """
mutation($name: String!) {
  addClient(input: {name: $name, scopes: ["tourism:read"]}) {
    ... on ClientCredentials { clientId clientSecret }
  }
}"""
ROTATE = (
    "mutation($id: ID!) { rotateClientSecret(id: $id) {"
    " ... on ClientCredentials { clientSecret } } }"
)


def test_no_secret_or_token_in_logs_during_issue_verify_and_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    caplog.set_level(logging.DEBUG)
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    try:
        seed(runtime)
        http = TestClient(create_app(runtime), base_url=BASE)
        admin = runtime.require_auth().add_client(
            name="admin", scopes=frozenset({"clients:admin", "tourism:read"})
        )
        admin_token = fetch_token(http, admin).access_token
        added = gql(http, ADD_CLIENT, admin_token, name="partner")["data"]["addClient"]
        rotated = gql(http, ROTATE, admin_token, id=added["clientId"])["data"]
        new_secret = rotated["rotateClientSecret"]["clientSecret"]
        partner = runtime.require_auth().get_client(added["clientId"])
        assert partner is not None
        token_response = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(added["clientId"], new_secret),
        )
        token = token_response.json()["access_token"]
        assert gql(http, SENSORS_QUERY, token)["data"]["sensors"]["totalCount"] == 2
        wrong = http.post(  # the old secret, now wrong
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(added["clientId"], added["clientSecret"]),
        )
        assert wrong.status_code == 401
        form_wrong = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": admin.client.id,
                "client_secret": admin.client_secret + "x",
            },
        )
        assert form_wrong.status_code == 401
        introspected = http.post(
            "/oauth/introspect", data={"token": token}, auth=(added["clientId"], new_secret)
        )
        assert introspected.json()["active"] is True
        tampered = token[:-6] + "AAAAAA"
        assert post_graphql(http, SENSORS_QUERY, tampered).status_code == 401
        revoked = http.post(
            "/oauth/revoke", data={"token": token}, auth=(added["clientId"], new_secret)
        )
        assert revoked.status_code == 200
        assert post_graphql(http, SENSORS_QUERY, token).status_code == 401
        events = runtime.catalog.list_audit(limit=1000)
    finally:
        runtime.close()

    assert caplog.records, "nothing was logged at all: the test would prove nothing"
    secrets = {
        "admin secret": admin.client_secret,
        "partner secret": added["clientSecret"],
        "rotated secret": new_secret,
        "admin token signature": admin_token.rsplit(".", 1)[1],
        "partner token signature": token.rsplit(".", 1)[1],
        "partner token claims": token.split(".")[1],
        "tampered token": tampered.rsplit(".", 1)[1],
    }
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.args!r}"
        for record in caplog.records
    )
    audited = "\n".join(repr(event) for event in events)
    assert {event.operation for event in events} >= {"addClient", "rotateClientSecret"}
    for name, secret in secrets.items():
        assert secret not in logged, f"{name} was logged"
        assert secret not in audited, f"{name} is in the audit log"
