"""Alerts in SQL: idempotent upsert by id, lineage look-ups, as-of listing, checkpoints."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cityos.adapters.sql.facilities import upsert_dataset
from cityos.adapters.sql.rows import (
    Values,
    alert_content,
    alert_from_row,
    require_aware,
    stored_alert_content,
)
from cityos.adapters.sql.tables import alerts, datasets, import_checkpoints
from cityos.platform.domain.model import Alert, AlertStatus, Dataset
from cityos.platform.ports import UpsertCounts

# Values per `IN (...)` statement; well below SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 500
_OPEN = [AlertStatus.ISSUED.value, AlertStatus.CONTINUED.value]


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + _CHUNK] for start in range(0, len(values), _CHUNK)]


def _latest_by_id(dataset: Dataset, records: Sequence[Alert]) -> dict[str, Values]:
    # An alert belongs to the dataset that last changed it (another dataset's message may
    # restate it unchanged); one without a dataset is this one's. The last of an id wins.
    latest: dict[str, Values] = {}
    for alert in records:
        latest[alert.id] = alert_content(alert) | {"dataset_id": alert.dataset_id or dataset.id}
    return latest


def _set_checkpoint(connection: Connection, dataset_id: str, value: str, now: datetime) -> None:
    table = import_checkpoints
    exists = connection.execute(
        sa.select(table.c.dataset_id).where(table.c.dataset_id == dataset_id)
    ).first()
    if exists is None:
        connection.execute(
            sa.insert(table).values(dataset_id=dataset_id, value=value, updated_at=now)
        )
    else:
        connection.execute(
            sa.update(table)
            .where(table.c.dataset_id == dataset_id)
            .values(value=value, updated_at=now)
        )


def upsert(
    connection: Connection,
    dataset: Dataset,
    records: Sequence[Alert],
    *,
    checkpoint: str | None,
    now: datetime,
) -> UpsertCounts:
    """Upsert the dataset and alerts by id in the caller's transaction; count the changes."""
    incoming = _latest_by_id(dataset, records)
    upsert_dataset(connection, dataset, now)
    stored: dict[str, Values] = {}
    for chunk in _chunks(sorted(incoming)):
        for row in connection.execute(sa.select(alerts).where(alerts.c.id.in_(chunk))).mappings():
            stored[row["id"]] = stored_alert_content(row)
    inserts: list[Values] = []
    unchanged = 0
    updates: list[Values] = []
    for alert_id, content in incoming.items():
        old = stored.get(alert_id)
        if old is None:
            inserts.append(content | {"created_at": now, "updated_at": now})
        elif old != content:
            updates.append(content | {"updated_at": now})
        else:
            unchanged += 1
    for values in updates:
        connection.execute(sa.update(alerts).where(alerts.c.id == values["id"]).values(values))
    if inserts:
        connection.execute(sa.insert(alerts), inserts)
    # the datasets whose alerts these are, before and after: their row counts change
    holders = {dataset.id} | {
        str(holder)
        for alert_id, content in incoming.items()
        for holder in (content["dataset_id"], stored.get(alert_id, {}).get("dataset_id"))
        if holder is not None
    }
    for holder in sorted(holders):
        row_count = connection.execute(
            sa.select(sa.func.count()).select_from(alerts).where(alerts.c.dataset_id == holder)
        ).scalar_one()
        connection.execute(
            sa.update(datasets).where(datasets.c.id == holder).values(row_count=int(row_count))
        )
    if checkpoint is not None:
        _set_checkpoint(connection, dataset.id, checkpoint, now)
    return UpsertCounts(inserted=len(inserts), updated=len(updates), unchanged=unchanged)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}:%"


def of_lineage(
    connection: Connection,
    *,
    keys: Collection[str],
    groups: Collection[str],
    group_prefixes: Collection[str],
) -> list[Alert]:
    """Alerts with one of `keys`, and open ones of `groups` or under `group_prefixes`."""
    found: dict[str, Alert] = {}
    queries: list[sa.Select[tuple[object, ...]]] = [
        sa.select(alerts).where(alerts.c.key.in_(chunk)) for chunk in _chunks(sorted(keys))
    ]
    queries += [
        sa.select(alerts).where(alerts.c.group_key.in_(chunk), alerts.c.status.in_(_OPEN))
        for chunk in _chunks(sorted(groups))
    ]
    queries += [
        sa.select(alerts).where(
            alerts.c.status.in_(_OPEN),
            sa.or_(
                alerts.c.group_key == prefix,
                alerts.c.group_key.like(_like_prefix(prefix), escape="\\"),
            ),
        )
        for prefix in sorted(group_prefixes)
    ]
    for query in queries:
        for row in connection.execute(query).mappings():
            found[row["id"]] = alert_from_row(row)
    return sorted(found.values(), key=lambda alert: alert.id)


def listing(
    *,
    area: str | None,
    issued_by: datetime | None,
    open_at: datetime | None,
    limit: int,
) -> sa.Select[tuple[object, ...]]:
    """The query of `Catalog.list_alerts`."""
    query = sa.select(alerts).order_by(alerts.c.issued_at.desc(), alerts.c.id).limit(limit)
    if area is not None:
        query = query.where(alerts.c.area == area)
    if issued_by is not None:
        query = query.where(alerts.c.issued_at <= require_aware(issued_by, "issued_by"))
    if open_at is not None:
        at = require_aware(open_at, "open_at")
        query = query.where(
            alerts.c.drill.is_(False),
            alerts.c.issued_at <= at,
            sa.or_(alerts.c.ended_at.is_(None), alerts.c.ended_at > at),
            sa.or_(alerts.c.valid_until.is_(None), alerts.c.valid_until > at),
        )
    return query


def checkpoint_of(connection: Connection, dataset_id: str) -> str | None:
    """The stored checkpoint of a dataset, or None."""
    table = import_checkpoints
    value = connection.execute(
        sa.select(table.c.value).where(table.c.dataset_id == dataset_id)
    ).scalar_one_or_none()
    return None if value is None else str(value)
