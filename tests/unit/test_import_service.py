"""The import service: connector records -> dataset + facilities upserted with provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cityos.connectors.gsi_evacuation import GsiEvacuationConnector
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Dataset, Domain, Facility
from cityos.platform.imports import (
    dataset_id,
    domain_of_kind,
    import_facilities,
    is_open_licence,
)
from cityos.platform.ports import FacilityRecord, RejectedRecord, UpsertCounts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gsi-hinanbasho"
SITES = FIXTURES / "omaezaki_222232_emergency_evacuation_sites.geojson.json"
SHELTERS = FIXTURES / "omaezaki_222232_designated_shelters.geojson.json"
NOW = datetime(2025, 8, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))


class FakeCatalog:
    """In-memory stand-in for the SQL catalog's dataset/facility upsert."""

    def __init__(self) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.facilities: dict[tuple[str, str], Facility] = {}
        self.calls = 0

    def upsert_dataset_facilities(
        self, dataset: Dataset, facilities: Sequence[Facility]
    ) -> UpsertCounts:
        self.calls += 1
        self.datasets[dataset.id] = dataset
        inserted = updated = unchanged = withdrawn = 0
        incoming = {(dataset.id, f.source_key): f for f in facilities}
        for key, facility in incoming.items():
            old = self.facilities.get(key)
            if old is None:
                inserted += 1
            elif old == facility:
                unchanged += 1
            else:
                updated += 1
            self.facilities[key] = facility
        for key, old in list(self.facilities.items()):
            if key[0] == dataset.id and key not in incoming and not old.withdrawn:
                self.facilities[key] = replace(old, withdrawn=True)
                withdrawn += 1
        return UpsertCounts(inserted, updated, unchanged, withdrawn)

    def list_datasets(self) -> list[Dataset]:
        return [self.datasets[key] for key in sorted(self.datasets)]

    def list_facilities(
        self, *, kinds: frozenset[str] | None = None, include_withdrawn: bool = False
    ) -> list[Facility]:
        return sorted(
            (
                f
                for f in self.facilities.values()
                if (kinds is None or f.kind in kinds) and (include_withdrawn or not f.withdrawn)
            ),
            key=lambda f: f.id,
        )


@dataclass
class ListConnector:
    """A connector that yields a fixed list (a stand-in for any connector)."""

    items: list[FacilityRecord | RejectedRecord]
    name: str = "test-list"
    default_licence: str = "CC BY 4.0"
    sources: list[str] = field(default_factory=list)

    def fetch(self, source: str) -> Iterator[FacilityRecord | RejectedRecord]:
        self.sources.append(source)
        yield from self.items


def _record(key: str, kind: str = "aed", name: str = "x") -> FacilityRecord:
    return FacilityRecord(source_key=key, kind=kind, name=name, lat=34.6, lon=138.2)


# ---------------------------------------------------------------- real GSI files


def test_gsi_files_import_completely() -> None:
    catalog = FakeCatalog()
    summary = import_facilities(
        catalog=catalog,
        connector=GsiEvacuationConnector(),
        source=str(FIXTURES),
        now=NOW,
    )
    assert summary.read == 36
    assert summary.inserted == 36
    assert (summary.updated, summary.unchanged, summary.withdrawn) == (0, 0, 0)
    assert summary.rejected == 0
    assert summary.rejections == ()
    assert summary.datasets == (
        "gsi-evacuation:omaezaki_222232_designated_shelters.geojson.json",
        "gsi-evacuation:omaezaki_222232_emergency_evacuation_sites.geojson.json",
    )
    datasets = catalog.list_datasets()
    assert [d.row_count for d in datasets] == [22, 14]
    for dataset, path in zip(datasets, (SHELTERS, SITES), strict=True):
        assert dataset.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        assert dataset.source == str(path)
        assert dataset.public is True
        assert "国土地理院コンテンツ利用規約" in dataset.licence
        assert dataset.fetched_at == NOW
        assert dataset.fetched_at.tzinfo is UTC
        assert dataset.connector == "gsi-evacuation"
    facilities = catalog.list_facilities()
    assert len(facilities) == 36
    assert {f.domain for f in facilities} == {Domain.DISASTER}
    sites = catalog.list_facilities(kinds=frozenset({"evacuation_site"}))
    assert len(sites) == 14
    site = next(f for f in sites if f.source_key == "E2222300002201")
    assert site.id == f"{site.dataset_id}:E2222300002201"
    assert site.name == "御前崎公園広場"
    assert (site.location.lat, site.location.lon) == (34.602974, 138.21468)
    assert site.hazards == frozenset({"earthquake", "tsunami"})
    assert site.attributes["都道府県名及び市町村名"] == "静岡県御前崎市"


def test_a_second_run_changes_nothing_and_keeps_ids() -> None:
    catalog = FakeCatalog()
    connector = GsiEvacuationConnector()
    first = import_facilities(catalog=catalog, connector=connector, source=str(SITES), now=NOW)
    ids = {f.id for f in catalog.list_facilities()}
    second = import_facilities(catalog=catalog, connector=connector, source=str(SITES))
    assert first.datasets == second.datasets
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 14)
    assert {f.id for f in catalog.list_facilities()} == ids


