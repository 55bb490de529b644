"""A broker left behind by a killed cityos is reclaimed by the next start, not duplicated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cityos.adapters.broker.mosquitto import create_broker, port_accepts
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError
from testkit.services import free_port, require


def test_leftover_broker_is_stopped_on_next_start(tmp_path: Path) -> None:
    require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    settings = Settings(data_dir=tmp_path)
    state = tmp_path / "broker"
    first_port, second_port = free_port(), free_port()
    orphan = create_broker(settings, host="127.0.0.1", port=first_port, state_dir=state)
    orphan.start()
    assert port_accepts("127.0.0.1", first_port)
    # cityos is SIGKILLed here: nobody calls orphan.stop().
    successor = create_broker(settings, host="127.0.0.1", port=second_port, state_dir=state)
    successor.start()
    try:
        assert port_accepts("127.0.0.1", second_port)
        assert not port_accepts("127.0.0.1", first_port), "the leftover broker still runs"
    finally:
        successor.stop()
        orphan.stop()  # reaps the child in this test process


def test_start_failure_reports_mosquittos_own_words(tmp_path: Path) -> None:
    require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    settings = Settings(data_dir=tmp_path)
    broker = create_broker(settings, host="203.0.113.1", port=free_port(), state_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match=r"mosquitto exited .*log tail"):
        broker.start()
