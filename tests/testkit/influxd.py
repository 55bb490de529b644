"""A private influxd (1.x) for tests: free ports, temp dirs, quiet, optional auth.

`running_influxd(directory)` starts one for the duration of a block; `shared_influxd()` starts
one lazily for the whole test process (the contract suite's store factory uses it) and stops
it at exit. Tests that stop or reconfigure a server use their own, never the shared one.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.services import free_port, require

ADMIN_USER = "cityos-admin"
ADMIN_PASSWORD = "admin-secret-'\"\\-パス"  # hostile on purpose: must survive quoting


@dataclass
class Influxd:
    """One influxd process in its own directory, restartable by tests."""

    directory: Path
    port: int
    rpc_port: int
    auth: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where its generated configuration lives."""
        return self.directory / "influxdb.conf"

    def write_config(self) -> None:
        """Write a config with private dirs, private ports and everything noisy turned off."""
        self.config_path.write_text(
            f"""reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.directory}/meta"
  logging-enabled = false
[data]
  dir = "{self.directory}/data"
  wal-dir = "{self.directory}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "error"
  suppress-logo = true
"""
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) influxd and wait until /ping answers."""
        self.write_config()
        log = (self.directory / "influxd.log").open("ab")
        self.process = subprocess.Popen(
            [shutil.which("influxd") or "influxd", "-config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    if self.auth:
                        self._create_admin()
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"influxd did not answer /ping within {timeout}s: {self.log()}")

    def _create_admin(self) -> None:
        """Create the first admin user (1.x allows exactly this without credentials)."""
        password = ADMIN_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
        response = self.query(
            f"CREATE USER \"{ADMIN_USER}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        )
        if "error" in response.text and "already exists" not in response.text:
            raise RuntimeError(f"cannot create the admin user: {response.text}")

    def query(
        self, q: str, *, db: str | None = None, admin: bool = True, epoch: str | None = None
    ) -> httpx.Response:
        """Run InfluxQL (as the admin when auth is on; times as epoch `epoch` if given)."""
        params = {"q": q, **({"db": db} if db else {}), **({"epoch": epoch} if epoch else {})}
        auth = (ADMIN_USER, ADMIN_PASSWORD) if self.auth and admin else None
        return httpx.post(f"{self.url}/query", data=params, auth=auth, timeout=30)

    def write(self, db: str, lines: str) -> httpx.Response:
        """POST raw line protocol (ns precision) and return the raw response."""
        auth = (ADMIN_USER, ADMIN_PASSWORD) if self.auth else None
        return httpx.post(
            f"{self.url}/write",
            params={"db": db, "precision": "ns"},
            content=lines.encode(),
            auth=auth,
            timeout=30,
        )

    def new_database(self) -> str:
        """Create an empty database with a unique name and return the name."""
        name = f"cityos_test_{uuid.uuid4().hex[:12]}"
        # One shard group per 100 years: tests write far past and future times, and a
        # 7-day shard per week touched makes such tests slow for no gain.
        response = self.query(f'CREATE DATABASE "{name}" WITH SHARD DURATION 5200w')
        response.raise_for_status()
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database (best effort)."""
        with contextlib.suppress(httpx.HTTPError):
            self.query(f'DROP DATABASE "{name}"')

    def stop(self) -> None:
        """Stop influxd (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        """Its log so far (for assertion messages)."""
        path = self.directory / "influxd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def influxd_available() -> bool:
    """True when an influxd binary is on PATH."""
    return shutil.which("influxd") is not None


@contextlib.contextmanager
def running_influxd(directory: Path, *, auth: bool = False) -> Iterator[Influxd]:
    """Run a private influxd on free ports for the duration of the block."""
    require(influxd_available(), "influxd binary not on PATH (Debian package influxdb)")
    directory.mkdir(parents=True, exist_ok=True)
    server = Influxd(directory=directory, port=free_port(), rpc_port=free_port(), auth=auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_shared: Influxd | None = None
_shared_lock = threading.Lock()


def shared_influxd() -> Influxd:
    """One influxd for the whole test process, started on first use, stopped at exit."""
    global _shared
    require(influxd_available(), "influxd binary not on PATH (Debian package influxdb)")
    with _shared_lock:
        if _shared is None or _shared.process is None or _shared.process.poll() is not None:
            directory = Path(tempfile.mkdtemp(prefix="cityos-influxd-"))
            server = Influxd(directory=directory, port=free_port(), rpc_port=free_port())
            server.start()
            atexit.register(_stop_shared, server, directory)
            _shared = server
        return _shared


def _stop_shared(server: Influxd, directory: Path) -> None:
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)
