"""`cityos demo --secure`: no anonymous reads; the printed tokens and client credentials work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.services import free_port

CITYOS = Path(sys.executable).with_name("cityos")
QUERY = "{ sensors { nodes { domain } } }"


def _wait_for(log: Path, marker: str, process: subprocess.Popen[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "cityos demo exited early:\n" + log.read_text()
        text = log.read_text()
        if marker in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{marker!r} not printed within {timeout}s:\n{log.read_text()}")


def _wait_healthy(port: int, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "cityos demo exited early"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer within {timeout}s")


def _domains(port: int, token: str | None) -> tuple[int, set[str]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, headers=headers, timeout=5
    )
    if response.status_code != 200:
        return response.status_code, set()
    nodes: list[dict[str, Any]] = response.json()["data"]["sensors"]["nodes"]
    return 200, {node["domain"] for node in nodes}


@pytest.mark.slow
def test_secure_demo_prints_working_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    http_port, mqtt_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(CITYOS),
                "demo",
                "--secure",
                "--port",
                str(http_port),
                "--mqtt-port",
                str(mqtt_port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        text = _wait_for(log, "grant_type=client_credentials", process, timeout=60)
        _wait_healthy(http_port, process, timeout=30)
        tokens = dict(re.findall(r"^  ([^:\n][^\n]*):\n    (ey[\w.-]+)$", text, re.MULTILINE))
        assert set(tokens) == {"tourism:read only", "read + export", "every scope (admin)"}
        assert "anonymous callers the read scopes" not in text
        assert _domains(http_port, None) == (200, set())
        assert _domains(http_port, tokens["tourism:read only"]) == (200, {"TOURISM"})
        assert _domains(http_port, tokens["read + export"]) == (
            200,
            {"DISASTER", "TOURISM", "HEALTH"},
        )
        admin = httpx.post(
            f"http://127.0.0.1:{http_port}/graphql",
            json={"query": "{ clients { nodes { name scopes } } }"},
            headers={"Authorization": f"Bearer {tokens['every scope (admin)']}"},
            timeout=5,
        ).json()
        names = sorted(node["name"] for node in admin["data"]["clients"]["nodes"])
        assert names == ["cityos demo admin", "cityos demo partner"]
        curl = re.search(r"curl -s -u (\S+):(\S+) -d grant_type=client_credentials (\S+)", text)
        assert curl is not None
        client_id, secret, url = curl.groups()
        fresh = httpx.post(
            url, data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
        )
        assert fresh.status_code == 200, fresh.text
        assert _domains(http_port, fresh.json()["access_token"])[0] == 200
        assert _domains(http_port, tokens["tourism:read only"] + "x") == (401, set())
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
