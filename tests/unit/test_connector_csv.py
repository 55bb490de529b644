"""The CSV connectors on small written files: bad rows, options, formats, sources."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from cityos.connectors import csvconnector, recommended
from cityos.connectors.csvconnector import CsvConnector, parse_columns
from cityos.connectors.csvlayout import CsvSpec
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import FacilityRecord, RejectedRecord

HEADER = "NO,名称,名称_カナ,住所,緯度,経度,災害種別_洪水,災害種別_津波,電話番号"
GOOD = "1,中港タワー,ﾅｶﾐﾅﾄﾀﾜｰ,焼津市中港5-463,34.87512688,138.3270609,,○,(054)625-0128"


def _write(
    tmp_path: Path, lines: list[str], *, name: str = "x.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return path


def _fetch(
    path: Path, spec: CsvSpec = recommended.EVACUATION_SITES, **options: str
) -> list[FacilityRecord | RejectedRecord]:
    return list(CsvConnector(spec, **options).fetch(str(path)))


def _rejections(items: list[FacilityRecord | RejectedRecord]) -> list[tuple[int, str]]:
    return [(item.line, item.reason) for item in items if isinstance(item, RejectedRecord)]


def _records(items: list[FacilityRecord | RejectedRecord]) -> list[FacilityRecord]:
    return [item for item in items if isinstance(item, FacilityRecord)]


def test_good_row_fields(tmp_path: Path) -> None:
    (record,) = _records(_fetch(_write(tmp_path, [HEADER, GOOD])))
    assert record.source_key == "1"
    assert record.kind == "evacuation_site"
    assert record.name == "中港タワー"
    assert record.name_kana == "ナカミナトタワー"  # half-width kana folded by NFKC
    assert (record.lat, record.lon) == (34.87512688, 138.3270609)
    assert record.hazards == frozenset({"tsunami"})
    assert record.attributes == {"NO": "1", "電話番号": "(054)625-0128"}


def test_bad_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    lines = [
        HEADER,
        GOOD,
        "2,,,,34.8,138.3,,,",
        "3,名前,,,,,,,",
        "4,名前,,,abc,138.3,,,",
        "5,名前,,,34.8,,,,",
        "6,名前,,,48.85,2.35,,,",
        "7,名前,,,138.3,34.8,,,",
        "8,名前,,,34.8,138.3,△,,",
        "9,名前,,,34.8,138.3,,",
        "10,名前,,,34.8,138.3,,,,extra",
        ",名前,,,34.8,138.3,,,",
        "12,名前\x00,,,34.8,138.3,,,",
        ",,,,,,,,",
        "",
        "13,名前,,,３４．８,１３８．３,1,１,,,",
    ]
    items = _fetch(_write(tmp_path, lines))
    assert _rejections(items) == [
        (3, "名称 (name) is blank"),
        (4, "no coordinates (緯度 and 経度 are blank)"),
        (5, "緯度: 'abc' is not a number"),
        (6, "経度 (longitude) is blank"),
        (7, "coordinates lat=48.85, lon=2.35 are outside Japan"),
        (8, "coordinates lat=138.3, lon=34.8 are outside Japan (latitude and longitude swapped?)"),
        (9, "災害種別_洪水: '△' is not a flag (1, ○ or blank)"),
        (10, "row has 8 cells, the header has 9"),
        (11, "row has 10 cells, the header has 9"),
        (12, "NO (ID) is blank"),
        (13, "row holds a NUL character"),
    ]
    records = _records(items)
    assert [record.source_key for record in records] == ["1", "13"]
    assert records[1].hazards == frozenset({"flood", "tsunami"})  # 1 and full-width １
    assert (records[1].lat, records[1].lon) == (34.8, 138.3)
    assert len(items) == 13  # blank rows are not records at all


def test_undecodable_rows_are_rejected_and_the_rest_import(tmp_path: Path) -> None:
    body = [f"{n},焼津市の避難場所{n},,,34.8,138.3,,1," for n in range(1, 6)]
    path = tmp_path / "broken.csv"
    path.write_bytes("\r\n".join([HEADER, *body]).encode() + b"\r\n6,\xe7\x84,,,34.8,138.3,,1,\r\n")
    items = _fetch(path)
    assert _rejections(items) == [(7, "row holds bytes that are not valid UTF-8")]
    assert [r.name for r in _records(items)][-1] == "焼津市の避難場所5"


def test_a_cp932_file_with_a_broken_row(tmp_path: Path) -> None:
    data = "\r\n".join([HEADER, GOOD]).encode("cp932") + b"\r\n2,\x81\x7f,,,34.8,138.3,,1,\r\n"
    path = tmp_path / "sjis.csv"
    path.write_bytes(data)
    items = _fetch(path)
    assert _rejections(items) == [(3, "row holds bytes that are not valid CP932")]
    assert _records(items)[0].name == "中港タワー"


def test_csv_errors_are_rejections(tmp_path: Path) -> None:
    lines = [HEADER, '2,"bad"x,,,34.8,138.3,,1,', GOOD, '3,"open,,,34.8,138.3,,1,', GOOD]
    items = _fetch(_write(tmp_path, lines))
    assert _rejections(items) == [
        (2, "malformed CSV: ',' expected after '\"'"),
        (4, "unterminated quoted cell (it runs to the end of the file)"),
    ]
    assert len(_records(items)) == 1


def test_title_rows_before_the_header_are_skipped(tmp_path: Path) -> None:
    lines = ["焼津市 指定緊急避難場所一覧,,,,,,,,", "令和6年4月1日現在,,,,,,,,", "", HEADER, GOOD]
    items = _fetch(_write(tmp_path, lines))
    assert [r.source_key for r in _records(items)] == ["1"]


def test_files_without_the_core_columns_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, ["NO,名称,住所", "1,x,y"])
    with pytest.raises(InvalidInput, match=r"not a 指定緊急避難場所一覧 file.*no 緯度 column"):
        _fetch(path)
    with pytest.raises(InvalidInput, match="holds no CSV rows"):
        _fetch(_write(tmp_path, [""], name="empty.csv"))


def test_evacuation_sites_need_hazard_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, ["NO,名称,緯度,経度", "1,x,34.8,138.3"])
    with pytest.raises(InvalidInput, match="災害種別"):
        _fetch(path)
    assert len(_records(_fetch(path, recommended.SHELTERS))) == 1


@pytest.mark.parametrize(
    "header",
    ["洪水", "災害種別_洪水", "災害種別（洪水）", "災害種別(洪水)", "洪水　"],
)
def test_hazard_header_spellings(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path, [f"ID,名称,緯度,経度,{header}", "E1,x,34.8,138.3,1"])
    (record,) = _records(_fetch(path))
    assert record.hazards == frozenset({"flood"})
    assert record.attributes == {"ID": "E1"}


def test_all_eight_hazards(tmp_path: Path) -> None:
    columns = "洪水,崖崩れ、土石流及び地滑り,高潮,地震,津波,大規模な火事,内水氾濫,火山現象"
    path = _write(tmp_path, [f"ID,名称,緯度,経度,{columns}", "1,x,34.8,138.3,1,○,◯,〇,1,1,1,1"])
    (record,) = _records(_fetch(path))
    assert record.hazards == frozenset(
        {
            "flood",
            "landslide",
            "storm_surge",
            "earthquake",
            "tsunami",
            "large_fire",
            "inland_flood",
            "volcano",
        }
    )


def test_extra_columns_duplicates_and_nameless_columns(tmp_path: Path) -> None:
    lines = ["ID,名称,緯度,経度,備考,備考,,料金（基本）", "1,x,34.8,138.3,a,b,c,500円"]
    (record,) = _records(_fetch(_write(tmp_path, lines), recommended.PUBLIC_FACILITIES))
    assert record.attributes == {
        "ID": "1",
        "備考": "a",
        "備考 (2)": "b",
        "column_7": "c",
        "料金(基本)": "500円",
    }


def test_known_time_and_date_columns_are_normalised_when_they_parse(tmp_path: Path) -> None:
    lines = [
        "ID,名称,緯度,経度,開始時間,終了時間,指定日",
        "1,x,34.8,138.3,８：３０,24時間,令和6年4月1日",
    ]
    (record,) = _records(_fetch(_write(tmp_path, lines), recommended.AED))
    assert record.attributes["開始時間"] == "08:30"
    assert record.attributes["終了時間"] == "24時間"  # not a time: kept as written
    assert record.attributes["指定日"] == "2024-04-01"


def test_events_need_real_dates(tmp_path: Path) -> None:
    header = "NO,イベント名,イベント名_カナ,開始日,終了日,開始時間,場所名称,住所,緯度,経度"
    lines = [
        header,
        "1,港まつり,ミナトマツリ,令和6年8月3日,2024/8/4,18:00,焼津港,焼津市中港,34.87,138.32",
        "2,花火,,2024/13/1,,,焼津港,,34.87,138.32",
        "3,朝市,,R6.4.7,R6.4.7,6時,焼津港,,34.87,138.32",
    ]
    items = _fetch(_write(tmp_path, lines), recommended.EVENTS)
    assert _rejections(items) == [(3, "開始日: '2024/13/1' is not a date (month must be in 1..12)")]
    first, third = _records(items)
    assert (first.kind, first.name, first.name_kana) == ("event", "港まつり", "ミナトマツリ")
    assert first.attributes["開始日"] == "2024-08-03"
    assert first.attributes["終了日"] == "2024-08-04"
    assert first.attributes["開始時間"] == "18:00"
    assert first.attributes["場所名称"] == "焼津港"
    assert third.attributes["開始時間"] == "06:00"


def test_cooling_shelter_hours(tmp_path: Path) -> None:
    days = "日月火水木金土"
    header = "ID,施設名,所在地,緯度,経度," + ",".join(
        f"{d}曜日開始時間,{d}曜日終了時間" for d in days
    )
    rows = [
        "1,図書館,焼津市,34.8,138.3,-,-,9:00,17:00,9:00,17:00,,,休館,休館,9:00,17:00,10:00,15:00",
        "2,公民館,焼津市,34.8,138.3,9:00,-,,,,,,,,,,,,",
        "3,商店,焼津市,34.8,138.3,9:00,,,,,,,,,,,,,",
        "4,銀行,焼津市,34.8,138.3,25:00,26:00,,,,,,,,,,,,",
    ]
    items = _fetch(_write(tmp_path, [header, *rows]), recommended.COOLING_SHELTERS)
    assert _rejections(items) == [
        (3, "sun: opening 09:00 and closing - disagree"),
        (4, "sun: opening 09:00 and closing - disagree"),
        (5, "日曜日開始時間: '25:00' is not a time of day"),
    ]
    (library,) = _records(items)
    assert library.attributes["opening_hours"] == {
        "sun": None,
        "mon": {"open": "09:00", "close": "17:00"},
        "tue": {"open": "09:00", "close": "17:00"},
        "thu": None,
        "fri": {"open": "09:00", "close": "17:00"},
        "sat": {"open": "10:00", "close": "15:00"},
    }  # Wednesday is blank: unknown, not closed


def test_columns_map_other_header_names(tmp_path: Path) -> None:
    lines = [
        "code,facility,kana,lat_deg,lon_deg,tel,opened,beds",
        "A-1,病院,ビョウイン,34.3,134.0,087-1,1986/4/1,10",
    ]
    columns = "key=code,name=facility,名称_カナ=kana,lat=lat_deg,lon=lon_deg,phone=tel,"
    columns += "opened=opened,病床数=beds"
    connector = CsvConnector(recommended.FACILITIES).configure(
        kind="relief-hospital", columns=columns
    )
    (record,) = _records(list(connector.fetch(str(_write(tmp_path, lines)))))
    assert (record.source_key, record.kind, record.name) == ("A-1", "relief_hospital", "病院")
    assert record.name_kana == "ビョウイン"
    assert (record.lat, record.lon) == (34.3, 134.0)
    assert record.attributes == {
        "code": "A-1",
        "電話番号": "087-1",
        "開設日": "1986-04-01",
        "病床数": "10",
    }


def test_column_mapping_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, ["ID,名称,緯度,経度,tel,電話番号", "1,x,34.8,138.3,1,2"])
    with pytest.raises(InvalidInput, match="--columns name=施設名: no column '施設名'"):
        _fetch(path, recommended.FACILITIES, kind="other", columns="name=施設名")
    with pytest.raises(InvalidInput, match="'電話番号' is taken"):
        _fetch(path, recommended.FACILITIES, kind="other", columns="phone=tel")
    with pytest.raises(InvalidInput, match="FIELD=HEADER"):
        parse_columns("name")
    assert parse_columns(" name = 施設名 ,, lat=y ") == {"name": "施設名", "lat": "y"}


def test_kind_options(tmp_path: Path) -> None:
    path = _write(tmp_path, ["ID,名称,緯度,経度", "1,x,34.8,138.3"])
    with pytest.raises(InvalidInput, match="needs --kind"):
        _fetch(path, recommended.FACILITIES)
    with pytest.raises(InvalidInput, match="unknown facility kind"):
        CsvConnector(recommended.FACILITIES, kind="hospital")
    with pytest.raises(InvalidInput, match="reads aed facilities only"):
        CsvConnector(recommended.AED).configure(kind="shelter")
    assert CsvConnector(recommended.AED, kind="aed").kind == "aed"
    generic = CsvConnector(recommended.FACILITIES)
    configured = generic.configure(kind="TSUNAMI_EVACUATION_BUILDING")
    assert generic.kind is None  # configure returns a copy
    assert [r.kind for r in _records(list(configured.fetch(str(path))))] == [
        "tsunami_evacuation_building"
    ]


def test_excel_unicode_text_tsv_in_utf16(tmp_path: Path) -> None:
    path = tmp_path / "list.tsv"
    text = "ID\t名称\t緯度\t経度\r\n1\t救護所\t34.8\t138.3\r\n"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    (record,) = _records(_fetch(path, recommended.FACILITIES, kind="first-aid-station"))
    assert record.name == "救護所"


def test_directories_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, ["ID,名称,緯度,経度", "1,b,34.8,138.3"], name="b.csv")
    _write(tmp_path, ["ID\t名称\t緯度\t経度", "1\ta\t34.8\t138.3"], name="a.TSV")
    (tmp_path / "README.md").write_text("not data")
    (tmp_path / ".hidden.csv").write_text("garbage")
    items = _fetch(tmp_path, recommended.SHELTERS)
    assert [r.name for r in _records(items)] == ["a", "b"]
    assert CsvConnector(recommended.SHELTERS).file_suffixes == (".csv", ".tsv")
    with pytest.raises(InvalidInput, match="local files"):
        list(CsvConnector(recommended.AED).fetch("https://example.org/aed.csv"))
    with pytest.raises(InvalidInput, match="no such file"):
        _fetch(tmp_path / "missing.csv")
    monkeypatch.setattr(csvconnector, "MAX_FILE_BYTES", 10)
    with pytest.raises(InvalidInput, match="CSV files over 10 bytes are refused"):
        _fetch(tmp_path / "b.csv", recommended.SHELTERS)
