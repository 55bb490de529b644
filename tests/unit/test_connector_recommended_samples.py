"""The 推奨データセット CSV connectors on the real sample files (tests/fixtures, bytes unchanged).

Every count below was checked by reading the file: data rows, blank cells, flags, encodings.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from cityos.connectors import recommended
from cityos.connectors.csvconnector import DEFAULT_LICENCE, CsvConnector
from cityos.connectors.csvlayout import CsvSpec
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.model import Dataset, Facility
from cityos.platform.imports import import_facilities
from cityos.platform.ports import (
    Catalog,
    Connector,
    FacilityRecord,
    RejectedRecord,
    UpsertCounts,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "recommended-datasets"
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "recommended-datasets"
TAKAMATSU_COLUMNS = "key=#property,phone=telephone number,opened=openingDate"
PDL = "公共データ利用規約（第1.0版）"

# file -> (connector, options, rows read, records, rejections as (line, reason))
EXPECTED: dict[str, tuple[CsvSpec, dict[str, str], int, int, list[tuple[int, str]]]] = {
    "yaizu_222127_aed.csv": (recommended.AED, {}, 82, 82, []),
    "yaizu_222127_evacuation_space.csv": (recommended.EVACUATION_SITES, {}, 31, 31, []),
    "yaizu_222127_hinannjo.csv": (recommended.FACILITIES, {"kind": "shelter"}, 56, 56, []),
    "yaizu_222127_public_wireless_lan.csv": (recommended.PUBLIC_WIFI, {}, 17, 17, []),
    "yaizu_222127_public_toilet.csv": (recommended.PUBLIC_TOILETS, {}, 112, 112, []),
    "yaizu_222127_tourism_sights.csv": (recommended.TOURISM_FACILITIES, {}, 28, 28, []),
    "yaizu_222127_facilities_smartmap.csv": (recommended.PUBLIC_FACILITIES, {}, 28, 28, []),
    "yaizu_222127_kyuugosho_cp932_historic.csv": (
        recommended.FACILITIES,
        {"kind": "first-aid-station"},
        7,
        7,
        [],
    ),
    "yaizu_machinakasuzumidokoro_cp932_historic.csv": (
        recommended.COOLING_SHELTERS,
        {},
        56,
        56,
        [],
    ),
    "takamatsu_372013_hospital_data.csv": (
        recommended.FACILITIES,
        {"kind": "medical-institution", "columns": TAKAMATSU_COLUMNS},
        628,
        627,
        [(622, "no coordinates (latitude and longitude are blank)")],
    ),
}


def _fetch(
    name: str, spec: CsvSpec | None = None, **options: str
) -> list[FacilityRecord | RejectedRecord]:
    if spec is None:
        spec, options = EXPECTED[name][0], EXPECTED[name][1]
    return list(CsvConnector(spec, **options).fetch(str(FIXTURES / name)))


def _records(name: str, spec: CsvSpec | None = None, **options: str) -> list[FacilityRecord]:
    return [item for item in _fetch(name, spec, **options) if isinstance(item, FacilityRecord)]


def _by_key(records: Sequence[FacilityRecord]) -> dict[str, FacilityRecord]:
    return {record.source_key: record for record in records}


def test_every_sample_csv_is_a_fixture_with_the_same_bytes() -> None:
    fixtures = sorted(path.name for path in FIXTURES.glob("*.csv"))
    assert fixtures == sorted(EXPECTED)
    if SAMPLES.is_dir():  # the shared samples are not part of the repository
        assert sorted(path.name for path in SAMPLES.glob("*.csv")) == fixtures
        for name in fixtures:
            assert (FIXTURES / name).read_bytes() == (SAMPLES / name).read_bytes(), name
    provenance = (FIXTURES / "PROVENANCE.md").read_text(encoding="utf-8")
    for name in fixtures:
        digest = hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest()
        assert f"| {name} | `{digest}` |" in provenance


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_imports_with_exact_counts_and_rejections(name: str) -> None:
    spec, _, read, imported, rejections = EXPECTED[name]
    items = _fetch(name)
    records = [item for item in items if isinstance(item, FacilityRecord)]
    rejected = [(item.line, item.reason) for item in items if isinstance(item, RejectedRecord)]
    assert (len(items), len(records), rejected) == (read, imported, rejections)
    assert len({record.source_key for record in records}) == imported
    kind = spec.kind or CsvConnector(spec, kind=EXPECTED[name][1]["kind"]).kind
    assert {record.kind for record in records} == {kind}
    assert all(record.name and record.name == record.name.strip() for record in records)


def test_entry_points_build_every_connector() -> None:
    registered = plugins.available(plugins.CONNECTORS)
    for spec in recommended.SPECS:
        connector = registered[spec.connector].load()(Settings())
        assert isinstance(connector, Connector)
        assert isinstance(connector, CsvConnector)
        assert connector.name == spec.connector
        assert connector.kind == spec.kind
        assert connector.default_licence == DEFAULT_LICENCE


def test_aed_utf8_crlf() -> None:
    records = _by_key(_records("yaizu_222127_aed.csv"))
    first = records["0000000001"]
    assert (first.name, first.name_kana) == ("市役所本館", "シヤクショホンカン")
    assert (first.lat, first.lon, first.address) == (
        34.866918,
        138.323171,
        "静岡県焼津市本町2-16-32",
    )
    assert first.attributes["設置位置"] == "２階正面入口"  # kept as written: no NFKC on values
    assert first.attributes["小児対応設備の有無"] == "有"
    assert first.attributes["NO"] == "0000000001"
    assert "方書" not in first.attributes  # blank cells are not kept
    assert "名称" not in first.attributes
    assert "緯度" not in first.attributes
    assert records["0000000002"].attributes["設置位置"] == "４階管財課"


def test_evacuation_sites_hazard_flags_are_circles() -> None:
    records = _records("yaizu_222127_evacuation_space.csv")
    hazards = Counter(record.hazards for record in records)
    assert hazards == {
        frozenset({"earthquake", "tsunami"}): 26,
        frozenset({"landslide"}): 5,
    }
    landslide = sorted(int(r.source_key) for r in records if "landslide" in r.hazards)
    assert landslide == [26, 27, 28, 29, 30]
    tower = _by_key(records)["1"]
    assert (tower.name, tower.name_kana, tower.address) == (
        "中港タワー",
        "ナカミナトタワー",
        "焼津市中港5-463",
    )
    assert not any(key.startswith("災害種別") for key in tower.attributes)


def test_yaizu_shelters_in_their_own_columns() -> None:
    records = _records("yaizu_222127_hinannjo.csv")
    assert all(record.hazards == frozenset() for record in records)  # no 災害種別 columns
    opened = Counter(r.attributes.get("開設される災害の種類(地震・津波)") for r in records)
    assert opened == {"○": 47, None: 9}  # header's full-width brackets are normalised
    assert _by_key(records)["1"].attributes["UTMポイント"] == "54STD55136095"
    same = _records("yaizu_222127_hinannjo.csv", recommended.SHELTERS)
    assert [(r.source_key, r.kind) for r in same] == [(r.source_key, "shelter") for r in records]


def test_public_wifi_lf_file() -> None:
    records = _by_key(_records("yaizu_222127_public_wireless_lan.csv"))
    assert records["1000000004"].attributes["SSID"] == "DoSPOT-FREE"
    assert records["1000000004"].name == "市役所アトレ庁舎１階"


def test_public_toilets_digital_agency_schema() -> None:
    records = _by_key(_records("yaizu_222127_public_toilet.csv"))
    first = records["1"]
    assert first.address == "静岡県焼津市駅北5丁目2-11"  # 所在地_連結表記
    assert first.attributes["所在地_町字"] == "駅北5丁目"
    assert first.attributes["男性トイレ数(小便器)"] == "2"
    assert records["112"].attributes["利用可能時間特記事項"] == "24時間利用可能"


def test_tourism_sights_bom_brackets_and_multiline_cells() -> None:
    records = _by_key(_records("yaizu_222127_tourism_sights.csv"))
    first = records["2026000078"]
    assert first.name == "浜通り（八雲通り）"  # the name keeps its full-width brackets
    assert first.attributes["都道府県コード又は市区町村コード"] == "222127"  # BOM not in the key
    assert first.attributes["説明"].endswith("hama-dori/index.html")  # trailing CRLF stripped
    hanazawa = records["2026000081"].attributes["説明"]
    assert "\n" in hanazawa
    assert "\r" not in hanazawa
    assert hanazawa.endswith("\nhttps://www.city.yaizu.lg.jp/museum/rekimin/index.html")
    assert records["2026000079"].name == "静岡県水産・海洋技術研究所展示室「うみしる」"
    assert records["2026000079"].attributes["料金(詳細)"] == "無料"  # header 料金（詳細）
    assert sum("料金(詳細)" in r.attributes for r in records.values()) == 24


def test_public_facilities_bom() -> None:
    records = _by_key(_records("yaizu_222127_facilities_smartmap.csv"))
    museum = records["10869"]
    assert (
        museum.name_kana
        == "スルガワンシンソウスイリヨウソクシンコウリュウシセツシンソウスイミュージアム"
    )
    assert museum.attributes["利用可能日時特記事項"] == "【開館時間】9:00～17:00 【休館日】月曜日"


def test_first_aid_stations_cp932() -> None:
    records = _records("yaizu_222127_kyuugosho_cp932_historic.csv")
    assert [r.name for r in records] == [f"第{n}救護所" for n in range(1, 8)]
    assert records[0].attributes["設置場所"] == "東益津地域交流センター"
    assert records[1].address == "焼津市塩津117-1"


def test_cooling_shelters_cp932_weekly_hours() -> None:
    records = _by_key(_records("yaizu_machinakasuzumidokoro_cp932_historic.csv"))
    office = records["000000000001"]
    assert office.name == "焼津市役所　本庁舎"
    weekday = {"open": "08:30", "close": "17:15"}
    assert office.attributes["opening_hours"] == {
        "sun": None,
        "mon": weekday,
        "tue": weekday,
        "wed": weekday,
        "thu": weekday,
        "fri": weekday,
        "sat": None,
    }
    assert "日曜開放開始時刻" not in office.attributes
    assert office.attributes["公共施設"] == "公共施設"  # header `公共施設　` trimmed
    library = records["000000000056"]
    assert library.attributes["opening_hours"]["mon"] is None
    assert library.attributes["opening_hours"]["tue"] == {"open": "09:00", "close": "19:00"}
    notes = library.attributes["指定暑熱避難施設を開放することができる日及び時間帯特記事項"]
    assert notes.endswith("\n場所：雑誌コーナー")
    sundays = Counter(r.attributes["opening_hours"]["sun"] is None for r in records.values())
    assert sundays == {True: 25, False: 31}
    kinds = Counter(r.attributes["公共施設"] for r in records.values())
    assert kinds == {"民間施設": 34, "公共施設": 22}


def test_takamatsu_hospitals_with_a_column_mapping() -> None:
    records = _by_key(_records("takamatsu_372013_hospital_data.csv"))
    first = records["jp.takamatsu.smartcity.medical.Hospital.1"]
    assert first.name == "独立行政法人国立病院機構高松医療センター"
    assert (first.lat, first.lon) == (34.319621, 134.110708)
    assert first.address == "香川県高松市新田町乙８番地"
    assert first.attributes["開設日"] == "1947-04-01"  # openingDate 1947/4/1
    assert first.attributes["電話番号"] == "087-841-2146"  # header `telephone　number`
    assert "openingDate" not in first.attributes
    opened = [r.attributes["開設日"] for r in records.values()]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) for day in opened)
    assert (min(opened), max(opened)) == ("1907-06-30", "2025-07-01")
    assert records["jp.takamatsu.smartcity.medical.Hospital.2"].name == (
        "かがわ総合リハビリテーション病院"  # trailing full-width space stripped
    )
    kinds = Counter(r.attributes["alternativeName"] for r in records.values())
    assert kinds == {"無床診療所": 319, "歯科": 231, "有床診療所": 44, "病院": 33}


def test_takamatsu_without_a_key_column_falls_back_to_name_and_address() -> None:
    records = _records("takamatsu_372013_hospital_data.csv", recommended.FACILITIES, kind="other")
    assert len(records) == 627
    keys = Counter(record.source_key for record in records)
    # Hospital.464 and .465 are the same clinic at the same address: only #property tells them apart
    assert [key for key, count in keys.items() if count > 1] == [
        "神原歯科医院|香川県高松市宮脇町一丁目３２番２５号"
    ]


class RecordingCatalog:
    """Keeps what the import service upserts; holds no facilities of other sources."""

    def __init__(self) -> None:
        self.upserts: list[tuple[Dataset, list[Facility]]] = []

    def list_facilities(
        self, *, kinds: frozenset[str] | None = None, include_withdrawn: bool = False
    ) -> list[Facility]:
        return []

    def upsert_dataset_facilities(
        self, dataset: Dataset, facilities: Sequence[Facility]
    ) -> UpsertCounts:
        self.upserts.append((dataset, list(facilities)))
        return UpsertCounts(inserted=len(facilities))


def test_import_service_counts_rejections_and_licence_visibility() -> None:
    catalog = RecordingCatalog()
    now = datetime(2026, 7, 1, tzinfo=UTC)
    name = "takamatsu_372013_hospital_data.csv"
    connector = CsvConnector(recommended.FACILITIES).configure(
        kind="medical-institution", columns=TAKAMATSU_COLUMNS
    )
    summary = import_facilities(
        catalog=cast(Catalog, catalog),  # only the upsert and the site lookup are used
        connector=connector,
        source=str(FIXTURES / name),
        now=now,
    )
    assert (summary.read, summary.inserted, summary.rejected) == (628, 627, 1)
    assert summary.rejections[0].line == 622
    dataset, facilities = catalog.upserts[0]
    assert dataset.id == f"facilities-csv:{name}"
    assert dataset.licence == DEFAULT_LICENCE
    assert dataset.public is False
    assert {facility.domain.value for facility in facilities} == {"health"}
    aed = import_facilities(
        catalog=cast(Catalog, catalog),
        connector=CsvConnector(recommended.AED),
        source=str(FIXTURES / "yaizu_222127_aed.csv"),
        licence=PDL,
        now=now,
    )
    assert (aed.read, aed.inserted, aed.rejected) == (82, 82, 0)
    assert catalog.upserts[1][0].public is True
    assert catalog.upserts[1][0].row_count == 82
