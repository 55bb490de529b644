"""The composition root: builds the configured catalog, store and decoders by name."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.connectors_admin import configured
from cityos.platform.domain.errors import ConfigError, InvalidInput
from cityos.platform.durations import parse_duration
from cityos.platform.imports.scheduler import ImportScheduler, ScheduledImport
from cityos.platform.ingest.directory import DeviceDirectory
from cityos.platform.ingest.pipeline import IngestPipeline
from cityos.platform.metrics import Metrics
from cityos.platform.ports import (
    AuthServer,
    Catalog,
    Connector,
    EmbeddedBroker,
    MessagePublisher,
    MessageSource,
    PayloadDecoder,
    TimeSeriesStore,
    TokenVerifier,
)

log = logging.getLogger(__name__)

AUTH_PLUGIN = "builtin"
"""The authorization server registered in the `cityos.auth` entry-point group."""


@dataclass
class Runtime:
    """Everything a cityos process works with, built once from the settings."""

    settings: Settings
    catalog: Catalog
    store: TimeSeriesStore
    decoders: dict[str, PayloadDecoder]
    metrics: Metrics = field(default_factory=Metrics)
    token_verifier: TokenVerifier | None = None
    auth: AuthServer | None = None

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Load the configured plugins, migrate the catalog and return the runtime."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = cast(Catalog, plugins.load(plugins.CATALOGS, "sql")(settings))
        catalog.migrate()
        store = cast(
            TimeSeriesStore,
            plugins.load(plugins.TIMESERIES, settings.timeseries.backend)(settings),
        )
        decoders: dict[str, PayloadDecoder] = {}
        for name in sorted(plugins.available(plugins.DECODERS)):
            decoders[name] = cast(PayloadDecoder, plugins.load(plugins.DECODERS, name)(settings))
        try:
            factory = plugins.load(plugins.AUTH, AUTH_PLUGIN)
            auth = cast(AuthServer, factory(settings, catalog=catalog))
        except BaseException:
            store.close()
            catalog.close()
            raise
        log.info(
            "catalog %s, time-series store %s, payload formats %s",
            settings.db_url.split("://", 1)[0],
            settings.timeseries.backend,
            ", ".join(decoders),
        )
        return cls(
            settings=settings,
            catalog=catalog,
            store=store,
            decoders=decoders,
            token_verifier=auth.verifier,
            auth=auth,
        )

    def close(self) -> None:
        """Stop the auth server's background work; close the store and the catalog."""
        if self.auth is not None:
            self.auth.close()
        self.store.close()
        self.catalog.close()

    def require_auth(self) -> AuthServer:
        """The authorization server (ConfigError if this runtime has none)."""
        if self.auth is None:
            raise ConfigError("this runtime has no authorization server")
        return self.auth

    def new_pipeline(self) -> IngestPipeline:
        """An ingest pipeline writing to this runtime's store and catalog."""
        return IngestPipeline(
            directory=DeviceDirectory(
                self.catalog, ttl_seconds=self.settings.ingest.device_cache_seconds
            ),
            decoders=self.decoders,
            store=self.store,
            record_rejections=self.catalog.record_rejections,
            settings=self.settings.ingest,
            metrics=self.metrics,
        )

    def connector(self, name: str) -> Connector:
        """The connector registered under `name`."""
        return cast(Connector, plugins.load(plugins.CONNECTORS, name)(self.settings))

    def new_scheduler(self) -> ImportScheduler:
        """A scheduler for the configured imports (connectors are loaded now: fail early)."""
        jobs = []
        for job in self.settings.connectors.schedule:
            try:
                every = parse_duration(job.every).as_timedelta()
                connector = configured(
                    self.connector(job.connector), kind=job.kind, columns=job.columns
                )
            except InvalidInput as exc:
                raise ConfigError(f"schedule of {job.connector}: {exc}") from None
            jobs.append(
                ScheduledImport(
                    connector=connector,
                    source=job.source,
                    every=every,
                    licence=job.licence,
                )
            )
        return ImportScheduler(catalog=self.catalog, jobs=jobs)

    def new_message_source(self, url: str) -> MessageSource:
        """The configured message source, subscribed at `url`."""
        factory = plugins.load(plugins.MESSAGE_SOURCES, "mqtt")
        return cast(MessageSource, factory(self.settings, url=url))

    def new_ttn_source(self) -> MessageSource | None:
        """The TTN integration's subscription when CITYOS__TTN__URL is set, else None."""
        if self.settings.ttn.url is None:
            return None
        factory = plugins.load(plugins.MESSAGE_SOURCES, "ttn")
        return cast(MessageSource, factory(self.settings))

    def new_publisher(self, url: str, client_id: str) -> MessagePublisher:
        """A message publisher connected to `url`."""
        factory = plugins.load(plugins.MESSAGE_PUBLISHERS, "mqtt")
        return cast(MessagePublisher, factory(self.settings, url=url, client_id=client_id))


def start_embedded_broker(settings: Settings, *, host: str, port: int) -> EmbeddedBroker:
    """Start the embedded MQTT broker: mosquitto if on PATH (or as configured), else amqtt."""
    choice = settings.mqtt.embedded_broker
    candidates = ["mosquitto", "amqtt"] if choice == "auto" else [choice]
    state_dir: Path = settings.data_dir / "broker"
    state_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for name in candidates:
        factory = plugins.load(plugins.BROKERS, name)
        try:
            broker = cast(
                EmbeddedBroker, factory(settings, host=host, port=port, state_dir=state_dir / name)
            )
        except ConfigError as exc:  # e.g. mosquitto is not installed here
            errors.append(f"{name}: {exc}")
            continue
        broker.start()
        return broker
    raise ConfigError("no embedded MQTT broker could start: " + "; ".join(errors))
