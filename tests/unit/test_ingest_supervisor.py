"""`cityos ingest --workers N`: the supervisor, with real (tiny) worker processes."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cityos.platform.ingest.supervisor import WorkerSupervisor, worker_client_id

# A stand-in worker: records its client id and pid, then behaves as told by `mode`.
WORKER = """
import os, signal, sys, time
record, mode, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(record, "a") as out:
    out.write(f"{os.environ['CITYOS__MQTT__CLIENT_ID']} {os.getpid()}\\n")
if mode == "fail-at-start":
    sys.exit(3)
if mode == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(fd, b"1")
if mode == "crash-once" and not os.path.exists(record + ".crashed"):
    open(record + ".crashed", "w").close()
    time.sleep(0.2)
    sys.exit(4)
time.sleep(60)
"""


class Run:
    """A supervisor running in a thread, its workers writing to `record`."""

    def __init__(self, tmp_path: Path, modes: dict[int, str], **options: object) -> None:
        self.record = tmp_path / "record"
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.code: int | None = None

        def argv(index: int, fd: int) -> list[str]:
            mode = modes.get(index, "run")
            return [sys.executable, "-c", WORKER, str(self.record), mode, str(fd)]

        self.supervisor = WorkerSupervisor(
            count=len(modes) or 2,
            client_id="ingest",
            argv=argv,
            env=dict(os.environ),
            stop=self.stop,
            **options,  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.supervisor.run(on_ready=self.ready.set)

    def started(self) -> list[tuple[str, int]]:
        """(client id, pid) of every worker process started so far."""
        if not self.record.exists():
            return []
        return [
            (line.split()[0], int(line.split()[1]))
            for line in self.record.read_text().split("\n")
            if line
        ]

    def finish(self, timeout: float = 20.0) -> int | None:
        """Ask it to stop and wait for it."""
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        return self.code


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop.set()
        run.thread.join(20)


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_client_ids_follow_the_configured_one() -> None:
    assert [worker_client_id("cityos-ingest", i) for i in (1, 2)] == [
        "cityos-ingest-1",
        "cityos-ingest-2",
    ]


def test_workers_start_with_their_own_client_ids_and_stop_cleanly(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, {1: "run", 2: "run", 3: "run"})
    runs.append(run)
    assert run.ready.wait(15), "the supervisor never saw every worker subscribed"
    started = run.started()
    assert sorted(client for client, _ in started) == ["ingest-1", "ingest-2", "ingest-3"]
    assert all(_alive(pid) for _, pid in started)
    assert run.finish() == 0
    assert not any(_alive(pid) for _, pid in started)  # SIGTERMed and reaped


def test_a_worker_that_dies_after_subscribing_is_restarted_under_its_client_id(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, {1: "run", 2: "crash-once"}, restart_delays=(0.1, 0.2))
    runs.append(run)
    _wait(lambda: [client for client, _ in run.started()].count("ingest-2") == 2)
    _wait(lambda: run.supervisor.restarts == 1)
    assert [client for client, _ in run.started()].count("ingest-1") == 1  # left alone
    assert run.finish() == 0


def test_a_worker_that_fails_before_subscribing_stops_them_all(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, {1: "run", 2: "fail-at-start"})
    runs.append(run)
    run.thread.join(20)
    assert run.code == 1
    assert not run.ready.is_set()
    assert not any(_alive(pid) for _, pid in run.started())
    assert run.supervisor.restarts == 0


def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, {1: "ignore-sigterm"}, stop_timeout=0.5)
    runs.append(run)
    assert run.ready.wait(15)
    [(_, pid)] = run.started()
    started = time.monotonic()
    assert run.finish() == 0
    assert time.monotonic() - started < 10
    assert not _alive(pid)
