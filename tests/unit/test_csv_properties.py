"""Property tests: CSV connectors read what a CSV writer wrote, and reject mangled input cleanly."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.connectors import recommended, values
from cityos.connectors.csvconnector import CsvConnector
from cityos.connectors.kinds import HAZARD_COLUMNS, HAZARDS
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import FacilityRecord, RejectedRecord

HAZARD_HEADERS = [f"災害種別_{label}" for label in HAZARD_COLUMNS]
HEADER = ["NO", "名称", "住所", "緯度", "経度", *HAZARD_HEADERS, "備考"]
# Characters every encoding under test can hold, including CSV's own specials.
ALPHABET = "焼津市避難所タワー公園ｶﾅ①髙 　,\"'\n\r-()（）abc123○"
ENCODINGS = ["utf-8", "utf-8-sig", "cp932", "utf-16"]
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet=ALPHABET, min_size=0, max_size=20)
lats = st.floats(min_value=24.0, max_value=45.5, allow_nan=False)
lons = st.floats(min_value=123.0, max_value=153.9, allow_nan=False)
flags = st.lists(st.sampled_from(["", "1", "○", "◯", "〇", "１"]), min_size=8, max_size=8)
rows = st.tuples(names, names, lats, lons, flags, names)


def _fetch(data: bytes) -> list[FacilityRecord | RejectedRecord]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.csv"
        path.write_bytes(data)
        return list(CsvConnector(recommended.EVACUATION_SITES).fetch(str(path)))


def _fetch_or_refused(data: bytes) -> list[FacilityRecord | RejectedRecord] | None:
    """The items read, or None when the whole file was refused (with a message)."""
    try:
        return _fetch(data)
    except InvalidInput as exc:
        message = str(exc)
    assert message
    return None


def _encode(table: list[list[str]], encoding: str, newline: str, quote_all: bool) -> bytes:
    if any("\r" in cell for row in table for cell in row) and "\r" not in newline:
        quote_all = True  # csv.writer would leave a lone CR unquoted: not valid CSV
    buffer = io.StringIO()
    if quote_all:
        csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL).writerows(table)
    else:
        csv.writer(buffer, lineterminator=newline).writerows(table)
    return buffer.getvalue().encode(encoding)


def _check_invariants(items: list[FacilityRecord | RejectedRecord], lines: int) -> None:
    for item in items:
        if isinstance(item, RejectedRecord):
            assert 1 <= item.line <= lines + 1
            assert item.reason
            assert "Traceback" not in item.reason
        else:
            assert item.name
            assert item.name == values.text(item.name)
            assert values.in_japan(item.lat, item.lon)
            assert item.source_key
            assert item.hazards <= HAZARDS
            assert item.kind == "evacuation_site"


@PROFILE
@given(
    table=st.lists(rows, min_size=1, max_size=8),
    encoding=st.sampled_from(ENCODINGS),
    newline=st.sampled_from(["\r\n", "\n"]),
    quote_all=st.booleans(),
)
def test_what_a_csv_writer_wrote_is_read_back(
    table: list[tuple[str, str, float, float, list[str], str]],
    encoding: str,
    newline: str,
    quote_all: bool,
) -> None:
    written = [HEADER] + [
        [str(n), name, address, repr(lat), repr(lon), *marks, note]
        for n, (name, address, lat, lon, marks, note) in enumerate(table, 1)
    ]
    items = _fetch(_encode(written, encoding, newline, quote_all))
    assert len(items) == len(table)
    for n, ((name, address, lat, lon, marks, note), item) in enumerate(
        zip(table, items, strict=True), 1
    ):
        if values.text(name) is None:
            assert isinstance(item, RejectedRecord)
            assert item.reason == "名称 (name) is blank"
            continue
        assert isinstance(item, FacilityRecord), item
        assert item.source_key == str(n)
        assert item.name == values.text(name)
        assert item.address == values.text(address)
        assert (item.lat, item.lon) == (lat, lon)
        expected = {
            HAZARD_COLUMNS[h.removeprefix("災害種別_")]
            for h, m in zip(HAZARD_HEADERS, marks, strict=True)
            if m
        }
        assert item.hazards == expected
        assert item.attributes.get("備考") == values.text(note)


@PROFILE
@given(
    table=st.lists(rows, min_size=2, max_size=6),
    victim=st.integers(min_value=0, max_value=5),
    garbage=st.text(min_size=1, max_size=12).map(lambda s: s.replace("\x00", "")),
)
def test_a_garbled_latitude_rejects_only_its_row(
    table: list[tuple[str, str, float, float, list[str], str]], victim: int, garbage: str
) -> None:
    victim %= len(table)
    written = [HEADER] + [
        [
            str(n),
            "施設" + name.replace("\r", "").replace("\n", ""),
            "",
            repr(lat),
            repr(lon),
            *marks,
            "",
        ]
        for n, (name, _, lat, lon, marks, _) in enumerate(table, 1)
    ]
    written[victim + 1][3] = garbage
    try:
        lat = values.number(garbage)
        still_good = values.in_japan(lat, table[victim][3])
    except values.BadValue:
        still_good = False
    items = _fetch(_encode(written, "utf-8", "\r\n", quote_all=False))
    assert len(items) == len(table)
    for index, item in enumerate(items):
        assert isinstance(item, FacilityRecord) == (index != victim or still_good), item
        if isinstance(item, RejectedRecord):
            assert item.line == victim + 2
            assert "緯度" in item.reason or "outside Japan" in item.reason


@PROFILE
@given(data=st.binary(max_size=400), with_header=st.booleans())
def test_arbitrary_bytes_are_refused_or_rejected_never_crash(
    data: bytes, with_header: bool
) -> None:
    prefix = (",".join(HEADER) + "\r\n").encode() if with_header else b""
    items = _fetch_or_refused(prefix + data)
    if items is None:
        return
    _check_invariants(items, (prefix + data).count(b"\n") + (prefix + data).count(b"\r"))


@PROFILE
@given(
    table=st.lists(rows, min_size=1, max_size=5),
    cut=st.integers(min_value=0),
    insert=st.sampled_from(['"', ",", "\r", "\n", "\x00", "\ufeff", "　", '""', "\t"]),
    position=st.integers(min_value=0),
    encoding=st.sampled_from(ENCODINGS),
)
def test_mangled_csv_is_rejected_cleanly(
    table: list[tuple[str, str, float, float, list[str], str]],
    cut: int,
    insert: str,
    position: int,
    encoding: str,
) -> None:
    written = [HEADER] + [
        [str(n), name, address, repr(lat), repr(lon), *marks, note]
        for n, (name, address, lat, lon, marks, note) in enumerate(table, 1)
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(written)
    text = buffer.getvalue()
    position %= len(text) + 1
    text = text[:position] + insert + text[position:]
    data = text.encode(encoding, errors="replace")  # CP932 has no BOM character
    data = data[: len(data) - cut % (len(data) // 2 + 1)]  # maybe cut off the end, mid-character
    items = _fetch_or_refused(data)
    if items is None:
        return
    assert len(items) <= len(table) + 2
    _check_invariants(items, text.count("\n") + text.count("\r"))
