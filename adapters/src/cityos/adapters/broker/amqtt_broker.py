"""Embedded broker: pure-Python amqtt 0.12 in its own thread and asyncio event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

from cityos.adapters.broker.mosquitto import connect_host
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0

# Our own clients try MQTT 5 first; amqtt (3.1.1 only) warns about every such attempt.
_EXPECTED_NOISE = ("Invalid connection from", "Invalid protocol from")


class _DropV5Probes(logging.Filter):
    """Drop amqtt's warnings about refused MQTT 5 CONNECTs; cityos clients send them on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _EXPECTED_NOISE)


def quiet_amqtt_logging() -> None:
    """amqtt logs every connection and packet at INFO/DEBUG; keep WARNING and above."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker_logger = logging.getLogger("amqtt.broker")
    if not any(isinstance(f, _DropV5Probes) for f in broker_logger.filters):
        broker_logger.addFilter(_DropV5Probes())


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 config: one TCP listener, anonymous access, no topic checks, no $SYS."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only the anonymous-auth plugin: no topic-checking plugin means every topic is
        # allowed, and leaving out the $SYS and packet-logger plugins keeps it quiet.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class AmqttBroker:
    """amqtt serving on host:port from a background thread (for machines without mosquitto)."""

    name = "amqtt"

    def __init__(self, *, host: str, port: int, state_dir: Path) -> None:
        self.host = host
        self.port = port
        self.state_dir = state_dir  # amqtt keeps sessions in memory; nothing is written here
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """mqtt:// URL clients use to reach it."""
        host = connect_host(self.host)
        return f"mqtt://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Start the broker thread; return once the port accepts connections."""
        if self._thread is not None:
            return
        quiet_amqtt_logging()
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name=f"amqtt-broker-{self.port}", daemon=True
        )
        self._thread.start()
        # `Broker.start()` returns once its listening socket is bound, so no TCP probe (amqtt
        # would log a probe that sends no CONNECT as an error).
        if not self._started.wait(START_TIMEOUT_SECONDS) or self._error is not None:
            error = self._error
            self.stop()
            raise ConfigError(f"amqtt broker failed to start on {self.host}:{self.port}: {error}")
        log.info("embedded amqtt broker listening on %s (MQTT 3.1.1 only)", self.url)

    def stop(self) -> None:
        """Shut the broker down cleanly and join its thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            log.warning("amqtt broker thread did not stop within %ss", STOP_TIMEOUT_SECONDS)
        self._thread = None

    # ------------------------------------------------------------ the broker's own thread

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_loop_exception)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must end cleanly
            self._error = exc
            log.exception("amqtt broker crashed")
        finally:
            self._started.set()
            self._close_loop(loop)
            self._loop = None

    async def _serve(self) -> None:
        from amqtt.broker import Broker  # imported here: only this broker needs amqtt

        self._stop_event = asyncio.Event()
        broker = Broker(broker_config(self.host, self.port))
        await broker.start()
        self._started.set()
        await self._stop_event.wait()
        await broker.shutdown()

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    @staticmethod
    def _on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # amqtt lets connection-level OSErrors escape its client callback (e.g. a client that
        # hung up before its CONNACK); they concern one connection, never the broker.
        if isinstance(context.get("exception"), OSError):
            log.debug("amqtt connection error: %s", context.get("message"))
            return
        loop.default_exception_handler(context)


def create_broker(settings: Settings, *, host: str, port: int, state_dir: Path) -> AmqttBroker:
    """Entry point `cityos.brokers:amqtt`: the pure-Python fallback broker."""
    return AmqttBroker(host=host, port=port, state_dir=state_dir)
