"""Reading municipal CSV files: encoding detection, delimiter, rows with their line numbers.

The encoding is decided by rules, not guessed statistically, in this order:

1. a byte-order mark: UTF-8 (`EF BB BF`), UTF-16 LE/BE (`FF FE` / `FE FF`);
2. UTF-16 without a BOM, when the first bytes have NULs in every other position;
3. strict UTF-8;
4. strict CP932 (Windows Shift_JIS, which Excel writes; plain Shift_JIS is a subset);
5. otherwise whichever of UTF-8 and CP932 breaks on fewer byte sequences (UTF-8 on a tie):
   a file with a few damaged bytes is read in the encoding the rest of it is in.

When bytes had to be replaced (step 5, or a damaged UTF-16 or BOM file), the rows that hold
a replacement character are reported as undecodable and skipped; the others import.
The delimiter is a tab when the first line holds more tabs than commas (Excel's "Unicode
text"), else a comma. CR, LF and CRLF line ends all work; quoted cells may hold line breaks.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

REPLACEMENT = "\ufffd"
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A file's text, the encoding it was read with, and whether bytes had to be replaced."""

    text: str
    encoding: str
    lossy: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One CSV record and the line it starts on (1-based)."""

    line: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A record the CSV reader could not parse, where it starts, and why."""

    line: int
    reason: str


def _decode_as(data: bytes, encoding: str) -> Decoded:
    try:
        return Decoded(data.decode(encoding), encoding, lossy=False)
    except UnicodeDecodeError:
        return Decoded(data.decode(encoding, errors="replace"), encoding, lossy=True)


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:256]
    if b"\x00" not in sample or len(sample) < 4:
        return None
    zeros_even, zeros_odd = sample[0::2].count(0), sample[1::2].count(0)
    if zeros_odd > 2 * zeros_even:
        return "utf-16-le"
    if zeros_even > 2 * zeros_odd:
        return "utf-16-be"
    return None


def decode(data: bytes) -> Decoded:
    """Decode a CSV file's bytes by the rules in this module's docstring."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, encoding)
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return _decode_as(data, utf16)
    utf8 = _decode_as(data, "utf-8")
    if not utf8.lossy:
        return utf8
    cp932 = _decode_as(data, "cp932")
    if not cp932.lossy:
        return cp932
    if cp932.text.count(REPLACEMENT) < utf8.text.count(REPLACEMENT):
        return cp932
    return utf8


def delimiter(text: str) -> str:
    """A tab when the first line has more tabs than commas, else a comma."""
    first = text.split("\n", 1)[0].split("\r", 1)[0]
    return "\t" if first.count("\t") > first.count(",") else ","


def _reason(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return "unterminated quoted cell (it runs to the end of the file)"
    return f"malformed CSV: {message}"


def rows(text: str) -> Iterator[Row | BadRow]:
    """The records of a CSV text with their starting lines; unparseable records as BadRow."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(start, _reason(exc))
            if reader.line_num == end:  # nothing consumed: do not spin
                return
            end = reader.line_num
            continue
        end = reader.line_num
        yield Row(start, cells)
