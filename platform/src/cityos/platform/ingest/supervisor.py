"""`cityos ingest --workers N`: N worker processes sharing one MQTT v5 shared subscription.

Each worker is a whole `cityos ingest` process with its own client id (`<client id>-<i>`), its
own persistent session and its own pipeline: it acknowledges only what it has written itself.
A worker tells the supervisor it is subscribed by writing one byte to a pipe. A worker that
exits before it ever subscribed stops everything (a configuration or broker problem, as for a
single worker); one that dies later is restarted under the same client id, so its session and
the messages the broker queued there are picked up again. SIGTERM stops every worker cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a worker that ran this long is restarted after the shortest delay
POLL_SECONDS = 0.2

Spawn = Callable[[Sequence[str], Mapping[str, str], int], "subprocess.Popen[bytes]"]


def worker_client_id(client_id: str, index: int) -> str:
    """The MQTT client id of worker `index` (1-based)."""
    return f"{client_id}-{index}"


def spawn_process(
    argv: Sequence[str], env: Mapping[str, str], ready_fd: int
) -> subprocess.Popen[bytes]:
    """Start one worker process in its own process group (terminal signals go to us only)."""
    return subprocess.Popen(  # noqa: S603 (our own interpreter and command line)
        list(argv), env=dict(env), pass_fds=(ready_fd,), start_new_session=True
    )


@dataclass
class _Worker:
    """One worker slot: its process (if running), readiness pipe and restart backoff."""

    index: int
    client_id: str
    process: subprocess.Popen[bytes] | None = None
    ready_read: int | None = None
    ready: bool = False
    ever_ready: bool = False
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = RESTART_MIN_SECONDS


class WorkerSupervisor:
    """Starts N workers, restarts those that die, and stops them all on request."""

    def __init__(
        self,
        *,
        count: int,
        client_id: str,
        argv: Callable[[int, int], Sequence[str]],
        env: Mapping[str, str],
        stop: threading.Event,
        spawn: Spawn = spawn_process,
        stop_timeout: float = 30.0,
        restart_delays: tuple[float, float] = (RESTART_MIN_SECONDS, RESTART_MAX_SECONDS),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._argv = argv  # (index, ready fd) -> the worker's command line
        self._env = env
        self._stop = stop
        self._spawn = spawn
        self._stop_timeout = stop_timeout
        self._first_delay, self._max_delay = restart_delays
        self._clock = clock
        self.workers = [
            _Worker(index, worker_client_id(client_id, index), delay=self._first_delay)
            for index in range(1, count + 1)
        ]
        self.restarts = 0

    def run(self, on_ready: Callable[[], None] = lambda: None) -> int:
        """Supervise until `stop` is set (exit code 0) or a worker fails to start (1)."""
        announced = False
        try:
            for worker in self.workers:
                self._start(worker)
            while not self._stop.wait(POLL_SECONDS):
                for worker in self.workers:
                    if not self._check(worker):
                        return 1
                if not announced and all(worker.ready for worker in self.workers):
                    announced = True
                    on_ready()
            return 0
        finally:
            self._stop_all()

    # -- one worker

    def _start(self, worker: _Worker) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        env = {**self._env, "CITYOS__MQTT__CLIENT_ID": worker.client_id}
        try:
            worker.process = self._spawn(self._argv(worker.index, write_fd), env, write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        worker.ready_read, worker.ready = read_fd, False
        worker.started_at, worker.restart_at = self._clock(), None

    def _check(self, worker: _Worker) -> bool:
        """Notice readiness, exits and due restarts; False: give up (never subscribed)."""
        now = self._clock()
        if worker.process is None:
            if worker.restart_at is not None and now >= worker.restart_at:
                self.restarts += 1
                log.info("restarting ingest worker %s", worker.client_id)
                self._start(worker)
            return True
        if not worker.ready and worker.ready_read is not None:
            with contextlib.suppress(BlockingIOError):
                if os.read(worker.ready_read, 1):
                    worker.ready = worker.ever_ready = True
        code = worker.process.poll()
        if code is None:
            return True
        self._close_pipe(worker)
        worker.process = None
        if not worker.ever_ready:
            log.error(
                "ingest worker %s exited with code %s before it subscribed; stopping all workers",
                worker.client_id,
                code,
            )
            return False
        ran = now - worker.started_at
        worker.delay = self._first_delay if ran >= STABLE_SECONDS else worker.delay
        log.error(
            "ingest worker %s exited with code %s after %.0fs; restarting it in %.1fs "
            "(its session keeps what it had not acknowledged)",
            worker.client_id,
            code,
            ran,
            worker.delay,
        )
        worker.restart_at = now + worker.delay
        worker.delay = min(worker.delay * 2, self._max_delay)
        return True

    def _close_pipe(self, worker: _Worker) -> None:
        if worker.ready_read is not None:
            os.close(worker.ready_read)
            worker.ready_read = None

    # -- stopping

    def _stop_all(self) -> None:
        """SIGTERM every worker (each writes and acks what it holds), SIGKILL stragglers."""
        running = [w for w in self.workers if w.process is not None]
        for worker in running:
            assert worker.process is not None
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        deadline = self._clock() + self._stop_timeout
        for worker in running:
            assert worker.process is not None
            try:
                worker.process.wait(max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                log.error("ingest worker %s did not stop in time; killing it", worker.client_id)
                worker.process.kill()
                worker.process.wait()
            worker.process = None
        for worker in self.workers:
            self._close_pipe(worker)
