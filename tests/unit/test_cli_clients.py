"""`cityos clients add|list|rotate|revoke` and `cityos keys list|rotate` (CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cityos.auth import hashing
from cityos.platform.cli import app
from cityos.platform.config import load_settings
from cityos.platform.runtime import Runtime


@pytest.fixture
def runner(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    return CliRunner()


def run_json(runner: CliRunner, *argv: str) -> Any:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stored_hash(client_id: str) -> str:
    runtime = Runtime.open(load_settings())
    try:
        value = runtime.catalog.oauth_client_secret_hash(client_id)
    finally:
        runtime.close()
    assert value is not None
    return value


def test_add_prints_id_and_secret_once_and_stores_a_hash(runner: CliRunner) -> None:
    document = run_json(
        runner, "clients", "add", "--name", "焼津 surf app", "--scopes", "tourism:read export:read"
    )
    assert set(document) == {"client_id", "client_secret"}
    stored = stored_hash(document["client_id"])
    assert stored.startswith("pbkdf2_sha256$")
    assert document["client_secret"] not in stored
    assert hashing.verify_secret(document["client_secret"], stored)
    [listed] = run_json(runner, "clients", "list")
    assert listed["client_id"] == document["client_id"]
    assert listed["name"] == "焼津 surf app"
    assert listed["scopes"] == ["export:read", "tourism:read"]
    assert listed["revoked"] is False
    assert "client_secret" not in listed


def test_add_in_human_form(runner: CliRunner) -> None:
    result = runner.invoke(app, ["clients", "add", "--name", "p", "--scopes", "health:read"])
    assert result.exit_code == 0, result.output
    assert "client_secret:" in result.stdout
    assert "shown once" in result.stdout
    assert "grant_type=client_credentials" in result.stdout
    listed = runner.invoke(app, ["clients", "list"])
    assert "health:read" in listed.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["clients", "add", "--name", "p", "--scopes", "tourism:read admin"],
        ["clients", "add", "--name", "", "--scopes", "tourism:read"],
        ["clients", "add", "--name", "p"],
    ],
)
def test_bad_input_is_a_usage_error(runner: CliRunner, argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert run_json(runner, "clients", "list") == []


def test_rotate_and_revoke(runner: CliRunner) -> None:
    added = run_json(runner, "clients", "add", "--name", "p", "--scopes", "tourism:read")
    client_id = added["client_id"]
    rotated = run_json(runner, "clients", "rotate", client_id)
    assert rotated["client_id"] == client_id
    assert rotated["client_secret"] != added["client_secret"]
    assert hashing.verify_secret(rotated["client_secret"], stored_hash(client_id))
    assert not hashing.verify_secret(added["client_secret"], stored_hash(client_id))
    revoked = run_json(runner, "clients", "revoke", client_id)
    assert revoked == {"client_id": client_id, "revoked": True, "already_revoked": False}
    again = run_json(runner, "clients", "revoke", client_id)
    assert again["already_revoked"] is True
    [listed] = run_json(runner, "clients", "list")
    assert listed["revoked"] is True
    assert listed["revoked_at"] is not None
    refused = runner.invoke(app, ["clients", "rotate", client_id])
    assert refused.exit_code == 1
    assert "revoked" in refused.output


def test_unknown_clients_fail_with_exit_code_1(runner: CliRunner) -> None:
    for command in ("rotate", "revoke"):
        result = runner.invoke(app, ["clients", command, "0123456789abcdef0123"])
        assert result.exit_code == 1, result.output
        assert "no OAuth client" in result.output


def test_keys_rotate_and_list(runner: CliRunner) -> None:
    assert run_json(runner, "keys", "list") == []
    first = run_json(runner, "keys", "rotate")
    assert first["signing"] is True
    assert first["algorithm"] == "ES256"
    second = run_json(runner, "keys", "rotate")
    keys = run_json(runner, "keys", "list")
    assert [key["kid"] for key in keys] == [first["kid"], second["kid"]]
    assert keys[0]["signing"] is False
    assert keys[0]["published_until"] is not None
    assert keys[1]["published_until"] is None
    human = runner.invoke(app, ["keys", "list"])
    assert "signing" in human.stdout
    assert "verifies until" in human.stdout
