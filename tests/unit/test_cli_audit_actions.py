"""Admin actions on the command line are in the audit log too (client null, via cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cityos.platform.cli import app


@pytest.fixture
def runner(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    return CliRunner()


def run_json(runner: CliRunner, *argv: str) -> Any:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_device_client_and_key_administration_is_audited(runner: CliRunner) -> None:
    run_json(
        runner, "devices", "add", "--id", "port-gauge", "--name", "Port", "--domain",
        "disaster", "--format", "json", "--sensor", "tide_level:m",
    )  # fmt: skip
    run_json(runner, "devices", "update", "port-gauge", "--name", "Port gauge")
    run_json(runner, "devices", "rotate", "port-gauge")
    run_json(runner, "devices", "revoke", "port-gauge")
    client = run_json(runner, "clients", "add", "--name", "Surf app", "--scopes", "tourism:read")
    run_json(runner, "clients", "rotate", client["client_id"])
    run_json(runner, "clients", "revoke", client["client_id"])
    key = run_json(runner, "keys", "rotate")
    events = list(reversed(run_json(runner, "audit", "list")))
    assert [(e["operation"], e["resources"]) for e in events] == [
        ("cli: devices add", ["port-gauge"]),
        ("cli: devices update", ["port-gauge"]),
        ("cli: devices rotate", ["port-gauge"]),
        ("cli: devices revoke", ["port-gauge"]),
        ("cli: clients add", [client["client_id"]]),
        ("cli: clients rotate", [client["client_id"]]),
        ("cli: clients revoke", [client["client_id"]]),
        ("cli: keys rotate", [key["kid"]]),
    ]
    assert all(e["client_id"] is None for e in events)
    assert events[4]["details"]["scopes"] == ["tourism:read"]
    assert {e["details"]["via"] for e in events} == {"cli"}
    text = json.dumps(events)
    assert client["client_secret"] not in text
