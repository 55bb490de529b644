"""`cityos export` in local mode on the SQLite store: every format read back, bad input, Ctrl-C.

Remote mode against a real server is in tests/e2e/test_exports_done.py; here only its usage
errors and an unreachable server.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import math
import os
import pty
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cityos.platform.cli.export as export_cli
from cityos.platform.cli import app
from cityos.platform.config import load_settings
from cityos.platform.domain.errors import RetryableError
from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Quality, Sensor
from cityos.platform.exports.request import parse_export_request
from cityos.platform.runtime import Runtime
from cityos.platform.timefmt import format_rfc3339
from testkit.export_files import (
    Row,
    expected_rows,
    read_csv,
    read_export,
    read_parquet,
    read_zip,
)
from testkit.services import free_port

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
MINUTES = 2 * 24 * 60
FROM, TO = "2026-11-01T09:00:00+09:00", "2026-11-03T09:00:00+09:00"
SENSORS = {
    "omaezaki-port.tide_level": (Domain.DISASTER, "m"),
    "omaezaki-cape.wind_speed": (Domain.TOURISM, "m/s"),
    "city-hall.wbgt": (Domain.HEALTH, "Cel"),
}
FORMATS = ["csv", "ndjson", "parquet", "zip"]


def _value(index: int, minute: int) -> float:
    return round(10 * math.sin(minute / 97 + index) + index * 1.5 - 2.25, 3)


@pytest.fixture
def store_rows(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Row]]:
    """Three sensors (one per domain) with two days of one-minute data; rows as stored."""
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    runtime = Runtime.open(load_settings())
    try:
        sensors = []
        for index, (sensor_id, (domain, unit)) in enumerate(SENSORS.items()):
            device_id, quantity = sensor_id.split(".")
            device = Device(device_id, device_id.title(), domain, "json", GeoPoint(34.6, 138.2))
            sensor = Sensor(sensor_id, device_id, quantity, unit, domain, f"{device_id} {quantity}")
            runtime.catalog.add_device(device, [sensor])
            sensors.append(sensor)
            runtime.store.write(
                [
                    Observation(
                        sensor_id,
                        T0 + timedelta(minutes=minute),
                        _value(index, minute),
                        Quality.SUSPECT if minute % 250 == 7 else Quality.GOOD,
                    )
                    for minute in range(MINUTES)
                ]
            )
        return {
            sensor.id: expected_rows(
                sensor,
                runtime.store.query_range(
                    sensor_id=sensor.id, start=T0, end=T0 + timedelta(days=2), limit=10**6
                ),
            )
            for sensor in sensors
        }
    finally:
        runtime.close()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty directory for export files (the data dir is elsewhere in tmp_path)."""
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def export(*argv: str) -> Any:
    return CliRunner().invoke(app, ["export", *argv])