def test_removed_and_changed_records_are_counted(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    connector = ListConnector([_record("1"), _record("2"), _record("3")])
    import_facilities(catalog=catalog, connector=connector, source="aed.csv", now=NOW)
    connector.items = [_record("1"), _record("2", name="renamed"), RejectedRecord(4, "bad lat")]
    summary = import_facilities(catalog=catalog, connector=connector, source="aed.csv", now=NOW)
    assert summary.read == 3
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 1)
    assert summary.withdrawn == 1
    assert summary.rejected == 1
    (rejection,) = summary.rejections
    assert (rejection.source, rejection.line, rejection.reason) == ("aed.csv", 4, "bad lat")
    assert [f.source_key for f in catalog.list_facilities()] == ["1", "2"]


def test_duplicate_source_keys_are_rejected_not_merged() -> None:
    catalog = FakeCatalog()
    connector = ListConnector([_record("1"), _record("1", name="again")])
    summary = import_facilities(catalog=catalog, connector=connector, source="x.csv")
    assert summary.inserted == 1
    assert summary.rejected == 1
    assert "duplicate source key" in summary.rejections[0].reason
    assert catalog.list_facilities()[0].name == "x"


def test_domains_licence_and_visibility() -> None:
    catalog = FakeCatalog()
    items: list[FacilityRecord | RejectedRecord] = [
        _record("a", "aed"),
        _record("b", "tourism_facility"),
        _record("c", "shelter"),
        _record("d", "public_wifi"),
    ]
    connector = ListConnector(items)
    import_facilities(catalog=catalog, connector=connector, source="m.csv", licence="CC BY-NC 4.0")
    domains = {f.source_key: f.domain for f in catalog.list_facilities()}
    assert domains == {
        "a": Domain.HEALTH,
        "b": Domain.TOURISM,
        "c": Domain.DISASTER,
        "d": Domain.DISASTER,
    }
    (dataset,) = catalog.list_datasets()
    assert dataset.licence == "CC BY-NC 4.0"
    assert dataset.public is False
    assert dataset.checksum.startswith("sha256:")  # not a file: checksum of the records


@pytest.mark.parametrize(
    ("licence", "public"),
    [
        ("CC BY 4.0", True),
        ("CC0 1.0", True),
        ("Creative Commons Attribution 4.0 International", True),
        ("公共データ利用規約（第1.0版）", True),
        ("PDL 1.0", True),
        ("ODbL 1.0", True),
        ("国土地理院コンテンツ利用規約 (CC BY 4.0 compatible)", True),
        ("CC BY-NC 4.0", False),
        ("CC BY-ND 4.0", False),
        ("CC BY-NC-SA", False),
        ("非営利目的に限る", False),
        ("internal use only", False),
        ("", False),
    ],
)
def test_open_licences(licence: str, public: bool) -> None:
    assert is_open_licence(licence) is public


def test_kind_domains() -> None:
    assert domain_of_kind("cooling_shelter") is Domain.HEALTH
    assert domain_of_kind("medical_institution") is Domain.HEALTH
    assert domain_of_kind("event") is Domain.TOURISM
    assert domain_of_kind("evacuation_site") is Domain.DISASTER
    assert domain_of_kind("other") is Domain.DISASTER


def test_dataset_ids_are_stable_and_safe() -> None:
    assert dataset_id("gsi-evacuation", "/data/a/222232.json") == "gsi-evacuation:222232.json"
    assert dataset_id("gsi-evacuation", "/other/dir/222232.json") == "gsi-evacuation:222232.json"
    assert dataset_id("x", "https://example.org/open/aed%20list.csv?download=1") == (
        "x:aed_20list.csv"
    )


def test_directory_with_no_readable_files_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing")
    with pytest.raises(InvalidInput, match="no files"):
        import_facilities(
            catalog=FakeCatalog(), connector=GsiEvacuationConnector(), source=str(tmp_path)
        )


def test_directory_source_runs_the_connector_per_file(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", ".hidden"):
        (tmp_path / name).write_text("x")
    connector = ListConnector([_record("1")])
    summary = import_facilities(catalog=FakeCatalog(), connector=connector, source=str(tmp_path))
    assert connector.sources == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert summary.datasets == ("test-list:a.csv", "test-list:b.csv")
    assert summary.inserted == 2


def test_dry_run_does_not_touch_the_catalog() -> None:
    catalog = FakeCatalog()
    summary = import_facilities(
        catalog=catalog, connector=GsiEvacuationConnector(), source=str(SITES), dry_run=True
    )
    assert summary.dry_run
    assert summary.read == 14
    assert summary.rejected == 0
    assert catalog.calls == 0


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        import_facilities(
            catalog=FakeCatalog(),
            connector=ListConnector([]),
            source="x.csv",
            now=datetime(2025, 1, 1),
        )


def test_every_contract_facility_kind_has_a_domain() -> None:
    from cityos.platform.facilities.types import FacilityKindEnum
    from cityos.platform.imports.service import _KIND_DOMAINS

    assert {kind.name.lower() for kind in FacilityKindEnum} == set(_KIND_DOMAINS)
    assert _KIND_DOMAINS["relief_hospital"] is Domain.HEALTH
