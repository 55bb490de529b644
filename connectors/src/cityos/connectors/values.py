"""Cell and header parsers for Japanese administrative open data.

Each parser takes the raw text of a cell and returns the value, or raises `BadValue` with a
short reason. Digits may be full-width (`３４．８６`): NFKC is applied before parsing numbers,
dates and times, but never to the text that is kept (names keep their full-width characters).
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date

LAT_RANGE = (20.0, 46.0)  # Okinotorishima .. Hokkaido, with a margin
LON_RANGE = (122.0, 154.0)  # Yonaguni .. Minamitorishima

_TRUE_FLAGS = frozenset({"1", "○", "◯", "〇", "●", "◎", "有", "有り", "あり", "true", "yes"})
_FALSE_FLAGS = frozenset({"", "0", "×", "✕", "-", "―", "ー", "無", "無し", "なし", "false", "no"})
_CLOSED = frozenset({"-", "―", "ー", "—", "×", "休", "休み", "休館", "閉館", "なし", "無"})
_HEADER_NOISE = re.compile(r"[\s_()\[\]【】「」・,、.]")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_KANJI_CLOCK = re.compile(r"(\d{1,2})時(?:(\d{1,2})分)?")
_ISO_DATE = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
_KANJI_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_WAREKI = re.compile(
    r"(明治|大正|昭和|平成|令和|[MTSHR])\s*(元|\d{1,2})\s*[年.\-/]\s*(\d{1,2})\s*[月.\-/]\s*"
    r"(\d{1,2})\s*日?"
)
_MIDNIGHT = re.compile(r"\s+0?0:00(?::00)?$")  # spreadsheets write dates as `2024/4/1 0:00`
# 元号: first day (Gregorian) of each era, in order.
_ERAS = (
    ("明治", "M", date(1868, 1, 25)),
    ("大正", "T", date(1912, 7, 30)),
    ("昭和", "S", date(1926, 12, 25)),
    ("平成", "H", date(1989, 1, 8)),
    ("令和", "R", date(2019, 5, 1)),
)


class BadValue(ValueError):
    """A cell's text is not a value of the expected type; the message says why."""


def text(raw: str) -> str | None:
    """A cell as stripped text (full-width spaces too, line breaks as LF), or None when blank."""
    stripped = raw.strip().strip("\ufeff").strip()
    return stripped.replace("\r\n", "\n").replace("\r", "\n") or None


def folded(raw: str) -> str:
    """NFKC-normalised, stripped text: full-width digits and letters become ASCII."""
    return unicodedata.normalize("NFKC", raw).strip()


def header_label(raw: str) -> str:
    """A header name as attributes keep it: NFKC (so `料金（基本）` is `料金(基本)`), trimmed."""
    return _SPACES.sub(" ", folded(raw.replace("\ufeff", "")))


def header_key(raw: str) -> str:
    """What header names are matched on: the label without spaces, brackets, `_`, and case."""
    return _HEADER_NOISE.sub("", header_label(raw)).casefold()


def flag(raw: str) -> bool:
    """A yes/no cell: 1, ○, ◯, 〇, 有 ... are yes; blank, 0, ×, -, 無 ... are no."""
    value = folded(raw).casefold()
    if value in _TRUE_FLAGS:
        return True
    if value in _FALSE_FLAGS:
        return False
    raise BadValue(f"{raw.strip()[:40]!r} is not a flag (1, ○ or blank)")


def number(raw: str) -> float:
    """A decimal number such as `34.866918` or `３４．８６６９１８`."""
    value = folded(raw)
    if not _NUMBER.fullmatch(value):
        raise BadValue(f"{raw.strip()[:40]!r} is not a number")
    result = float(value)
    if not math.isfinite(result):
        raise BadValue(f"{raw.strip()[:40]!r} is not a finite number")
    return result


def in_japan(lat: float, lon: float) -> bool:
    """Whether a point lies in the box around Japan's territory."""
    return LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LON_RANGE[0] <= lon <= LON_RANGE[1]


def check_in_japan(lat: float, lon: float) -> None:
    """Raise BadValue unless (lat, lon) lies in Japan; hint at swapped columns."""
    if in_japan(lat, lon):
        return
    hint = " (latitude and longitude swapped?)" if in_japan(lon, lat) else ""
    raise BadValue(f"coordinates lat={lat}, lon={lon} are outside Japan{hint}")


def clock_time(raw: str) -> str:
    """A time of day (`8:30`, `08:30:00`, `８：３０`, `8時30分`) as `HH:MM` (or `HH:MM:SS`)."""
    value = folded(raw)
    if match := _CLOCK.fullmatch(value):
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    elif match := _KANJI_CLOCK.fullmatch(value):
        hour, minute, second = int(match[1]), int(match[2] or 0), 0
    else:
        raise BadValue(f"{raw.strip()[:40]!r} is not a time (H:MM)")
    if minute > 59 or second > 59 or hour > 24 or (hour == 24 and minute + second > 0):
        raise BadValue(f"{raw.strip()[:40]!r} is not a time of day")
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def opening_time(raw: str) -> str | None:
    """An opening or closing time; None for a closed day (`-`, `休` ...)."""
    if folded(raw) in _CLOSED:
        return None
    return clock_time(raw)


def _era_date(era: str, year: str, month: int, day: int) -> date:
    index = next(i for i, (name, letter, _) in enumerate(_ERAS) if era in (name, letter))
    name, _, start = _ERAS[index]
    number_of_year = 1 if year == "元" else int(year)
    if number_of_year < 1:
        raise BadValue(f"{name}{year}年 is not a year")
    result = date(start.year + number_of_year - 1, month, day)
    end = _ERAS[index + 1][2] if index + 1 < len(_ERAS) else None
    if result < start or (end is not None and result >= end):
        raise BadValue(f"{name}{year}年{month}月{day}日 is not a {name} date")
    return result


def _gregorian(value: str) -> date | None:
    if match := _KANJI_DATE.fullmatch(value) or _COMPACT_DATE.fullmatch(value):
        return date(int(match[1]), int(match[2]), int(match[3]))
    if match := _ISO_DATE.fullmatch(value):
        return date(int(match[1]), int(match[3]), int(match[4]))
    if match := _WAREKI.fullmatch(value):
        return _era_date(match[1], match[2], int(match[3]), int(match[4]))
    return None


def calendar_date(raw: str) -> str:
    """A date (`2024-04-01`, `2024/4/1`, `2024年4月1日`, `令和6年4月1日`, `R6.4.1`) as ISO."""
    try:
        result = _gregorian(_MIDNIGHT.sub("", folded(raw)))
    except BadValue:
        raise
    except ValueError as exc:  # date() refuses 2024-02-30
        raise BadValue(f"{raw.strip()[:40]!r} is not a date ({exc})") from exc
    if result is None:
        formats = "YYYY-MM-DD, YYYY/M/D or 令和6年4月1日"
        raise BadValue(f"{raw.strip()[:40]!r} is not a date ({formats})")
    return result.isoformat()
