"""Scope matrix: every scope set x every domain's sensors, ids, observations and latest values.

Tokens come from the real /oauth/token endpoint. A caller without a domain's scope must not
learn that the domain's data exists: lists leave it out and its ids answer exactly like
unknown ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from apikit import (
    BASE,
    DEVICES,
    FROM,
    OBSERVATIONS_QUERY,
    SENSOR_QUERY,
    SENSORS,
    SENSORS_QUERY,
    TO,
    UNKNOWN,
    fetch_token,
    gql,
    post_graphql,
    seed,
)
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.cli import app as cli
from cityos.platform.config import Settings, load_settings
from cityos.platform.domain.model import Domain
from cityos.platform.runtime import Runtime

SCOPE_SETS: dict[str, frozenset[str] | None] = {
    "anonymous": None,
    "export-only": frozenset({"export:read"}),
    "disaster": frozenset({"disaster:read"}),
    "tourism": frozenset({"tourism:read"}),
    "health": frozenset({"health:read"}),
    "tourism+health": frozenset({"tourism:read", "health:read"}),
    "all-read": frozenset({"disaster:read", "tourism:read", "health:read", "export:read"}),
    "admins-only": frozenset({"devices:admin", "clients:admin"}),
}
"""Scope sets to test; None is a caller without a token (the server grants anonymous nothing)."""


@dataclass
class Matrix:
    http: TestClient
    tokens: dict[str, str | None]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "ITERATIONS", 1000)
        runtime = Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("matrix") / "data"))
        seed(runtime)
        http = TestClient(create_app(runtime), base_url=BASE)
        tokens: dict[str, str | None] = {}
        for name, scopes in SCOPE_SETS.items():
            if scopes is None:
                tokens[name] = None
                continue
            secret = runtime.require_auth().add_client(name=name, scopes=scopes)
            token = fetch_token(http, secret)
            assert set(token.scope.split()) == scopes
            tokens[name] = token.access_token
        yield Matrix(http=http, tokens=tokens)
        runtime.close()


def readable(scope_set: str, domain: Domain) -> bool:
    return domain.read_scope in (SCOPE_SETS[scope_set] or frozenset())


def normalised(body: Any, sensor_id: str, unknown_id: str) -> str:
    """The response text with the asked id written as the unknown one (to compare shapes)."""
    return json.dumps(body, sort_keys=True).replace(sensor_id, unknown_id)


CASES = [(name, domain) for name in SCOPE_SETS for domain in Domain]
IDS = [f"{name}-{domain.value}" for name, domain in CASES]


@pytest.mark.parametrize(("scope_set", "domain"), CASES, ids=IDS)
def test_sensor_lists_show_a_domain_only_with_its_scope(
    matrix: Matrix, scope_set: str, domain: Domain
) -> None:
    token = matrix.tokens[scope_set]
    listed = gql(matrix.http, SENSORS_QUERY, token)["data"]["sensors"]
    ids = {node["id"] for node in listed["nodes"]}
    expected_total = sum(len(SENSORS[d]) for d in Domain if readable(scope_set, d))
    assert listed["totalCount"] == expected_total == len(ids)
    filtered = gql(matrix.http, SENSORS_QUERY, token, domain=domain.name)["data"]["sensors"]
    device = gql(matrix.http, SENSORS_QUERY, token, deviceId=DEVICES[domain][0])["data"]
    if readable(scope_set, domain):
        assert set(SENSORS[domain]) <= ids
        assert {n["id"] for n in filtered["nodes"]} == set(SENSORS[domain])
        assert {n["id"] for n in device["sensors"]["nodes"]} == set(SENSORS[domain])
        assert all(n["latest"]["value"] == 9.0 for n in filtered["nodes"])
    else:
        assert not set(SENSORS[domain]) & ids
        assert filtered == {"nodes": [], "totalCount": 0}
        no_device = gql(matrix.http, SENSORS_QUERY, token, deviceId="no-such-device")["data"]
        assert device == no_device == {"sensors": {"nodes": [], "totalCount": 0}}


@pytest.mark.parametrize(("scope_set", "domain"), CASES, ids=IDS)
def test_sensor_by_id_hidden_is_unknown(matrix: Matrix, scope_set: str, domain: Domain) -> None:
    token = matrix.tokens[scope_set]
    unknown = gql(matrix.http, SENSOR_QUERY, token, id=UNKNOWN[domain])
    assert unknown == {"data": {"sensor": None}}
    for sensor_id in SENSORS[domain]:
        answer = gql(matrix.http, SENSOR_QUERY, token, id=sensor_id)
        if readable(scope_set, domain):
            sensor = answer["data"]["sensor"]
            assert sensor["id"] == sensor_id
            assert sensor["domain"] == domain.name
            assert sensor["latest"] == {
                "time": "2026-11-01T09:09:00+09:00",
                "value": 9.0,
                "quality": "GOOD",
            }
        else:
            assert answer == unknown


@pytest.mark.parametrize(("scope_set", "domain"), CASES, ids=IDS)
def test_observations_of_a_hidden_sensor_answer_like_an_unknown_one(
    matrix: Matrix, scope_set: str, domain: Domain
) -> None:
    token = matrix.tokens[scope_set]
    times = {"from": FROM, "to": TO}
    unknown = post_graphql(matrix.http, OBSERVATIONS_QUERY, token, id=UNKNOWN[domain], **times)
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for sensor_id in SENSORS[domain]:
        answer = post_graphql(matrix.http, OBSERVATIONS_QUERY, token, id=sensor_id, **times)
        assert answer.status_code == 200
        if readable(scope_set, domain):
            observations = answer.json()["data"]["observations"]
            assert observations["totalCount"] == 10
            assert [n["value"] for n in observations["nodes"]] == [float(i) for i in range(10)]
        else:
            assert normalised(answer.json(), sensor_id, UNKNOWN[domain]) == normalised(
                unknown.json(), sensor_id, UNKNOWN[domain]
            )
            assert answer.headers.keys() == unknown.headers.keys()


@pytest.mark.parametrize("scope_set", list(SCOPE_SETS))
def test_admin_queries_and_mutations_need_their_admin_scope(matrix: Matrix, scope_set: str) -> None:
    token = matrix.tokens[scope_set]
    scopes = SCOPE_SETS[scope_set] or frozenset()
    for query, scope in (
        ("{ devices { totalCount } }", "devices:admin"),
        ('{ device(id: "city-hall") { id } }', "devices:admin"),
        ("{ rejectedMessages { reason } }", "devices:admin"),
        ("{ clients { totalCount } }", "clients:admin"),
        ("{ audit { operation } }", "clients:admin"),
        ('mutation { revokeDevice(id: "no-such-device") { __typename } }', "devices:admin"),
        ('mutation { revokeClient(id: "no-such-client") { __typename } }', "clients:admin"),
    ):
        body = gql(matrix.http, query, token)
        if scope in scopes:
            assert "errors" not in body, (query, body)
        else:
            assert not any((body["data"] or {}).values())  # nullable fields are null
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (query, body)


def test_a_bad_token_is_401_never_an_anonymous_read(matrix: Matrix) -> None:
    token = matrix.tokens["all-read"]
    assert token is not None
    for bad in (token[:-4] + "AAAA", "not-a-token", token + "x"):
        response = post_graphql(matrix.http, SENSORS_QUERY, bad)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "data" not in response.json()


# ---------------------------------------------------------------- end to end, as a partner would


def test_a_tourism_partner_from_the_cli_sees_tourism_only_and_health_reads_are_audited(
    no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    runner = CliRunner()

    def cli_json(*argv: str) -> Any:
        result = runner.invoke(cli, [*argv, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    partner = cli_json("clients", "add", "--name", "surf app", "--scopes", "tourism:read")
    nurse = cli_json("clients", "add", "--name", "heat watch", "--scopes", "health:read")
    runtime = Runtime.open(load_settings())
    try:
        seed(runtime)
        http = TestClient(create_app(runtime), base_url=BASE)

        def token_of(credentials: dict[str, str]) -> str:
            response = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(credentials["client_id"], credentials["client_secret"]),
            )
            assert response.status_code == 200, response.text
            assert response.json()["token_type"] == "Bearer"
            token: str = response.json()["access_token"]
            return token

        surf = token_of(partner)
        listed = gql(http, SENSORS_QUERY, surf)["data"]["sensors"]
        assert {n["id"] for n in listed["nodes"]} == set(SENSORS[Domain.TOURISM])
        assert {n["domain"] for n in listed["nodes"]} == {"TOURISM"}
        times = {"from": FROM, "to": TO}
        for sensor_id in SENSORS[Domain.TOURISM]:
            observations = gql(http, OBSERVATIONS_QUERY, surf, id=sensor_id, **times)
            assert observations["data"]["observations"]["totalCount"] == 10
        for domain in (Domain.DISASTER, Domain.HEALTH):
            for sensor_id in SENSORS[domain]:
                assert gql(http, SENSOR_QUERY, surf, id=sensor_id) == {"data": {"sensor": None}}
                hidden = gql(http, OBSERVATIONS_QUERY, surf, id=sensor_id, **times)
                assert hidden["data"] is None
                assert hidden["errors"][0]["message"] == f"no sensor {sensor_id!r}"
        api_events = [e for e in cli_json("audit", "list") if e["details"].get("via") != "cli"]
        assert api_events == []  # tourism reads are not audited (only the `clients add` runs)

        heat = token_of(nurse)
        read = gql(http, OBSERVATIONS_QUERY, heat, id="city-hall.wbgt", **times)
        assert read["data"]["observations"]["totalCount"] == 10
    finally:
        runtime.close()

    [event] = cli_json("audit", "list", "--client", nurse["client_id"])
    assert event["operation"] == "observations"
    assert event["resources"] == ["city-hall.wbgt"]
    assert event["details"]["kind"] == "health-read"
    assert event["source_ip"] == "testclient"
    assert event["time"].endswith("+09:00")
    assert cli_json("audit", "list", "--client", partner["client_id"]) == []
    text = runner.invoke(cli, ["audit", "list"])
    assert text.exit_code == 0
    assert nurse["client_id"] in text.stdout
    assert "city-hall.wbgt" in text.stdout
    # the clients were added on the command line: those events name the OS user, not "anonymous"
    assert [line for line in text.stdout.splitlines() if "cli: clients add" in line]
    assert all("  cli (" in line for line in text.stdout.splitlines() if "cli: clients add" in line)
