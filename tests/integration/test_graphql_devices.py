"""Device administration through GraphQL: scope, results, paging and dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityos.platform.api.app import create_app
from cityos.platform.config import READ_SCOPES, Settings
from cityos.platform.devices.credentials import verify_password
from cityos.platform.domain.model import Rejection
from cityos.platform.runtime import Runtime
from cityos.platform.security import DEVICES_ADMIN

ADMIN = frozenset({DEVICES_ADMIN})

ADD = """
mutation($input: AddDeviceInput!) {
  addDevice(input: $input) {
    __typename
    ... on DeviceCredentials { deviceId mqttUsername mqttPassword uplinkTopic }
    ... on InputError { message field }
  }
}"""
UPDATE = """
mutation($id: ID!, $input: UpdateDeviceInput!) {
  updateDevice(id: $id, input: $input) {
    __typename
    ... on Device { id name location { lat lon }
                    sensors { id quantity unit validMin validMax retired } }
    ... on InputError { message field }
    ... on NotFoundError { message id }
  }
}"""
ROTATE = """
mutation($id: ID!) {
  rotateDeviceCredentials(id: $id) {
    __typename
    ... on DeviceCredentials { mqttPassword }
    ... on InputError { message }
    ... on NotFoundError { id }
  }
}"""
REVOKE = """
mutation($id: ID!) {
  revokeDevice(id: $id) { __typename ... on Device { id revoked } ... on NotFoundError { id } }
}"""
DEVICES = """
query($first: Int, $after: String, $domain: Domain) {
  devices(first: $first, after: $after, domain: $domain) {
    nodes { id domain format revoked createdAt uplinkTopic }
    pageInfo { hasNextPage endCursor } totalCount
  }
}"""
REJECTED = """
query($deviceId: String, $since: DateTime, $first: Int) {
  rejectedMessages(deviceId: $deviceId, since: $since, first: $first) {
    time topic deviceId quantity reason excerpt
  }
}"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    yield runtime
    runtime.close()


def gql(runtime: Runtime, scopes: frozenset[str], query: str, **variables: Any) -> dict[str, Any]:
    client = TestClient(create_app(runtime, anonymous_scopes=scopes))
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def new_device(device_id: str = "niino-river", domain: str = "DISASTER") -> dict[str, Any]:
    return {
        "id": device_id,
        "name": "Niino river gauge",
        "domain": domain,
        "format": "senml",
        "sensors": [
            {"quantity": "water_level", "unit": "m", "validMin": -2, "validMax": 10},
            {"quantity": "rainfall", "unit": "mm"},
        ],
        "location": {"lat": 34.62, "lon": 138.15},
    }


def test_add_device_returns_credentials_once_and_stores_only_a_hash(runtime: Runtime) -> None:
    result = gql(runtime, ADMIN, ADD, input=new_device())["data"]["addDevice"]
    assert result["__typename"] == "DeviceCredentials"
    assert result["deviceId"] == result["mqttUsername"] == "niino-river"
    assert result["uplinkTopic"] == "cityos/v1/devices/niino-river/up"
    (credential,) = runtime.catalog.device_credentials()
    assert result["mqttPassword"] not in credential.credential_hash
    assert verify_password(result["mqttPassword"], credential.credential_hash)
    sensors = {s.quantity: s for s in runtime.catalog.sensors_of_device("niino-river")}
    assert (sensors["water_level"].valid_min, sensors["water_level"].valid_max) == (-2, 10)
    assert sensors["rainfall"].unit == "mm"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"id": "Bad Id"}, "deviceId", "malformed device id"),
        ({"format": "xml"}, None, "payload format 'xml' is not available"),
        ({"sensors": []}, None, "at least one"),
        ({"sensors": [{"quantity": "x", "unit": "m", "validMin": 5, "validMax": 1}]}, None, "MIN"),
        ({"sensors": [{"quantity": "Level!", "unit": "m"}]}, "quantity", "quantity"),
        ({"location": {"lat": 91, "lon": 0}}, None, "out of range"),
        ({"name": " "}, None, "name"),
    ],
)
def test_add_device_refuses_bad_input_as_a_result(
    runtime: Runtime, change: dict[str, Any], field: str | None, fragment: str
) -> None:
    body = gql(runtime, ADMIN, ADD, input={**new_device(), **change})
    assert "errors" not in body, body
    result = body["data"]["addDevice"]
    assert result["__typename"] == "InputError"
    assert fragment in result["message"]
    if field is not None:
        assert result["field"] == field
    assert runtime.catalog.list_devices() == []


def test_add_device_twice_is_an_input_error_on_id(runtime: Runtime) -> None:
    gql(runtime, ADMIN, ADD, input=new_device())
    result = gql(runtime, ADMIN, ADD, input=new_device())["data"]["addDevice"]
    assert result == {"__typename": "InputError", "message": result["message"], "field": "id"}
    assert "already exists" in result["message"]


def test_update_changes_only_what_is_given(runtime: Runtime) -> None:
    gql(runtime, ADMIN, ADD, input=new_device())
    changes = {
        "sensors": [{"quantity": "water_level", "unit": "m", "validMin": 0, "validMax": 8}],
        "retire": ["rainfall"],
    }
    result = gql(runtime, ADMIN, UPDATE, id="niino-river", input=changes)["data"]["updateDevice"]
    assert result["__typename"] == "Device"
    assert result["name"] == "Niino river gauge"
    assert result["location"] == {"lat": 34.62, "lon": 138.15}
    assert result["sensors"] == [
        {
            "id": "niino-river.rainfall",
            "quantity": "rainfall",
            "unit": "mm",
            "validMin": None,
            "validMax": None,
            "retired": True,
        },
        {
            "id": "niino-river.water_level",
            "quantity": "water_level",
            "unit": "m",
            "validMin": 0.0,
            "validMax": 8.0,
            "retired": False,
        },
    ]
    moved = gql(runtime, ADMIN, UPDATE, id="niino-river", input={"location": {"lat": 1, "lon": 2}})
    assert moved["data"]["updateDevice"]["location"] == {"lat": 1.0, "lon": 2.0}


