"""Cross-source matching: the same place from GSI data and a municipal list is one site.

Two rows of the same kind from different datasets describe the same place when their 共通ID
(the national evacuation-site id) is equal; when either lacks one, when their names are the
same (NFKC-folded, spaces removed, case-folded) and they lie less than `MATCH_RADIUS_M` apart.

Sites are worked out from the rows as they are now, every time (nothing is stored), so a row
that moves or is renamed leaves its old site, and withdrawn rows take no part. Candidate pairs
are joined best first — 共通ID matches, then the nearest name matches — under two rules: a
site holds at most one row per dataset (rows of one source, keyed by its own NO / ID, are
never merged with each other), and never two different 共通IDs. The answer does not depend on
the order the rows were imported in.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import combinations

from cityos.platform.domain.model import Facility
from cityos.platform.facilities.geo import great_circle_m

MATCH_RADIUS_M = 50.0
COMMON_ID = "共通ID"
"""Attribute holding the national id of an evacuation site (GSI data and some municipal lists)."""
_SPACES = re.compile(r"\s+")
_NEVER = datetime.max.replace(tzinfo=UTC)
_CELL_DEG = 0.0005  # ~55 m of latitude; a cell spans twice that in longitude (~50 m at 60° N)
# each cell meets itself and the half of its neighbours that come after it, so once per pair
_NEIGHBOURS = ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1))


def common_id(facility: Facility) -> str | None:
    """The facility's 共通ID, normalised (NFKC, trimmed, upper case), if it has one."""
    raw = facility.attributes.get(COMMON_ID)
    if raw is None:
        return None
    value = unicodedata.normalize("NFKC", str(raw)).strip().upper()
    return value or None


def name_key(name: str) -> str:
    """A name as compared across sources: NFKC, no spaces, case-folded."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", name)).casefold()


def _pair(a: Facility, b: Facility) -> tuple[int, float] | None:
    """How well two rows match — (0 for a 共通ID match else 1, metres apart) — or None."""
    if a.dataset_id == b.dataset_id or a.kind != b.kind:
        return None
    ids = common_id(a), common_id(b)
    distance = great_circle_m(a.location, b.location)
    if ids[0] is not None and ids[1] is not None:
        return (0, distance) if ids[0] == ids[1] else None
    if name_key(a.name) != name_key(b.name) or distance >= MATCH_RADIUS_M:
        return None
    return 1, distance


def _candidates(rows: Sequence[Facility]) -> list[tuple[tuple[int, float, str, str], int, int]]:
    """Every matching pair of rows (by position), best first; only rows sharing a key meet."""
    buckets: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        identifier = common_id(row)
        if identifier is not None:
            buckets["id", row.kind, identifier].append(index)
        buckets["name", row.kind, name_key(row.name)].append(index)
    pairs: dict[tuple[int, int], tuple[int, float, str, str]] = {}
    for (by, _, _), members in buckets.items():
        meeting = combinations(members, 2) if by == "id" else _nearby(rows, members)
        for a, b in meeting:
            i, j = min(a, b), max(a, b)
            quality = _pair(rows[i], rows[j])
            if quality is not None:
                pairs[i, j] = (*quality, rows[i].id, rows[j].id)
    return sorted((rank, i, j) for (i, j), rank in pairs.items())


def _nearby(rows: Sequence[Facility], members: list[int]) -> Iterable[tuple[int, int]]:
    """Pairs of rows in neighbouring grid cells (~55 m), not every pair of one name."""
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index in members:
        cells[_cell(rows[index])].append(index)
    for (lat, lon), here in cells.items():
        for d_lat, d_lon in _NEIGHBOURS:
            there = cells.get((lat + d_lat, lon + d_lon))
            if there is None:
                continue
            if (d_lat, d_lon) == (0, 0):
                yield from combinations(here, 2)
            else:
                yield from ((i, j) for i in here for j in there)


def _cell(row: Facility) -> tuple[int, int]:
    """The row's grid cell: wider than MATCH_RADIUS_M in both directions south of 60° N."""
    return math.floor(row.location.lat / _CELL_DEG), math.floor(row.location.lon / (2 * _CELL_DEG))


class _Sites:
    """Union-find over row positions that keeps each site's datasets and 共通IDs."""

    def __init__(self, rows: Sequence[Facility]) -> None:
        self.parent = list(range(len(rows)))
        self.datasets = [{row.dataset_id} for row in rows]
        self.ids = [{common_id(row)} - {None} for row in rows]

    def find(self, index: int) -> int:
        """The representative position of the site holding `index`."""
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def join(self, a: int, b: int) -> bool:
        """Merge two sites unless that breaks a rule; whether they are one site now."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        if self.datasets[a] & self.datasets[b] or len(self.ids[a] | self.ids[b]) > 1:
            return False
        self.parent[b] = a
        self.datasets[a] |= self.datasets[b]
        self.ids[a] |= self.ids[b]
        return True


def _first_imported(row: Facility) -> tuple[datetime, str]:
    return row.imported_at or _NEVER, row.id


def group_sites(facilities: Iterable[Facility]) -> list[tuple[Facility, ...]]:
    """The rows grouped by the place they describe; each site's first-imported row first.

    Sites come in the order of their first rows' ids. Withdrawn rows are left out.
    """
    rows = sorted((f for f in facilities if not f.withdrawn), key=lambda f: f.id)
    sites = _Sites(rows)
    for _, i, j in _candidates(rows):
        sites.join(i, j)
    groups: dict[int, list[Facility]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[sites.find(index)].append(row)
    ordered = [tuple(sorted(group, key=_first_imported)) for group in groups.values()]
    return sorted(ordered, key=lambda site: site[0].id)


def joining_rows(incoming: Sequence[Facility], stored: Iterable[Facility]) -> int:
    """How many of one dataset's incoming rows describe a place another dataset also has."""
    if not incoming:
        return 0
    dataset = incoming[0].dataset_id
    others = [f for f in stored if f.dataset_id != dataset]
    merged = 0
    for site in group_sites([*others, *incoming]):
        if len(site) > 1:
            merged += sum(1 for row in site if row.dataset_id == dataset)
    return merged
