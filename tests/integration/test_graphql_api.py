"""GraphQL v0 over HTTP against the real embedded catalog and store."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos.platform.api.app import create_app
from cityos.platform.config import READ_SCOPES, Settings
from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Sensor
from cityos.platform.runtime import Runtime

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
FROM, TO = "2026-11-01T09:00:00+09:00", "2026-11-02T09:00:00+09:00"


def _device(device_id: str, domain: Domain, quantities: list[str]) -> tuple[Device, list[Sensor]]:
    device = Device(device_id, device_id.title(), domain, "json", GeoPoint(34.6, 138.2))
    sensors = [
        Sensor(
            f"{device_id}.{q}", device_id, q, "m", domain, f"{device_id} {q}", GeoPoint(34.6, 138.2)
        )
        for q in quantities
    ]
    return device, sensors


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    for device, sensors in [
        _device("omaezaki-port", Domain.DISASTER, ["tide_level"]),
        _device("niino-river", Domain.DISASTER, ["water_level", "rainfall"]),
        _device("omaezaki-cape", Domain.TOURISM, ["wave_height", "wind_speed"]),
        _device("city-hall", Domain.HEALTH, ["wbgt"]),
    ]:
        runtime.catalog.add_device(device, sensors)
    runtime.store.write(
        [
            Observation("omaezaki-port.tide_level", T0 + timedelta(minutes=i), float(i) / 100)
            for i in range(250)
        ]
        + [Observation("city-hall.wbgt", T0, 21.5)]
    )
    yield runtime
    runtime.close()


def client_for(runtime: Runtime, scopes: frozenset[str]) -> TestClient:
    return TestClient(create_app(runtime, anonymous_scopes=scopes))


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


SENSORS = (
    "query($first: Int, $after: String, $domain: Domain) {"
    " sensors(first: $first, after: $after, domain: $domain) {"
    " nodes { id domain unit location { lat lon } latest { time value quality } }"
    " pageInfo { hasNextPage endCursor } totalCount } }"
)
OBS = (
    "query($id: ID!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String) {"
    " observations(sensorId: $id, from: $from, to: $to, first: $first, after: $after) {"
    " nodes { time value quality } pageInfo { hasNextPage endCursor } totalCount } }"
)


def test_sensors_page_through_all_with_cursors(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    seen: list[str] = []
    after = None
    while True:
        data = gql(client, SENSORS, first=2, after=after)["data"]["sensors"]
        assert data["totalCount"] == 6
        seen += [node["id"] for node in data["nodes"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == sorted(seen)
    assert len(seen) == 6


def test_latest_and_domains(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    nodes = {n["id"]: n for n in gql(client, SENSORS)["data"]["sensors"]["nodes"]}
    assert {n["domain"] for n in nodes.values()} == {"DISASTER", "TOURISM", "HEALTH"}
    assert nodes["omaezaki-port.tide_level"]["latest"] == {
        "time": "2026-11-01T13:09:00+09:00",
        "value": 2.49,
        "quality": "GOOD",
    }
    assert nodes["omaezaki-cape.wave_height"]["latest"] is None
    assert nodes["city-hall.wbgt"]["location"] == {"lat": 34.6, "lon": 138.2}


def test_scopes_filter_lists_and_hide_ids(runtime: Runtime) -> None:
    client = client_for(runtime, frozenset({"tourism:read"}))
    data = gql(client, SENSORS)["data"]["sensors"]
    assert {n["domain"] for n in data["nodes"]} == {"TOURISM"}
    assert data["totalCount"] == 2
    hidden = gql(client, '{ sensor(id: "city-hall.wbgt") { id } }')
    unknown = gql(client, '{ sensor(id: "city-hall.nothing") { id } }')
    assert hidden == unknown == {"data": {"sensor": None}}
    hidden_obs = gql(client, OBS, id="city-hall.wbgt", **{"from": FROM, "to": TO})
    unknown_obs = gql(client, OBS, id="city-hall.nothing", **{"from": FROM, "to": TO})
    assert hidden_obs["errors"][0]["message"].replace("wbgt", "X") == unknown_obs["errors"][0][
        "message"
    ].replace("nothing", "X")
    assert hidden_obs["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_anonymous_without_scopes_sees_nothing(runtime: Runtime) -> None:
    client = client_for(runtime, frozenset())
    assert gql(client, SENSORS)["data"]["sensors"] == {
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "totalCount": 0,
    }


def test_observations_page_without_loss(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    values: list[float] = []
    after = None
    pages = 0
    while True:
        result = gql(
            client,
            OBS,
            id="omaezaki-port.tide_level",
            first=100,
            after=after,
            **{"from": FROM, "to": TO},
        )
        data = result["data"]["observations"]
        assert data["totalCount"] == 250
        values += [node["value"] for node in data["nodes"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == 3
    assert values == [i / 100 for i in range(250)]


def test_observation_range_is_half_open(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    data = gql(
        client,
        OBS,
        id="omaezaki-port.tide_level",
        **{"from": "2026-11-01T09:01:00+09:00", "to": "2026-11-01T09:03:00+09:00"},
    )["data"]["observations"]
    assert [n["time"] for n in data["nodes"]] == [
        "2026-11-01T09:01:00+09:00",
        "2026-11-01T09:02:00+09:00",
    ]


@pytest.mark.parametrize(
    ("variables", "code", "fragment"),
    [
        ({"first": 10001}, "LIMIT_EXCEEDED", "at most 10000"),
        ({"first": -1}, "BAD_USER_INPUT", "negative"),
        ({"after": "garbage!"}, "BAD_USER_INPUT", "cursor"),
        ({"from": "2026-11-01T09:00:00"}, "BAD_USER_INPUT", "offset"),
        ({"to": "2026-11-01T08:00:00+09:00"}, "BAD_USER_INPUT", "after `from`"),
        ({"to": "2028-11-01T08:00:00+09:00"}, "LIMIT_EXCEEDED", "366 days"),
        ({"id": "not a sensor id"}, "BAD_USER_INPUT", "malformed sensor id"),
        ({"from": "0001-01-01T00:00:00+09:00"}, "BAD_USER_INPUT", "outside"),
        ({"from": "20261101T00+0900"}, "BAD_USER_INPUT", "not an RFC 3339 date-time"),
        ({"after": "b2JzOjE4NDQ2NzQ0MDczNzA5NTUxNjE2MDAw"}, "BAD_USER_INPUT", "cursor"),
    ],
)
def test_observation_errors_carry_codes(
    runtime: Runtime, variables: dict[str, Any], code: str, fragment: str
) -> None:
    client = client_for(runtime, READ_SCOPES)
    arguments = {"id": "omaezaki-port.tide_level", "from": FROM, "to": TO, **variables}
    result = gql(client, OBS, **arguments)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == code
    assert fragment in error["message"]


def test_sensor_list_cap_and_bad_arguments(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    [error] = gql(client, SENSORS, first=1001)["errors"]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    [error] = gql(client, '{ sensors(deviceId: "Bad Id") { totalCount } }')["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    [error] = gql(client, "{ sensors { nosuchfield } }")["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    forged = base64.urlsafe_b64encode(b"sensor:\x00'; drop table sensors; --").decode()
    [error] = gql(client, SENSORS, after=forged)["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert gql(client, SENSORS)["data"]["sensors"]["totalCount"] == 6


def test_any_bearer_token_is_401_until_a_verifier_accepts_it(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    response = client.post(
        "/graphql",
        json={"query": "{ sensors { totalCount } }"},
        headers={"Authorization": "Bearer x.y.z"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_health_readiness_metrics(runtime: Runtime) -> None:
    client = client_for(runtime, frozenset())
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "catalog": "ok",
        "timeseries": "ok",
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "cityos_ingest_messages_received_total" in metrics.text


def test_graphiql_only_in_dev_mode(runtime: Runtime) -> None:
    runtime.settings.api.dev_mode = False
    assert TestClient(create_app(runtime)).get(
        "/graphql", headers={"accept": "text/html"}
    ).status_code in (404, 405)
    runtime.settings.api.dev_mode = True
    page = TestClient(create_app(runtime)).get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


# ---------------------------------------------------------------- windowed observations

AGG = (
    "query($id: ID!, $from: DateTime!, $to: DateTime!, $every: Duration, $aggregate: Aggregate,"
    " $fill: Fill, $maxPoints: Int, $first: Int, $after: String) {"
    " observations(sensorId: $id, from: $from, to: $to, every: $every, aggregate: $aggregate,"
    " fill: $fill, maxPoints: $maxPoints, first: $first, after: $after) {"
    " nodes { time value quality } pageInfo { hasNextPage endCursor } totalCount } }"
)
HOURS = [f"2026-11-01T{h:02d}:00:00+09:00" for h in range(9, 24)] + [
    f"2026-11-02T{h:02d}:00:00+09:00" for h in range(9)
]


def windowed(client: TestClient, **variables: Any) -> dict[str, Any]:
    arguments = {"id": "omaezaki-port.tide_level", "from": FROM, "to": TO, **variables}
    result = gql(client, AGG, **arguments)
    assert "errors" not in result, result
    data: dict[str, Any] = result["data"]["observations"]
    return data


def test_hourly_mean_is_the_default_aggregate(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    explicit = windowed(client, every="1h", aggregate="MEAN")
    assert windowed(client, every="1h") == explicit
    assert explicit["totalCount"] == 5
    assert [n["time"] for n in explicit["nodes"]] == HOURS[:5]
    assert {n["quality"] for n in explicit["nodes"]} == {"GOOD"}
    means = [n["value"] for n in explicit["nodes"]]
    assert means == pytest.approx([0.295, 0.895, 1.495, 2.095, 2.445])


@pytest.mark.parametrize(
    ("aggregate", "first_hour", "last_hour"),
    [
        ("MIN", 0.0, 2.4),
        ("MAX", 0.59, 2.49),
        ("SUM", 17.7, 24.45),
        ("COUNT", 60.0, 10.0),
        ("FIRST", 0.0, 2.4),
        ("LAST", 0.59, 2.49),
    ],
)
def test_every_aggregate_function(
    runtime: Runtime, aggregate: str, first_hour: float, last_hour: float
) -> None:
    nodes = windowed(client_for(runtime, READ_SCOPES), every="1h", aggregate=aggregate)["nodes"]
    assert len(nodes) == 5
    assert nodes[0]["value"] == pytest.approx(first_hour)
    assert nodes[-1]["value"] == pytest.approx(last_hour)


def test_fill_modes_over_graphql(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    runtime.store.write(
        [Observation("omaezaki-port.tide_level", T0 + timedelta(hours=20, minutes=30), 10.0)]
    )
    null = windowed(client, every="1h", aggregate="COUNT", fill="NULL")
    assert null["totalCount"] == 24
    assert [n["time"] for n in null["nodes"]] == HOURS
    counts = [n["value"] for n in null["nodes"]]
    assert counts == [60.0, 60.0, 60.0, 60.0, 10.0] + [None] * 15 + [1.0] + [None] * 3
    previous = windowed(client, every="1h", aggregate="LAST", fill="PREVIOUS")["nodes"]
    assert [n["value"] for n in previous][4:] == [2.49] * 16 + [10.0] * 4
    linear = windowed(client, every="1h", aggregate="LAST", fill="LINEAR")["nodes"]
    values = [n["value"] for n in linear]
    assert values[4] == 2.49
    assert values[12] == pytest.approx(2.49 + (10.0 - 2.49) * 8 / 16)
    assert values[20] == 10.0
    assert values[21:] == [None] * 3
    none = windowed(client, every="1h", aggregate="COUNT")
    assert none["totalCount"] == 6


def test_calendar_windows_over_graphql(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    day = windowed(client, every="1d", aggregate="COUNT")["nodes"]
    assert day == [{"time": "2026-11-01T00:00:00+09:00", "value": 250.0, "quality": "GOOD"}]
    week = windowed(client, every="1w", aggregate="COUNT")["nodes"]
    assert [n["time"] for n in week] == ["2026-10-26T00:00:00+09:00"]  # a Monday
    month = windowed(client, every="1mo", aggregate="MAX")["nodes"]
    assert month == [{"time": "2026-11-01T00:00:00+09:00", "value": 2.49, "quality": "GOOD"}]
    fiscal = windowed(client, every="1fy", aggregate="FIRST")["nodes"]
    assert fiscal == [{"time": "2026-04-01T00:00:00+09:00", "value": 0.0, "quality": "GOOD"}]
    quarter = windowed(client, every="3mo", aggregate="COUNT", fill="NULL")["nodes"]
    assert [n["time"] for n in quarter] == ["2026-10-01T00:00:00+09:00"]


def test_aggregated_windows_page_with_cursors(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = windowed(client, every="1h", fill="NULL", first=10, after=after)
        assert data["totalCount"] == 24
        seen += [n["time"] for n in data["nodes"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == HOURS


def test_max_points_returns_raw_points_when_they_fit(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    data = windowed(client, maxPoints=250)
    assert data["totalCount"] == 250
    assert data["nodes"][1] == {
        "time": "2026-11-01T09:01:00+09:00",
        "value": 0.01,
        "quality": "GOOD",
    }


def test_max_points_downsamples_from_the_range_start(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    # 24 h / 10 points = 2 h 24 min windows from `from`: 09:00, 11:24, 13:48, ...
    data = windowed(client, maxPoints=10, aggregate="MAX")
    assert [(n["time"], n["value"]) for n in data["nodes"]] == [
        ("2026-11-01T09:00:00+09:00", 1.43),
        ("2026-11-01T11:24:00+09:00", 2.49),
    ]
    filled = windowed(client, maxPoints=10, fill="NULL")
    assert filled["totalCount"] == 10
    assert filled["nodes"][0]["value"] == pytest.approx(sum(range(144)) / 144 / 100)
    assert windowed(client, maxPoints=10, every="3h")["totalCount"] == 2


@pytest.mark.parametrize(
    ("variables", "code", "fragment"),
    [
        ({"aggregate": "MAX"}, "BAD_USER_INPUT", "`aggregate` needs `every`"),
        ({"fill": "LINEAR"}, "BAD_USER_INPUT", "`fill` needs `every`"),
        ({"every": "1x"}, "BAD_USER_INPUT", "malformed duration"),
        ({"every": "0h"}, "BAD_USER_INPUT", "malformed duration"),
        ({"every": "-1h"}, "BAD_USER_INPUT", "malformed duration"),
        ({"every": 5}, "BAD_USER_INPUT", "Duration"),
        ({"aggregate": "MEDIAN", "every": "1h"}, "BAD_USER_INPUT", "MEDIAN"),
        ({"fill": "ZERO", "every": "1h"}, "BAD_USER_INPUT", "ZERO"),
        ({"every": "1m", "maxPoints": 100}, "LIMIT_EXCEEDED", "1440 windows"),
        ({"maxPoints": 0}, "BAD_USER_INPUT", "at least 1"),
        ({"maxPoints": 100001}, "LIMIT_EXCEEDED", "at most 100000"),
        ({"every": "1s"}, "LIMIT_EXCEEDED", "86400 windows"),
        ({"every": "1h", "first": 10001}, "LIMIT_EXCEEDED", "at most 10000"),
        ({"every": "1h", "after": "garbage!"}, "BAD_USER_INPUT", "cursor"),
        ({"every": "1h", "to": "2028-11-01T08:00:00+09:00"}, "LIMIT_EXCEEDED", "366 days"),
    ],
)
def test_windowed_errors_carry_codes(
    runtime: Runtime, variables: dict[str, Any], code: str, fragment: str
) -> None:
    runtime.settings.api.max_points = 50_000 if "maxPoints" not in variables else 100_000
    client = client_for(runtime, READ_SCOPES)
    arguments = {"id": "omaezaki-port.tide_level", "from": FROM, "to": TO, **variables}
    result = gql(client, AGG, **arguments)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == code
    assert fragment in error["message"]


def test_inline_duration_literals_are_parsed_and_checked(runtime: Runtime) -> None:
    client = client_for(runtime, READ_SCOPES)
    query = (
        '{ observations(sensorId: "omaezaki-port.tide_level", from: "%s", to: "%s",'
        " every: %s, aggregate: COUNT) { nodes { value } } }"
    )
    good = gql(client, query % (FROM, TO, '"1d"'))
    assert good["data"]["observations"]["nodes"] == [{"value": 250.0}]
    [error] = gql(client, query % (FROM, TO, '"1 day"'))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "malformed duration" in error["message"]


def test_windowed_queries_hide_sensors_like_unknown_ones(runtime: Runtime) -> None:
    client = client_for(runtime, frozenset({"tourism:read"}))
    arguments = {"from": FROM, "to": TO, "every": "1h"}
    hidden = gql(client, AGG, id="city-hall.wbgt", **arguments)["errors"][0]
    unknown = gql(client, AGG, id="city-hall.nothing", **arguments)["errors"][0]
    assert hidden["message"].replace("wbgt", "X") == unknown["message"].replace("nothing", "X")
    assert hidden["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("every", ["999999y", "101y", "1201mo"])
def test_a_window_longer_than_a_century_is_bad_input(runtime: Runtime, every: str) -> None:
    query = (
        'query($every: Duration!) { observations(sensorId: "omaezaki-port.tide_level",'
        f' from: "{FROM}", to: "{TO}", every: $every, aggregate: MEAN) {{ totalCount }} }}'
    )
    result = gql(client_for(runtime, READ_SCOPES), query, every=every)
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "longer than 100 years" in error["message"]
