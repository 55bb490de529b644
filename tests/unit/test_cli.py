"""The `cityos` command line: output formats and exit codes (0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.platform.cli import app
from cityos.platform.devices.credentials import verify_password

ADD = [
    "devices", "add", "--id", "omaezaki-port", "--name", "御前崎港 潮位計",
    "--domain", "disaster", "--format", "json", "--sensor", "tide_level:m:-3:5",
    "--lat", "34.6167", "--lon", "138.2167",
]  # fmt: skip


@pytest.fixture
def runner(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    return CliRunner()


def test_devices_add_json_prints_credentials_once(runner: CliRunner) -> None:
    result = runner.invoke(app, [*ADD, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"device_id", "mqtt_username", "mqtt_password"}
    assert document["device_id"] == document["mqtt_username"] == "omaezaki-port"
    assert len(document["mqtt_password"]) >= 24

    from cityos.platform.config import load_settings
    from cityos.platform.runtime import Runtime

    runtime = Runtime.open(load_settings())
    try:
        engine = runtime.catalog.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("select credential_hash from devices").scalar_one()
    finally:
        runtime.close()
    assert document["mqtt_password"] not in stored  # only the hash is kept
    assert verify_password(document["mqtt_password"], stored)


def test_devices_add_human_and_list(runner: CliRunner) -> None:
    added = runner.invoke(app, ADD)
    assert added.exit_code == 0
    assert "MQTT password:" in added.stdout
    assert "cityos/v1/devices/omaezaki-port/up" in added.stdout
    listed = runner.invoke(app, ["devices", "list", "--json"])
    assert listed.exit_code == 0
    [device] = json.loads(listed.stdout)
    assert device["device_id"] == "omaezaki-port"
    assert device["sensors"][0] == {
        "id": "omaezaki-port.tide_level",
        "quantity": "tide_level",
        "unit": "m",
        "min": -3.0,
        "max": 5.0,
        "retired": False,
    }
    assert "omaezaki-port.tide_level" in runner.invoke(app, ["devices", "list"]).stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--id", "Bad_Id"], "malformed device id"),
        (["--format", "cbor"], "not available"),
        (["--sensor", "tide"], "QUANTITY:UNIT"),
    ],
)
def test_devices_add_bad_values_are_usage_errors(
    runner: CliRunner, change: list[str], message: str
) -> None:
    argv = list(ADD)
    index = argv.index(change[0])
    argv[index + 1] = change[1]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.stderr


def test_duplicate_device_exits_1(runner: CliRunner) -> None:
    assert runner.invoke(app, ADD).exit_code == 0
    result = runner.invoke(app, ADD)
    assert result.exit_code == 1
    assert "omaezaki-port" in result.stderr


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(app, ["devices", "add", "--id", "x1"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, [*ADD[:-4], "--domain", "weather"]).exit_code == 2
