"""Cross-source matching rules (facilities/merge.py): 共通ID first, else name within 50 m."""

from __future__ import annotations

from typing import Any

from cityos.platform.domain.model import Domain, Facility, GeoPoint
from cityos.platform.facilities.merge import (
    MATCH_RADIUS_M,
    assign_sites,
    common_id,
    name_key,
)

ORIGIN = (34.669434, 138.135201)
METRE_LAT = 1 / 111_195.0  # degrees of latitude per metre (mean Earth radius)


def place(
    dataset: str,
    key: str,
    name: str = "浜岡北小学校\u3000運動場",
    *,
    north_m: float = 0.0,
    kind: str = "evacuation_site",
    common: str | None = None,
    site: str | None = None,
    withdrawn: bool = False,
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
        site_id=site,
        withdrawn=withdrawn,
    )


def sites(incoming: list[Facility], stored: list[Facility], dataset: str = "csv") -> list[str]:
    assigned, _ = assign_sites(incoming, stored=stored, dataset_id=dataset)
    return [facility.site for facility in assigned]


def test_names_compare_folded() -> None:
    assert name_key("浜岡北小学校\u3000運動場") == name_key("浜岡北小学校 運動場")
    assert name_key("ＡＢＣ広場") == name_key("abc広場")
    assert name_key("御前崎公園") != name_key("御前崎公園広場")


def test_common_id_is_normalised() -> None:
    assert common_id(place("gsi", "1", common=" ｅ2222300001201 ")) == "E2222300001201"
    assert common_id(place("gsi", "1", common="")) is None
    assert common_id(place("gsi", "1")) is None


def test_same_name_within_the_radius_joins_the_site() -> None:
    gsi = place("gsi", "E1")
    assert sites([place("csv", "1", "浜岡北小学校 運動場", north_m=20)], [gsi]) == ["gsi:E1"]
    inside = place("csv", "1", north_m=MATCH_RADIUS_M - 1)
    outside = place("csv", "1", north_m=MATCH_RADIUS_M + 1)
    assert sites([inside], [gsi]) == ["gsi:E1"]
    assert sites([outside], [gsi]) == ["csv:1"]


def test_other_name_or_kind_is_another_place() -> None:
    gsi = place("gsi", "E1")
    assert sites([place("csv", "1", "浜岡北小学校 体育館")], [gsi]) == ["csv:1"]
    assert sites([place("csv", "1", kind="shelter")], [gsi]) == ["csv:1"]


def test_common_id_decides_when_both_have_one() -> None:
    gsi = place("gsi", "E1", common="E2222300001201")
    far_same_id = place("csv", "1", "別の名前", north_m=300, common="E2222300001201")
    near_other_id = place("csv", "2", north_m=5, common="E2222300002201")
    assert sites([far_same_id, near_other_id], [gsi]) == ["gsi:E1", "csv:2"]
    # one side without an id: name and distance decide
    assert sites([place("csv", "3", north_m=5)], [gsi]) == ["gsi:E1"]


def test_a_site_takes_one_row_per_dataset_and_the_nearest_wins() -> None:
    gsi = place("gsi", "E1")
    near, nearer = place("csv", "1", north_m=30), place("csv", "2", north_m=10)
    assigned, merged = assign_sites([near, nearer], stored=[gsi], dataset_id="csv")
    # rows are matched in source order: the first takes the site, the second stays apart
    assert [f.site for f in assigned] == ["gsi:E1", "csv:2"]
    assert merged == 1
    # the nearest candidate site wins when several match
    other = place("pref", "9", north_m=15)
    assert sites([place("csv", "1", north_m=12)], [gsi, other]) == ["pref:9"]


def test_stored_rows_keep_their_site_and_withdrawn_rows_are_not_joined() -> None:
    gsi = place("gsi", "E1")
    mine = place("csv", "1", north_m=10, site="elsewhere")
    assert sites([place("csv", "1", north_m=10)], [gsi, mine]) == ["elsewhere"]
    gone = place("gsi", "E1", withdrawn=True)
    assert sites([place("csv", "1")], [gone]) == ["csv:1"]


def test_a_site_already_held_by_this_dataset_is_not_joined_again() -> None:
    gsi = place("gsi", "E1")
    mine = place("csv", "1", north_m=10, site="gsi:E1")
    assert sites([place("csv", "1", north_m=10), place("csv", "2")], [gsi, mine]) == [
        "gsi:E1",
        "csv:2",
    ]
