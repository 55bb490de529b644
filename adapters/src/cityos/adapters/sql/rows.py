"""Conversions between table rows and the frozen domain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import (
    Alert,
    AlertStatus,
    AlertTransition,
    AuditEvent,
    Dataset,
    Device,
    Domain,
    Facility,
    GeoPoint,
    OAuthClient,
    Rejection,
    RevokedToken,
    Sensor,
    SigningKey,
)

Values = dict[str, Any]


def require_aware(value: datetime, what: str) -> datetime:
    """Return `value` if it carries a time zone, else raise InvalidInput."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware, got {value.isoformat()}", field=what)
    return value


def _point(lat: float | None, lon: float | None) -> GeoPoint | None:
    if lat is None or lon is None:
        return None
    return GeoPoint(lat=lat, lon=lon)


def device_from_row(row: RowMapping) -> Device:
    """Build a Device from a `devices` row."""
    return Device(
        id=row["id"],
        name=row["name"],
        domain=Domain(row["domain"]),
        payload_format=row["payload_format"],
        location=_point(row["lat"], row["lon"]),
        revoked=bool(row["revoked"]),
        created_at=row["created_at"],
    )


def device_values(device: Device, *, credential_hash: str | None, now: datetime) -> Values:
    """Column values of a new `devices` row."""
    created_at = require_aware(device.created_at, "created_at") if device.created_at else now
    return {
        "id": device.id,
        "name": device.name,
        "domain": Domain(device.domain).value,
        "payload_format": device.payload_format,
        "lat": device.location.lat if device.location else None,
        "lon": device.location.lon if device.location else None,
        "credential_hash": credential_hash,
        "revoked": device.revoked,
        "created_at": created_at,
        "updated_at": now,
    }


def device_update_values(device: Device, *, now: datetime) -> Values:
    """Column values `update_device` changes (name and location; not identity or revoked)."""
    return {
        "name": device.name,
        "lat": device.location.lat if device.location else None,
        "lon": device.location.lon if device.location else None,
        "updated_at": now,
    }


def sensor_from_row(row: RowMapping) -> Sensor:
    """Build a Sensor from a `sensors` row."""
    return Sensor(
        id=row["id"],
        device_id=row["device_id"],
        quantity=row["quantity"],
        unit=row["unit"],
        domain=Domain(row["domain"]),
        name=row["name"],
        location=_point(row["lat"], row["lon"]),
        valid_min=row["valid_min"],
        valid_max=row["valid_max"],
        retired=bool(row["retired"]),
    )


def sensor_values(sensor: Sensor, *, now: datetime) -> Values:
    """Column values of a new `sensors` row."""
    return {
        "id": sensor.id,
        "device_id": sensor.device_id,
        "quantity": sensor.quantity,
        "unit": sensor.unit,
        "domain": Domain(sensor.domain).value,
        "name": sensor.name,
        "lat": sensor.location.lat if sensor.location else None,
        "lon": sensor.location.lon if sensor.location else None,
        "valid_min": sensor.valid_min,
        "valid_max": sensor.valid_max,
        "retired": sensor.retired,
        "created_at": now,
    }


def rejection_from_row(row: RowMapping) -> Rejection:
    """Build a Rejection from a `rejections` row."""
    return Rejection(
        received_at=row["received_at"],
        reason=row["reason"],
        topic=row["topic"],
        excerpt=row["excerpt"],
        device_id=row["device_id"],
        quantity=row["quantity"],
    )


def rejection_values(rejection: Rejection) -> Values:
    """Column values of a new `rejections` row."""
    return {
        "received_at": require_aware(rejection.received_at, "received_at"),
        "reason": rejection.reason,
        "topic": rejection.topic,
        "excerpt": rejection.excerpt,
        "device_id": rejection.device_id,
        "quantity": rejection.quantity,
    }


def dataset_from_row(row: RowMapping) -> Dataset:
    """Build a Dataset from a `datasets` row."""
    return Dataset(
        id=row["id"],
        name=row["name"],
        source=row["source"],
        licence=row["licence"],
        public=bool(row["public"]),
        fetched_at=row["fetched_at"],
        checksum=row["checksum"],
        row_count=row["row_count"],
        connector=row["connector"],
    )


