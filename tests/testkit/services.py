"""Start real services for tests (mosquitto on a free port, a throwaway PostgreSQL database).

Under CI=true a missing service fails the test; elsewhere the test is skipped with a loud
reason, so a laptop without mosquitto still runs the rest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def in_ci() -> bool:
    """True when running under CI (CI=true), where missing services are failures."""
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (CI) the current test unless `condition` holds."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required service missing under CI=true: {reason}")
    pytest.skip(f"SERVICE MISSING, TEST SKIPPED: {reason}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A private mosquitto process in its own directory, restartable by tests."""

    directory: Path
    port: int
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """mqtt:// URL of this broker (anonymous)."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where its configuration file is."""
        return self.directory / "mosquitto.conf"

    def write_config(self) -> None:
        """Write the broker's config (`user root` so it can read files in a private dir)."""
        self.config_path.write_text(
            "\n".join(
                [
                    "user root",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.directory}/",
                    f"log_dest file {self.directory}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    self.extra_config,
                    "",
                ]
            )
        )

    def start(self) -> None:
        """Start (or restart) the broker and wait until it accepts connections."""
        self.write_config()
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "mosquitto", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); it saves its persistence file."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_mosquitto(directory: Path, extra_config: str = "") -> Iterator[Mosquitto]:
    """Run a private mosquitto on a free port for the duration of the block."""
    require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(directory=directory, port=free_port(), extra_config=extra_config)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create an empty database on the test PostgreSQL server; yield its SQLAlchemy URL."""
    import psycopg  # imported here: only PostgreSQL tests need it

    admin_url = os.environ.get("CITYOS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL at {admin_url} not reachable: {exc}")
        raise  # unreachable; keeps type checkers calm
    name = f"cityos_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base, _, _ = admin_url.rpartition("/")
            yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
