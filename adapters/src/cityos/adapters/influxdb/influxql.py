"""InfluxQL quoting: identifiers, string literals, durations and time literals.

InfluxQL 1.x reads a quoted identifier or string literal with one scanner (`ScanString`):
the closing quote ends it, a raw newline is an error, and a backslash escapes exactly `\\`,
`'`, `"` and `n` (newline); any other escape is an error. So escaping `\\`, the quote and the
newline (as `\\n`) makes every Python string a literal that reads back as itself.
"""

from __future__ import annotations

from datetime import timedelta

_IDENT = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_STRING = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})

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


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier that names exactly `name`."""
    return '"' + name.translate(_IDENT) + '"'


def quote_string(value: str) -> str:
    """A single-quoted InfluxQL string literal that reads back as exactly `value`."""
    return "'" + value.translate(_STRING) + "'"


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
