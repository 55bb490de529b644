"""Domain values: devices, sensors, observations, facilities, datasets, alerts, rejections."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Domain(enum.StrEnum):
    """The use-case domain that every sensor, dataset and facility belongs to."""

    DISASTER = "disaster"
    TOURISM = "tourism"
    HEALTH = "health"

    @property
    def read_scope(self) -> str:
        """The OAuth scope that lets a caller read this domain's data."""
        return f"{self.value}:read"


class Quality(enum.StrEnum):
    """Quality flag of one observation."""

    GOOD = "good"
    SUSPECT = "suspect"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A WGS 84 position."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Device:
    """A physical publisher with its own MQTT identity and payload format."""

    id: str
    name: str
    domain: Domain
    payload_format: str
    location: GeoPoint | None = None
    revoked: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sensor:
    """One quantity measured by one device at one place."""

    id: str
    device_id: str
    quantity: str
    unit: str
    domain: Domain
    name: str
    location: GeoPoint | None = None
    valid_min: float | None = None
    valid_max: float | None = None
    retired: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """One stored value of one sensor at one time (UTC-aware datetimes)."""

    sensor_id: str
    time: datetime
    value: float
    quality: Quality = Quality.GOOD
    ingested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Dataset:
    """One imported administrative source, with provenance."""

    id: str
    name: str
    source: str
    licence: str
    public: bool
    fetched_at: datetime
    checksum: str
    row_count: int
    connector: str


@dataclass(frozen=True, slots=True)
class Facility:
    """A place from administrative data (evacuation site, AED, tourist facility, ...)."""

    id: str
    kind: str
    name: str
    location: GeoPoint
    domain: Domain
    dataset_id: str
    source_key: str
    name_kana: str | None = None
    address: str | None = None
    hazards: frozenset[str] = frozenset()
    attributes: dict[str, Any] = field(default_factory=dict)
    withdrawn: bool = False
    # when the row was first imported (set by the catalog; not part of the row's content)
    imported_at: datetime | None = field(default=None, compare=False)


class AlertStatus(enum.StrEnum):
    """Where an alert is in its lifecycle; the last two end it."""

    ISSUED = "issued"
    CONTINUED = "continued"
    CANCELLED = "cancelled"
    REPLACED = "replaced"  # a later message of the same area no longer lists it

    @property
    def is_open(self) -> bool:
        """Whether an alert in this status is still in force (issued or continued)."""
        return self in (AlertStatus.ISSUED, AlertStatus.CONTINUED)


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """A status an alert entered, and when (the report time of the message that said so)."""

    at: datetime
    status: AlertStatus


@dataclass(frozen=True, slots=True)
class Alert:
    """An official warning or a sensor threshold crossing.

    `key` is the identity across the messages of one event (the same kind of warning for the
    same area); `group` is what one message lists completely (e.g. every warning of one
    municipality). `reported_at` / `message_id` are those of the newest message applied,
    `ended_at` is when it was cancelled or replaced, `timeline` every status it entered.
    """

    id: str
    source: str
    kind: str
    area: str
    area_name: str
    status: str
    drill: bool
    issued_at: datetime
    kind_code: str | None = None
    valid_until: datetime | None = None
    headline: str | None = None
    key: str = ""
    group: str = ""
    dataset_id: str | None = None
    reported_at: datetime | None = None
    ended_at: datetime | None = None
    message_id: str | None = None
    timeline: tuple[AlertTransition, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message or reading that was refused, kept with the reason (dead-letter record)."""

    received_at: datetime
    reason: str
    topic: str
    excerpt: str
    device_id: str | None = None
    quantity: str | None = None


# ---------------------------------------------------------------- OAuth2 (issue 5)

EXPORT_READ = "export:read"
"""Scope to pull time-series exports."""
DEVICES_ADMIN_SCOPE = "devices:admin"
"""Scope to register, change, rotate and revoke devices (same string as security.DEVICES_ADMIN)."""
CLIENTS_ADMIN = "clients:admin"
"""Scope to register, list, rotate and revoke OAuth clients (and introspect any token)."""
SCOPES: frozenset[str] = frozenset(
    {*(domain.read_scope for domain in Domain), EXPORT_READ, DEVICES_ADMIN_SCOPE, CLIENTS_ADMIN}
)
"""Every scope cityos knows; a client can only be granted these."""


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A partner application that gets access tokens with the client_credentials grant."""

    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked: bool = False
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key (JWK JSON) that access tokens are signed with; retired keys only verify."""

    kid: str
    algorithm: str
    private_jwk: str
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RevokedToken:
    """An access token revoked before its expiry, kept until it would have expired."""

    jti: str
    client_id: str
    expires_at: datetime
    revoked_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited API operation: who did what to which resources, when and from where."""

    time: datetime
    client_id: str | None
    operation: str
    resources: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
