"""`cityos devices update|rotate|revoke`, `mosquitto sync` files and `rejected list` (CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cityos.platform.cli import app
from cityos.platform.config import load_settings
from cityos.platform.devices.credentials import verify_password
from cityos.platform.domain.model import Rejection
from cityos.platform.runtime import Runtime

ADD = [
    "devices", "add", "--id", "omaezaki-port", "--name", "御前崎港 潮位計",
    "--domain", "disaster", "--format", "json", "--sensor", "tide_level:m:-3:5",
    "--sensor", "wave_height:m", "--lat", "34.6167", "--lon", "138.2167", "--json",
]  # fmt: skip


@pytest.fixture
def runner(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    return CliRunner()


@pytest.fixture
def password(runner: CliRunner) -> str:
    """Register omaezaki-port; its first MQTT password."""
    result = runner.invoke(app, ADD)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["mqtt_password"])


def run_json(runner: CliRunner, *argv: str) -> Any:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stored_hashes() -> dict[str, str | None]:
    runtime = Runtime.open(load_settings())
    try:
        return {c.device_id: c.credential_hash for c in runtime.catalog.device_credentials()}
    finally:
        runtime.close()


# ---------------------------------------------------------------- update


@pytest.mark.usefixtures("password")
def test_update_changes_name_location_ranges_and_sensors(runner: CliRunner) -> None:
    document = run_json(
        runner, "devices", "update", "omaezaki-port", "--name", "Omaezaki port",
        "--lat", "34.62", "--lon", "138.22", "--sensor", "tide_level:m:-4:6",
        "--sensor", "water_temp:Cel::40", "--retire", "wave_height",
    )  # fmt: skip
    assert document["name"] == "Omaezaki port"
    assert document["location"] == {"lat": 34.62, "lon": 138.22}
    assert document["revoked"] is False
    assert document["sensors"] == [
        {"id": "omaezaki-port.tide_level", "quantity": "tide_level", "unit": "m",
         "min": -4.0, "max": 6.0, "retired": False},
        {"id": "omaezaki-port.water_temp", "quantity": "water_temp", "unit": "Cel",
         "min": None, "max": 40.0, "retired": False},
        {"id": "omaezaki-port.wave_height", "quantity": "wave_height", "unit": "m",
         "min": None, "max": None, "retired": True},
    ]  # fmt: skip
    [listed] = run_json(runner, "devices", "list")
    assert listed == document
    back = run_json(runner, "devices", "update", "omaezaki-port", "--sensor", "wave_height:m")
    assert back["sensors"][2]["retired"] is False
    human = runner.invoke(app, ["devices", "update", "omaezaki-port", "--retire", "water_temp"])
    assert human.exit_code == 0
    assert "omaezaki-port.water_temp  [Cel]  range None..40.0  (retired)" in human.stdout


@pytest.mark.usefixtures("password")
def test_update_keeps_the_credentials(runner: CliRunner) -> None:
    before = stored_hashes()
    run_json(runner, "devices", "update", "omaezaki-port", "--name", "renamed")
    assert stored_hashes() == before


@pytest.mark.usefixtures("password")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to change"),
        (["--lat", "34.6"], "--lat and --lon go together"),
        (["--lat", "95", "--lon", "138"], "location out of range"),
        (["--name", " "], "device name"),
        (["--sensor", "tide_level"], "QUANTITY:UNIT"),
        (["--sensor", "tide_level:m:5:1"], "MIN is greater than MAX"),
        (["--sensor", "tide_level:cm"], "unit cannot change"),
        (["--retire", "rain"], "no sensor rain"),
        (["--retire", "Bad Quantity"], "quantity"),
        (["--sensor", "rain:mm", "--retire", "rain"], "both --sensor and --retire"),
    ],
)
def test_update_bad_values_are_usage_errors(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["devices", "update", "omaezaki-port", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.replace("│", " ").split())  # rich wraps lines
    [device] = run_json(runner, "devices", "list")
    assert device["name"] == "御前崎港 潮位計"  # nothing was changed


@pytest.mark.parametrize("unit", ["=cmd|'/C.calc'!A0", "+1", "-x", "@SUM(1)"])
@pytest.mark.parametrize("command", ["add", "update"])
def test_a_unit_a_spreadsheet_would_run_is_refused(
    runner: CliRunner, command: str, unit: str
) -> None:
    if command == "add":
        argv = [*ADD[: ADD.index("--sensor")], "--sensor", f"tide_level:{unit}", "--json"]
    else:
        assert runner.invoke(app, ADD).exit_code == 0
        argv = ["devices", "update", "omaezaki-port", "--sensor", f"rain:{unit}"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "may not start with =, +, - or @" in " ".join(result.stderr.replace("│", " ").split())
    devices = run_json(runner, "devices", "list")
    assert all(s["unit"] != unit for d in devices for s in d["sensors"])


@pytest.mark.parametrize(
    "argv",
    [
        ["devices", "update", "no-such-device", "--name", "x"],
        ["devices", "rotate", "no-such-device"],
        ["devices", "revoke", "no-such-device"],
    ],
)
def test_unknown_device_exits_1(runner: CliRunner, argv: list[str]) -> None:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 1
    assert "no device 'no-such-device'" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- rotate and revoke


def test_rotate_prints_a_new_password_once(runner: CliRunner, password: str) -> None:
    document = run_json(runner, "devices", "rotate", "omaezaki-port")
    assert set(document) == {"device_id", "mqtt_username", "mqtt_password"}
    assert document["device_id"] == document["mqtt_username"] == "omaezaki-port"
    assert document["mqtt_password"] != password
    stored = stored_hashes()["omaezaki-port"]
    assert stored is not None
    assert verify_password(document["mqtt_password"], stored)
    assert not verify_password(password, stored)
    assert document["mqtt_password"] not in stored
    human = runner.invoke(app, ["devices", "rotate", "omaezaki-port"])
    assert human.exit_code == 0
    assert "MQTT password:" in human.stdout


@pytest.mark.usefixtures("password")
def test_revoke_is_idempotent_and_blocks_rotation(runner: CliRunner) -> None:
    assert run_json(runner, "devices", "revoke", "omaezaki-port") == {
        "device_id": "omaezaki-port",
        "revoked": True,
        "already_revoked": False,
    }
    again = run_json(runner, "devices", "revoke", "omaezaki-port")
    assert again["already_revoked"] is True
    [device] = run_json(runner, "devices", "list")
    assert device["revoked"] is True
    rotated = runner.invoke(app, ["devices", "rotate", "omaezaki-port"])
    assert rotated.exit_code == 1
    assert "revoked" in rotated.stderr


# ---------------------------------------------------------------- mosquitto sync (files only)


def test_sync_writes_password_file_and_acl(
    runner: CliRunner, password: str, no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYOS__MQTT__URL", "mqtt://cityos-ingest:s%40cret@broker:1883")
    runner.invoke(app, [*ADD[:3], "old-buoy", *ADD[4:]])
    run_json(runner, "devices", "revoke", "old-buoy")
    out = no_cityos_env / "broker"
    summary = run_json(
        runner, "mosquitto", "sync", "--password-file", str(out / "passwd"),
        "--acl-file", str(out / "acl"), "--worker-username", "cityos-ingest",
    )  # fmt: skip
    assert summary == {
        "devices": ["omaezaki-port"],
        "revoked_left_out": ["old-buoy"],
        "without_password_left_out": [],
        "worker_username": "cityos-ingest",
        "password_file": str(out / "passwd"),
        "acl_file": str(out / "acl"),
        "reloaded_pid": None,
    }
    lines = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert set(lines) == {"omaezaki-port", "cityos-ingest"}
    assert lines["omaezaki-port"].startswith("$7$")
    assert verify_password(password, lines["omaezaki-port"])
    assert verify_password("s@cret", lines["cityos-ingest"])  # from the worker's MQTT URL
    acl = [line for line in (out / "acl").read_text().splitlines() if not line.startswith("#")]
    assert acl == [
        "",
        "user omaezaki-port",
        "topic write cityos/v1/devices/omaezaki-port/up",
        "",
        "user cityos-ingest",
        "topic read cityos/v1/devices/+/up",
    ]
    for name in ("passwd", "acl"):
        assert (out / name).stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in out.iterdir()) == ["acl", "passwd"]  # no temp files left


@pytest.mark.usefixtures("password")
def test_sync_worker_password_from_setting_or_secret_file(
    runner: CliRunner, no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [
        "mosquitto", "sync", "--password-file", str(no_cityos_env / "passwd"),
        "--acl-file", str(no_cityos_env / "acl"), "--worker-username", "ingest",
    ]  # fmt: skip
    missing = runner.invoke(app, argv)
    assert missing.exit_code == 1
    assert "CITYOS__MQTT__WORKER_PASSWORD" in missing.stderr
    secret = no_cityos_env / "worker-secret"
    secret.write_text("from-a-file\nignored\n")
    monkeypatch.setenv("CITYOS__MQTT__WORKER_PASSWORD_FILE", str(secret))
    assert runner.invoke(app, argv).exit_code == 0
    worker_hash = (no_cityos_env / "passwd").read_text().splitlines()[-1].split(":", 1)[1]
    assert verify_password("from-a-file", worker_hash)
    monkeypatch.setenv("CITYOS__MQTT__WORKER_PASSWORD", "from-the-setting")
    assert runner.invoke(app, argv).exit_code == 0
    worker_hash = (no_cityos_env / "passwd").read_text().splitlines()[-1].split(":", 1)[1]
    assert verify_password("from-the-setting", worker_hash)


@pytest.mark.usefixtures("password")
@pytest.mark.parametrize("username", ["bad user", "a:b", "#", "omaezaki-port"])
def test_sync_refuses_unsafe_worker_usernames(
    runner: CliRunner, no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch, username: str
) -> None:
    monkeypatch.setenv("CITYOS__MQTT__WORKER_PASSWORD", "x")
    result = runner.invoke(
        app,
        [
            "mosquitto",
            "sync",
            "--password-file",
            str(no_cityos_env / "passwd"),
            "--acl-file",
            str(no_cityos_env / "acl"),
            "--worker-username",
            username,
        ],
    )
    assert result.exit_code == 2, result.output
    assert not (no_cityos_env / "passwd").exists()


@pytest.mark.usefixtures("password")
def test_sync_refuses_to_signal_a_process_that_is_not_mosquitto(
    runner: CliRunner, no_cityos_env: Path
) -> None:
    import os

    pid_file = no_cityos_env / "pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this test process: must not get a SIGHUP
    result = runner.invoke(
        app,
        [
            "mosquitto",
            "sync",
            "--password-file",
            str(no_cityos_env / "passwd"),
            "--acl-file",
            str(no_cityos_env / "acl"),
            "--pid-file",
            str(pid_file),
        ],
    )
    assert result.exit_code == 1
    assert "not mosquitto" in result.stderr


# ---------------------------------------------------------------- rejected list


def record_rejections() -> datetime:
    t0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    runtime = Runtime.open(load_settings())
    try:
        runtime.catalog.record_rejections(
            [
                Rejection(t0, "unknown device", "cityos/v1/devices/ghost/up", "{}", "ghost"),
                Rejection(
                    t0 + timedelta(minutes=1),
                    "value outside the valid range",
                    "cityos/v1/devices/omaezaki-port/up",
                    '{"readings": {"tide_level": 99}}',
                    "omaezaki-port",
                    "tide_level",
                ),
                Rejection(t0 + timedelta(minutes=2), "broken JSON", "cityos/v1/x", "{", None),
            ]
        )
    finally:
        runtime.close()
    return t0


def test_rejected_list_newest_first_with_filters(runner: CliRunner) -> None:
    record_rejections()
    records = run_json(runner, "rejected", "list")
    assert [r["reason"] for r in records] == [
        "broken JSON",
        "value outside the valid range",
        "unknown device",
    ]
    assert records[1] == {
        "time": "2026-07-01T09:01:00+09:00",
        "topic": "cityos/v1/devices/omaezaki-port/up",
        "device_id": "omaezaki-port",
        "quantity": "tide_level",
        "reason": "value outside the valid range",
        "excerpt": '{"readings": {"tide_level": 99}}',
    }
    only = run_json(runner, "rejected", "list", "--device", "ghost")
    assert [r["device_id"] for r in only] == ["ghost"]
    since = run_json(runner, "rejected", "list", "--since", "2026-07-01T09:01:00+09:00")
    assert len(since) == 2
    assert len(run_json(runner, "rejected", "list", "--limit", "1")) == 1
    human = runner.invoke(app, ["rejected", "list"])
    assert human.exit_code == 0
    assert "2026-07-01T09:01:00+09:00  omaezaki-port.tide_level  value outside" in human.stdout


def test_rejected_list_empty_and_bad_values(runner: CliRunner) -> None:
    assert run_json(runner, "rejected", "list") == []
    assert "no rejected messages" in runner.invoke(app, ["rejected", "list"]).stdout
    for argv in (["--since", "2026-07-01T09:00:00"], ["--since", "yesterday"], ["--limit", "0"]):
        result = runner.invoke(app, ["rejected", "list", *argv])
        assert result.exit_code == 2, (argv, result.output)
    no_offset = runner.invoke(app, ["rejected", "list", "--since", "2026-07-01T09:00:00"])
    assert "offset" in no_offset.stderr


def test_rejected_purge_deletes_only_old_records(runner: CliRunner) -> None:
    record_rejections()  # 2026-07-01, long before "now"
    runtime = Runtime.open(load_settings())
    try:
        runtime.catalog.record_rejections(
            [Rejection(datetime.now(UTC), "fresh", "cityos/v1/devices/ghost/up", "{}", "ghost")]
        )
    finally:
        runtime.close()
    assert run_json(runner, "rejected", "purge", "--older-than-days", "30") == {"deleted": 3}
    assert [r["reason"] for r in run_json(runner, "rejected", "list")] == ["fresh"]
    human = runner.invoke(app, ["rejected", "purge", "--older-than-days", "30"])
    assert "deleted 0 dead-letter records older than 30 days" in human.stdout
    assert runner.invoke(app, ["rejected", "purge", "--older-than-days", "0"]).exit_code == 2
    assert runner.invoke(app, ["rejected", "purge"]).exit_code == 2
