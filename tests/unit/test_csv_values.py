"""CSV connector value parsers: flags, numbers, coordinates, times, dates, headers, kinds."""

from __future__ import annotations

import pytest

from cityos.connectors import values
from cityos.connectors.kinds import FACILITY_KINDS, HAZARDS, kind_option, parse_kind
from cityos.connectors.values import BadValue
from cityos.platform.domain.errors import InvalidInput


@pytest.mark.parametrize("raw", ["1", "１", "○", "◯", "〇", " ○ ", "有", "TRUE", "●"])
def test_true_flags(raw: str) -> None:
    assert values.flag(raw) is True


@pytest.mark.parametrize("raw", ["", "　", "0", "×", "-", "－", "無", "false"])
def test_false_flags(raw: str) -> None:
    assert values.flag(raw) is False


@pytest.mark.parametrize("raw", ["2", "yes please", "△", "○○"])
def test_other_flags_are_refused(raw: str) -> None:
    with pytest.raises(BadValue, match="not a flag"):
        values.flag(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("34.866918", 34.866918), ("３４．８６６９１８", 34.866918), (" 138.3 ", 138.3), ("-1", -1.0)],
)
def test_numbers(raw: str, expected: float) -> None:
    assert values.number(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "nan", "inf", "1e5", "3_4.5", "34,5", "34.5.6", "0x1"])
def test_non_numbers_are_refused(raw: str) -> None:
    with pytest.raises(BadValue):
        values.number(raw)


def test_coordinates_must_lie_in_japan() -> None:
    values.check_in_japan(34.86, 138.32)
    values.check_in_japan(24.45, 122.93)  # Yonaguni
    values.check_in_japan(45.52, 141.94)  # Wakkanai
    with pytest.raises(BadValue, match="swapped"):
        values.check_in_japan(138.32, 34.86)
    with pytest.raises(BadValue, match=r"outside Japan$"):
        values.check_in_japan(48.85, 2.35)
    with pytest.raises(BadValue, match="outside Japan"):
        values.check_in_japan(0.0, 0.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8:30", "08:30"),
        ("08:30", "08:30"),
        ("８：３０", "08:30"),
        ("17:15:00", "17:15"),
        ("9:05:30", "09:05:30"),
        ("8時30分", "08:30"),
        ("9時", "09:00"),
        ("0:00", "00:00"),
        ("24:00", "24:00"),
    ],
)
def test_times(raw: str, expected: str) -> None:
    assert values.clock_time(raw) == expected


@pytest.mark.parametrize(
    "raw", ["25:00", "8:60", "24:01", "830", "8:3", "", "午前8時", "8:30～17:15"]
)
def test_non_times_are_refused(raw: str) -> None:
    with pytest.raises(BadValue):
        values.clock_time(raw)


def test_opening_times_know_closed_days() -> None:
    assert values.opening_time("-") is None
    assert values.opening_time("－") is None
    assert values.opening_time("休館") is None
    assert values.opening_time("9:00") == "09:00"
    with pytest.raises(BadValue):
        values.opening_time("?")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-04-01", "2024-04-01"),
        ("2024/4/1", "2024-04-01"),
        ("1947/4/1", "1947-04-01"),
        ("2024.4.1", "2024-04-01"),
        ("２０２４／４／１", "2024-04-01"),
        ("2024年4月1日", "2024-04-01"),
        ("20240401", "2024-04-01"),
        ("2024/4/1 0:00", "2024-04-01"),
        ("令和6年4月1日", "2024-04-01"),
        ("令和６年４月１日", "2024-04-01"),
        ("令和元年5月1日", "2019-05-01"),
        ("平成31年4月30日", "2019-04-30"),
        ("昭和64年1月7日", "1989-01-07"),
        ("平成元年1月8日", "1989-01-08"),
        ("R6.4.1", "2024-04-01"),
        ("H30/12/31", "2018-12-31"),
        ("㋿6年4月1日", "2024-04-01"),
    ],
)
def test_dates(raw: str, expected: str) -> None:
    assert values.calendar_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2024-02-30", "day is out of range"),
        ("2024-13-01", "month must be"),
        ("2024-4/1", "not a date"),
        ("平成31年5月1日", "not a 平成 date"),  # 令和 had begun
        ("令和元年4月30日", "not a 令和 date"),
        ("令和0年5月1日", "not a year"),
        ("4/1", "not a date"),
        ("2024/4/1 10:00", "not a date"),
        ("", "not a date"),
    ],
)
def test_non_dates_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(BadValue, match=reason):
        values.calendar_date(raw)


def test_header_labels_and_keys() -> None:
    assert values.header_label("料金（基本）") == "料金(基本)"
    assert values.header_label("公共施設　") == "公共施設"
    assert values.header_label("telephone　number") == "telephone number"
    assert values.header_label("\ufeff都道府県コード") == "都道府県コード"
    assert values.header_key("料金（基本）") == values.header_key("料金(基本)") == "料金基本"
    assert values.header_key("名称_カナ") == values.header_key("名称カナ")
    assert values.header_key("No.") == values.header_key("NO")
    assert values.header_key("Latitude") == "latitude"


def test_text_strips_full_width_spaces_and_normalises_line_breaks() -> None:
    assert values.text("　焼津神社　") == "焼津神社"
    assert values.text("焼津市役所　本庁舎") == "焼津市役所　本庁舎"
    assert values.text("a\r\nb\rc\n") == "a\nb\nc"
    assert values.text(" \u3000 ") is None


def test_kinds_and_hazards_follow_the_contract() -> None:
    assert len(FACILITY_KINDS) == 14
    assert parse_kind("first-aid-station") == "first_aid_station"
    assert parse_kind("TSUNAMI_EVACUATION_BUILDING") == "tsunami_evacuation_building"
    assert parse_kind(" relief-hospital ") == "relief_hospital"
    assert kind_option("medical_institution") == "medical-institution"
    with pytest.raises(InvalidInput, match="first-aid-station"):
        parse_kind("hospital")
    assert sorted(HAZARDS) == sorted(
        [
            "flood",
            "landslide",
            "storm_surge",
            "earthquake",
            "tsunami",
            "large_fire",
            "inland_flood",
            "volcano",
        ]
    )
