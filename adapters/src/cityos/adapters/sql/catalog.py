"""The SQL catalog (SQLAlchemy 2 on SQLite or PostgreSQL), implementing `ports.Catalog`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from cityos.adapters.sql import alerts as alert_store
from cityos.adapters.sql import facilities as facility_upsert
from cityos.adapters.sql import tables as t
from cityos.adapters.sql.engine import create_catalog_engine, upgrade, writer
from cityos.adapters.sql.rows import (
    Values,
    alert_from_row,
    audit_event_from_row,
    audit_event_values,
    dataset_from_row,
    device_from_row,
    device_update_values,
    device_values,
    facility_from_row,
    oauth_client_from_row,
    oauth_client_values,
    rejection_from_row,
    rejection_values,
    require_aware,
    revoked_token_from_row,
    revoked_token_values,
    sensor_from_row,
    sensor_values,
    signing_key_from_row,
    signing_key_values,
)
from cityos.platform.config import Settings
from cityos.platform.domain.errors import AlreadyExists, InvalidInput, NotFound, RetryableError
from cityos.platform.domain.model import (
    Alert,
    AuditEvent,
    Dataset,
    Device,
    Domain,
    Facility,
    OAuthClient,
    Rejection,
    RevokedToken,
    Sensor,
    SigningKey,
)
from cityos.platform.ports import DeviceCredential, UpsertCounts

SERVICE = "catalog"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _unavailable_is_retryable(action: str) -> Iterator[None]:
    """Turn "the database is down / busy" into RetryableError; let real bugs through."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        message = str(exc.orig)
        # SQLite reports a missing table as an OperationalError; that is no outage.
        if message.startswith("no such "):
            raise
        raise RetryableError(
            f"catalog database unavailable while {action}: {message}",
            service=SERVICE,
            attempt_context=action,
        ) from exc


def _check_sensors(device: Device, sensor_list: Sequence[Sensor]) -> None:
    seen: set[str] = set()
    for sensor in sensor_list:
        expected = f"{device.id}.{sensor.quantity}"
        if sensor.device_id != device.id or sensor.id != expected:
            raise InvalidInput(
                f"sensor {sensor.id!r} does not belong to device {device.id!r} "
                f"(expected id {expected!r})",
                field="sensors",
            )
        if sensor.id in seen:
            raise InvalidInput(f"sensor {sensor.id!r} given twice", field="sensors")
        seen.add(sensor.id)


