"""Cross-source matching: the same place from GSI data and a municipal list is one site.

Two rows of the same kind from different datasets describe the same place when their 共通ID
(the national evacuation-site id) is equal; when either lacks one, when their names are the
same (NFKC-folded, spaces removed, case-folded) and they lie less than `MATCH_RADIUS_M` apart.
A site takes at most one row per dataset: within one source, rows are keyed by the source's own
id and never merged with each other. A row keeps the site it got when first imported.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from cityos.platform.domain.model import Facility
from cityos.platform.facilities.service import great_circle_m

MATCH_RADIUS_M = 50.0
COMMON_ID = "共通ID"
"""Attribute holding the national id of an evacuation site (GSI data and some municipal lists)."""
_SPACES = re.compile(r"\s+")


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


def _same_place(incoming: Facility, candidate: Facility) -> bool:
    ids = common_id(incoming), common_id(candidate)
    if ids[0] is not None and ids[1] is not None:
        return ids[0] == ids[1]
    if name_key(incoming.name) != name_key(candidate.name):
        return False
    return great_circle_m(incoming.location, candidate.location) < MATCH_RADIUS_M


class SiteIndex:
    """The rows of other datasets that incoming rows may join, looked up by id and by name."""

    def __init__(self, others: Iterable[Facility]) -> None:
        self._by_id: dict[tuple[str, str], list[Facility]] = defaultdict(list)
        self._by_name: dict[tuple[str, str], list[Facility]] = defaultdict(list)
        for facility in others:
            if facility.withdrawn:
                continue
            identifier = common_id(facility)
            if identifier is not None:
                self._by_id[facility.kind, identifier].append(facility)
            self._by_name[facility.kind, name_key(facility.name)].append(facility)

    def match(self, incoming: Facility, *, taken: set[str]) -> Facility | None:
        """The nearest row of another dataset describing the same place, on a free site."""
        identifier = common_id(incoming)
        candidates = list(self._by_id.get((incoming.kind, identifier), ())) if identifier else []
        candidates += self._by_name.get((incoming.kind, name_key(incoming.name)), ())
        matches = [
            candidate
            for candidate in candidates
            if candidate.site not in taken and _same_place(incoming, candidate)
        ]
        if not matches:
            return None
        return min(
            matches,
            key=lambda c: (great_circle_m(incoming.location, c.location), c.site, c.id),
        )


def assign_sites(
    incoming: Sequence[Facility], *, stored: Sequence[Facility], dataset_id: str
) -> tuple[list[Facility], int]:
    """Give each incoming row of `dataset_id` its site; and how many joined another source's.

    `stored` is every stored row of the kinds concerned (any dataset, withdrawn too). A row
    already stored keeps its site; a new row joins the site of a matching row of another
    dataset, else it is a site of its own.
    """
    own: Mapping[str, Facility] = {f.source_key: f for f in stored if f.dataset_id == dataset_id}
    index = SiteIndex(f for f in stored if f.dataset_id != dataset_id)
    taken = {facility.site for facility in own.values()}
    assigned: list[Facility] = []
    merged = 0
    for facility in incoming:
        previous = own.get(facility.source_key)
        if previous is not None:
            assigned.append(replace(facility, site_id=previous.site))
            continue
        match = index.match(facility, taken=taken)
        if match is None:
            site = facility.id
        else:
            site = match.site
            merged += 1
        taken.add(site)
        assigned.append(replace(facility, site_id=site))
    return assigned, merged
