"""Importing JMA samples into the SQL catalog: exact counts, idempotence, provenance, queries."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from cityos.adapters.sql.catalog import SqlCatalog, create_catalog
from cityos.connectors.jma import JmaConnector
from cityos.platform.alerts.service import AlertQuery, find_alerts
from cityos.platform.alerts.types import ALERTS_DESCRIPTION, AlertType, resolve_alerts
from cityos.platform.api.graphql.scalars import SCALAR_MAP
from cityos.platform.config import Settings
from cityos.platform.imports import ImportSummary, import_facilities

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
MESSAGES = JMA / "messages"
JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 7, 1, 9, 0, tzinfo=JST)
DONE_QUERY = (
    '{ alerts(active: true, area: "380", asOf: "2011-03-11T15:00:00+09:00") '
    "{ id source kind kindCode area areaName status drill issuedAt validUntil headline } }"
)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    cat = create_catalog_for(tmp_path)
    yield cat
    cat.close()


def create_catalog_for(tmp_path: Path) -> SqlCatalog:
    from cityos.platform.config import Settings

    cat = create_catalog(Settings(data_dir=tmp_path / "data"))
    cat.migrate()
    return cat


def run(catalog: SqlCatalog, source: Path | str, **options: Any) -> ImportSummary:
    return import_facilities(
        catalog=catalog, connector=JmaConnector(), source=str(source), now=NOW, **options
    )


def counts(summary: ImportSummary) -> tuple[int, ...]:
    return (
        summary.read,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.rejected,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("15_14_01_170216_VPWW54.xml", (7, 7, 0, 0, 0, 0)),
        ("15_08_05_130412_VPWW53.xml", (41, 41, 0, 0, 0, 0)),
        ("32-39_11_02_250206_VTSE41.xml", (43, 43, 0, 0, 0, 0)),
        ("38-39_03_01_210805_VTSE41.xml", (0, 0, 0, 0, 0, 0)),
        ("57_03_01_240401_VPFT50.xml", (1, 1, 0, 0, 0, 0)),
    ],
)
def test_each_sample_imports_with_exact_counts(
    catalog: SqlCatalog, name: str, expected: tuple[int, ...]
) -> None:
    assert counts(run(catalog, MESSAGES / name)) == expected
    inserted = expected[1]
    assert counts(run(catalog, MESSAGES / name)) == (expected[0], 0, 0, inserted, 0, 0)


def test_directory_import_is_idempotent_with_provenance(catalog: SqlCatalog) -> None:
    first = run(catalog, MESSAGES)
    assert counts(first) == (92, 92, 0, 0, 0, 0)
    assert first.datasets == ("jma:messages",)
    (dataset,) = catalog.list_datasets()
    assert dataset.source == str(MESSAGES)
    assert dataset.licence.startswith("気象庁ホームページ利用規約")
    assert dataset.public
    assert dataset.row_count == 92
    assert dataset.connector == "jma"
    assert dataset.fetched_at == NOW
    digest = hashlib.sha256()
    for path in sorted(MESSAGES.iterdir()):
        digest.update(f"{path.name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    assert dataset.checksum == f"sha256:{digest.hexdigest()}"
    before = catalog.list_alerts(limit=1000)
    assert counts(run(catalog, MESSAGES)) == (92, 0, 0, 92, 0, 0)
    assert catalog.list_alerts(limit=1000) == before
    assert {a.status for a in before} == {"issued", "cancelled"}
    assert sum(a.status == "cancelled" for a in before) == 41


def test_done_means_shizuoka_tsunami_advisory_active_on_2011_03_11(catalog: SqlCatalog) -> None:
    run(catalog, MESSAGES)
    result = graphql(catalog, DONE_QUERY)
    assert result.errors is None
    assert result.data == {
        "alerts": [
            {
                "id": "jma:tsunami:20110311144640:380:62@20110311T054900Z",
                "source": "jma",
                "kind": "津波注意報",
                "kindCode": "62",
                "area": "380",
                "areaName": "静岡県",
                "status": "issued",
                "drill": False,
                "issuedAt": "2011-03-11T14:49:00+09:00",
                "validUntil": None,
                "headline": "東日本大震災クラスの津波が来襲します。\n"
                "大津波警報・津波警報を発表しました。\nただちに避難してください。",
            }
        ]
    }


def test_active_as_of_semantics_on_the_samples(catalog: SqlCatalog) -> None:
    run(catalog, MESSAGES)

    def active(area: str | None, as_of: str) -> list[str]:
        query = AlertQuery(active=True, area=area, as_of=datetime.fromisoformat(as_of))
        return sorted(f"{a.area}:{a.kind_code}" for a in find_alerts(catalog=catalog, query=query))

    assert active("380", "2011-03-11T14:48:59+09:00") == []  # not issued yet
    assert len(active(None, "2011-03-11T15:00:00+09:00")) == 43
    assert active("380", "2011-03-12T14:48:59+09:00") == ["380:62"]  # within the maximum age
    assert active("380", "2011-03-12T14:49:00+09:00") == []  # past it: no restatement
    assert active("110000", "2024-08-11T23:59:59+09:00") == ["110000:None"]
    assert active("110000", "2024-08-12T00:00:00+09:00") == []  # the heat alert's own validity
    assert active("1310400", "2017-01-26T18:00:00+09:00") == ["1310400:33"]
    assert active("2920100", "2011-09-07T12:00:00+09:00") == []  # cancellations
    everything = find_alerts(catalog=catalog, query=AlertQuery(), now=NOW)
    assert len(everything) == 92
    assert [a.issued_at for a in everything] == sorted(
        (a.issued_at for a in everything), reverse=True
    )
    inactive = AlertQuery(active=False, as_of=datetime(2011, 3, 11, 15, 0, tzinfo=JST))
    assert find_alerts(catalog=catalog, query=inactive) == []  # later ones are not issued yet


def test_drills_are_marked_never_active_and_apart(catalog: SqlCatalog) -> None:
    run(catalog, MESSAGES / "32-39_11_02_250206_VTSE41.xml")
    drill = run(catalog, JMA / "derived" / "32-39_11_02_250206_VTSE41_drill.xml")
    assert counts(drill) == (43, 43, 0, 0, 0, 0)  # the drill did not touch the real alerts
    as_of = datetime(2011, 3, 11, 15, 0, tzinfo=JST)
    shown = find_alerts(catalog=catalog, query=AlertQuery(area="380", as_of=as_of))
    assert sorted((a.drill, a.status) for a in shown) == [(False, "issued"), (True, "issued")]
    active = find_alerts(catalog=catalog, query=AlertQuery(active=True, area="380", as_of=as_of))
    assert [a.drill for a in active] == [False]


def test_a_later_message_continues_then_cancels(catalog: SqlCatalog, tmp_path: Path) -> None:
    original = (MESSAGES / "15_14_01_170216_VPWW54.xml").read_text(encoding="utf-8")
    later = original.replace("2017-01-26T17:20:00+09:00", "2017-01-26T18:20:00+09:00")
    continued = tmp_path / "continued.xml"  # made here from the sample: not JMA output
    continued.write_text(later.replace("<Status>発表</Status>", "<Status>継続</Status>"), "utf-8")
    cancelled = tmp_path / "cancelled.xml"
    cancelled.write_text(
        later.replace("2017-01-26T18:20", "2017-01-26T19:20").replace(
            "<Status>発表</Status>", "<Status>解除</Status>"
        ),
        "utf-8",
    )
    run(catalog, MESSAGES / "15_14_01_170216_VPWW54.xml")
    assert counts(run(catalog, continued)) == (7, 0, 7, 0, 0, 0)
    (shinjuku,) = catalog.list_alerts(area="1310400")
    assert shinjuku.status == "continued"
    assert shinjuku.issued_at == datetime(2017, 1, 26, 17, 20, tzinfo=JST)
    assert counts(run(catalog, cancelled)) == (7, 0, 7, 0, 0, 0)
    (shinjuku,) = catalog.list_alerts(area="1310400")
    assert (shinjuku.status, shinjuku.ended_at) == (
        "cancelled",
        datetime(2017, 1, 26, 19, 20, tzinfo=JST),
    )
    assert [
        a.status
        for a in find_alerts(
            catalog=catalog,
            query=AlertQuery(area="1310400", as_of=datetime(2017, 1, 26, 18, 30, tzinfo=JST)),
        )
    ] == ["continued"]
    # the older message read again afterwards changes nothing
    assert counts(run(catalog, continued)) == (7, 0, 0, 7, 0, 0)


def test_the_long_feed_file_counts(catalog: SqlCatalog) -> None:
    summary = run(catalog, JMA / "feeds" / "feed_extra_l_2022-07-14_kai3150.xml")
    assert counts(summary) == (3647, 0, 0, 0, 2056, 1591)
    assert dict(summary.skipped_kinds)["VPWW53"] == 1518
    assert len(summary.rejections) == 1591


def test_dry_run_touches_nothing(catalog: SqlCatalog) -> None:
    summary = run(catalog, MESSAGES, dry_run=True)
    assert summary.dry_run
    assert counts(summary) == (92, 0, 0, 0, 0, 0)
    assert catalog.list_datasets() == []


def graphql(catalog: SqlCatalog, query: str) -> Any:
    @strawberry.type
    class Query:
        alerts: list[AlertType] = strawberry.field(
            resolver=resolve_alerts, description=ALERTS_DESCRIPTION
        )

    schema = strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map=SCALAR_MAP))
    context = SimpleNamespace(runtime=SimpleNamespace(catalog=catalog, settings=Settings()))
    return asyncio.run(schema.execute(query, context_value=context))


def test_graphql_field_is_typed_as_the_contract_says(catalog: SqlCatalog) -> None:
    @strawberry.type
    class Query:
        alerts: list[AlertType] = strawberry.field(resolver=resolve_alerts)

    sdl = strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map=SCALAR_MAP)).as_str()
    assert "alerts(active: Boolean, area: String, asOf: DateTime): [Alert!]!" in sdl
    flat = " ".join(sdl.split())
    for field_sdl in (
        "id: ID!",
        "source: String!",
        "kind: String!",
        "kindCode: String",
        "area: String!",
        "areaName: String!",
        "status: String!",
        "drill: Boolean!",
        "issuedAt: DateTime!",
        "validUntil: DateTime",
        "headline: String",
    ):
        assert field_sdl in flat
    bad = graphql(catalog, '{ alerts(asOf: "2011-03-11T15:00:00") { id } }')
    assert bad.errors
    assert graphql(catalog, "{ alerts { id } }").data == {"alerts": []}


def test_query_input_checks(catalog: SqlCatalog) -> None:
    from cityos.platform.domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        find_alerts(catalog=catalog, query=AlertQuery(as_of=datetime(2011, 3, 11)))
    with pytest.raises(InvalidInput):
        find_alerts(catalog=catalog, query=AlertQuery(area="x" * 40))
    assert find_alerts(catalog=catalog, query=AlertQuery(as_of=datetime.now(UTC))) == []