def flat(output: str) -> str:
    """CLI output without the error box's frame and line breaks."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def sensor_args(*sensor_ids: str) -> list[str]:
    return [arg for sensor_id in sensor_ids for arg in ("--sensor", sensor_id)]


def audit_events() -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", "list", "--json"])
    assert result.exit_code == 0, result.output
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


@pytest.mark.parametrize("export_format", FORMATS)
def test_each_format_reads_back_equal_to_the_store(
    store_rows: dict[str, list[Row]], out: Path, export_format: str
) -> None:
    target = out / f"tides.{export_format}"
    result = export(
        *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", export_format,
        "-o", str(target), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = read_export(target, export_format)
    expected = [row for sensor_id in SENSORS for row in store_rows[sensor_id]]
    assert len(expected) == 3 * MINUTES
    assert rows == expected  # order: sensors as asked, each oldest first; values exact
    data = target.read_bytes()
    assert summary == {
        "file": str(target),
        "format": export_format,
        "rows": len(expected),
        "bytes": len(data),
        "seconds": summary["seconds"],
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert summary["seconds"] >= 0
    assert [path.name for path in target.parent.iterdir()] == [target.name]  # no temp left


def test_zip_manifest_describes_the_export(store_rows: dict[str, list[Row]], out: Path) -> None:
    target = out / "bundle.zip"
    sensors = ["city-hall.wbgt", "omaezaki-port.tide_level"]
    result = export(
        *sensor_args(*sensors), "--from", FROM, "--to", TO, "--format", "zip", "-o", str(target)
    )
    assert result.exit_code == 0, result.output
    rows, manifest = read_zip(target.read_bytes())
    assert rows == store_rows["city-hall.wbgt"] + store_rows["omaezaki-port.tide_level"]
    assert manifest["row_count"] == 2 * MINUTES
    assert json.dumps(manifest).count("city-hall.wbgt") >= 1
    assert "licence" in manifest


def test_human_output_names_the_file_rows_and_checksum(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    target = out / "wind.csv"
    result = export(
        *sensor_args("omaezaki-cape.wind_speed"), "--from", FROM, "--to", TO,
        "--format", "csv", "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert f"wrote {MINUTES:,} rows" in result.stdout
    assert str(target) in result.stdout
    assert f"sha256 {digest}" in result.stdout


def test_hourly_means_equal_the_means_of_the_stored_minutes(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    target = out / "hourly.ndjson"
    result = export(
        *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
        "--every", "1h", "--aggregate", "mean", "--format", "ndjson", "-o", str(target), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_export(target, "ndjson")
    minutes = store_rows["omaezaki-port.tide_level"]
    assert [row.time for row in rows] == [T0 + timedelta(hours=h) for h in range(48)]
    for hour, row in enumerate(rows):
        values = [r.value for r in minutes[hour * 60 : (hour + 1) * 60] if r.value is not None]
        assert row.value == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert (row.sensor_id, row.unit) == ("omaezaki-port.tide_level", "m")
    assert json.loads(result.stdout)["rows"] == 48


def test_the_export_is_audited_as_a_cli_action_and_health_reads_are_recorded(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    result = export(
        *sensor_args("city-hall.wbgt", "omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
        "--format", "parquet", "-o", str(out / "x.parquet"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    events = audit_events()
    [action] = [e for e in events if e["operation"] == "cli: export"]
    assert action["resources"] == ["city-hall.wbgt", "omaezaki-port.tide_level"]
    assert action["client_id"] is None
    assert action["details"]["via"] == "cli"
    assert action["details"]["outcome"] == "ok"
    assert action["details"]["rows"] == 2 * MINUTES
    assert action["details"]["query"]["format"] == "parquet"
    health = [e for e in events if e["details"].get("kind") == "health-read"]
    assert health
    assert all(e["resources"] == ["city-hall.wbgt"] for e in health)
    user = getpass.getuser()
    for event in health:  # the command line's reads, not anonymous API reads
        assert event["client_id"] is None
        assert (event["details"]["via"], event["details"]["os_user"]) == ("cli", user)
    listed = CliRunner().invoke(app, ["audit", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"cli ({user})  export  [health-read]" in listed.stdout
    assert "anonymous" not in listed.stdout


BAD_INPUT = [
    (["--from", TO, "--to", FROM], "after"),
    (["--from", "2026-11-01T09:00:00", "--to", TO], "offset"),
    (["--from", "yesterday", "--to", TO], "--from"),
    (["--from", FROM, "--to", TO, "--format", "xlsx"], "unknown format"),
    (["--from", FROM, "--to", TO, "--every", "1h"], "needs"),
    (["--from", FROM, "--to", TO, "--every", "1h", "--aggregate", "median"], "median"),
    (["--from", FROM, "--to", TO, "--every", "10x", "--aggregate", "mean"], "duration"),
    (["--from", "1960-01-01T00:00:00+09:00", "--to", TO], "--from"),
    (["--from", FROM, "--to", "2300-01-01T00:00:00+09:00"], "--to"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_the_reason_and_writes_nothing(
    store_rows: dict[str, list[Row]], out: Path, argv: list[str], message: str
) -> None:
    target = out / "bad.csv"
    if "--format" not in argv:
        argv = [*argv, "--format", "csv"]
    result = export(*sensor_args("omaezaki-port.tide_level"), *argv, "-o", str(target))
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert list(out.iterdir()) == []


def test_every_request_parameter_and_no_other_name_maps_to_an_option() -> None:
    request = parse_export_request(
        {"sensor": ["city-hall.wbgt"], "from": [FROM], "to": [TO], "every": ["1h"],
         "aggregate": ["max"], "format": ["zip"]},
        limits=load_settings().exports,
    )  # fmt: skip
    parameters = {name for name, _ in request.query_params()}
    assert set(export_cli._OPTION_OF_FIELD) == parameters
    assert all(option == f"--{name}" for name, option in export_cli._OPTION_OF_FIELD.items())


def test_too_many_sensors_is_a_usage_error(
    store_rows: dict[str, list[Row]], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYOS__EXPORTS__MAX_SENSORS", "2")
    result = export(
        *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", "csv",
        "-o", str(out / "x.csv"),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "at most 2 per export" in flat(result.output)
    assert "--sensor" in result.output


def test_output_must_be_a_file_in_an_existing_directory(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    common = [*sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO]
    result = export(*common, "--format", "csv", "-o", str(out / "missing" / "x.csv"))
    assert result.exit_code == 2
    assert "does not exist" in flat(result.output)
    result = export(*common, "--format", "csv", "-o", str(out))
    assert result.exit_code == 2
    assert "is a directory" in flat(result.output)


@pytest.fixture
def confined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renames and temp files outside tmp_path fail the test instead of happening.

    `-o` tests name /dev/null and symlinks; even a broken build must not replace a system file.
    """
    root = tmp_path.resolve()
    real_replace, real_rename, real_mkstemp = os.replace, os.rename, tempfile.mkstemp

    def inside(path: Any) -> bool:
        absolute = Path(os.path.abspath(path))  # not resolved: a link in tmp_path is inside
        return absolute == root or root in absolute.parents

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        assert inside(dst), f"would replace {dst}"
        real_replace(src, dst, **kwargs)

    def rename(src: Any, dst: Any, **kwargs: Any) -> None:
        assert inside(dst), f"would rename onto {dst}"
        real_rename(src, dst, **kwargs)

    def mkstemp(*args: Any, dir: Any = None, **kwargs: Any) -> tuple[int, str]:
        assert dir is not None, "a temp file in the working directory"
        assert inside(dir), f"would create a temp file in {dir}"
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _csv_of(*sensor_ids: str, store_rows: dict[str, list[Row]]) -> list[Row]:
    return [row for sensor_id in sensor_ids for row in store_rows[sensor_id]]