class SqlCatalog:
    """Devices, sensors, dead letters, datasets, facilities, OAuth state and audit in SQL."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._clock = clock

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations tests and operational tooling)."""
        return self._engine

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with _unavailable_is_retryable(action), self._engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with _unavailable_is_retryable(action), self._writer.begin() as connection:
            yield connection

    def _now(self) -> datetime:
        return require_aware(self._clock(), "clock").astimezone(UTC)

    # ------------------------------------------------------------ lifecycle

    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent, safe at every start-up)."""
        with _unavailable_is_retryable("migrating"):
            upgrade(self._engine)

    def ping(self) -> None:
        """Raise RetryableError unless the database answers."""
        try:
            with self._engine.connect() as connection:
                connection.execute(sa.select(sa.literal(1))).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            raise RetryableError(
                f"catalog database does not answer: {exc}", service=SERVICE, attempt_context="ping"
            ) from exc

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()

    # ------------------------------------------------------------ devices and sensors

    def add_device(
        self, device: Device, sensors: Sequence[Sensor], *, credential_hash: str | None = None
    ) -> None:
        """Register a device with its sensors atomically; AlreadyExists if the id is taken."""
        _check_sensors(device, sensors)
        now = self._now()
        taken = AlreadyExists(f"device {device.id!r} already exists")
        try:
            with self._write("adding a device") as connection:
                exists = connection.execute(
                    sa.select(t.devices.c.id).where(t.devices.c.id == device.id)
                ).first()
                if exists is not None:
                    raise taken
                connection.execute(
                    sa.insert(t.devices).values(
                        device_values(device, credential_hash=credential_hash, now=now)
                    )
                )
                if sensors:
                    connection.execute(
                        sa.insert(t.sensors),
                        [sensor_values(sensor, now=now) for sensor in sensors],
                    )
        except IntegrityError as exc:  # a concurrent add of the same id won the race
            raise taken from exc

    def get_device(self, device_id: str) -> Device | None:
        """The device with that id, or None."""
        with self._read("reading a device") as connection:
            row = (
                connection.execute(sa.select(t.devices).where(t.devices.c.id == device_id))
                .mappings()
                .first()
            )
        return device_from_row(row) if row is not None else None

    def list_devices(self) -> list[Device]:
        """All devices, ordered by id."""
        with self._read("listing devices") as connection:
            rows = connection.execute(sa.select(t.devices).order_by(t.devices.c.id)).mappings()
            return [device_from_row(row) for row in rows]

    def _update_device_row(
        self, connection: Connection, device_id: str, values: dict[str, object]
    ) -> None:
        """Update one `devices` row; NotFound if there is none."""
        result = connection.execute(
            sa.update(t.devices).where(t.devices.c.id == device_id).values(values)
        )
        if result.rowcount == 0:
            raise NotFound(f"no device {device_id!r}")

    def update_device(self, device: Device, sensors: Sequence[Sensor]) -> None:
        """Store a device's new name and location and upsert `sensors` by id, atomically."""
        _check_sensors(device, sensors)
        now = self._now()
        with self._write("updating a device") as connection:
            self._update_device_row(connection, device.id, device_update_values(device, now=now))
            existing = set(
                connection.execute(
                    sa.select(t.sensors.c.id).where(t.sensors.c.device_id == device.id)
                ).scalars()
            )
            for sensor in sensors:
                values = sensor_values(sensor, now=now)
                if sensor.id in existing:
                    del values["created_at"]
                    connection.execute(
                        sa.update(t.sensors).where(t.sensors.c.id == sensor.id).values(values)
                    )
                else:
                    connection.execute(sa.insert(t.sensors).values(values))

    def set_credential_hash(self, device_id: str, credential_hash: str) -> None:
        """Replace a device's MQTT password hash; NotFound if the device is unknown."""
        now = self._now()
        with self._write("setting a device credential") as connection:
            self._update_device_row(
                connection, device_id, {"credential_hash": credential_hash, "updated_at": now}
            )

    def revoke_device(self, device_id: str) -> None:
        """Mark a device revoked (idempotent); NotFound if the device is unknown."""
        now = self._now()
        with self._write("revoking a device") as connection:
            self._update_device_row(connection, device_id, {"revoked": True, "updated_at": now})

    def device_credentials(self) -> list[DeviceCredential]:
        """Every device's credential hash and revoked flag, ordered by id."""
        table = t.devices
        query = sa.select(table.c.id, table.c.credential_hash, table.c.revoked).order_by(table.c.id)
        with self._read("reading device credentials") as connection:
            return [
                DeviceCredential(
                    device_id=row.id, credential_hash=row.credential_hash, revoked=bool(row.revoked)
                )
                for row in connection.execute(query)
            ]

    def get_sensor(self, sensor_id: str) -> Sensor | None:
        """The sensor with that id, or None."""
        with self._read("reading a sensor") as connection:
            row = (
                connection.execute(sa.select(t.sensors).where(t.sensors.c.id == sensor_id))
                .mappings()
                .first()
            )
        return sensor_from_row(row) if row is not None else None

    def sensors_of_device(self, device_id: str) -> list[Sensor]:
        """The sensors of one device (retired ones included), ordered by id."""
        query = (
            sa.select(t.sensors).where(t.sensors.c.device_id == device_id).order_by(t.sensors.c.id)
        )
        with self._read("listing sensors") as connection:
            return [sensor_from_row(row) for row in connection.execute(query).mappings()]

    @staticmethod
    def _sensor_filter(
        domains: frozenset[Domain], device_id: str | None
    ) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = [
            t.sensors.c.domain.in_(sorted(Domain(d).value for d in domains))
        ]
        if device_id is not None:
            conditions.append(t.sensors.c.device_id == device_id)
        return conditions

    def list_sensors(
        self,
        *,
        domains: frozenset[Domain],
        device_id: str | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> list[Sensor]:
        """Sensors of the given domains with id > after_id, ordered by id."""
        if not domains or limit <= 0:
            return []
        conditions = self._sensor_filter(domains, device_id)
        if after_id is not None:
            conditions.append(t.sensors.c.id > after_id)
        query = sa.select(t.sensors).where(*conditions).order_by(t.sensors.c.id).limit(limit)
        with self._read("listing sensors") as connection:
            return [sensor_from_row(row) for row in connection.execute(query).mappings()]

    def count_sensors(self, *, domains: frozenset[Domain], device_id: str | None = None) -> int:
        """How many sensors `list_sensors` would page through."""
        if not domains:
            return 0
        query = (
            sa.select(sa.func.count())
            .select_from(t.sensors)
            .where(*self._sensor_filter(domains, device_id))
        )
        with self._read("counting sensors") as connection:
            return int(connection.execute(query).scalar_one())

    # ------------------------------------------------------------ dead letters

    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        """Append dead-letter records."""
        if not rejections:
            return
        values = [rejection_values(rejection) for rejection in rejections]
        with self._write("recording rejections") as connection:
            connection.execute(sa.insert(t.rejections), values)

    def list_rejections(
        self, *, device_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Rejection]:
        """Dead-letter records, newest first (optionally of one device, at or after `since`)."""
        if limit <= 0:
            return []
        table = t.rejections
        query = sa.select(table).order_by(table.c.received_at.desc(), table.c.id.desc())
        if device_id is not None:
            query = query.where(table.c.device_id == device_id)
        if since is not None:
            query = query.where(table.c.received_at >= require_aware(since, "since"))
        with self._read("listing rejections") as connection:
            rows = connection.execute(query.limit(limit)).mappings()
            return [rejection_from_row(row) for row in rows]

    def purge_rejections(self, *, before: datetime) -> int:
        """Delete dead-letter records received before `before`; how many were deleted."""
        table = t.rejections
        statement = sa.delete(table).where(table.c.received_at < require_aware(before, "before"))
        with self._write("purging old rejections") as connection:
            return int(connection.execute(statement).rowcount)

    # ------------------------------------------------------------ administrative data

    def upsert_dataset_facilities(
        self, dataset: Dataset, facilities: Sequence[Facility]
    ) -> UpsertCounts:
        """Upsert a dataset and its facilities by source key; absent ones become withdrawn."""
        now = self._now()
        try:
            with self._write("upserting facilities") as connection:
                return facility_upsert.upsert(connection, dataset, facilities, now=now)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"a facility id of dataset {dataset.id!r} is already used by another row"
            ) from exc

    def list_datasets(self) -> list[Dataset]:
        """All datasets, ordered by id."""
        with self._read("listing datasets") as connection:
            rows = connection.execute(sa.select(t.datasets).order_by(t.datasets.c.id)).mappings()
            return [dataset_from_row(row) for row in rows]

    def list_facilities(
        self, *, kinds: frozenset[str] | None = None, include_withdrawn: bool = False
    ) -> list[Facility]:
        """Facilities, optionally of some kinds, ordered by id."""
        table = t.facilities
        query = sa.select(table).order_by(table.c.id)
        if kinds is not None:
            if not kinds:
                return []
            query = query.where(table.c.kind.in_(sorted(kinds)))
        if not include_withdrawn:
            query = query.where(table.c.withdrawn.is_(False))
        with self._read("listing facilities") as connection:
            return [facility_from_row(row) for row in connection.execute(query).mappings()]

    # ------------------------------------------------------------ official alerts

    def upsert_dataset_alerts(
        self, dataset: Dataset, alerts: Sequence[Alert], *, checkpoint: str | None = None
    ) -> UpsertCounts:
        """Upsert a dataset and alerts by id in one transaction; count what changed."""
        now = self._now()
        with self._write("upserting alerts") as connection:
            return alert_store.upsert(connection, dataset, alerts, checkpoint=checkpoint, now=now)

    def alerts_of_lineage(
        self, *, keys: Collection[str], groups: Collection[str], group_prefixes: Collection[str]
    ) -> list[Alert]:
        """Alerts with one of `keys`, and the open ones of `groups` or under `group_prefixes`."""
        with self._read("reading alerts") as connection:
            return alert_store.of_lineage(
                connection, keys=keys, groups=groups, group_prefixes=group_prefixes
            )

    def list_alerts(
        self,
        *,
        area: str | None = None,
        issued_by: datetime | None = None,
        open_at: datetime | None = None,
        limit: int = 1000,
    ) -> list[Alert]:
        """Alerts, newest issue first (then by id), filtered as `ports.Catalog` says."""
        if limit <= 0:
            return []
        query = alert_store.listing(area=area, issued_by=issued_by, open_at=open_at, limit=limit)
        with self._read("listing alerts") as connection:
            return [alert_from_row(row) for row in connection.execute(query).mappings()]

    def get_checkpoint(self, dataset_id: str) -> str | None:
        """The checkpoint stored for a dataset's source, or None."""
        with self._read("reading a checkpoint") as connection:
            return alert_store.checkpoint_of(connection, dataset_id)

    # ------------------------------------------------------------ OAuth clients

    def add_oauth_client(self, client: OAuthClient, *, secret_hash: str) -> None:
        """Register an OAuth client with its secret hash; AlreadyExists if the id is taken."""
        values = oauth_client_values(client, secret_hash=secret_hash)
        taken = AlreadyExists(f"OAuth client {client.id!r} already exists")
        try:
            with self._write("adding an OAuth client") as connection:
                table = t.oauth_clients
                exists = connection.execute(
                    sa.select(table.c.id).where(table.c.id == client.id)
                ).first()
                if exists is not None:
                    raise taken
                connection.execute(sa.insert(table).values(values))
        except IntegrityError as exc:
            raise taken from exc

    def _client_row(self, connection: Connection, client_id: str) -> OAuthClient | None:
        table = t.oauth_clients
        row = connection.execute(sa.select(table).where(table.c.id == client_id)).mappings().first()
        return oauth_client_from_row(row) if row is not None else None

    def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        """The client with that id, or None."""
        with self._read("reading an OAuth client") as connection:
            return self._client_row(connection, client_id)

    def oauth_client_secret_hash(self, client_id: str) -> str | None:
        """The stored secret hash of a client, or None if the client is unknown."""
        table = t.oauth_clients
        query = sa.select(table.c.secret_hash).where(table.c.id == client_id)
        with self._read("reading an OAuth client secret") as connection:
            value = connection.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def list_oauth_clients(self) -> list[OAuthClient]:
        """All clients (revoked ones included), ordered by id."""
        table = t.oauth_clients
        with self._read("listing OAuth clients") as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.id)).mappings()
            return [oauth_client_from_row(row) for row in rows]

    def _update_client(
        self, client_id: str, action: str, *changes: tuple[sa.ColumnElement[bool], Values]
    ) -> OAuthClient:
        """Apply (extra condition, values) updates to one client in one transaction."""
        table = t.oauth_clients
        with self._write(action) as connection:
            client = self._client_row(connection, client_id)
            if client is None:
                raise NotFound(f"no OAuth client {client_id!r}")
            for condition, values in changes:
                connection.execute(
                    sa.update(table).where(table.c.id == client_id, condition).values(values)
                )
            updated = self._client_row(connection, client_id)
        assert updated is not None
        return updated

    def set_oauth_client_secret(self, client_id: str, secret_hash: str) -> OAuthClient:
        """Replace a client's secret hash and set its rotated time; NotFound if unknown."""
        return self._update_client(
            client_id,
            "rotating an OAuth client secret",
            (sa.true(), {"secret_hash": secret_hash, "rotated_at": self._now()}),
        )

    def revoke_oauth_client(self, client_id: str) -> OAuthClient:
        """Mark a client revoked (idempotent; the first revocation time is kept); NotFound."""
        table = t.oauth_clients
        return self._update_client(
            client_id,
            "revoking an OAuth client",
            (table.c.revoked_at.is_(None), {"revoked_at": self._now()}),
            (sa.true(), {"revoked": True}),
        )

    # ------------------------------------------------------------ signing keys

    def add_signing_key(self, key: SigningKey) -> None:
        """Store a new key and retire every unretired other key as of its creation, atomically."""
        values = signing_key_values(key)
        table = t.signing_keys
        taken = AlreadyExists(f"signing key {key.kid!r} already exists")
        try:
            with self._write("adding a signing key") as connection:
                if connection.execute(sa.select(table.c.kid).where(table.c.kid == key.kid)).first():
                    raise taken
                connection.execute(
                    sa.update(table)
                    .where(table.c.retired_at.is_(None))
                    .values(retired_at=values["created_at"])
                )
                connection.execute(sa.insert(table).values(values))
        except IntegrityError as exc:
            raise taken from exc

    def list_signing_keys(self) -> list[SigningKey]:
        """All stored signing keys, oldest first."""
        table = t.signing_keys
        query = sa.select(table).order_by(table.c.created_at, table.c.kid)
        with self._read("listing signing keys") as connection:
            return [signing_key_from_row(row) for row in connection.execute(query).mappings()]

    def delete_signing_keys(self, *, retired_before: datetime) -> int:
        """Delete keys retired before `retired_before`; how many were deleted."""
        table = t.signing_keys
        statement = sa.delete(table).where(
            table.c.retired_at.is_not(None),
            table.c.retired_at < require_aware(retired_before, "retired_before"),
        )
        with self._write("deleting retired signing keys") as connection:
            return int(connection.execute(statement).rowcount)

    # ------------------------------------------------------------ revoked tokens

    def revoke_token(self, token: RevokedToken) -> None:
        """Record a revoked token id (idempotent: a jti already recorded is kept as it is)."""
        values = revoked_token_values(token)
        table = t.revoked_tokens
        try:
            with self._write("revoking a token") as connection:
                if connection.execute(
                    sa.select(table.c.jti).where(table.c.jti == token.jti)
                ).first():
                    return
                connection.execute(sa.insert(table).values(values))
        except IntegrityError:  # a concurrent revocation of the same token won the race
            return

    def list_revoked_tokens(self, *, expiring_after: datetime) -> list[RevokedToken]:
        """Revoked tokens that expire after `expiring_after` (the ones still worth refusing)."""
        table = t.revoked_tokens
        query = (
            sa.select(table)
            .where(table.c.expires_at > require_aware(expiring_after, "expiring_after"))
            .order_by(table.c.jti)
        )
        with self._read("listing revoked tokens") as connection:
            return [revoked_token_from_row(row) for row in connection.execute(query).mappings()]

    def purge_revoked_tokens(self, *, expired_before: datetime) -> int:
        """Forget revoked tokens that expired before `expired_before`; how many."""
        table = t.revoked_tokens
        statement = sa.delete(table).where(
            table.c.expires_at < require_aware(expired_before, "expired_before")
        )
        with self._write("purging revoked tokens") as connection:
            return int(connection.execute(statement).rowcount)

    # ------------------------------------------------------------ audit log

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append audit events."""
        if not events:
            return
        values = [audit_event_values(event) for event in events]
        with self._write("appending audit events") as connection:
            connection.execute(sa.insert(t.audit_events), values)

    def list_audit(
        self, *, client_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """Audit events, newest first (optionally of one client, at or after `since`)."""
        if limit <= 0:
            return []
        table = t.audit_events
        query = sa.select(table).order_by(table.c.time.desc(), table.c.id.desc())
        if client_id is not None:
            query = query.where(table.c.client_id == client_id)
        if since is not None:
            query = query.where(table.c.time >= require_aware(since, "since"))
        with self._read("listing audit events") as connection:
            rows = connection.execute(query.limit(limit)).mappings()
            return [audit_event_from_row(row) for row in rows]


def create_catalog(settings: Settings) -> SqlCatalog:
    """Create the SQL catalog for `settings.db_url` (call `migrate()` before use)."""
    return SqlCatalog(create_catalog_engine(settings.db_url))
