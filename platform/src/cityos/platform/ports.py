"""Ports: the Protocols that adapters, connectors and auth implement for the core.

Adapters are found by name through entry points (see `plugins.py`); the core only ever
sees these Protocols. What each entry-point group registers is a factory:

- `cityos.catalog`, `cityos.timeseries`: `create(settings: Settings) -> Catalog | TimeSeriesStore`
- `cityos.decoders`: `create(settings: Settings) -> PayloadDecoder`
- `cityos.message_sources`: `create(settings: Settings, *, url: str) -> MessageSource`
- `cityos.message_publishers`: `create(settings: Settings, *, url: str, client_id: str)
  -> MessagePublisher`
- `cityos.brokers`: `create(settings: Settings, *, host: str, port: int, state_dir: Path)
  -> EmbeddedBroker` (raises ConfigError when its technology is not available here)
- `cityos.connectors`: `create(settings: Settings) -> Connector`
- `cityos.auth`: `create(settings: Settings, *, catalog: Catalog) -> AuthServer`
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cityos.platform.domain.errors import CityosError
from cityos.platform.domain.model import (
    Alert,
    AuditEvent,
    Dataset,
    Device,
    Domain,
    Facility,
    GeoPoint,
    OAuthClient,
    Observation,
    Rejection,
    RevokedToken,
    Sensor,
    SigningKey,
)

if TYPE_CHECKING:
    from fastapi import APIRouter

# ---------------------------------------------------------------- time series


STREAM_BLOCK_SIZE = 10_000
"""Observations per block of `TimeSeriesStore.stream_range` unless the caller asks otherwise."""


@dataclass(frozen=True, slots=True)
class ObservationBlock:
    """Consecutive raw observations of one sensor, oldest first, as columns (for streaming).

    `times_ns` are UTC epoch nanoseconds; `qualities` are `Quality` values ("good", ...).
    The three columns have the same length.
    """

    sensor_id: str
    times_ns: Sequence[int]
    values: Sequence[float]
    qualities: Sequence[str]


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Where observations live (InfluxDB in production, embedded SQLite by default)."""

    name: str

    def write(
        self,
        observations: Sequence[Observation],
        *,
        sensors: Mapping[str, Sensor] | None = None,
    ) -> None:
        """Store observations durably; the same (sensor, time) written twice is stored once.

        `sensors` (by id) describe the series for stores that tag them (device, quantity,
        domain); without it a store derives what it can from the sensor id. Raises
        RetryableError when the store is unreachable (then nothing may be acked), and
        RejectedPoints when the store refused some points for good (the rest are stored).
        """

    def query_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: datetime | None = None,
    ) -> list[Observation]:
        """Raw observations with start <= time < end (and time > after), oldest first."""
        ...

    def count_range(self, *, sensor_id: str, start: datetime, end: datetime) -> int:
        """Number of observations with start <= time < end."""
        ...

    def stream_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        block_size: int = STREAM_BLOCK_SIZE,
    ) -> Iterator[ObservationBlock]:
        """Every raw observation with start <= time < end, oldest first, in blocks.

        Blocks hold at most `block_size` observations and are read from the store as they
        are consumed (InfluxDB chunked queries, a SQLite cursor), so memory stays flat
        whatever the range. The iterator is a generator: `close()` ends the read and frees
        the server-side query and connection at once. Raises RetryableError when the store
        is unreachable (also mid-stream).
        """
        ...

    def latest(self, sensor_ids: Sequence[str]) -> dict[str, Observation]:
        """The newest observation of each sensor that has one, in one round trip."""
        ...

    def aggregate(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        every: timedelta,
        offset: timedelta,
        functions: frozenset[str],
    ) -> list[WindowAggregate]:
        """Aggregates of the observations in [start, end), in fixed windows, in one round trip.

        Window starts are `offset + k * every` after the Unix epoch (UTC), so `offset` aligns
        windows (e.g. -9h for days starting at midnight in Japan); the first window may start
        before `start`, but only observations inside [start, end) count. `functions` is a
        subset of AGGREGATE_FUNCTIONS. Only non-empty windows are returned, oldest first
        (filling gaps is the caller's business).
        """
        ...

    def ping(self) -> None:
        """Raise RetryableError unless the store answers."""

    def close(self) -> None:
        """Release connections."""


AGGREGATE_FUNCTIONS = frozenset({"mean", "min", "max", "sum", "count", "first", "last"})


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """The aggregates of one non-empty window; `count` is a float like the others."""

    start: datetime
    values: Mapping[str, float]


# ---------------------------------------------------------------- catalog


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """What an idempotent upsert of a source's records changed."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """A device's MQTT password hash (mosquitto `$7$`, None if it has none) and revoked flag."""

    device_id: str
    credential_hash: str | None
    revoked: bool


