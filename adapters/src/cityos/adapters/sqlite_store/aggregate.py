"""Windowed aggregates in one SQLite statement: window keys by overflow-free integer arithmetic.

A window's key is floor((t - offset) / every) for epoch nanoseconds t. SQLite's `/` truncates
toward zero and silently turns an overflowing integer into a REAL, so the key is computed
without ever forming `t - offset`: with offset normalised into [0, every), q = t / every and
r = t % every (both truncated, so r has the sign of t and |r| < every),

    floor((t - offset) / every) = q + (0 if r >= offset else -1 if r >= offset - every else -2)

and every operand stays inside a signed 64-bit integer, for times before 1970 too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import AGGREGATE_FUNCTIONS

MAX_EVERY_NS = 2**62  # ~146 years; InfluxDB durations are 64-bit nanoseconds too
_INT64_MIN = -(2**63)

_KEY = (
    "time_ns / :every + CASE WHEN time_ns % :every >= :offset THEN 0"
    " WHEN time_ns % :every >= :offset_less_every THEN -1 ELSE -2 END"
)

# Columns of the grouped subquery, by function; first/last join the rows holding the earliest
# and latest time of the window back by primary key (one seek each, same statement).
_GROUPED = {
    "count": "count(*) AS n",
    "sum": "sum(value) AS s",
    "mean": "avg(value) AS mean",
    "min": "min(value) AS lo",
    "max": "max(value) AS hi",
    "first": "min(time_ns) AS t_first",
    "last": "max(time_ns) AS t_last",
}
_SELECTED = {
    "count": "w.n",
    "sum": "w.s",
    "mean": "w.mean",
    "min": "w.lo",
    "max": "w.hi",
    "first": "f.value",
    "last": "l.value",
}
_JOINS = {
    "first": " JOIN observations AS f ON f.sensor_id = :sensor_id AND f.time_ns = w.t_first",
    "last": " JOIN observations AS l ON l.sensor_id = :sensor_id AND l.time_ns = w.t_last",
}


@dataclass(frozen=True, slots=True)
class WindowQuery:
    """One aggregate statement, its parameters, and how to turn keys back into window starts."""

    sql: str
    params: dict[str, object]
    functions: tuple[str, ...]
    every_ns: int
    offset_ns: int

    def window_start_ns(self, key: int) -> int:
        """Epoch nanoseconds at which the window with this key starts."""
        return self.offset_ns + key * self.every_ns


def build_query(
    *,
    sensor_id: str,
    start_ns: int,
    end_ns: int,
    every_ns: int,
    offset_ns: int,
    functions: Iterable[str],
) -> WindowQuery:
    """The single statement computing `functions` per window for one sensor in [start, end)."""
    wanted = tuple(sorted(set(functions)))
    unknown = set(wanted) - AGGREGATE_FUNCTIONS
    if unknown or not wanted:
        raise InvalidInput(
            f"aggregate functions must be a non-empty subset of {sorted(AGGREGATE_FUNCTIONS)}"
            f" (got {sorted(set(functions))})",
            field="aggregate",
        )
    if not 0 < every_ns <= MAX_EVERY_NS:
        raise InvalidInput(f"every must be positive and at most 2**62 ns (got {every_ns} ns)")
    offset = offset_ns % every_ns
    grouped = ", ".join(_GROUPED[name] for name in wanted)
    selected = ", ".join(_SELECTED[name] for name in wanted)
    joins = "".join(_JOINS.get(name, "") for name in wanted)
    # Only the constant fragments above go into the text; every value is a bound parameter.
    sql = (
        f"SELECT w.k, {selected} FROM ("  # noqa: S608
        f"SELECT {_KEY} AS k, {grouped} FROM observations"
        " WHERE sensor_id = :sensor_id AND time_ns >= :start AND time_ns < :end GROUP BY k"
        f") AS w{joins} ORDER BY w.k"
    )
    params: dict[str, object] = {
        "sensor_id": sensor_id,
        "start": start_ns,
        "end": end_ns,
        "every": every_ns,
        "offset": offset,
        # r >= offset - every; below the int64 range every r qualifies, so clamp it there.
        "offset_less_every": max(offset - every_ns, _INT64_MIN),
    }
    return WindowQuery(sql, params, wanted, every_ns, offset)