def dataset_values(dataset: Dataset, *, now: datetime) -> Values:
    """Column values of a `datasets` row."""
    return {
        "id": dataset.id,
        "name": dataset.name,
        "source": dataset.source,
        "licence": dataset.licence,
        "public": dataset.public,
        "fetched_at": require_aware(dataset.fetched_at, "fetched_at"),
        "checksum": dataset.checksum,
        "row_count": dataset.row_count,
        "connector": dataset.connector,
        "updated_at": now,
    }


def facility_from_row(row: RowMapping) -> Facility:
    """Build a Facility from a `facilities` row."""
    return Facility(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        location=GeoPoint(lat=row["lat"], lon=row["lon"]),
        domain=Domain(row["domain"]),
        dataset_id=row["dataset_id"],
        source_key=row["source_key"],
        name_kana=row["name_kana"],
        address=row["address"],
        hazards=frozenset(row["hazards"] or ()),
        attributes=dict(row["attributes"] or {}),
        withdrawn=bool(row["withdrawn"]),
        imported_at=row["created_at"],
    )


def facility_content(facility: Facility) -> Values:
    """The columns of a facility that an upsert compares and writes (not times or flags)."""
    return {
        "id": facility.id,
        "kind": facility.kind,
        "name": facility.name,
        "name_kana": facility.name_kana,
        "address": facility.address,
        "lat": facility.location.lat,
        "lon": facility.location.lon,
        "domain": Domain(facility.domain).value,
        # sorted: the same set is always stored (and compared) as the same list
        "hazards": sorted(facility.hazards),
        # through JSON once, so that tuples, non-str keys etc. compare as they will be stored
        "attributes": json.loads(json.dumps(facility.attributes, ensure_ascii=False)),
    }


