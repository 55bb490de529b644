r"""InfluxQL quoting: identifiers, string literals, durations and time literals.

InfluxQL 1.x reads a quoted identifier or string literal with one scanner (`ScanString`):
the closing quote ends it, a raw newline is an error, and a backslash escapes exactly `\`,
`'`, `"` and `n` (newline); any other escape is an error. So escaping `\`, the quote and the
newline (as `\n`) makes a literal that reads back as itself, with two exceptions found by
testing 1.6: the reader turns a carriage return into a newline and stops at NUL, and no
escape exists for either. Those are refused (ValueError), never altered; the store never
needs them because stored tag values have control characters percent-encoded.

Regex literals (`/.../`) pass backslash escapes through to Go's RE2, except `\/`; so a
regex built here contains only ASCII letters, digits, `_` and `\x{HEX}` escapes inside a
fixed frame, which neither InfluxQL nor RE2 can read as anything but those characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

_IDENT = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_STRING = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})

_REGEX_SPECIAL = re.compile(r"[^A-Za-z0-9_]")

# InfluxQL duration units, largest first, in nanoseconds.
_UNITS = (
    ("w", 7 * 86_400 * 10**9),
    ("d", 86_400 * 10**9),
    ("h", 3_600 * 10**9),
    ("m", 60 * 10**9),
    ("s", 10**9),
    ("ms", 10**6),
    ("u", 10**3),
    ("ns", 1),
)


def _check(text: str) -> str:
    if "\r" in text or "\x00" in text:
        raise ValueError(f"InfluxQL cannot express a carriage return or NUL: {text[:80]!r}")
    return text


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier that names exactly `name`."""
    return '"' + _check(name).translate(_IDENT) + '"'


def quote_string(value: str) -> str:
    """A single-quoted InfluxQL string literal that reads back as exactly `value`."""
    return "'" + _check(value).translate(_STRING) + "'"


def _regex_char(match: re.Match[str]) -> str:
    return f"\\x{{{ord(match[0]):X}}}"


def regex_literal(value: str) -> str:
    """RE2 syntax matching exactly `value` (every other character as `\\x{HEX}`)."""
    return _REGEX_SPECIAL.sub(_regex_char, value)


def regex_any_of(values: Iterable[str]) -> str:
    """An InfluxQL regex literal matching a whole string equal to one of `values`."""
    return "/^(?:" + "|".join(regex_literal(value) for value in sorted(values)) + ")$/"


def duration(ns: int) -> str:
    """An exact InfluxQL duration literal for a positive number of nanoseconds."""
    if ns <= 0:
        raise ValueError(f"an InfluxQL duration must be positive, got {ns} ns")
    for unit, size in _UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: every integer is a multiple of 1 ns")


def timedelta_ns(delta: timedelta) -> int:
    """Nanoseconds of a timedelta, exactly."""
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000


def time_literal(ns: int) -> str:
    """A time bound for a WHERE clause: an integer literal is read as epoch nanoseconds."""
    return str(int(ns))