@runtime_checkable
class Catalog(Protocol):
    """The SQL catalog: devices, sensors, facilities, datasets, alerts, dead letters."""

    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent)."""

    def ping(self) -> None:
        """Raise RetryableError unless the database answers."""

    def close(self) -> None:
        """Release connections."""

    # devices and sensors
    def add_device(
        self, device: Device, sensors: Sequence[Sensor], *, credential_hash: str | None = None
    ) -> None:
        """Register a device with its sensors; AlreadyExists if the id is taken."""

    def get_device(self, device_id: str) -> Device | None:
        """The device with that id, or None."""
        ...

    def list_devices(self) -> list[Device]:
        """All devices, ordered by id."""
        ...

    def get_sensor(self, sensor_id: str) -> Sensor | None:
        """The sensor with that id, or None."""
        ...

    def sensors_of_device(self, device_id: str) -> list[Sensor]:
        """The sensors of one device (retired ones included), ordered by id."""
        ...

    def update_device(self, device: Device, sensors: Sequence[Sensor]) -> None:
        """Store a device's new name and location; upsert `sensors` by id; NotFound if unknown.

        Sensors not given are left as they are; a sensor given with `retired=True` is retired.
        """

    def set_credential_hash(self, device_id: str, credential_hash: str) -> None:
        """Replace a device's MQTT password hash; NotFound if the device is unknown."""

    def revoke_device(self, device_id: str) -> None:
        """Mark a device revoked (idempotent); NotFound if the device is unknown."""

    def device_credentials(self) -> list[DeviceCredential]:
        """Every device's credential hash and revoked flag, ordered by id."""
        ...

    def list_sensors(
        self,
        *,
        domains: frozenset[Domain],
        device_id: str | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> list[Sensor]:
        """Sensors of the given domains with id > after_id, ordered by id."""
        ...

    def count_sensors(self, *, domains: frozenset[Domain], device_id: str | None = None) -> int:
        """How many sensors `list_sensors` would page through."""
        ...

    # dead letters
    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        """Append dead-letter records."""

    def list_rejections(
        self, *, device_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Rejection]:
        """Dead-letter records, newest first."""
        ...

    def purge_rejections(self, *, before: datetime) -> int:
        """Delete dead-letter records received before `before`; how many were deleted."""
        ...

    # administrative data
    def upsert_dataset_facilities(
        self, dataset: Dataset, facilities: Sequence[Facility]
    ) -> UpsertCounts:
        """Upsert a dataset and its facilities by source key; absent ones become withdrawn."""
        ...

    def list_datasets(self) -> list[Dataset]:
        """All datasets, ordered by id."""
        ...

    def list_facilities(
        self, *, kinds: frozenset[str] | None = None, include_withdrawn: bool = False
    ) -> list[Facility]:
        """Facilities, optionally of some kinds, ordered by id."""
        ...

    # official warnings and their import state
    def upsert_dataset_alerts(
        self, dataset: Dataset, alerts: Sequence[Alert], *, checkpoint: str | None = None
    ) -> UpsertCounts:
        """Upsert a dataset and alerts by id in one transaction; count what changed.

        An alert whose content equals the stored row is unchanged (its `updated_at` stays).
        An alert belongs to the dataset that last changed it (`Alert.dataset_id`; None means
        this one); the dataset's `row_count` becomes the number of alerts it holds. A given
        `checkpoint` is stored for the dataset in the same transaction (None keeps the old).
        """
        ...

    def alerts_of_lineage(
        self, *, keys: Collection[str], groups: Collection[str], group_prefixes: Collection[str]
    ) -> list[Alert]:
        """Every alert with one of `keys`, and the open ones (issued or continued) whose group
        is in `groups` or starts with one of `group_prefixes` followed by ":"."""
        ...

    def list_alerts(
        self,
        *,
        area: str | None = None,
        issued_by: datetime | None = None,
        open_at: datetime | None = None,
        limit: int = 1000,
    ) -> list[Alert]:
        """Alerts, newest issue first (then by id).

        `issued_by`: only those issued at or before it. `open_at`: only non-drill ones not
        ended and not past their own validity at that time (the maximum age is the caller's).
        """
        ...

    def get_checkpoint(self, dataset_id: str) -> str | None:
        """The checkpoint stored for a dataset's source (e.g. a feed's ETag), or None."""
        ...

    # OAuth clients
    def add_oauth_client(self, client: OAuthClient, *, secret_hash: str) -> None:
        """Register an OAuth client with its secret hash; AlreadyExists if the id is taken."""

    def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        """The client with that id, or None."""
        ...

    def oauth_client_secret_hash(self, client_id: str) -> str | None:
        """The stored secret hash of a client, or None if the client is unknown."""
        ...

    def list_oauth_clients(self) -> list[OAuthClient]:
        """All clients (revoked ones included), ordered by id."""
        ...

    def set_oauth_client_secret(self, client_id: str, secret_hash: str) -> OAuthClient:
        """Replace a client's secret hash and set its rotated time; NotFound if unknown."""
        ...

    def revoke_oauth_client(self, client_id: str) -> OAuthClient:
        """Mark a client revoked (idempotent; the first revocation time is kept); NotFound."""
        ...

    # signing keys of the authorization server
    def add_signing_key(self, key: SigningKey) -> None:
        """Store a new key and retire every unretired other key as of its creation, atomically.

        AlreadyExists if the kid is taken.
        """

    def list_signing_keys(self) -> list[SigningKey]:
        """All stored signing keys, oldest first."""
        ...

    def delete_signing_keys(self, *, retired_before: datetime) -> int:
        """Delete keys retired before `retired_before`; how many were deleted."""
        ...

    # revoked access tokens
    def revoke_token(self, token: RevokedToken) -> None:
        """Record a revoked token id (idempotent: a jti already recorded is kept as it is)."""

    def list_revoked_tokens(self, *, expiring_after: datetime) -> list[RevokedToken]:
        """Revoked tokens that expire after `expiring_after` (the ones still worth refusing)."""
        ...

    def purge_revoked_tokens(self, *, expired_before: datetime) -> int:
        """Forget revoked tokens that expired before `expired_before`; how many."""
        ...

    # audit log (append-only)
    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append audit events."""

    def list_audit(
        self, *, client_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """Audit events, newest first (optionally of one client, at or after `since`)."""
        ...


# ---------------------------------------------------------------- ingestion


@dataclass(frozen=True, slots=True)
class Message:
    """One message from a message source; `ack` confirms it to the broker (idempotent)."""

    topic: str
    payload: bytes
    received_at: datetime
    ack: Callable[[], None]


MessageHandler = Callable[[Message], None]


@runtime_checkable
class MessageSource(Protocol):
    """A subscription that delivers device messages and takes acknowledgements later."""

    @property
    def protocol(self) -> str:
        """The protocol level negotiated with the broker, e.g. 'MQTT 5.0' or 'MQTT 3.1.1'."""
        ...

    def start(self, handler: MessageHandler) -> None:
        """Connect, subscribe and deliver every message to `handler` (on the source's thread)."""

    def stop(self) -> None:
        """Disconnect; unacknowledged messages are redelivered by the broker later."""


@runtime_checkable
class MessagePublisher(Protocol):
    """Publishes messages to the broker (the demo simulator, tests, tools)."""

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Send one message; with qos 1 return once the broker has it queued for sending."""

    def close(self) -> None:
        """Flush what is in flight and disconnect."""


@runtime_checkable
class EmbeddedBroker(Protocol):
    """An MQTT broker started by cityos itself when no external one is configured."""

    name: str

    @property
    def url(self) -> str:
        """mqtt:// URL clients use to reach it."""
        ...

    def start(self) -> None:
        """Start serving; return once it accepts connections."""

    def stop(self) -> None:
        """Stop serving and clean up."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded value for one quantity of a device, before validation."""

    quantity: str | None
    time: datetime
    value: float
    unit: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReadingProblem:
    """A part of a payload that could not become a reading, with the reason."""

    reason: str
    excerpt: str
    quantity: str | None = None


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a decoder may know about the message it decodes."""

    device: Device
    sensors: Mapping[str, Sensor]
    topic: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    """A decoder's output: readings to validate, per-reading problems, a reported location."""

    readings: list[Reading]
    problems: list[ReadingProblem] = field(default_factory=list)
    location: GeoPoint | None = None  # e.g. SenML lat/lon records: the device moved


@runtime_checkable
class PayloadDecoder(Protocol):
    """Pure function object turning payload bytes into readings; raises PayloadError."""

    format: str

    def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
        """Decode one payload."""
        ...


# ---------------------------------------------------------------- connectors, auth


@dataclass(frozen=True, slots=True)
class FacilityRecord:
    """One facility as a connector read it from its source."""

    source_key: str
    kind: str
    name: str
    lat: float
    lon: float
    name_kana: str | None = None
    address: str | None = None
    hazards: frozenset[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A source row that could not become a record: where it was and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One message's statement about one alert: a kind of warning for one area.

    Records with the same `key` are one alert (issued, continued, then cancelled); a new
    alert with an old key starts once the previous one has ended. A message lists its
    `group` (e.g. every warning of one municipality) completely: an open alert of that group
    which the message does not restate has been replaced. `reported_at` orders the
    messages; `message_id` names the message (provenance). `status` is "issued",
    "continued" or "cancelled"; `issued_at` is given when the message says when it started.
    """

    key: str
    group: str
    source: str
    kind: str
    kind_code: str | None
    area: str
    area_name: str
    status: str
    drill: bool
    reported_at: datetime
    message_id: str
    issued_at: datetime | None = None
    valid_until: datetime | None = None
    headline: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    rank: int = 0  # among messages with the same report time, lower ranks are applied first


@dataclass(frozen=True, slots=True)
class AlertGroupRecord:
    """A message's statement about a whole group of alerts, restating none of them.

    status "listed": the group has no alert in force any more (open ones were replaced);
    "cancelled": the message withdraws them (e.g. a 取消), open ones become cancelled. With
    `prefix`, every group starting with `group` + ":" is meant too (a whole event).
    """

    group: str
    source: str
    status: str
    drill: bool
    reported_at: datetime
    message_id: str
    prefix: bool = False
    rank: int = 0  # as AlertRecord.rank: the same for every item of one message


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """Something a connector read but does not handle (a message type it does not parse).

    Skipped items are counted by `kind`, not rejected: nothing is wrong with them.
    """

    kind: str
    reason: str
    ref: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """Where a connector got to in its source (opaque text, e.g. a feed's ETag and seen ids).

    Yielded last; the import service stores it with the dataset once the records are
    upserted, and hands it back to `CheckpointingConnector.fetch_since` on the next run.
    """

    value: str


ConnectorItem = (
    FacilityRecord
    | RejectedRecord
    | AlertRecord
    | AlertGroupRecord
    | SkippedRecord
    | CheckpointRecord
)
"""Everything a connector may yield."""


@runtime_checkable
class Connector(Protocol):
    """Pull-based importer of administrative data: yields records, never writes."""

    name: str
    default_licence: str

    def fetch(self, source: str) -> Iterator[ConnectorItem]:
        """Yield the records (and rejected rows) read from `source`, a path or URL."""
        ...


@runtime_checkable
class CheckpointingConnector(Connector, Protocol):
    """A connector that can resume from the checkpoint of its previous run on a source."""

    def fetch_since(self, source: str, checkpoint: str | None) -> Iterator[ConnectorItem]:
        """Like `fetch`, skipping what `checkpoint` (None: nothing yet) says was read."""
        ...


@runtime_checkable
class TokenVerifier(Protocol):
    """Turns a bearer token into the caller's client id and scopes."""

    def verify(self, token: str) -> tuple[str, frozenset[str]]:
        """Return (client_id, scopes) or raise PermissionDenied for any invalid token."""
        ...


class ClientRevoked(CityosError):
    """The OAuth client is revoked: it gets no new secret and no tokens."""


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """A client and its plain secret: shown once, stored only as a hash."""

    client: OAuthClient
    client_secret: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token with its lifetime in seconds and granted scopes."""

    access_token: str
    expires_in: int
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class SigningKeyInfo:
    """A signing key's public facts; `published_until` is None while it signs."""

    kid: str
    algorithm: str
    created_at: datetime
    retired_at: datetime | None
    published_until: datetime | None


@runtime_checkable
class AuthServer(Protocol):
    """The OAuth2 authorization server: HTTP endpoints, token verification, administration."""

    @property
    def router(self) -> APIRouter:
        """The `/oauth/*` and `/.well-known/*` routes, to include in the HTTP app."""
        ...

    @property
    def verifier(self) -> TokenVerifier:
        """Verifies bearer tokens (this server's and a configured external issuer's)."""
        ...

    def add_client(self, *, name: str, scopes: frozenset[str]) -> ClientSecret:
        """Register a client granted `scopes` (known scopes only; InvalidInput otherwise)."""
        ...

    def get_client(self, client_id: str) -> OAuthClient | None:
        """One client, or None."""
        ...

    def list_clients(self) -> list[OAuthClient]:
        """All clients, ordered by id."""
        ...

    def rotate_client_secret(self, client_id: str) -> ClientSecret:
        """A new secret for a client (NotFound; ClientRevoked); tokens already issued stay valid."""
        ...

    def revoke_client(self, client_id: str) -> OAuthClient:
        """Revoke a client (idempotent; NotFound): its tokens stop working at once here."""
        ...

    def issue_token(
        self, client_id: str, *, scopes: frozenset[str] | None = None, issuer: str | None = None
    ) -> IssuedToken:
        """A token for a client without HTTP (the demo); all its scopes when `scopes` is None."""
        ...

    def signing_keys(self) -> list[SigningKeyInfo]:
        """The stored signing keys, oldest first."""
        ...

    def rotate_signing_key(self) -> SigningKeyInfo:
        """Start signing with a new key; older keys verify until their tokens have expired."""
        ...

    def close(self) -> None:
        """Stop background work."""