def test_update_failures_are_results(runtime: Runtime) -> None:
    gql(runtime, ADMIN, ADD, input=new_device())
    unknown = gql(runtime, ADMIN, UPDATE, id="nobody", input={"name": "x"})
    assert unknown["data"]["updateDevice"] == {
        "__typename": "NotFoundError",
        "message": unknown["data"]["updateDevice"]["message"],
        "id": "nobody",
    }
    unit = gql(
        runtime,
        ADMIN,
        UPDATE,
        id="niino-river",
        input={"sensors": [{"quantity": "rainfall", "unit": "in"}]},
    )["data"]["updateDevice"]
    assert unit["__typename"] == "InputError"
    assert "cannot change" in unit["message"]
    nothing = gql(runtime, ADMIN, UPDATE, id="niino-river", input={})["data"]["updateDevice"]
    assert nothing["__typename"] == "InputError"


def test_rotate_and_revoke(runtime: Runtime) -> None:
    first = gql(runtime, ADMIN, ADD, input=new_device())["data"]["addDevice"]["mqttPassword"]
    rotated = gql(runtime, ADMIN, ROTATE, id="niino-river")["data"]["rotateDeviceCredentials"]
    assert rotated["__typename"] == "DeviceCredentials"
    (credential,) = runtime.catalog.device_credentials()
    assert verify_password(rotated["mqttPassword"], credential.credential_hash)
    assert not verify_password(first, credential.credential_hash)

    revoked = gql(runtime, ADMIN, REVOKE, id="niino-river")["data"]["revokeDevice"]
    assert revoked == {"__typename": "Device", "id": "niino-river", "revoked": True}
    again = gql(runtime, ADMIN, ROTATE, id="niino-river")["data"]["rotateDeviceCredentials"]
    assert again["__typename"] == "InputError"
    assert "revoked" in again["message"]
    missing = gql(runtime, ADMIN, REVOKE, id="nobody")["data"]["revokeDevice"]
    assert missing == {"__typename": "NotFoundError", "id": "nobody"}


def test_devices_are_paged_and_filtered(runtime: Runtime) -> None:
    for number in range(5):
        gql(runtime, ADMIN, ADD, input=new_device(f"gauge-{number}"))
    gql(runtime, ADMIN, ADD, input=new_device("beach-counter", "TOURISM"))
    seen: list[str] = []
    after = None
    while True:
        page = gql(runtime, ADMIN, DEVICES, first=2, after=after)["data"]["devices"]
        assert page["totalCount"] == 6
        seen += [node["id"] for node in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen)
    assert len(seen) == 6
    tourism = gql(runtime, ADMIN, DEVICES, domain="TOURISM")["data"]["devices"]
    assert [node["id"] for node in tourism["nodes"]] == ["beach-counter"]
    node = tourism["nodes"][0]
    assert node["format"] == "senml"
    assert node["revoked"] is False
    assert node["createdAt"].endswith("+09:00")
    forged = gql(runtime, ADMIN, DEVICES, after="ZGV2aWNlOkJBRCBJRA==")  # "device:BAD ID"
    assert forged["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    capped = gql(runtime, ADMIN, DEVICES, first=1001)
    assert capped["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


def test_rejected_messages_newest_first_and_filtered(runtime: Runtime) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    runtime.catalog.record_rejections(
        [
            Rejection(
                received_at=t0 + timedelta(minutes=i),
                reason=f"bad_payload: broken JSON {i}",
                topic=f"cityos/v1/devices/dev-{i % 2}/up",
                excerpt='{"time": ',
                device_id=f"dev-{i % 2}",
            )
            for i in range(6)
        ]
    )
    records = gql(runtime, ADMIN, REJECTED, deviceId="dev-1")["data"]["rejectedMessages"]
    assert [r["reason"] for r in records] == [f"bad_payload: broken JSON {i}" for i in (5, 3, 1)]
    assert records[0]["time"] == "2026-11-01T09:05:00+09:00"
    assert records[0]["topic"] == "cityos/v1/devices/dev-1/up"
    since = gql(runtime, ADMIN, REJECTED, since="2026-11-01T09:04:00+09:00", first=1)
    assert [r["reason"][-1] for r in since["data"]["rejectedMessages"]] == ["5"]
    naive = gql(runtime, ADMIN, REJECTED, since="2026-11-01T09:04:00")
    assert naive["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("scopes", [frozenset(), READ_SCOPES, frozenset({"clients:admin"})])
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (ADD, {"input": new_device()}),
        (UPDATE, {"id": "niino-river", "input": {"name": "x"}}),
        (ROTATE, {"id": "niino-river"}),
        (REVOKE, {"id": "niino-river"}),
        (DEVICES, {}),
        ('query { device(id: "niino-river") { id } }', {}),
        (REJECTED, {}),
    ],
)
def test_everything_needs_devices_admin(
    runtime: Runtime, scopes: frozenset[str], query: str, variables: dict[str, Any]
) -> None:
    gql(runtime, ADMIN, ADD, input=new_device())
    before = runtime.catalog.device_credentials()
    body = gql(runtime, scopes, query, **variables)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "devices:admin" in body["errors"][0]["message"]
    assert body.get("data") is None or all(value is None for value in body["data"].values())
    assert runtime.catalog.device_credentials() == before
    (device,) = runtime.catalog.list_devices()
    assert device.name == "Niino river gauge"
