"""Idempotent upsert of one dataset and its facilities, keyed by (dataset_id, source_key)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cityos.adapters.sql.rows import (
    Values,
    dataset_values,
    facility_content,
    stored_content,
)
from cityos.adapters.sql.tables import datasets, facilities
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Dataset, Facility
from cityos.platform.ports import UpsertCounts

# Ids per `IN (...)` statement; well below SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 1000


def _latest_per_key(dataset: Dataset, records: Sequence[Facility]) -> dict[str, Facility]:
    # A source may repeat a key (a corrected row further down); the last one wins.
    latest: dict[str, Facility] = {}
    for facility in records:
        if facility.dataset_id != dataset.id:
            raise InvalidInput(
                f"facility {facility.id!r} belongs to dataset {facility.dataset_id!r}, "
                f"not {dataset.id!r}",
                field="dataset_id",
            )
        latest[facility.source_key] = facility
    return latest


def upsert_dataset(connection: Connection, dataset: Dataset, now: datetime) -> None:
    """Insert or update one `datasets` row with its provenance."""
    values = dataset_values(dataset, now=now)
    exists = connection.execute(sa.select(datasets.c.id).where(datasets.c.id == dataset.id)).first()
    if exists is None:
        connection.execute(sa.insert(datasets).values(values))
    else:
        del values["id"]
        connection.execute(sa.update(datasets).where(datasets.c.id == dataset.id).values(values))


def upsert(
    connection: Connection, dataset: Dataset, records: Sequence[Facility], *, now: datetime
) -> UpsertCounts:
    """Upsert the dataset and its facilities in the caller's transaction; count the changes."""
    incoming = _latest_per_key(dataset, records)
    upsert_dataset(connection, dataset, now)
    stored = {
        row["source_key"]: row
        for row in connection.execute(
            sa.select(facilities).where(facilities.c.dataset_id == dataset.id)
        ).mappings()
    }
    inserts: list[Values] = []
    updates: list[tuple[str, Values]] = []
    unchanged = 0
    for source_key, facility in incoming.items():
        content = facility_content(facility)
        row = stored.get(source_key)
        if row is None:
            inserts.append(
                content
                | {
                    "dataset_id": dataset.id,
                    "source_key": source_key,
                    "withdrawn": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        elif content != stored_content(row) or row["withdrawn"]:
            updates.append((row["id"], content | {"withdrawn": False, "updated_at": now}))
        else:
            unchanged += 1
    withdrawn_ids = sorted(
        row["id"] for key, row in stored.items() if key not in incoming and not row["withdrawn"]
    )
    for row_id, values in updates:
        connection.execute(sa.update(facilities).where(facilities.c.id == row_id).values(values))
    for start in range(0, len(withdrawn_ids), _CHUNK):
        connection.execute(
            sa.update(facilities)
            .where(facilities.c.id.in_(withdrawn_ids[start : start + _CHUNK]))
            .values(withdrawn=True, updated_at=now)
        )
    if inserts:
        connection.execute(sa.insert(facilities), inserts)
    return UpsertCounts(
        inserted=len(inserts),
        updated=len(updates),
        unchanged=unchanged,
        withdrawn=len(withdrawn_ids),
    )
