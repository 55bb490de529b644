"""The audit log: health-data reads and admin actions are appended; admins read it back."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from apikit import (
    BASE,
    FROM,
    OBSERVATIONS_QUERY,
    SENSOR_QUERY,
    SENSORS_QUERY,
    TO,
    gql,
    post_graphql,
    seed,
)
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.cli import app as cli
from cityos.platform.config import READ_SCOPES, Settings, load_settings
from cityos.platform.domain.errors import RetryableError
from cityos.platform.domain.model import AuditEvent
from cityos.platform.ports import Catalog
from cityos.platform.runtime import Runtime

AUDIT = """
query($clientId: String, $since: DateTime, $first: Int) {
  audit(clientId: $clientId, since: $since, first: $first) {
    time clientId operation resources details sourceIp
  }
}"""
ADD_DEVICE = """
mutation {
  addDevice(input: {id: "beach-gate", name: "Beach gate", domain: TOURISM, format: "json",
                    sensors: [{quantity: "visitors", unit: "count"}]}) {
    __typename ... on DeviceCredentials { mqttPassword }
  }
}"""
REVOKE_DEVICE = "mutation($id: ID!) { revokeDevice(id: $id) { __typename } }"
ADD_CLIENT = """
mutation {
  addClient(input: {name: "heat app", scopes: ["health:read"]}) {
    __typename ... on ClientCredentials { clientId clientSecret }
  }
}"""
ROTATE_CLIENT = (
    "mutation($id: ID!) { rotateClientSecret(id: $id) {"
    " ... on ClientCredentials { clientSecret } } }"
)


@dataclass
class Api:
    runtime: Runtime
    http: TestClient

    def token(self, *scopes: str) -> tuple[str, str]:
        """(client id, access token) of a new client with these scopes."""
        auth = self.runtime.require_auth()
        secret = auth.add_client(name="-".join(scopes), scopes=frozenset(scopes))
        return secret.client.id, auth.issue_token(secret.client.id, issuer=BASE).access_token

    def events(self, client_id: str | None = None) -> list[AuditEvent]:
        """Stored events, oldest first."""
        return self.runtime.catalog.list_audit(client_id=client_id, limit=1000)[::-1]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    seed(runtime)
    yield Api(runtime=runtime, http=TestClient(create_app(runtime), base_url=BASE))
    runtime.close()


# ---------------------------------------------------------------- health reads


def test_every_way_of_reading_health_data_is_audited(api: Api) -> None:
    client_id, token = api.token("health:read", "tourism:read")
    gql(api.http, SENSORS_QUERY, token)  # list with latest values
    gql(api.http, SENSOR_QUERY, token, id="city-hall.wbgt")
    gql(api.http, OBSERVATIONS_QUERY, token, id="city-hall.wbgt", **{"from": FROM, "to": TO})
    events = api.events(client_id)
    assert [(e.operation, e.resources) for e in events] == [
        ("latest", ("city-hall.wbgt",)),  # one event per read operation, ordered by name
        ("sensors", ("city-hall.wbgt",)),
        ("latest", ("city-hall.wbgt",)),
        ("sensor", ("city-hall.wbgt",)),
        ("observations", ("city-hall.wbgt",)),
    ]
    assert all(e.details["kind"] == "health-read" for e in events)
    assert all(e.client_id == client_id and e.source_ip == "testclient" for e in events)
    assert all(datetime.now(UTC) - e.time < timedelta(minutes=1) for e in events)


def test_reads_of_other_domains_and_refusals_leave_no_record(api: Api) -> None:
    _client_id, token = api.token("health:read", "tourism:read", "disaster:read")
    gql(api.http, SENSORS_QUERY, token, domain="TOURISM")
    gql(api.http, SENSOR_QUERY, token, id="omaezaki-port.tide_level")
    gql(
        api.http,
        OBSERVATIONS_QUERY,
        token,
        id="omaezaki-cape.wind_speed",
        **{"from": FROM, "to": TO},
    )
    _tourist_id, tourist = api.token("tourism:read")
    gql(api.http, SENSOR_QUERY, tourist, id="city-hall.wbgt")  # hidden: nothing read
    assert api.events() == []


def test_anonymous_health_reads_are_audited_with_the_address(tmp_path: Path) -> None:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    try:
        seed(runtime)
        http = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
        named = 'query Heat { sensor(id: "city-hall.wbgt") { id } }'
        gql(http, named)
        [event] = runtime.catalog.list_audit()
        assert (event.client_id, event.source_ip, event.operation) == (None, "testclient", "sensor")
        assert event.details == {"kind": "health-read", "graphql_operation": "Heat"}
    finally:
        runtime.close()


def test_a_health_read_that_cannot_be_audited_is_withheld(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(events: Any) -> None:
        raise RetryableError("catalog is read-only", service="catalog")

    monkeypatch.setattr(api.runtime.catalog, "append_audit", broken)
    _, token = api.token("health:read", "tourism:read")
    with caplog.at_level(logging.ERROR):
        withheld = post_graphql(api.http, SENSOR_QUERY, token, id="city-hall.wbgt")
    assert withheld.status_code == 200
    assert withheld.json() == {
        "data": None,
        "errors": [{"message": "Internal error", "extensions": {"code": "INTERNAL"}}],
    }
    assert "city-hall.wbgt" not in withheld.text
    assert any(
        "audit log cannot be written" in r.getMessage() or r.exc_info for r in caplog.records
    )
    tourism = gql(api.http, SENSOR_QUERY, token, id="omaezaki-cape.wind_speed")
    assert tourism["data"]["sensor"]["id"] == "omaezaki-cape.wind_speed"  # nothing to audit


# ---------------------------------------------------------------- admin actions


def test_admin_mutations_are_audited_with_outcome_and_never_a_secret(api: Api) -> None:
    admin_id, admin = api.token("devices:admin", "clients:admin", "health:read")
    added = gql(api.http, ADD_DEVICE, admin)["data"]["addDevice"]
    assert added["__typename"] == "DeviceCredentials"
    gql(api.http, REVOKE_DEVICE, admin, id="beach-gate")
    gql(api.http, REVOKE_DEVICE, admin, id="no-such-device")
    new_client = gql(api.http, ADD_CLIENT, admin)["data"]["addClient"]
    rotated = gql(api.http, ROTATE_CLIENT, admin, id=new_client["clientId"])["data"]
    events = api.events(admin_id)
    assert [(e.operation, e.resources, e.details["outcome"]) for e in events] == [
        ("addDevice", ("beach-gate",), "ok"),
        ("revokeDevice", ("beach-gate",), "ok"),
        (
            "revokeDevice",
            ("no-such-device",),
            "refused: no device 'no-such-device' (see `cityos devices list`)",
        ),
        ("addClient", (new_client["clientId"],), "ok"),
        ("rotateClientSecret", (new_client["clientId"],), "ok"),
    ]
    assert all(e.details["kind"] == "admin" for e in events)
    assert events[0].details["domain"] == "tourism"
    assert events[3].details["scopes"] == ["health:read"]
    stored = json.dumps([repr(e) for e in api.events()])
    for secret in (
        added["mqttPassword"],
        new_client["clientSecret"],
        rotated["rotateClientSecret"]["clientSecret"],
    ):
        assert secret not in stored


def test_forbidden_admin_attempts_are_audited(api: Api) -> None:
    client_id, token = api.token("tourism:read")
    refused = gql(api.http, REVOKE_DEVICE, token, id="city-hall")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    gql(api.http, "{ clients { totalCount } }", token)
    [revoke, clients] = api.events(client_id)
    assert (revoke.operation, revoke.resources, revoke.details["outcome"]) == (
        "revokeDevice",
        ("city-hall",),
        "forbidden",
    )
    assert (clients.operation, clients.details["outcome"]) == ("clients", "forbidden")


def test_an_admin_action_whose_audit_fails_still_answers_and_logs_an_error(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(events: Any) -> None:
        raise RetryableError("catalog is read-only", service="catalog")

    monkeypatch.setattr(api.runtime.catalog, "append_audit", broken)
    admin_id, admin = api.token("devices:admin")
    with caplog.at_level(logging.ERROR, logger="cityos.platform.audit.trail"):
        added = gql(api.http, ADD_DEVICE, admin)["data"]["addDevice"]
    assert added["__typename"] == "DeviceCredentials"  # the only copy of the password
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "audit event NOT recorded: addDevice by " + admin_id in record.getMessage()
    assert added["mqttPassword"] not in record.getMessage()


# ---------------------------------------------------------------- reading the log


def test_admins_query_the_log_with_filters(api: Api) -> None:
    reader_id, reader = api.token("health:read")
    other_id, other = api.token("health:read")
    just_the_sensor = "query($id: ID!) { sensor(id: $id) { id } }"
    gql(api.http, just_the_sensor, reader, id="city-hall.wbgt")
    gql(api.http, just_the_sensor, other, id="city-hall.wbgt")
    admin_id, admin = api.token("clients:admin")
    everything = gql(api.http, AUDIT, admin)["data"]["audit"]
    assert [e["clientId"] for e in everything] == [other_id, reader_id]  # newest first
    [mine] = gql(api.http, AUDIT, admin, clientId=reader_id)["data"]["audit"]
    assert mine["operation"] == "sensor"
    assert mine["resources"] == ["city-hall.wbgt"]
    assert mine["details"] == {"kind": "health-read"}
    assert mine["sourceIp"] == "testclient"
    assert mine["time"].endswith("+09:00")
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert gql(api.http, AUDIT, admin, since=later)["data"]["audit"] == []
    assert len(gql(api.http, AUDIT, admin, first=1)["data"]["audit"]) == 1
    capped = gql(api.http, AUDIT, admin, first=1001)
    assert capped["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    reads_of_the_log = [e for e in api.events(admin_id) if e.operation == "audit"]
    assert len(reads_of_the_log) == 5  # reading the log is an admin action too
    refused = gql(api.http, AUDIT, reader)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_the_log_is_append_only() -> None:
    audit_methods = sorted(name for name in dir(Catalog) if "audit" in name)
    assert audit_methods == ["append_audit", "list_audit"]
    mutation_fields = {
        line.split("(")[0].strip()
        for line in (Path(__file__).parents[2] / "docs" / "schema.graphql")
        .read_text(encoding="utf-8")
        .split("type Mutation {")[1]
        .split("}")[0]
        .splitlines()
        if "(" in line
    }
    assert not {field for field in mutation_fields if "audit" in field.lower()}


def test_cityos_audit_list(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    runtime = Runtime.open(load_settings())
    t = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    runtime.catalog.append_audit(
        [
            AuditEvent(t, "a1", "sensor", ("city-hall.wbgt",), {"kind": "health-read"}, "10.0.0.1"),
            AuditEvent(
                t + timedelta(hours=1),
                "b2",
                "addClient",
                ("c3",),
                {"kind": "admin", "outcome": "ok"},
            ),
        ]
    )
    runtime.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "time": "2026-11-01T10:00:00+09:00",
            "client_id": "b2",
            "operation": "addClient",
            "resources": ["c3"],
            "details": {"kind": "admin", "outcome": "ok"},
            "source_ip": None,
        },
        {
            "time": "2026-11-01T09:00:00+09:00",
            "client_id": "a1",
            "operation": "sensor",
            "resources": ["city-hall.wbgt"],
            "details": {"kind": "health-read"},
            "source_ip": "10.0.0.1",
        },
    ]
    only_a1 = runner.invoke(cli, ["audit", "list", "--client", "a1", "--json"])
    assert [e["client_id"] for e in json.loads(only_a1.stdout)] == ["a1"]
    since = runner.invoke(cli, ["audit", "list", "--since", "2026-11-01T09:30:00+09:00", "--json"])
    assert [e["client_id"] for e in json.loads(since.stdout)] == ["b2"]
    text = runner.invoke(cli, ["audit", "list"])
    assert text.exit_code == 0
    assert text.stdout.splitlines() == [
        "2026-11-01T10:00:00+09:00  b2  addClient  [admin: ok]  from -",
        "    c3",
        "2026-11-01T09:00:00+09:00  a1  sensor  [health-read]  from 10.0.0.1",
        "    city-hall.wbgt",
    ]
    bad = runner.invoke(cli, ["audit", "list", "--since", "2026-11-01T09:30:00"])
    assert bad.exit_code == 2
    assert "offset" in bad.output