def test_a_fifo_is_written_directly_and_stays_a_fifo(
    store_rows: dict[str, list[Row]], out: Path, confined: None
) -> None:
    fifo = out / "feed.csv"
    os.mkfifo(fifo)
    keeper = os.open(fifo, os.O_RDWR)  # a writer, so the reader sees EOF only when it closes
    received: list[bytes] = []

    def read() -> None:
        with fifo.open("rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = export(
            *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", "csv",
            "-o", str(fifo), "--json",
        )  # fmt: skip
    finally:
        os.close(keeper)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert not reader.is_alive()
    [data] = received
    assert read_csv(data) == _csv_of(*SENSORS, store_rows=store_rows)
    summary = json.loads(result.stdout)
    assert (summary["file"], summary["rows"]) == (str(fifo), 3 * MINUTES)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [path.name for path in out.iterdir()] == [fifo.name]  # no temp file beside it


def _device(path: str) -> tuple[bool, int, int]:
    status = os.stat(path)
    return stat.S_ISCHR(status.st_mode), status.st_rdev, status.st_ino


def test_dev_null_is_written_not_replaced_also_through_a_symlink(
    store_rows: dict[str, list[Row]], out: Path, confined: None
) -> None:
    before = _device("/dev/null")
    assert before[0]
    link = out / "null"
    link.symlink_to("/dev/null")
    for target in ["/dev/null", str(link)]:
        result = export(
            *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
            "--format", "parquet", "-o", target, "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rows"] == MINUTES
        assert _device("/dev/null") == before
        assert link.is_symlink()
        assert os.readlink(link) == "/dev/null"
    assert [path.name for path in out.iterdir()] == ["null"]


