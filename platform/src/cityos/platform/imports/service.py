"""Run a connector and upsert what it yields into the catalog, with provenance."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Dataset, Domain, Facility, GeoPoint
from cityos.platform.facilities.merge import joining_rows
from cityos.platform.imports.alerts import import_alerts, yields_alerts
from cityos.platform.imports.summary import ImportRejection, ImportSummary
from cityos.platform.ports import (
    Catalog,
    CheckpointRecord,
    Connector,
    FacilityRecord,
    RejectedRecord,
    UpsertCounts,
)

# Every FacilityKind of CONTRACT.md, explicitly. Public Wi-Fi and toilets count as disaster
# infrastructure (00000JAPAN, evacuation); relief hospitals are medical institutions.
_KIND_DOMAINS: dict[str, Domain] = {
    "evacuation_site": Domain.DISASTER,
    "shelter": Domain.DISASTER,
    "tsunami_evacuation_building": Domain.DISASTER,
    "first_aid_station": Domain.DISASTER,
    "public_facility": Domain.DISASTER,
    "public_wifi": Domain.DISASTER,
    "public_toilet": Domain.DISASTER,
    "other": Domain.DISASTER,
    "aed": Domain.HEALTH,
    "medical_institution": Domain.HEALTH,
    "relief_hospital": Domain.HEALTH,
    "cooling_shelter": Domain.HEALTH,
    "tourism_facility": Domain.TOURISM,
    "event": Domain.TOURISM,
}
# Licences under which data may be shown to anyone (open-definition conformant).
_OPEN_MARKERS = (
    "cc by",
    "cc-by",
    "ccby",
    "cc0",
    "creative commons attribution",
    "public domain",
    "公共データ利用規約",
    "pdl",
    "odbl",
    "open database license",
    "国土地理院コンテンツ利用規約",
    "政府標準利用規約",
)
# NonCommercial / NoDerivatives variants and their Japanese wording are not open.
_CLOSED = re.compile(
    r"(?<![a-z])(nc|nd)(?![a-z])|noncommercial|non-commercial|noderiv|非営利|改変禁止|転載禁止"
)
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def is_open_licence(licence: str) -> bool:
    """Tell whether data under `licence` may be public (CC BY, CC0, PDL, ODbL, GSI terms...)."""
    text = " ".join(licence.lower().replace("　", " ").split())
    if _CLOSED.search(text):
        return False
    return any(marker in text for marker in _OPEN_MARKERS)


def domain_of_kind(kind: str) -> Domain:
    """The domain a facility kind belongs to (disaster unless it is a health/tourism kind)."""
    return _KIND_DOMAINS.get(kind, Domain.DISASTER)


def _file_name(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return name or "source"


def dataset_id(connector_name: str, source: str) -> str:
    """A stable dataset id from the connector name and the source's file name."""
    name = _UNSAFE_ID.sub("_", _file_name(source)).strip("_") or "source"
    return f"{connector_name}:{name}"


