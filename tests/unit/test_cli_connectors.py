"""`cityos connectors list|run` on every sample file: counts, idempotence, dry runs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cityos.platform.cli import app
from cityos.platform.config import load_settings
from cityos.platform.runtime import Runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CSV = FIXTURES / "recommended-datasets"
GSI = FIXTURES / "gsi-hinanbasho"
PDL = "公共データ利用規約（第1.0版）"
TAKAMATSU_COLUMNS = "key=#property,phone=telephone number,opened=openingDate"
COUNTS = ("read", "inserted", "updated", "unchanged", "withdrawn", "rejected")

# source -> (connector and options, rows read, facilities, rejections as (line, reason))
SAMPLES: dict[str, tuple[list[str], int, int, list[tuple[int, str]]]] = {
    "yaizu_222127_aed.csv": (["aed"], 82, 82, []),
    "yaizu_222127_evacuation_space.csv": (["evacuation-sites"], 31, 31, []),
    "yaizu_222127_hinannjo.csv": (["shelters"], 56, 56, []),
    "yaizu_222127_public_wireless_lan.csv": (["public-wifi"], 17, 17, []),
    "yaizu_222127_public_toilet.csv": (["public-toilets"], 112, 112, []),
    "yaizu_222127_tourism_sights.csv": (["tourism-facilities"], 28, 28, []),
    "yaizu_222127_facilities_smartmap.csv": (["public-facilities"], 28, 28, []),
    "yaizu_222127_kyuugosho_cp932_historic.csv": (
        ["facilities-csv", "--kind", "first-aid-station"],
        7,
        7,
        [],
    ),
    "yaizu_machinakasuzumidokoro_cp932_historic.csv": (["cooling-shelters"], 56, 56, []),
    "takamatsu_372013_hospital_data.csv": (
        ["facilities-csv", "--kind", "medical-institution", "--columns", TAKAMATSU_COLUMNS],
        628,
        627,
        [(622, "no coordinates (latitude and longitude are blank)")],
    ),
    "gsi-hinanbasho": (["gsi-evacuation"], 36, 36, []),
}


def source_of(name: str) -> Path:
    return GSI if name == "gsi-hinanbasho" else CSV / name


@pytest.fixture
def data_dir(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = no_cityos_env / "data"
    monkeypatch.setenv("CITYOS__DATA_DIR", str(path))
    return path


@pytest.fixture
def runner(data_dir: Path) -> CliRunner:
    del data_dir
    return CliRunner()


def run(runner: CliRunner, *argv: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["connectors", "run", *argv, "--json"])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if code == 0 else result


def run_sample(runner: CliRunner, name: str, *extra: str) -> Any:
    options = SAMPLES[name][0]
    return run(runner, *options, "--source", str(source_of(name)), *extra)


def stored() -> tuple[list[Any], list[Any]]:
    runtime = Runtime.open(load_settings())
    try:
        return runtime.catalog.list_datasets(), runtime.catalog.list_facilities(
            include_withdrawn=True
        )
    finally:
        runtime.close()


def test_every_sample_file_has_a_command() -> None:
    files = {path.name for path in CSV.glob("*.csv")} | {"gsi-hinanbasho"}
    assert files == set(SAMPLES)
    assert len(list(GSI.glob("*.json"))) == 2


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_imports_with_exact_counts_then_changes_nothing(
    runner: CliRunner, name: str
) -> None:
    _, read, facilities, rejections = SAMPLES[name]
    first = run_sample(runner, name, "--licence", PDL)
    assert [first[key] for key in COUNTS] == [read, facilities, 0, 0, 0, len(rejections)]
    assert [(r["line"], r["reason"]) for r in first["rejections"]] == rejections
    assert first["valid"] == facilities
    assert first["public"] is True
    assert sum(d["row_count"] for d in first["datasets"]) == facilities
    second = run_sample(runner, name, "--licence", PDL)
    assert [second[key] for key in COUNTS] == [read, 0, 0, facilities, 0, len(rejections)]
    assert [d["checksum"] for d in second["datasets"]] == [d["checksum"] for d in first["datasets"]]
    datasets, rows = stored()
    assert [d.id for d in datasets] == [d["id"] for d in first["datasets"]]
    assert len(rows) == facilities
    assert not any(row.withdrawn for row in rows)


def test_json_document_shape(runner: CliRunner) -> None:
    document = run_sample(runner, "takamatsu_372013_hospital_data.csv")
    assert set(document) == {
        "connector", "source", "kind", "licence", "public", "dry_run", "read", "valid",
        "inserted", "updated", "unchanged", "withdrawn", "rejected", "merged", "skipped",
        "skipped_kinds", "rejections", "datasets",
    }  # fmt: skip
    assert document["merged"] == 0
    assert (document["skipped"], document["skipped_kinds"]) == (0, {})
    assert document["connector"] == "facilities-csv"
    assert document["kind"] == "medical-institution"
    assert document["licence"].startswith("not stated")  # no --licence: the connector's default
    assert document["public"] is False
    assert document["dry_run"] is False
    source = str(CSV / "takamatsu_372013_hospital_data.csv")
    assert document["rejections"] == [
        {
            "source": source,
            "line": 622,
            "reason": "no coordinates (latitude and longitude are blank)",
        }
    ]
    [dataset] = document["datasets"]
    assert dataset == {
        "id": "facilities-csv:takamatsu_372013_hospital_data.csv",
        "name": "takamatsu_372013_hospital_data.csv",
        "source": source,
        "licence": document["licence"],
        "public": False,
        "fetched_at": dataset["fetched_at"],
        "checksum": "sha256:507ca2699619beb721cee87b1899b2a259b1e3c805269660511c9c3441679986",
        "row_count": 627,
    }
    assert dataset["fetched_at"].endswith("+09:00")


def test_gsi_directory_is_one_dataset_per_file(runner: CliRunner) -> None:
    document = run_sample(runner, "gsi-hinanbasho")
    assert document["licence"].startswith("国土地理院コンテンツ利用規約")
    assert document["public"] is True
    assert document["kind"] is None
    assert [(d["name"], d["row_count"]) for d in document["datasets"]] == [
        ("omaezaki_222232_designated_shelters.geojson.json", 22),
        ("omaezaki_222232_emergency_evacuation_sites.geojson.json", 14),
    ]


def test_changed_rows_update_and_missing_rows_are_withdrawn(
    runner: CliRunner, tmp_path: Path
) -> None:
    original = (CSV / "yaizu_222127_aed.csv").read_bytes()
    source = tmp_path / "aed.csv"
    source.write_bytes(original)
    run(runner, "aed", "--source", str(source))
    lines = original.split(b"\r\n")
    assert lines[-1] == b""  # the file ends with CRLF
    kept = [*lines[:-3], b""]  # drop the last two rows
    kept[1] = kept[1].replace("市役所本館".encode(), "市役所本館（改）".encode())
    source.write_bytes(b"\r\n".join(kept))
    second = run(runner, "aed", "--source", str(source))
    assert [second[key] for key in COUNTS] == [80, 0, 1, 79, 2, 0]
    datasets, rows = stored()
    assert datasets[0].row_count == 80
    assert sum(row.withdrawn for row in rows) == 2
    assert len(rows) == 82  # withdrawn, not deleted
    source.write_bytes(original)
    third = run(runner, "aed", "--source", str(source))
    assert [third[key] for key in COUNTS] == [82, 0, 3, 79, 0, 0]  # two come back, one reverts


def test_dry_run_validates_without_touching_the_catalog(
    runner: CliRunner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = run_sample(runner, "takamatsu_372013_hospital_data.csv", "--dry-run")
    assert document["dry_run"] is True
    assert [document[key] for key in COUNTS] == [628, 0, 0, 0, 0, 1]
    assert document["valid"] == 627
    assert document["datasets"] == [{"id": "facilities-csv:takamatsu_372013_hospital_data.csv"}]
    assert not data_dir.exists()  # not even an empty catalog was created
    # a catalog that cannot be opened does not matter to a dry run, but does to a real one
    blocker = data_dir.parent / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("CITYOS__DB__URL", f"sqlite:///{blocker}/catalog.db")
    assert run_sample(runner, "gsi-hinanbasho", "--dry-run")["read"] == 36
    result = runner.invoke(
        app, ["connectors", "run", "gsi-evacuation", "--source", str(GSI), "--json"]
    )
    assert result.exit_code == 1, result.output
    assert result.stdout == ""


def test_dry_run_after_an_import_leaves_it_as_it_was(runner: CliRunner, tmp_path: Path) -> None:
    run_sample(runner, "yaizu_222127_aed.csv")
    before = stored()
    source = tmp_path / "yaizu_222127_aed.csv"
    source.write_bytes((CSV / "yaizu_222127_aed.csv").read_bytes()[:2000])  # fewer rows
    document = run(runner, "aed", "--source", str(source), "--dry-run")
    assert document["read"] < 82
    assert stored() == before


def test_alert_connector_runs_too_and_counts_what_it_skips(
    runner: CliRunner, data_dir: Path
) -> None:
    feeds = FIXTURES / "jma" / "feeds"
    document = run(runner, "jma", "--source", str(feeds), "--dry-run")
    assert document["read"] == document["valid"] + document["rejected"] + document["skipped"]
    assert document["skipped"] == sum(document["skipped_kinds"].values()) > 0
    assert not data_dir.exists()
    messages = run(runner, "jma", "--source", str(FIXTURES / "jma" / "messages"))
    assert messages["inserted"] > 0
    assert messages["public"] is True
    again = run(runner, "jma", "--source", str(FIXTURES / "jma" / "messages"))
    assert (again["inserted"], again["updated"]) == (0, 0)


def test_human_summary(runner: CliRunner) -> None:
    name = "takamatsu_372013_hospital_data.csv"
    options = SAMPLES[name][0]
    result = runner.invoke(
        app, ["connectors", "run", *options, "--source", str(CSV / name), "--licence", "CC BY 4.0"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"facilities-csv <- {CSV / name}"
    assert lines[1] == "  licence: CC BY 4.0 (public)"
    assert lines[2] == ("  read 628, inserted 627, updated 0, unchanged 0, withdrawn 0, rejected 1")
    assert lines[3].startswith("  dataset facilities-csv:takamatsu_372013_hospital_data.csv, ")
    assert lines[4] == "  rejected line 622: no coordinates (latitude and longitude are blank)"
    dry = runner.invoke(
        app,
        ["connectors", "run", "aed", "--source", str(CSV / "yaizu_222127_aed.csv"), "--dry-run"],
    )
    assert "  dry run, nothing written: read 82, valid 82, rejected 0" in dry.stdout.splitlines()


def test_progress_bar_on_a_terminal(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    result = runner.invoke(
        app, ["connectors", "run", "gsi-evacuation", "--source", str(GSI), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["read"] == 36  # stdout stays one JSON document
    assert "omaezaki_222232_designated_shelters.geojson.json" in result.stderr
    assert "22/22" in result.stderr
    assert "14/14" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-connector", "--source", "x.csv"], "no connector 'no-such-connector'"),
        (["facilities-csv", "--source", str(CSV / "yaizu_222127_aed.csv")], "needs --kind"),
        (
            ["facilities-csv", "--kind", "castle", "--source", str(CSV / "yaizu_222127_aed.csv")],
            "unknown facility kind 'castle'",
        ),
        (
            ["aed", "--kind", "shelter", "--source", str(CSV / "yaizu_222127_aed.csv")],
            "aed reads aed facilities only",
        ),
        (["gsi-evacuation", "--kind", "shelter", "--source", str(GSI)], "takes no --kind"),
        (["gsi-evacuation", "--columns", "name=名称", "--source", str(GSI)], "takes no --columns"),
        (
            ["aed", "--columns", "name", "--source", str(CSV / "yaizu_222127_aed.csv")],
            "FIELD=HEADER",
        ),
        (
            ["aed", "--columns", "name=施設名称X", "--source", str(CSV / "yaizu_222127_aed.csv")],
            "no column '施設名称X'",
        ),
        (["aed", "--source", str(CSV / "missing.csv")], "no such file or directory"),
        (
            ["evacuation-sites", "--source", str(CSV / "yaizu_222127_aed.csv")],
            "none of the 災害種別 columns",
        ),
        (["aed"], "Missing option '--source'"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    runner: CliRunner, data_dir: Path, argv: list[str], message: str
) -> None:
    result = runner.invoke(app, ["connectors", "run", *argv])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert result.stdout == ""
    if data_dir.exists():
        assert stored() == ([], [])


def test_list(runner: CliRunner) -> None:
    result = runner.invoke(app, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    documents = {d["name"]: d for d in json.loads(result.stdout)}
    assert list(documents) == sorted(documents)
    assert set(documents) >= {
        "aed", "cooling-shelters", "evacuation-sites", "events", "facilities-csv",
        "gsi-evacuation", "medical-institutions", "public-facilities", "public-toilets",
        "public-wifi", "shelters", "tourism-facilities",
    }  # fmt: skip
    assert documents["facilities-csv"] == {
        "name": "facilities-csv",
        "title": "facility list",
        "kind": None,
        "kind_required": True,
        "options": ["--kind", "--columns"],
        "default_licence": "not stated (give the publisher's licence with --licence)",
        "file_suffixes": [".csv", ".tsv"],
    }
    assert documents["cooling-shelters"]["kind"] == "cooling-shelter"
    assert documents["cooling-shelters"]["title"] == "指定暑熱避難施設一覧"
    assert documents["cooling-shelters"]["options"] == ["--columns"]
    gsi = documents["gsi-evacuation"]
    assert (gsi["kind"], gsi["options"], gsi["file_suffixes"]) == (
        None,
        [],
        [".json", ".geojson"],
    )
    assert gsi["default_licence"].startswith("国土地理院コンテンツ利用規約")
    human = runner.invoke(app, ["connectors", "list"])
    assert human.exit_code == 0
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "OPTIONS", "DATASET"]
    assert lines[1].split()[:4] == ["aed", "aed", "--columns", "AED設置箇所一覧"]
    facilities_csv = next(line for line in lines if line.startswith("facilities-csv"))
    assert facilities_csv.split()[:5] == ["facilities-csv", "--kind", "K", "--kind", "--columns"]
