"""The GSI 指定緊急避難場所・指定避難所 connector, on the real Omaezaki files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cityos.connectors import gsi_evacuation
from cityos.connectors.gsi_evacuation import GsiEvacuationConnector, create_connector
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.demo import demo_data_dir
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import Connector, FacilityRecord, RejectedRecord

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gsi-hinanbasho"
SITES = FIXTURES / "omaezaki_222232_emergency_evacuation_sites.geojson.json"
SHELTERS = FIXTURES / "omaezaki_222232_designated_shelters.geojson.json"
HAZARDS = {
    "flood",
    "landslide",
    "storm_surge",
    "earthquake",
    "tsunami",
    "large_fire",
    "inland_flood",
    "volcano",
}


def _fetch(source: Path | str) -> list[FacilityRecord | RejectedRecord]:
    return list(GsiEvacuationConnector().fetch(str(source)))


def _records(source: Path | str) -> list[FacilityRecord]:
    items = _fetch(source)
    assert all(isinstance(item, FacilityRecord) for item in items), items
    return [item for item in items if isinstance(item, FacilityRecord)]


def _feature(**properties: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "共通ID": "E2222300099201",
        "施設・場所名": "テスト広場",
        "住所": "静岡県御前崎市池新田1",
        "津波": "1",
    }
    base.update(properties)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [138.128, 34.638]},
        "properties": base,
    }


def _write(tmp_path: Path, features: list[Any], name: str = "x.geojson") -> Path:
    path = tmp_path / name
    document = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_entry_point_builds_a_connector() -> None:
    factory = plugins.load(plugins.CONNECTORS, "gsi-evacuation")
    connector = factory(Settings())
    assert isinstance(connector, Connector)
    assert connector.name == "gsi-evacuation"
    assert "国土地理院コンテンツ利用規約" in connector.default_licence
    assert isinstance(create_connector(Settings()), GsiEvacuationConnector)


def test_emergency_evacuation_sites_file() -> None:
    records = _records(SITES)
    assert len(records) == 14
    assert {r.kind for r in records} == {"evacuation_site"}
    first = records[0]
    assert first.source_key == "E2222300001201"
    assert first.name == "浜岡北小学校　運動場"
    assert first.address == "静岡県御前崎市下朝比奈753"
    assert (first.lat, first.lon) == (34.669434, 138.135201)  # GeoJSON is [lon, lat]
    assert first.hazards == frozenset({"earthquake", "tsunami"})
    assert first.attributes["NO"] == 56223
    assert first.attributes["共通ID"] == "E2222300001201"
    assert first.attributes["指定避難所との住所同一"] == "1"
    assert "津波" not in first.attributes
    assert "施設・場所名" not in first.attributes
    assert all(r.hazards <= HAZARDS for r in records)
    assert len({r.source_key for r in records}) == 14


def test_hazard_flags_match_the_file() -> None:
    raw = json.loads(SITES.read_bytes())["features"]
    for feature, record in zip(raw, _records(SITES), strict=True):
        flagged = {
            hazard
            for column, hazard in gsi_evacuation.HAZARD_COLUMNS.items()
            if feature["properties"][column] == "1"
        }
        assert record.hazards == flagged


def test_designated_shelters_file() -> None:
    records = _records(SHELTERS)
    assert len(records) == 22
    assert {r.kind for r in records} == {"shelter"}
    assert all(r.hazards == frozenset() for r in records)
    tokoen = next(r for r in records if r.name == "灯光園")
    assert tokoen.source_key == "E2222300004121"
    assert tokoen.attributes["受入対象者"] is None  # nulls are kept as they are
    assert all(34.5 < r.lat < 34.7 and 138.0 < r.lon < 138.3 for r in records)


def test_directory_reads_every_geojson_file_sorted() -> None:
    records = _records(FIXTURES)  # SOURCES.md is skipped
    assert len(records) == 36
    assert [r.kind for r in records[:22]] == ["shelter"] * 22  # designated_* sorts first
    assert len(_records(demo_data_dir())) == 36


def test_fixture_and_demo_copies_are_identical() -> None:
    for path in (SITES, SHELTERS):
        assert (demo_data_dir() / path.name).read_bytes() == path.read_bytes()


def test_kind_comes_from_the_feature_not_the_file_name(tmp_path: Path) -> None:
    shelter = _feature(共通ID="E2222300099111", 津波="")
    no_id_site = _feature(共通ID="", NO=7)
    no_id_shelter = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [138.128, 34.638]},
        "properties": {"NO": 8, "施設・場所名": "体育館", "受入対象者": ""},
    }
    path = _write(tmp_path, [_feature(), shelter, no_id_site, no_id_shelter], "emergency.json")
    records = _records(path)
    assert [r.kind for r in records] == ["evacuation_site", "shelter", "evacuation_site", "shelter"]
    assert records[2].source_key == "7"  # NO when there is no 共通ID
    assert records[3].address is None


@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        ({**_feature(), "geometry": None}, "no geometry"),
        ({k: v for k, v in _feature().items() if k != "geometry"}, "no geometry"),
        (
            {**_feature(), "geometry": {"type": "Point", "coordinates": [34.638, 138.128]}},
            "swapped",
        ),
        ({**_feature(), "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}}, "outside"),
        ({**_feature(), "geometry": {"type": "Point", "coordinates": ["x", 34.6]}}, "numbers"),
        ({**_feature(), "geometry": {"type": "Polygon", "coordinates": []}}, "Point"),
        (_feature(**{"施設・場所名": "　"}), "施設・場所名"),
        (_feature(**{"施設・場所名": None}), "施設・場所名"),
        (_feature(共通ID=None), "共通ID"),
        ({"type": "Feature", "geometry": None}, "properties"),
        ("just a string", "not a GeoJSON Feature"),
    ],
)
def test_malformed_features_are_rejected_with_their_position(
    tmp_path: Path, feature: Any, reason: str
) -> None:
    path = _write(tmp_path, [_feature(), feature, _feature(共通ID="E2222300098201")])
    items = _fetch(path)
    assert [type(item).__name__ for item in items] == [
        "FacilityRecord",
        "RejectedRecord",
        "FacilityRecord",
    ]
    rejected = items[1]
    assert isinstance(rejected, RejectedRecord)
    assert rejected.line == 2
    assert reason in rejected.reason


def test_features_without_a_kind_are_rejected(tmp_path: Path) -> None:
    feature = _feature(共通ID="X1")
    del feature["properties"]["津波"]
    items = _fetch(_write(tmp_path, [feature]))
    assert isinstance(items[0], RejectedRecord)
    assert "cannot tell" in items[0].reason


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"NO,name\n1,x\n", "not JSON"),
        (b'{"type": "Topology"}', "not a GeoJSON FeatureCollection"),
        (b"[1, 2]", "not a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": {}}', "features list"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_files_that_are_not_geojson_raise_invalid_input(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        _fetch(path)


def test_oversized_and_missing_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, [_feature()])
    monkeypatch.setattr(gsi_evacuation, "MAX_FILE_BYTES", 10)
    with pytest.raises(InvalidInput, match="refused"):
        _fetch(path)
    with pytest.raises(InvalidInput, match="no such file"):
        _fetch(tmp_path / "missing.json")
    with pytest.raises(InvalidInput, match="local files"):
        _fetch("https://example.org/222232.json")


def test_a_single_feature_document_and_a_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "one.geojson"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_feature()).encode())
    (record,) = _records(path)
    assert record.hazards == frozenset({"tsunami"})
