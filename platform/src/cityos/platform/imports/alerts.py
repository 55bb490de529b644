"""Import official alerts: run a connector, apply its statements to the stored alerts."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cityos.platform.alerts.lifecycle import apply_statements
from cityos.platform.domain.model import Dataset
from cityos.platform.imports.summary import ImportRejection, ImportSummary
from cityos.platform.ports import (
    AlertGroupRecord,
    AlertRecord,
    Catalog,
    CheckpointingConnector,
    CheckpointRecord,
    Connector,
    ConnectorItem,
    RejectedRecord,
    SkippedRecord,
    UpsertCounts,
)

ALERT_RECORDS = "alerts"
"""The value of a connector's `records` attribute when it yields alerts (not facilities)."""


def yields_alerts(connector: Connector) -> bool:
    """Whether `connector` (or the connector a wrapper keeps as `inner`) yields alerts."""
    inner = getattr(connector, "inner", None)
    return ALERT_RECORDS in (getattr(connector, "records", None), getattr(inner, "records", None))


@dataclass(slots=True)
class _Read:
    """What one run of a connector yielded, sorted by type."""

    statements: list[AlertRecord | AlertGroupRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    rejections: list[ImportRejection] = field(default_factory=list)
    checkpoint: str | None = None
    read: int = 0


def _items(connector: Connector, source: str, checkpoint: str | None) -> Iterator[ConnectorItem]:
    if isinstance(connector, CheckpointingConnector):
        return connector.fetch_since(source, checkpoint)
    inner = getattr(connector, "inner", None)
    if checkpoint is None or not isinstance(inner, CheckpointingConnector):
        return connector.fetch(source)
    return inner.fetch_since(source, checkpoint)


def _read(connector: Connector, source: str, checkpoint: str | None) -> _Read:
    result = _Read()
    for item in _items(connector, source, checkpoint):
        if isinstance(item, CheckpointRecord):
            result.checkpoint = item.value
            continue
        if isinstance(item, AlertGroupRecord):
            result.statements.append(item)
            continue
        result.read += 1
        if isinstance(item, AlertRecord):
            result.statements.append(item)
        elif isinstance(item, SkippedRecord):
            result.skipped[item.kind] += 1
        elif isinstance(item, RejectedRecord):
            result.rejections.append(ImportRejection(source, item.line, item.reason))
        else:
            reason = f"{type(item).__name__} from an alert connector (not an alert)"
            result.rejections.append(ImportRejection(source, result.read, reason))
    return result


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum(source: str, statements: list[AlertRecord | AlertGroupRecord]) -> str:
    """sha256 of a file's bytes, of a directory's files, else of the statements read."""
    path = Path(source)
    digest = hashlib.sha256()
    if path.is_file():
        return f"sha256:{_file_digest(path)}"
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path).as_posix()}\0{_file_digest(child)}\n".encode())
        return f"sha256:{digest.hexdigest()}"
    for item in statements:
        line = json.dumps(asdict(item), ensure_ascii=False, sort_keys=True, default=_json_default)
        digest.update(line.encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


def _lineage(statements: list[AlertRecord | AlertGroupRecord]) -> dict[str, set[str]]:
    keys: set[str] = set()
    groups: set[str] = set()
    prefixes: set[str] = set()
    for item in statements:
        if isinstance(item, AlertRecord):
            keys.add(item.key)
            groups.add(item.group)
        elif item.prefix:
            prefixes.add(item.group)
        else:
            groups.add(item.group)
    return {"keys": keys, "groups": groups, "group_prefixes": prefixes}


def import_alerts(
    *,
    catalog: Catalog,
    connector: Connector,
    source: str,
    dataset: Dataset,
    dry_run: bool = False,
) -> ImportSummary:
    """Run an alert connector on `source` and apply what it read to the stored alerts.

    `dataset` carries the provenance (its checksum and row count are filled in here). The
    checkpoint of the dataset's previous run is handed to the connector, and the new one is
    stored with the alerts in one transaction. A dry run reads and counts, touching nothing.
    """
    checkpoint = None if dry_run else catalog.get_checkpoint(dataset.id)
    read = _read(connector, source, checkpoint)
    counts = UpsertCounts()
    if not dry_run:
        stored = catalog.alerts_of_lineage(**_lineage(read.statements))
        alerts = apply_statements(stored, read.statements, dataset_id=dataset.id)
        checksum = _checksum(source, read.statements)
        if not read.statements and not Path(source).exists():
            previous = {d.id: d for d in catalog.list_datasets()}.get(dataset.id)
            checksum = previous.checksum if previous is not None else checksum
        provenance = Dataset(
            id=dataset.id,
            name=dataset.name,
            source=dataset.source,
            licence=dataset.licence,
            public=dataset.public,
            fetched_at=dataset.fetched_at,
            checksum=checksum,
            row_count=len(alerts),
            connector=dataset.connector,
        )
        counts = catalog.upsert_dataset_alerts(provenance, alerts, checkpoint=read.checkpoint)
    return ImportSummary(
        datasets=(dataset.id,),
        read=read.read,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=len(read.rejections),
        rejections=tuple(read.rejections),
        skipped=sum(read.skipped.values()),
        skipped_kinds=tuple(sorted(read.skipped.items())),
        dry_run=dry_run,
    )
