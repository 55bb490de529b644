"""Helpers for API tests: a catalog with sensors in every domain, GraphQL calls, real tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Sensor
from cityos.platform.ports import ClientSecret
from cityos.platform.runtime import Runtime

BASE = "https://testserver"
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
FROM, TO = "2026-11-01T09:00:00+09:00", "2026-11-02T09:00:00+09:00"
DEVICES = {
    Domain.DISASTER: ("omaezaki-port", ["tide_level", "wave_height"]),
    Domain.TOURISM: ("omaezaki-cape", ["wind_speed", "wave_height"]),
    Domain.HEALTH: ("city-hall", ["wbgt"]),
}
"""One device per domain; every sensor has observations."""
SENSORS = {
    domain: [f"{device}.{quantity}" for quantity in quantities]
    for domain, (device, quantities) in DEVICES.items()
}
UNKNOWN = {domain: f"{device}.nothing" for domain, (device, _) in DEVICES.items()}
"""A well-formed id that does not exist, next to each domain's real ones."""

SENSORS_QUERY = (
    "query($domain: Domain, $deviceId: String) { sensors(domain: $domain, deviceId: $deviceId) {"
    " nodes { id domain latest { time value } } totalCount } }"
)
SENSOR_QUERY = "query($id: ID!) { sensor(id: $id) { id domain latest { time value quality } } }"
OBSERVATIONS_QUERY = (
    "query($id: ID!, $from: DateTime!, $to: DateTime!) {"
    " observations(sensorId: $id, from: $from, to: $to) { nodes { time value } totalCount } }"
)


def seed(runtime: Runtime) -> None:
    """Register the devices of DEVICES and write 10 observations per sensor."""
    for domain, (device_id, quantities) in DEVICES.items():
        device = Device(device_id, device_id.title(), domain, "json", GeoPoint(34.6, 138.2))
        sensors = [
            Sensor(f"{device_id}.{q}", device_id, q, "m", domain, f"{device_id} {q}")
            for q in quantities
        ]
        runtime.catalog.add_device(device, sensors)
        runtime.store.write(
            [
                Observation(sensor.id, T0 + timedelta(minutes=i), float(i))
                for sensor in sensors
                for i in range(10)
            ]
        )


def post_graphql(
    http: TestClient, query: str, token: str | None = None, **variables: Any
) -> httpx.Response:
    """POST a GraphQL request, with a bearer token when given."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def gql(http: TestClient, query: str, token: str | None = None, **variables: Any) -> Any:
    """The JSON body of a GraphQL request that must be answered 200."""
    response = post_graphql(http, query, token, **variables)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class Token:
    """An access token from the real token endpoint."""

    access_token: str
    scope: str


def fetch_token(http: TestClient, secret: ClientSecret, scope: str | None = None) -> Token:
    """POST /oauth/token with HTTP Basic client authentication (client_credentials)."""
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    response = http.post("/oauth/token", data=form, auth=(secret.client.id, secret.client_secret))
    assert response.status_code == 200, response.text
    body = response.json()
    return Token(access_token=body["access_token"], scope=body["scope"])
