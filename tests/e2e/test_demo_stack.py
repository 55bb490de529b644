"""`cityos demo` as a user runs it: one process, embedded broker, simulator, GraphQL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.services import free_port, require

CITYOS = Path(sys.executable).with_name("cityos")
QUERY = "{ sensors { nodes { id domain latest { time } } } }"


def _sensors(port: int) -> list[dict[str, Any]]:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=5)
    response.raise_for_status()
    nodes: list[dict[str, Any]] = response.json()["data"]["sensors"]["nodes"]
    return nodes


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


def _all_latest_set(port: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        nodes = _sensors(port)
        if nodes and all(node["latest"] for node in nodes):
            return nodes
        assert time.monotonic() < deadline, f"some sensors never got a reading: {nodes}"
        time.sleep(0.5)


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "stop_signal"),
    [("mosquitto", signal.SIGINT), ("amqtt", signal.SIGINT), ("mosquitto", signal.SIGTERM)],
)
def test_demo_serves_moving_sensor_data_of_all_domains(
    tmp_path: Path, broker: str, stop_signal: signal.Signals
) -> None:
    if broker == "mosquitto":
        require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    env["CITYOS__MQTT__EMBEDDED_BROKER"] = broker
    http_port, mqtt_port = free_port(), free_port()
    # Occupy the MQTT port asked for: the demo must pick a free one and say so.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", mqtt_port))
    blocker.listen()
    log = (tmp_path / "demo.log").open("w+")
    process = subprocess.Popen(
        [str(CITYOS), "demo", "--port", str(http_port), "--mqtt-port", str(mqtt_port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_healthy(http_port, process, timeout=60)
        first = {node["id"]: node for node in _all_latest_set(http_port)}
        assert len(first) >= 8
        assert {node["domain"] for node in first.values()} == {"DISASTER", "TOURISM", "HEALTH"}
        time.sleep(5.5)  # every simulated sensor publishes at least every 5 s
        second = {node["id"]: node for node in _sensors(http_port)}
        for sensor_id, node in first.items():
            assert second[sensor_id]["latest"]["time"] > node["latest"]["time"], sensor_id
        # Like a terminal's Ctrl-C: the signal goes to the whole process group.
        os.killpg(process.pid, stop_signal)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        blocker.close()
    log.seek(0)
    output = log.read()
    assert f"MQTT port {mqtt_port} is taken" in output
    used_port = int(output.split(f"MQTT port {mqtt_port} is taken; using ")[1].split()[0])
    assert _port_closed(used_port), "the embedded broker outlived the demo"
    assert _port_closed(http_port)
    assert f"({broker};" in output
    assert "anonymous callers the read scopes" in output
    assert "evacuation sites: 36 read" in output
    assert "cityos demo stopped" in output
    # The broker is stopped by cityos after the worker's last acks, not killed by the Ctrl-C.
    assert "lost its connection" not in output
