"""Issue 6: one place from GSI data and a municipal list is one facility with both sources.

GSI's Omaezaki 指定緊急避難場所 and two derived municipal lists (tests/fixtures/derived, see
its PROVENANCE.md) go through `cityos connectors run`; GraphQL then serves merged facilities.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cityos.platform.api.app import create_app
from cityos.platform.cli import app
from cityos.platform.config import READ_SCOPES, load_settings
from cityos.platform.runtime import Runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GSI = FIXTURES / "gsi-hinanbasho" / "omaezaki_222232_emergency_evacuation_sites.geojson.json"
BY_NAME = FIXTURES / "derived" / "omaezaki_evacuation_space_by_name.csv"
BY_ID = FIXTURES / "derived" / "omaezaki_evacuation_space_by_common_id.csv"
GSI_SITES = 14
GSI_DS = "gsi-evacuation:omaezaki_222232_emergency_evacuation_sites.geojson.json"
NAME_DS = "evacuation-sites:omaezaki_evacuation_space_by_name.csv"
ID_DS = "evacuation-sites:omaezaki_evacuation_space_by_common_id.csv"
QUERY = """{ facilities(kind: EVACUATION_SITE, first: 1000) { totalCount nodes {
  id name hazards dataset { id } sources { dataset { id } sourceKey name hazards } } } }"""


def run(*argv: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["connectors", "run", *argv, "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def counts(document: dict[str, Any]) -> tuple[int, ...]:
    keys = ("inserted", "updated", "unchanged", "withdrawn", "merged")
    return tuple(int(document[key]) for key in keys)


@pytest.fixture
def data_dir(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    return no_cityos_env


def facilities(scopes: frozenset[str] = READ_SCOPES) -> dict[str, dict[str, Any]]:
    with TestClient(create_app(Runtime.open(load_settings()), anonymous_scopes=scopes)) as client:
        response = client.post("/graphql", json={"query": QUERY})
    body = response.json()
    assert "errors" not in body, body
    connection = body["data"]["facilities"]
    nodes = {node["id"]: node for node in connection["nodes"]}
    assert connection["totalCount"] == len(nodes)
    return nodes


def sources(node: dict[str, Any]) -> list[tuple[str, str]]:
    return [(source["dataset"]["id"], source["sourceKey"]) for source in node["sources"]]


def test_gsi_and_municipal_rows_of_one_place_become_one_facility(data_dir: Path) -> None:
    assert counts(run("gsi-evacuation", "--source", str(GSI))) == (GSI_SITES, 0, 0, 0, 0)
    by_name = run("evacuation-sites", "--source", str(BY_NAME), "--licence", "CC BY 4.0")
    assert counts(by_name) == (3, 0, 0, 0, 1)
    by_id = run("evacuation-sites", "--source", str(BY_ID), "--licence", "CC BY 4.0")
    assert counts(by_id) == (2, 0, 0, 0, 2)

    nodes = facilities()
    assert len(nodes) == GSI_SITES + 2  # 御前崎公園広場 80 m away and city hall stand apart
    kita = nodes[f"{GSI_DS}:E2222300001201"]
    assert sources(kita) == [(GSI_DS, "E2222300001201"), (NAME_DS, "1")]
    assert kita["dataset"]["id"] == GSI_DS
    assert kita["name"] == "浜岡北小学校\u3000運動場"
    assert "FLOOD" in kita["hazards"]  # only the municipal list says 洪水
    assert [("FLOOD" in src["hazards"]) for src in kita["sources"]] == [False, True]
    assert [s["name"] for s in kita["sources"]] == [
        "浜岡北小学校\u3000運動場",
        "浜岡北小学校 運動場",
    ]
    school = nodes[f"{GSI_DS}:E2222300005202"]
    assert sources(school) == [(GSI_DS, "E2222300005202"), (ID_DS, "1")]
    park = nodes[f"{GSI_DS}:E2222300002201"]
    assert sources(park) == [(GSI_DS, "E2222300002201"), (ID_DS, "2")]
    assert sources(nodes[f"{NAME_DS}:2"]) == [(NAME_DS, "2")]  # same name, 80 m: apart
    assert sources(nodes[f"{NAME_DS}:3"]) == [(NAME_DS, "3")]

    # idempotent: nothing changes, nothing merges twice, the sites stay
    assert counts(run("gsi-evacuation", "--source", str(GSI))) == (0, 0, GSI_SITES, 0, 3)
    again = run("evacuation-sites", "--source", str(BY_NAME), "--licence", "CC BY 4.0")
    assert counts(again) == (0, 0, 3, 0, 1)
    assert facilities() == nodes


def test_either_order_of_imports_merges_the_same_rows(data_dir: Path) -> None:
    assert counts(run("evacuation-sites", "--source", str(BY_NAME)))[-1] == 0
    assert counts(run("gsi-evacuation", "--source", str(GSI)))[-1] == 1
    nodes = facilities()
    assert len(nodes) == GSI_SITES + 2
    kita = nodes[f"{NAME_DS}:1"]  # the facility is shown as its first-imported row
    assert sources(kita) == [(NAME_DS, "1"), (GSI_DS, "E2222300001201")]


def test_a_source_the_caller_may_not_see_is_not_listed(data_dir: Path) -> None:
    # the closed list comes first: its row would be the main one, but not for anonymous
    run("evacuation-sites", "--source", str(BY_NAME), "--licence", "庁内限り (not open)")
    run("gsi-evacuation", "--source", str(GSI))
    anonymous = facilities(frozenset())
    assert not any(NAME_DS in node_id for node_id in anonymous)
    assert len(anonymous) == GSI_SITES
    assert sources(anonymous[f"{GSI_DS}:E2222300001201"]) == [(GSI_DS, "E2222300001201")]
    assert "FLOOD" not in anonymous[f"{GSI_DS}:E2222300001201"]["hazards"]
    reader = facilities(frozenset({"disaster:read"}))
    assert len(reader) == GSI_SITES + 2
    assert sources(reader[f"{NAME_DS}:1"]) == [(NAME_DS, "1"), (GSI_DS, "E2222300001201")]


def test_a_row_gone_from_its_source_leaves_the_site(data_dir: Path, tmp_path: Path) -> None:
    run("gsi-evacuation", "--source", str(GSI))
    source = tmp_path / BY_NAME.name
    shutil.copyfile(BY_NAME, source)
    run("evacuation-sites", "--source", str(source))
    lines = source.read_bytes().split(b"\r\n")
    source.write_bytes(b"\r\n".join([lines[0], *lines[2:]]))  # row 1 withdrawn
    assert counts(run("evacuation-sites", "--source", str(source))) == (0, 0, 2, 1, 0)
    kita = facilities()[f"{GSI_DS}:E2222300001201"]
    assert sources(kita) == [(GSI_DS, "E2222300001201")]
    shutil.copyfile(BY_NAME, source)  # back again: it rejoins the same site
    assert counts(run("evacuation-sites", "--source", str(source))) == (0, 1, 2, 0, 1)
    assert len(facilities()[f"{GSI_DS}:E2222300001201"]["sources"]) == 2


def test_a_row_that_moves_away_leaves_the_place(data_dir: Path, tmp_path: Path) -> None:
    run("gsi-evacuation", "--source", str(GSI))
    source = tmp_path / BY_NAME.name
    shutil.copyfile(BY_NAME, source)
    run("evacuation-sites", "--source", str(source))
    moved = source.read_bytes().replace(b"34.669614,138.135201", b"34.699614,138.135201")
    source.write_bytes(moved)  # row 1 now 3.3 km north: another place of the same name
    assert counts(run("evacuation-sites", "--source", str(source))) == (0, 1, 2, 0, 0)
    nodes = facilities()
    assert sources(nodes[f"{GSI_DS}:E2222300001201"]) == [(GSI_DS, "E2222300001201")]
    assert sources(nodes[f"{NAME_DS}:1"]) == [(NAME_DS, "1")]
    assert "FLOOD" not in nodes[f"{GSI_DS}:E2222300001201"]["hazards"]
