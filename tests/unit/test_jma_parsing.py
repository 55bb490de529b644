"""The jma connector on every real sample: exact alerts, areas, grades, statuses and counts."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cityos.connectors.jma import JmaConnector
from cityos.connectors.jma.areas import heat_area_code
from cityos.connectors.jma.registry import type_code
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import (
    AlertGroupRecord,
    AlertRecord,
    CheckpointingConnector,
    Connector,
    ConnectorItem,
    RejectedRecord,
    SkippedRecord,
)

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
MESSAGES = JMA / "messages"
VPWW54 = MESSAGES / "15_14_01_170216_VPWW54.xml"
VPWW53 = MESSAGES / "15_08_05_130412_VPWW53.xml"
TSUNAMI = MESSAGES / "32-39_11_02_250206_VTSE41.xml"
RETRACTION = MESSAGES / "38-39_03_01_210805_VTSE41.xml"
HEAT = MESSAGES / "57_03_01_240401_VPFT50.xml"
LONG_FEED = JMA / "feeds" / "feed_extra_l_2022-07-14_kai3150.xml"
EQVOL_FEED = JMA / "feeds" / "feed_eqvol_2020-07-25_koga1020.xml"
DRILL = JMA / "derived" / "32-39_11_02_250206_VTSE41_drill.xml"
JST = timezone(timedelta(hours=9))


def read(source: Path | str) -> list[ConnectorItem]:
    return list(JmaConnector().fetch(str(source)))


def alerts(items: list[ConnectorItem]) -> list[AlertRecord]:
    return [item for item in items if isinstance(item, AlertRecord)]


def test_fixtures_are_the_samples_bytes_unchanged() -> None:
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (JMA / "PROVENANCE.md").read_text(), re.M)
    assert len(listed) == 8
    for digest, name in listed:
        assert hashlib.sha256((JMA / name).read_bytes()).hexdigest() == digest, name
    for name in (*(f"messages/{p.name}" for p in MESSAGES.iterdir()), "feeds/" + LONG_FEED.name):
        shared = JMA.parents[3] / "shared" / "samples" / "jma" / Path(name).name
        if shared.is_file():  # beside the repository when the samples are at hand
            assert shared.read_bytes() == (JMA / name).read_bytes()


def test_registered_under_its_name_and_resumable() -> None:
    connector = plugins.load(plugins.CONNECTORS, "jma")(Settings())
    assert isinstance(connector, Connector)
    assert isinstance(connector, CheckpointingConnector)
    assert connector.name == "jma"
    assert "気象庁" in connector.default_licence


def test_vpww54_tokyo_warnings_per_municipality() -> None:
    items = read(VPWW54)
    found = {(a.area, a.area_name, a.kind, a.kind_code, a.status) for a in alerts(items)}
    assert found == {
        ("1310400", "新宿区", "大雨特別警報", "33", "issued"),
        ("1311800", "荒川区", "大雨警報", "03", "issued"),
        ("1311800", "荒川区", "洪水警報", "04", "issued"),
        ("1312100", "足立区", "大雨警報", "03", "issued"),
        ("1312100", "足立区", "洪水警報", "04", "issued"),
        ("1330800", "奥多摩町", "大雨特別警報", "33", "issued"),
        ("1330800", "奥多摩町", "洪水警報", "04", "issued"),
    }
    assert len(alerts(items)) == 7
    # the 58 other municipalities (発表警報・注意報はなし) are listed with nothing in force
    empty = [item for item in items if isinstance(item, AlertGroupRecord)]
    assert len(empty) == 58
    assert {g.status for g in empty} == {"listed"}
    assert "jma:warning:1310100" in {g.group for g in empty}  # 千代田区
    first = alerts(items)[0]
    assert first.key == "jma:warning:1310400:33"
    assert first.group == "jma:warning:1310400"
    assert first.reported_at == datetime(2017, 1, 26, 17, 20, tzinfo=JST)
    assert first.attributes["condition"] == "土砂災害"
    assert first.headline is not None
    assert first.headline.startswith("【特別警報（大雨）】")
    assert first.message_id == VPWW54.name
    assert not first.drill
    assert first.rank == 0


def test_vpww53_nara_cancellations() -> None:
    items = read(VPWW53)
    records = alerts(items)
    assert len(records) == 41
    assert {r.status for r in records} == {"cancelled"}
    assert Counter((r.kind, r.kind_code) for r in records) == {
        ("大雨注意報", "10"): 17,
        ("大雨特別警報", "33"): 11,
        ("洪水注意報", "18"): 10,
        ("洪水警報", "04"): 3,
    }
    assert len({r.area for r in records}) == 28
    assert sum(isinstance(item, AlertGroupRecord) for item in items) == 12
    assert {r.rank for r in records} == {1}  # applied after a VPWW54 of the same time
    assert [(r.area_name, r.kind) for r in records if r.area == "2920100"] == [
        ("奈良市", "大雨注意報")
    ]


def test_vtse41_2011_grades_per_tsunami_area() -> None:
    records = alerts(read(TSUNAMI))
    assert len(records) == 43
    assert Counter((r.kind, r.kind_code) for r in records) == {
        ("大津波警報", "52"): 3,
        ("津波警報", "51"): 5,
        ("津波注意報", "62"): 15,
        ("津波予報（若干の海面変動）", "71"): 20,
    }
    assert {r.status for r in records} == {"issued"}  # every LastKind is 00 津波なし
    shizuoka = [r for r in records if r.area == "380"]
    assert len(shizuoka) == 1
    (alert,) = shizuoka
    assert (alert.kind, alert.kind_code, alert.area_name) == ("津波注意報", "62", "静岡県")
    assert alert.key == "jma:tsunami:20110311144640:380:62"
    assert alert.group == "jma:tsunami:20110311144640:380"
    assert alert.reported_at == datetime(2011, 3, 11, 14, 49, tzinfo=JST)
    assert alert.valid_until is None
    assert alert.attributes["first_arrival"] == "2011-03-11T15:30:00+09:00"
    assert {r.area for r in records if r.kind_code == "52"} == {"210", "220", "250"}
    iwate = next(r for r in records if r.area == "210")
    assert iwate.attributes["jma_code"] == "53"
    assert iwate.attributes["max_height"] == "巨大"


def test_vtse41_retraction_withdraws_the_whole_event() -> None:
    assert read(RETRACTION) == [
        AlertGroupRecord(
            group="jma:tsunami:20210805103531",
            source="jma",
            status="cancelled",
            drill=False,
            reported_at=datetime(2021, 8, 5, 12, 56, tzinfo=JST),
            message_id=RETRACTION.name,
            prefix=True,
        )
    ]


def test_vpft50_heat_alert_for_saitama_valid_until_the_end_of_its_day() -> None:
    (alert,) = read(HEAT)
    assert isinstance(alert, AlertRecord)
    assert (alert.area, alert.area_name, alert.kind) == ("110000", "埼玉県", "熱中症警戒アラート")
    assert alert.status == "issued"
    assert alert.kind_code is None
    assert alert.key == "jma:heat:110000:2024-08-11"
    assert alert.valid_until == datetime(2024, 8, 12, 0, 0, tzinfo=JST)
    assert alert.headline is not None
    assert alert.headline.startswith("埼玉県では、今日（１１日）は")


def test_drill_is_marked_and_keyed_apart() -> None:
    records = alerts(read(DRILL))
    assert len(records) == 43
    assert all(r.drill for r in records)
    assert all(r.key.startswith("jma:drill:tsunami:") for r in records)


def test_long_feed_counts_handled_and_skipped_types() -> None:
    # The feed alone: its 1,591 handled messages (1,518 VPWW54, 73 VPFT50) are not beside it.
    items = read(LONG_FEED)
    assert len(items) == 3647
    skipped = Counter(item.kind for item in items if isinstance(item, SkippedRecord))
    assert skipped == {
        "VPWW53": 1518,  # each the twin of a VPWW54 of the same office and time
        "VPFJ50": 320,
        "VPCJ50": 85,
        "VXWW50": 85,
        "VPOA50": 16,
        "VPZJ50": 9,
        "VXKO52": 7,
        "VPAW51": 4,
        "VXKO54": 4,
        "VXKO72": 4,
        "VXKO51": 2,
        "VXKO53": 2,
    }
    rejected = [item for item in items if isinstance(item, RejectedRecord)]
    assert len(rejected) == 1591
    assert Counter(re.search(r"_(VP\w{4})_", r.reason)[1] for r in rejected) == {  # type: ignore[index]
        "VPWW54": 1518,
        "VPFT50": 73,
    }
    assert all("not available beside the feed file" in r.reason for r in rejected)


def test_long_feed_reads_messages_found_beside_it(tmp_path: Path) -> None:
    feed = tmp_path / LONG_FEED.name
    feed.write_bytes(LONG_FEED.read_bytes())
    (tmp_path / "data").mkdir()
    # A message file under the name of one entry: found in data/ beside the feed.
    name = "20220714073621_0_VPFT50_440000.xml"
    (tmp_path / "data" / name).write_bytes(HEAT.read_bytes())
    items = read(feed)
    assert len([item for item in items if isinstance(item, RejectedRecord)]) == 1590
    (alert,) = alerts(items)
    assert alert.message_id.endswith(name)
    assert alert.area == "110000"


def test_eqvol_feed_skips_every_entry_by_title() -> None:
    items = read(EQVOL_FEED)
    assert all(isinstance(item, SkippedRecord) for item in items)
    assert Counter(item.kind for item in items if isinstance(item, SkippedRecord)) == {
        "降灰予報（定時）": 16,
        "噴火に関する火山観測報": 3,
        "震源・震度に関する情報": 2,
        "震源に関する情報": 1,
        "震度速報": 1,
    }


def test_directory_of_messages(tmp_path: Path) -> None:
    items = read(MESSAGES)
    assert len(alerts(items)) == 7 + 41 + 43 + 1
    assert sum(isinstance(item, AlertGroupRecord) for item in items) == 58 + 12 + 1
    assert not [item for item in items if isinstance(item, RejectedRecord | SkippedRecord)]
    (tmp_path / "feed.xml").write_bytes(EQVOL_FEED.read_bytes())
    (tmp_path / "notes.txt").write_text("not read")
    assert [type(item) for item in read(tmp_path)] == [SkippedRecord]  # feeds are not followed


def test_missing_source_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read(tmp_path / "absent.xml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"no \*\.xml"):
        read(tmp_path / "empty")


def test_test_messages_and_unknown_types_are_skipped(tmp_path: Path) -> None:
    text = HEAT.read_text(encoding="utf-8")
    (tmp_path / "test.xml").write_text(text.replace("<Status>通常", "<Status>試験"), "utf-8")
    (tmp_path / "other.xml").write_text(
        text.replace("<Title>熱中症警戒アラート", "<Title>府県気象情報"), "utf-8"
    )
    kinds = sorted(item.kind for item in read(tmp_path) if isinstance(item, SkippedRecord))
    assert kinds == ["府県気象情報", "試験"]


@pytest.mark.parametrize(
    ("title", "ref", "code"),
    [
        ("気象警報・注意報（Ｈ２７）", "x.xml", "VPWW54"),
        ("府県気象情報", "https://x/data/20220714074044_0_VPFJ50_080000.xml", "VPFJ50"),
        ("震度速報", "http://x/data/0341a170.xml", "震度速報"),
        ("熱中症特別警戒アラート", "a.xml", "VPFT50"),
    ],
)
def test_type_code(title: str, ref: str, code: str) -> None:
    assert type_code(title=title, ref=ref) == code


def test_heat_area_codes() -> None:
    assert heat_area_code("静岡県") == "220000"
    assert heat_area_code("青森県") == "020000"
    assert heat_area_code("宮崎県") == "450000"
    assert heat_area_code("奄美地方（鹿児島県）") == "460040"
    assert heat_area_code("鹿児島県(奄美地方を除く)") == "460100"
    assert heat_area_code("沖縄本島地方") == "471000"
    assert heat_area_code("どこか") is None