def _checksum(source: str, records: Sequence[FacilityRecord]) -> str:
    """sha256 of the source file's bytes; of the records when the source is not a local file."""
    path = Path(source)
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"
    for record in records:
        row = [record.source_key, record.kind, record.name, record.lat, record.lon]
        row += [record.address, sorted(record.hazards), dict(record.attributes)]
        digest.update(json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


def _sources(connector: Connector, source: str) -> list[str]:
    """A directory means one source per (non-hidden) file the connector reads, sorted."""
    path = Path(source)
    if not path.is_dir():
        return [source]
    suffixes: Iterable[str] | None = getattr(connector, "file_suffixes", None)
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    files = sorted(
        child
        for child in path.iterdir()
        if child.is_file()
        and not child.name.startswith(".")
        and (wanted is None or child.name.lower().endswith(wanted))
    )
    if not files:
        raise InvalidInput(f"no files for {connector.name} in {source[:200]}", field="source")
    return [str(child) for child in files]


def _facility(record: FacilityRecord, ds_id: str) -> Facility:
    return Facility(
        id=f"{ds_id}:{record.source_key}",
        kind=record.kind,
        name=record.name,
        location=GeoPoint(lat=record.lat, lon=record.lon),
        domain=domain_of_kind(record.kind),
        dataset_id=ds_id,
        source_key=record.source_key,
        name_kana=record.name_kana,
        address=record.address,
        hazards=frozenset(record.hazards),
        attributes=dict(record.attributes),
    )


def _joining(catalog: Catalog, facilities: list[Facility]) -> int:
    """How many of the facilities describe a place another dataset has too (for the summary)."""
    if not facilities:
        return 0
    stored = catalog.list_facilities(kinds=frozenset(facility.kind for facility in facilities))
    return joining_rows(facilities, stored)


def _import_one(
    *,
    catalog: Catalog,
    connector: Connector,
    source: str,
    licence: str,
    now: datetime,
    dry_run: bool,
) -> ImportSummary:
    records: list[FacilityRecord] = []
    rejections: list[ImportRejection] = []
    seen: set[str] = set()
    read = 0
    for item in connector.fetch(source):
        if isinstance(item, CheckpointRecord):
            continue  # facility sources are read whole every time
        read += 1
        if isinstance(item, RejectedRecord):
            rejections.append(ImportRejection(source=source, line=item.line, reason=item.reason))
        elif not isinstance(item, FacilityRecord):
            reason = f"{type(item).__name__} from a facility connector (not a facility)"
            rejections.append(ImportRejection(source=source, line=read, reason=reason))
        elif item.source_key in seen:
            rejections.append(
                ImportRejection(
                    source=source,
                    line=read,
                    reason=f"duplicate source key {item.source_key[:80]!r} (record #{read})",
                )
            )
        else:
            seen.add(item.source_key)
            records.append(item)
    ds_id = dataset_id(connector.name, source)
    dataset = Dataset(
        id=ds_id,
        name=_file_name(source),
        source=source,
        licence=licence,
        public=is_open_licence(licence),
        fetched_at=now,
        checksum=_checksum(source, records),
        row_count=len(records),
        connector=connector.name,
    )
    facilities = [_facility(record, ds_id) for record in records]
    merged = 0
    if dry_run:  # a dry run never reads or writes the catalog
        counts = UpsertCounts()
    else:
        counts = catalog.upsert_dataset_facilities(dataset, facilities)
        merged = _joining(catalog, facilities)
    return ImportSummary(
        datasets=(ds_id,),
        read=read,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        withdrawn=counts.withdrawn,
        rejected=len(rejections),
        rejections=tuple(rejections),
        dry_run=dry_run,
        merged=merged,
    )


def import_facilities(
    *,
    catalog: Catalog,
    connector: Connector,
    source: str,
    licence: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ImportSummary:
    """Run `connector` on `source` and upsert one dataset per file with its facilities.

    A connector that yields alerts (`records = "alerts"`) is imported as one dataset of
    alerts instead (see `import_alerts_from`).
    """
    if yields_alerts(connector):
        return import_alerts_from(
            catalog=catalog,
            connector=connector,
            source=source,
            licence=licence,
            now=now,
            dry_run=dry_run,
        )
    if now is not None and now.tzinfo is None:
        raise InvalidInput("`now` must carry a time zone", field="now")
    fetched_at = (now or datetime.now(UTC)).astimezone(UTC)
    chosen_licence = (licence or "").strip() or connector.default_licence
    summary = ImportSummary(dry_run=dry_run)
    for one in _sources(connector, source):
        summary += _import_one(
            catalog=catalog,
            connector=connector,
            source=one,
            licence=chosen_licence,
            now=fetched_at,
            dry_run=dry_run,
        )
    return summary


def import_alerts_from(
    *,
    catalog: Catalog,
    connector: Connector,
    source: str,
    licence: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ImportSummary:
    """Run an alert connector on `source` (a feed, a message or a directory): one dataset.

    Official alerts are public whatever the licence says (CONTRACT.md); the dataset's
    `public` flag still tells whether its licence is open.
    """
    if now is not None and now.tzinfo is None:
        raise InvalidInput("`now` must carry a time zone", field="now")
    chosen_licence = (licence or "").strip() or connector.default_licence
    dataset = Dataset(
        id=dataset_id(connector.name, source),
        name=_file_name(source),
        source=source,
        licence=chosen_licence,
        public=is_open_licence(chosen_licence),
        fetched_at=(now or datetime.now(UTC)).astimezone(UTC),
        checksum="",
        row_count=0,
        connector=connector.name,
    )
    return import_alerts(
        catalog=catalog, connector=connector, source=source, dataset=dataset, dry_run=dry_run
    )
