"""Reading CSV bytes: encoding rules, delimiter, line numbers of records, malformed CSV."""

from __future__ import annotations

import codecs

import pytest

from cityos.connectors import csvfile
from cityos.connectors.csvfile import BadRow, Row

TEXT = "NO,名称,緯度,経度\r\n1,焼津市役所　本庁舎,34.867206,138.32291\r\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("cp932"), "cp932"),
        (TEXT.encode("shift_jis"), "cp932"),
        (TEXT.encode("utf-16"), "utf-16"),  # with its BOM
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),
        (TEXT.encode("utf-16-be"), "utf-16-be"),
    ],
)
def test_encodings_are_detected(data: bytes, encoding: str) -> None:
    decoded = csvfile.decode(data)
    assert (decoded.text, decoded.encoding, decoded.lossy) == (TEXT, encoding, False)


def test_cp932_only_characters() -> None:
    text = "名称\r\n①髙橋ｶﾅ\r\n"  # NEC/IBM extensions and half-width kana
    decoded = csvfile.decode(text.encode("cp932"))
    assert (decoded.text, decoded.encoding) == (text, "cp932")


def test_utf8_with_a_broken_byte_stays_utf8_and_is_marked_lossy() -> None:
    good = "".join(f"{n},焼津市の施設{n},34.8,138.3\n" for n in range(5))
    data = b"NO,name,lat,lon\n" + good.encode() + b"9,\xff\xfe,34.8,138.3\n"
    decoded = csvfile.decode(data)
    assert (decoded.encoding, decoded.lossy) == ("utf-8", True)
    assert "焼津市の施設4" in decoded.text
    assert decoded.text.count(csvfile.REPLACEMENT) == 2


def test_cp932_with_a_broken_byte_stays_cp932() -> None:
    data = TEXT.encode("cp932") + b"2,\x81\x7f,34.8,138.3\r\n"  # 0x817F is unassigned
    decoded = csvfile.decode(data)
    assert (decoded.encoding, decoded.lossy) == ("cp932", True)
    assert "焼津市役所　本庁舎" in decoded.text


def test_delimiter_is_a_tab_for_excel_unicode_text() -> None:
    assert csvfile.delimiter("a\tb\tc\n1,2\t3") == "\t"
    assert csvfile.delimiter("a,b\tc\r\n") == ","
    assert csvfile.delimiter("") == ","


def _rows(text: str) -> list[Row | BadRow]:
    return list(csvfile.rows(text))


def test_rows_carry_the_line_they_start_on() -> None:
    text = 'h1,h2\r\n1,"two\r\nlines"\r\n\r\n3,"a ""quote"""\r\n4,x'
    assert _rows(text) == [
        Row(1, ["h1", "h2"]),
        Row(2, ["1", "two\r\nlines"]),
        Row(4, []),
        Row(5, ["3", 'a "quote"']),
        Row(6, ["4", "x"]),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_ends(newline: str) -> None:
    text = newline.join(["a,b", "1,2", '3,"x' + newline + 'y"', "5,6"]) + newline
    assert _rows(text) == [
        Row(1, ["a", "b"]),
        Row(2, ["1", "2"]),
        Row(3, ["3", "x" + newline + "y"]),
        Row(5, ["5", "6"]),
    ]


def test_malformed_records_are_reported_and_reading_goes_on() -> None:
    rows = _rows('a,b\n1,"2"x\n3,4\n5,"unterminated\n6,7\n')
    assert rows[:2] == [Row(1, ["a", "b"]), BadRow(2, "malformed CSV: ',' expected after '\"'")]
    assert rows[2] == Row(3, ["3", "4"])
    assert rows[3] == BadRow(4, "unterminated quoted cell (it runs to the end of the file)")
    assert len(rows) == 4
