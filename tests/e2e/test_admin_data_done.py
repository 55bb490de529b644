"""Issue 6's "done means", through the command line and the real HTTP app.

Import the GSI Omaezaki sites and the JMA 2011-03-11 tsunami message with `cityos connectors
run`, then ask GraphQL for tsunami evacuation sites near city hall and for the alerts active
that afternoon.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cityos.platform.api.app import create_app
from cityos.platform.cli import app
from cityos.platform.config import READ_SCOPES, load_settings
from cityos.platform.runtime import Runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CITY_HALL = (34.63794, 138.12808)  # 御前崎市役所, 池新田5585


def distance_m(lat: float, lon: float) -> float:
    """Great-circle distance from city hall (spherical law of cosines, mean Earth radius)."""
    p1, p2 = math.radians(CITY_HALL[0]), math.radians(lat)
    dl = math.radians(lon - CITY_HALL[1])
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6371008.8 * math.acos(min(1.0, cos))


@pytest.fixture
def client(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    runner = CliRunner()
    for argv in (
        ["connectors", "run", "gsi-evacuation", "--source", str(FIXTURES / "gsi-hinanbasho")],
        [
            "connectors",
            "run",
            "jma",
            "--source",
            str(FIXTURES / "jma" / "messages" / "32-39_11_02_250206_VTSE41.xml"),
        ],
    ):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
    runtime = Runtime.open(load_settings())
    return TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))


def gql(client: TestClient, query: str) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_tsunami_sites_near_city_hall_sorted_by_distance(client: TestClient) -> None:
    data = gql(
        client,
        "{ facilities(hazard: TSUNAMI, near: {lat: 34.63794, lon: 138.12808, radiusM: 5000})"
        " { totalCount nodes { name kind hazards distanceM location { lat lon } } } }",
    )["facilities"]
    nodes = data["nodes"]
    assert data["totalCount"] == len(nodes) > 5
    distances = [node["distanceM"] for node in nodes]
    assert distances == sorted(distances)
    assert max(distances) <= 5000
    for node in nodes:
        assert "TSUNAMI" in node["hazards"]
        own = distance_m(node["location"]["lat"], node["location"]["lon"])
        assert node["distanceM"] == pytest.approx(own, abs=1.0)
    assert nodes[0]["name"] == "浜岡中学校\u3000運動場"  # full-width space, as GSI has it


def test_shizuoka_tsunami_advisory_active_on_the_afternoon_of_2011_03_11(
    client: TestClient,
) -> None:
    alerts = gql(
        client,
        '{ alerts(active: true, area: "380", asOf: "2011-03-11T15:00:00+09:00")'
        " { kind area areaName status drill issuedAt source } }",
    )["alerts"]
    assert [(a["kind"], a["area"], a["drill"]) for a in alerts] == [("津波注意報", "380", False)]
    assert alerts[0]["issuedAt"].endswith("+09:00")
    assert alerts[0]["source"] == "jma"
    later = gql(
        client, '{ alerts(active: true, area: "380", asOf: "2011-03-09T15:00:00+09:00") { kind } }'
    )
    assert later["alerts"] == []
