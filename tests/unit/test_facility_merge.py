"""Cross-source matching rules (facilities/merge.py): 共通ID first, else name within 50 m."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.platform.domain.model import Domain, Facility, GeoPoint
from cityos.platform.facilities.merge import (
    MATCH_RADIUS_M,
    common_id,
    group_sites,
    joining_rows,
    name_key,
)

ORIGIN = (34.669434, 138.135201)
METRE_LAT = 1 / 111_195.0  # degrees of latitude per metre (mean Earth radius)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def place(
    dataset: str,
    key: str,
    name: str = "浜岡北小学校\u3000運動場",
    *,
    north_m: float = 0.0,
    kind: str = "evacuation_site",
    common: str | None = None,
    withdrawn: bool = False,
    imported: int = 0,
) -> Facility:
    attributes: dict[str, Any] = {} if common is None else {"共通ID": common}
    return Facility(
        id=f"{dataset}:{key}",
        kind=kind,
        name=name,
        location=GeoPoint(ORIGIN[0] + north_m * METRE_LAT, ORIGIN[1]),
        domain=Domain.DISASTER,
        dataset_id=dataset,
        source_key=key,
        attributes=attributes,
        withdrawn=withdrawn,
        imported_at=T0 + timedelta(minutes=imported),
    )


def sites(*rows: Facility) -> list[list[str]]:
    return [[row.id for row in site] for site in group_sites(rows)]


def test_names_compare_folded() -> None:
    assert name_key("浜岡北小学校\u3000運動場") == name_key("浜岡北小学校 運動場")
    assert name_key("ＡＢＣ広場") == name_key("abc広場")
    assert name_key("御前崎公園") != name_key("御前崎公園広場")


def test_common_id_is_normalised() -> None:
    assert common_id(place("gsi", "1", common=" ｅ2222300001201 ")) == "E2222300001201"
    assert common_id(place("gsi", "1", common="")) is None
    assert common_id(place("gsi", "1")) is None


def test_same_name_within_the_radius_is_one_site_main_row_first_imported() -> None:
    gsi, csv = place("gsi", "E1", imported=0), place("csv", "1", "浜岡北小学校 運動場", north_m=20)
    assert sites(gsi, replace_time(csv, 5)) == [["gsi:E1", "csv:1"]]
    assert sites(replace_time(gsi, 9), replace_time(csv, 5)) == [["csv:1", "gsi:E1"]]
    inside = place("csv", "1", north_m=MATCH_RADIUS_M - 1, imported=1)
    outside = place("csv", "1", north_m=MATCH_RADIUS_M + 1)
    assert sites(gsi, inside) == [["gsi:E1", "csv:1"]]
    assert sites(gsi, outside) == [["csv:1"], ["gsi:E1"]]


def replace_time(row: Facility, minutes: int) -> Facility:
    return place(
        row.dataset_id,
        row.source_key,
        row.name,
        north_m=(row.location.lat - ORIGIN[0]) / METRE_LAT,
        common=common_id(row),
        imported=minutes,
    )


def test_other_name_or_kind_is_another_place() -> None:
    gsi = place("gsi", "E1")
    assert sites(gsi, place("csv", "1", "浜岡北小学校 体育館")) == [["csv:1"], ["gsi:E1"]]
    assert sites(gsi, place("csv", "1", kind="shelter")) == [["csv:1"], ["gsi:E1"]]


def test_common_id_decides_when_both_have_one() -> None:
    gsi = place("gsi", "E1", common="E2222300001201")
    far_same_id = place("csv", "1", "別の名前", north_m=300, common="E2222300001201")
    near_other_id = place("pref", "2", north_m=5, common="E2222300002201")
    assert sites(gsi, far_same_id, near_other_id) == [["csv:1", "gsi:E1"], ["pref:2"]]
    # one side without an id: name and distance decide
    assert sites(gsi, place("csv", "3", north_m=5)) == [["csv:3", "gsi:E1"]]


def test_a_site_never_holds_two_common_ids_even_through_a_row_without_one() -> None:
    a = place("a", "E1", common="E2222300001201", imported=0)
    b = place("b", "1", north_m=10, imported=1)  # no id, same name: matches both
    c = place("c", "E2", north_m=5, common="E2222300002201", imported=2)
    grouped = sites(a, b, c)
    assert sorted(map(len, grouped)) == [1, 2]
    assert not any({"a:E1", "c:E2"} <= set(site) for site in grouped)


def test_a_common_id_match_beats_a_nearer_name_match() -> None:
    a = place("a", "E1", north_m=60, common="E2222300001201")
    a2 = place("a", "x", north_m=5)  # same dataset as a: same name, nearer, no id
    b = place("b", "E1", common="E2222300001201")
    assert sites(a, a2, b) == [["a:E1", "b:E1"], ["a:x"]]


def test_a_site_takes_one_row_per_dataset_and_the_nearest_wins_whatever_the_order() -> None:
    gsi = place("gsi", "E1")
    far, near = place("csv", "1", north_m=45), place("csv", "2", north_m=1)
    assert sites(gsi, far, near) == [["csv:1"], ["csv:2", "gsi:E1"]]
    assert sites(near, far, gsi) == [["csv:1"], ["csv:2", "gsi:E1"]]


def test_withdrawn_rows_take_no_part() -> None:
    gsi = place("gsi", "E1")
    assert sites(gsi, place("csv", "1", withdrawn=True)) == [["gsi:E1"]]
    # a renumbered row of the same place joins it again
    old, new = place("csv", "1", withdrawn=True), place("csv", "101", north_m=3)
    assert sites(gsi, old, new) == [["csv:101", "gsi:E1"]]


def test_the_grouping_does_not_depend_on_the_order_of_the_rows() -> None:
    rng = random.Random(7)
    rows = [
        place(f"d{rng.randrange(4)}", str(i), rng.choice(["甲", "乙"]), north_m=rng.uniform(0, 200))
        for i in range(60)
    ]
    expected = sites(*rows)
    for _ in range(5):
        rng.shuffle(rows)
        assert sites(*rows) == expected


def test_joining_rows_counts_this_datasets_rows_on_shared_sites() -> None:
    gsi = [place("gsi", "E1"), place("gsi", "E2", "御前崎公園広場")]
    incoming = [place("csv", "1", north_m=20), place("csv", "2", "市役所")]
    assert joining_rows(incoming, gsi) == 1
    assert joining_rows(incoming, [*gsi, *incoming]) == 1  # its own stored rows do not count
    assert joining_rows([], gsi) == 0


def brute_force(rows: list[Facility]) -> list[list[str]]:
    """The same joining over every pair of rows (no buckets, no grid)."""
    from cityos.platform.facilities import merge

    ordered = sorted((f for f in rows if not f.withdrawn), key=lambda f: f.id)
    pairs = []
    for i, j in itertools.combinations(range(len(ordered)), 2):
        quality = merge._pair(ordered[i], ordered[j])
        if quality is not None:
            pairs.append(((*quality, ordered[i].id, ordered[j].id), i, j))
    sites = merge._Sites(ordered)
    for _, i, j in sorted(pairs):
        sites.join(i, j)
    groups: dict[int, list[str]] = {}
    for index, row in enumerate(ordered):
        groups.setdefault(sites.find(index), []).append(row.id)
    return sorted(sorted(group) for group in groups.values())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),  # dataset
            st.sampled_from(["甲", "乙"]),  # name
            st.floats(-120, 120),  # metres north
            st.floats(-120, 120),  # metres east
            st.sampled_from([None, "E1", "E2"]),  # 共通ID
        ),
        max_size=25,
    )
)
def test_the_grid_finds_every_pair_that_all_pairs_would(
    specs: list[tuple[str, str, float, float, str | None]],
) -> None:
    rows = [
        Facility(
            id=f"{dataset}:{i}",
            kind="evacuation_site",
            name=name,
            location=GeoPoint(35.0 + north * METRE_LAT, 139.0 + east * METRE_LAT * 1.22),
            domain=Domain.DISASTER,
            dataset_id=dataset,
            source_key=str(i),
            attributes={} if common is None else {"共通ID": common},
        )
        for i, (dataset, name, north, east, common) in enumerate(specs)
    ]
    assert sorted(sorted(site) for site in sites(*rows)) == brute_force(rows)