def stored_content(row: RowMapping) -> Values:
    """The same columns as `facility_content`, read from a stored row."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "name_kana": row["name_kana"],
        "address": row["address"],
        "lat": row["lat"],
        "lon": row["lon"],
        "domain": row["domain"],
        "hazards": sorted(row["hazards"] or ()),
        "attributes": row["attributes"] or {},
    }


def oauth_client_from_row(row: RowMapping) -> OAuthClient:
    """Build an OAuthClient from an `oauth_clients` row."""
    return OAuthClient(
        id=row["id"],
        name=row["name"],
        scopes=frozenset(row["scopes"].split()),
        created_at=row["created_at"],
        revoked=bool(row["revoked"]),
        rotated_at=row["rotated_at"],
        revoked_at=row["revoked_at"],
    )


def oauth_client_values(client: OAuthClient, *, secret_hash: str) -> Values:
    """Column values of a new `oauth_clients` row."""
    for scope in client.scopes:
        if not scope or any(ch.isspace() for ch in scope):
            raise InvalidInput(f"scope {scope!r} is empty or contains white space", field="scopes")
    return {
        "id": client.id,
        "name": client.name,
        "scopes": " ".join(sorted(client.scopes)),
        "secret_hash": secret_hash,
        "revoked": client.revoked,
        "created_at": require_aware(client.created_at, "created_at"),
        "rotated_at": None
        if client.rotated_at is None
        else require_aware(client.rotated_at, "rotated_at"),
        "revoked_at": None
        if client.revoked_at is None
        else require_aware(client.revoked_at, "revoked_at"),
    }


def signing_key_from_row(row: RowMapping) -> SigningKey:
    """Build a SigningKey from a `signing_keys` row."""
    return SigningKey(
        kid=row["kid"],
        algorithm=row["algorithm"],
        private_jwk=row["private_jwk"],
        created_at=row["created_at"],
        retired_at=row["retired_at"],
    )


def signing_key_values(key: SigningKey) -> Values:
    """Column values of a new `signing_keys` row."""
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "private_jwk": key.private_jwk,
        "created_at": require_aware(key.created_at, "created_at"),
        "retired_at": None
        if key.retired_at is None
        else require_aware(key.retired_at, "retired_at"),
    }


def revoked_token_from_row(row: RowMapping) -> RevokedToken:
    """Build a RevokedToken from a `revoked_tokens` row."""
    return RevokedToken(
        jti=row["jti"],
        client_id=row["client_id"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def revoked_token_values(token: RevokedToken) -> Values:
    """Column values of a new `revoked_tokens` row."""
    return {
        "jti": token.jti,
        "client_id": token.client_id,
        "expires_at": require_aware(token.expires_at, "expires_at"),
        "revoked_at": require_aware(token.revoked_at, "revoked_at"),
    }


def audit_event_from_row(row: RowMapping) -> AuditEvent:
    """Build an AuditEvent from an `audit_events` row."""
    return AuditEvent(
        time=row["time"],
        client_id=row["client_id"],
        operation=row["operation"],
        resources=tuple(row["resources"] or ()),
        details=dict(row["details"] or {}),
        source_ip=row["source_ip"],
    )


def audit_event_values(event: AuditEvent) -> Values:
    """Column values of a new `audit_events` row (details go through JSON once)."""
    return {
        "time": require_aware(event.time, "time"),
        "client_id": event.client_id,
        "operation": event.operation,
        "resources": [str(resource) for resource in event.resources],
        "details": json.loads(json.dumps(event.details, ensure_ascii=False, default=str)),
        "source_ip": event.source_ip,
    }


def _timeline_values(alert: Alert) -> list[dict[str, str]]:
    return [
        {
            "at": require_aware(step.at, "timeline").astimezone(UTC).isoformat(),
            "status": AlertStatus(step.status).value,
        }
        for step in alert.timeline
    ]


def _optional_time(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else require_aware(value, what).astimezone(UTC)


def alert_content(alert: Alert) -> Values:
    """The columns of an alert that an upsert compares and writes (not created/updated)."""
    return {
        "id": alert.id,
        "dataset_id": alert.dataset_id,
        "key": alert.key or alert.id,
        "group_key": alert.group or alert.key or alert.id,
        "source": alert.source,
        "kind": alert.kind,
        "kind_code": alert.kind_code,
        "area": alert.area,
        "area_name": alert.area_name,
        "status": AlertStatus(alert.status).value,
        "drill": alert.drill,
        "issued_at": require_aware(alert.issued_at, "issued_at").astimezone(UTC),
        "valid_until": _optional_time(alert.valid_until, "valid_until"),
        "ended_at": _optional_time(alert.ended_at, "ended_at"),
        "reported_at": _optional_time(alert.reported_at, "reported_at"),
        "message_id": alert.message_id,
        "headline": alert.headline,
        "timeline": _timeline_values(alert),
        # through JSON once, so that tuples, non-str keys etc. compare as they will be stored
        "attributes": json.loads(json.dumps(alert.attributes, ensure_ascii=False, default=str)),
    }


def stored_alert_content(row: RowMapping) -> Values:
    """The same columns as `alert_content`, read from a stored row."""
    return {name: row[name] for name in alert_content_columns()} | {
        "timeline": list(row["timeline"] or []),
        "attributes": row["attributes"] or {},
    }


def alert_content_columns() -> tuple[str, ...]:
    """The names of the columns `alert_content` fills."""
    return (
        "id",
        "dataset_id",
        "key",
        "group_key",
        "source",
        "kind",
        "kind_code",
        "area",
        "area_name",
        "status",
        "drill",
        "issued_at",
        "valid_until",
        "ended_at",
        "reported_at",
        "message_id",
        "headline",
        "timeline",
        "attributes",
    )


def alert_from_row(row: RowMapping) -> Alert:
    """Build an Alert from an `alerts` row."""
    return Alert(
        id=row["id"],
        source=row["source"],
        kind=row["kind"],
        area=row["area"],
        area_name=row["area_name"],
        status=row["status"],
        drill=bool(row["drill"]),
        issued_at=row["issued_at"],
        kind_code=row["kind_code"],
        valid_until=row["valid_until"],
        headline=row["headline"],
        key=row["key"],
        group=row["group_key"],
        dataset_id=row["dataset_id"],
        reported_at=row["reported_at"],
        ended_at=row["ended_at"],
        message_id=row["message_id"],
        timeline=tuple(
            AlertTransition(
                at=datetime.fromisoformat(step["at"]), status=AlertStatus(step["status"])
            )
            for step in row["timeline"] or ()
        ),
        attributes=dict(row["attributes"] or {}),
    )