def test_a_symlink_is_kept_and_the_file_it_names_replaced(
    store_rows: dict[str, list[Row]], out: Path, tmp_path: Path, confined: None
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / "real.csv"
    real.write_text("yesterday's export\n")
    link = out / "latest.csv"
    link.symlink_to(Path("..") / "elsewhere" / "real.csv")
    dangling = out / "new.csv"
    dangling.symlink_to(Path("..") / "elsewhere" / "new.csv")  # names a file not yet there
    expected = _csv_of("omaezaki-port.tide_level", store_rows=store_rows)
    for target, written in [(link, real), (dangling, elsewhere / "new.csv")]:
        result = export(
            *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
            "--format", "csv", "-o", str(target),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert target.is_symlink()
        assert read_export(written, "csv") == expected
    assert os.readlink(link) == str(Path("..") / "elsewhere" / "real.csv")
    assert sorted(path.name for path in out.iterdir()) == ["latest.csv", "new.csv"]
    assert sorted(path.name for path in elsewhere.iterdir()) == ["new.csv", "real.csv"]


def test_dash_writes_the_export_to_stdout_and_the_summary_to_stderr(
    store_rows: dict[str, list[Row]], tmp_path: Path, confined: None
) -> None:
    before = sorted(tmp_path.iterdir())
    common = [*sensor_args("city-hall.wbgt"), "--from", FROM, "--to", TO, "-o", "-"]
    result = export(*common, "--format", "parquet", "--json")
    assert result.exit_code == 0, result.output
    data = result.stdout_bytes
    assert read_parquet(data) == store_rows["city-hall.wbgt"]
    summary = json.loads(result.stderr)
    assert summary["file"] == "-"
    assert (summary["rows"], summary["bytes"]) == (MINUTES, len(data))
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()

    result = export(*common, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert read_csv(result.stdout_bytes) == store_rows["city-hall.wbgt"]
    assert f"wrote {MINUTES:,} rows" in result.stderr
    assert "to stdout" in result.stderr
    assert sorted(tmp_path.iterdir()) == before  # no file named "-"


def test_a_closed_stdout_pipe_is_a_clear_failure(store_rows: dict[str, list[Row]]) -> None:
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("cityos")), "export", *sensor_args(*SENSORS),
         "--from", FROM, "--to", TO, "--format", "csv", "-o", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(100).startswith(b"time,sensor_id,")
    process.stdout.close()  # like `| head -c 100`: far less than the export
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1, stderr
    assert stderr.strip().splitlines()[-1] == "error: stdout was closed by its reader"
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr


def test_a_directory_or_a_socket_is_refused(
    store_rows: dict[str, list[Row]], out: Path, confined: None
) -> None:
    common = [*sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO]
    link = out / "to-dir"
    link.symlink_to(out)
    result = export(*common, "--format", "csv", "-o", str(link))
    assert result.exit_code == 2
    assert "is a directory" in flat(result.output)
    assert link.is_symlink()
    with socket.socket(socket.AF_UNIX) as listening:
        path = out / "s"
        listening.bind(str(path))
        result = export(*common, "--format", "csv", "-o", str(path))
        assert result.exit_code == 1
        assert f"error: cannot open {path}" in result.output
        assert stat.S_ISSOCK(path.lstat().st_mode)


def test_an_unknown_sensor_fails_before_anything_is_written(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    target = out / "x.csv"
    result = export(
        *sensor_args("omaezaki-port.tide_level", "omaezaki-port.nothing"),
        "--from", FROM, "--to", TO, "--format", "csv", "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "omaezaki-port.nothing" in result.output
    assert list(out.iterdir()) == []


def _failing_after_first_chunk(failure: BaseException) -> Any:
    real = export_cli.export_chunks

    def chunks(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        stream = real(*args, **kwargs)
        try:
            yield next(stream)
            raise failure
        finally:
            stream.close()

    return chunks


def test_ctrl_c_mid_export_leaves_no_file_and_exits_130(
    store_rows: dict[str, list[Row]], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        export_cli, "export_chunks", _failing_after_first_chunk(KeyboardInterrupt())
    )
    target = out / "x.parquet"
    result = export(
        *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", "parquet",
        "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output
    assert list(out.iterdir()) == []
    [action] = [e for e in audit_events() if e["operation"] == "cli: export"]
    assert action["details"]["outcome"] == "interrupted"


def test_ctrl_c_while_writing_to_stdout_says_what_it_left(
    store_rows: dict[str, list[Row]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        export_cli, "export_chunks", _failing_after_first_chunk(KeyboardInterrupt())
    )
    result = export(
        *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", "csv", "-o", "-"
    )
    assert result.exit_code == 130, result.output
    assert result.stdout_bytes.startswith(b"time,sensor_id,")  # the first chunk went out
    assert result.stderr.strip() == (
        "interrupted: stdout may hold part of the export (written directly: it cannot be "
        "taken back)"
    )


def test_a_store_failure_mid_export_keeps_the_previous_file(
    store_rows: dict[str, list[Row]], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = out / "x.csv"
    target.write_text("yesterday's export\n")
    failure = RetryableError("the store went away", service="sqlite")
    monkeypatch.setattr(export_cli, "export_chunks", _failing_after_first_chunk(failure))
    result = export(
        *sensor_args(*SENSORS), "--from", FROM, "--to", TO, "--format", "csv", "-o", str(target)
    )
    assert result.exit_code == 1, result.output
    assert "error: the store went away" in result.output
    assert [path.name for path in out.iterdir()] == ["x.csv"]
    assert target.read_text() == "yesterday's export\n"
    [action] = [e for e in audit_events() if e["operation"] == "cli: export"]
    assert action["details"]["outcome"] == "failed"


def test_remote_options_are_checked_before_anything_happens(
    store_rows: dict[str, list[Row]], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITYOS_CLIENT_ID", raising=False)
    common = [
        *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
        "--format", "csv", "-o", str(out / "x.csv"),
    ]  # fmt: skip
    result = export(*common, "--client-id", "abc")
    assert result.exit_code == 2
    assert "need --url" in flat(result.output)
    result = export(*common, "--url", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert "--client-id" in result.output
    result = export(*common, "--url", "cityos.example.jp", "--client-id", "abc")
    assert result.exit_code == 2
    assert "base URL" in flat(result.output)
    assert list(out.iterdir()) == []


def test_an_unreachable_server_is_a_clear_failure(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = export(
        *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO, "--format", "csv",
        "-o", str(out / "x.csv"), "--url", url, "--client-id", "abc",
        "--client-secret", "not-a-real-secret",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"error: cannot connect to {url}" in result.output
    assert "not-a-real-secret" not in result.output
    assert list(out.iterdir()) == []


def test_times_in_text_formats_carry_the_japan_offset(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    target = out / "x.ndjson"
    result = export(
        *sensor_args("omaezaki-port.tide_level"), "--from", FROM, "--to", TO,
        "--format", "ndjson", "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first = json.loads(target.read_text().splitlines()[0])
    assert first["time"] == format_rfc3339(T0) == "2026-11-01T09:00:00+09:00"


def test_on_a_terminal_the_progress_bar_counts_points(
    store_rows: dict[str, list[Row]], out: Path
) -> None:
    """stderr on a pseudo-terminal: the bar shows points of the expected total and points/s."""
    leader, follower = pty.openpty()
    target = out / "x.csv"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("cityos")), "export", *sensor_args(*SENSORS),
         "--from", FROM, "--to", TO, "--format", "csv", "-o", str(target)],
        stdout=subprocess.PIPE, stderr=follower, env=os.environ | {"COLUMNS": "160"},
    )  # fmt: skip
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = shown.decode("utf-8", "replace")
    total = 3 * MINUTES
    assert f"{total:,} / {total:,} points" in text
    assert "points/s" in text
    assert target.name in text


class _StandIn(BaseHTTPRequestHandler):
    """A cityos stand-in that grants any token, then sends part of a CSV and stalls or hangs up.

    With `body` set it sends that instead (whole, or without its last 100 bytes if `hang_up`).
    """

    release = threading.Event()
    hang_up = False
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """The token endpoint."""
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 900})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self) -> None:
        """An export whose body is close-delimited: 2 rows, then half a row."""
        if self.body:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apache.parquet")
            self.send_header("X-Cityos-Expected-Rows", "5000")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(self.body[:-100] if self.hang_up else self.body)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("X-Cityos-Expected-Rows", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"time,sensor_id,quantity,unit,value,quality\n")
        row = "2026-11-01T09:0{}:00+09:00,omaezaki-port.tide_level,tide_level,m,1.5,good\n"
        self.wfile.write("".join(row.format(i) for i in range(2)).encode())
        self.wfile.write(b"2026-11-01T09:02:00+09:00,omaezaki-po")
        self.wfile.flush()
        if not self.hang_up:
            self.release.wait(timeout=60)
        self.close_connection = True


@dataclass
class StandIn:
    url: str
    handler: type[_StandIn]


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    handler = type(
        "Handler", (_StandIn,), {"release": threading.Event(), "hang_up": False, "body": b""}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StandIn(f"http://127.0.0.1:{server.server_address[1]}", handler)
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def _remote_argv(url: str, target: Path | str, export_format: str = "csv") -> list[str]:
    return [
        str(Path(sys.executable).with_name("cityos")), "export", "--url", url,
        "--client-id", "abc", *sensor_args("omaezaki-port.tide_level"), "--from", FROM,
        "--to", TO, "--format", export_format, "-o", str(target),
    ]  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_download_removes_the_temp_file_and_exits_130(
    stand_in: StandIn, out: Path, signum: int
) -> None:
    target = out / "x.csv"
    process = subprocess.Popen(
        _remote_argv(stand_in.url, target),
        env=os.environ | {"CITYOS_CLIENT_SECRET": "s"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(out.iterdir()):  # the .part file: the body is being received
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the stand-in stalls: the command now waits in a read
    assert process.poll() is None
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert f"interrupted: nothing written to {target}" in stderr
    assert list(out.iterdir()) == []


def test_a_download_cut_off_mid_row_is_a_failure_and_leaves_no_file(
    stand_in: StandIn, out: Path
) -> None:
    stand_in.handler.hang_up = True
    target = out / "x.csv"
    result = subprocess.run(
        _remote_argv(stand_in.url, target),
        env=os.environ | {"CITYOS_CLIENT_SECRET": "s"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "error: the download broke off after 226 bytes"
    assert list(out.iterdir()) == []


def _parquet(rows: int) -> bytes:
    """A Parquet file of `rows` rows in the export's columns (only its footer is read)."""
    times = [T0 + timedelta(minutes=minute) for minute in range(rows)]
    table = pa.table(
        {
            "time": pa.array(times, pa.timestamp("ns", tz="UTC")),
            "sensor_id": ["omaezaki-port.tide_level"] * rows,
            "quantity": ["tide_level"] * rows,
            "unit": ["m"] * rows,
            "value": [_value(0, minute) for minute in range(rows)],
            "quality": ["good"] * rows,
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=1000)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("windows", "expecting"),
    [([], "x.parquet (5,000 points expected)"),
     (["--every", "1m", "--aggregate", "mean"], "x.parquet (at most 5,000 points)")],
)  # fmt: skip
def test_on_a_terminal_remote_parquet_shows_bytes_and_the_expected_then_exact_points(
    stand_in: StandIn, out: Path, windows: list[str], expecting: str
) -> None:
    """The bar counts bytes (points are in the footer); its text names the server's expected
    points while they arrive (X-Cityos-Expected-Rows) and the exact count at the end."""
    stand_in.handler.body = _parquet(4321)
    leader, follower = pty.openpty()
    target = out / "x.parquet"
    process = subprocess.Popen(
        [*_remote_argv(stand_in.url, target, "parquet"), *windows],
        stdout=subprocess.PIPE, stderr=follower,
        env=os.environ | {"COLUMNS": "200", "CITYOS_CLIENT_SECRET": "s"},
    )  # fmt: skip
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = shown.decode("utf-8", "replace")
    assert expecting in text
    assert "x.parquet (4,321 points)" in text
    assert "kB" in text  # bytes
    assert "wrote 4,321 rows" in process.communicate()[0].decode()


def test_a_cut_off_parquet_to_stdout_is_a_failure(stand_in: StandIn) -> None:
    """Nothing to read back: the kept end of the stream shows the footer is missing."""
    stand_in.handler.body = _parquet(4321)
    stand_in.handler.hang_up = True
    result = subprocess.run(
        _remote_argv(stand_in.url, "-", "parquet"),
        env=os.environ | {"CITYOS_CLIENT_SECRET": "s"}, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    stderr = result.stderr.decode()
    assert stderr.startswith("error: the downloaded parquet file is incomplete or damaged"), stderr
    assert len(result.stdout) == len(stand_in.handler.body) - 100
