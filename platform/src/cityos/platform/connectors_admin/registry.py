"""The registered connectors: what each one reads, and one configured for a run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import Connector


@runtime_checkable
class ConfigurableConnector(Connector, Protocol):
    """A connector that takes a facility kind and/or a header mapping (`--kind`, `--columns`).

    `kind` is the facility kind it yields, or None when the caller must choose one; a
    connector of a fixed kind refuses any other (InvalidInput with field "kind").
    """

    kind: str | None

    def configure(self, *, kind: str | None = None, columns: str | None = None) -> Connector:
        """A copy of this connector with the kind and `field=Header,...` mapping given."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """What `cityos connectors list` says about one registered connector."""

    name: str
    title: str
    kind: str | None  # the kind it yields (CLI spelling), None: per record or by --kind
    default_licence: str
    kind_required: bool  # --kind must be given
    takes_columns: bool  # --columns is accepted
    file_suffixes: tuple[str, ...]


def kind_option(kind: str) -> str:
    """A stored facility kind as `--kind` spells it: `first_aid_station` -> `first-aid-station`."""
    return kind.replace("_", "-")


def _title(connector: Connector) -> str:
    """A connector's `title`, else its CSV spec's title, else its class docstring's first line."""
    title = getattr(connector, "title", None) or getattr(
        getattr(connector, "spec", None), "title", None
    )
    if isinstance(title, str) and title:
        return title
    doc = (type(connector).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else connector.name


def describe(connector: Connector) -> ConnectorInfo:
    """The facts `connectors list` shows about a loaded connector."""
    configurable = isinstance(connector, ConfigurableConnector)
    kind = cast(ConfigurableConnector, connector).kind if configurable else None
    suffixes = getattr(connector, "file_suffixes", None) or ()
    return ConnectorInfo(
        name=connector.name,
        title=_title(connector),
        kind=None if kind is None else kind_option(kind),
        default_licence=connector.default_licence,
        kind_required=configurable and kind is None,
        takes_columns=configurable,
        file_suffixes=tuple(str(suffix) for suffix in suffixes),
    )


def connector_names() -> list[str]:
    """The names registered in the `cityos.connectors` entry-point group, sorted."""
    return sorted(plugins.available(plugins.CONNECTORS))


def load_connector(settings: Settings, name: str) -> Connector:
    """The connector registered as `name`; InvalidInput (field "connector") if there is none."""
    names = connector_names()
    if name not in names:
        known = ", ".join(names) or "none installed"
        raise InvalidInput(f"no connector {name[:80]!r} (known: {known})", field="connector")
    return cast(Connector, plugins.load(plugins.CONNECTORS, name)(settings))


def list_connectors(settings: Settings) -> list[ConnectorInfo]:
    """Every registered connector, described, by name."""
    return [describe(load_connector(settings, name)) for name in connector_names()]


def configured(
    connector: Connector, *, kind: str | None = None, columns: str | None = None
) -> Connector:
    """`connector` with `--kind`/`--columns` applied; InvalidInput when it cannot take them.

    A connector whose kind is left to the caller is refused without a kind here, before any
    source is read.
    """
    if not isinstance(connector, ConfigurableConnector):
        given = [option for option, value in (("--kind", kind), ("--columns", columns)) if value]
        if given:
            raise InvalidInput(
                f"{connector.name} takes no {' or '.join(given)} (its source says what each "
                "record is)",
                field="kind" if kind else "columns",
            )
        return connector
    chosen = connector.configure(kind=kind or None, columns=columns or None)
    if kind is None and cast(ConfigurableConnector, chosen).kind is None:
        raise InvalidInput(
            f"{connector.name} needs --kind (e.g. first-aid-station, shelter)", field="kind"
        )
    return chosen


class ImportObserver(Protocol):
    """Receives the progress of a connector run."""

    def source_started(self, source: str) -> None:
        """A source (one file) is about to be read."""

    def item_read(self, source: str) -> None:
        """One record or rejected row was read from `source`."""

    def source_finished(self, source: str, count: int) -> None:
        """`source` is done (or failed) after `count` items."""


class ObservedConnector:
    """Wraps a connector to report each source it starts and each item it yields (progress)."""

    def __init__(self, inner: Connector, observer: ImportObserver) -> None:
        self.inner = inner
        self.observer = observer
        self.name = inner.name
        self.default_licence = inner.default_licence
        self.file_suffixes = getattr(inner, "file_suffixes", None)

    def fetch(self, source: str) -> Iterator[Any]:
        """The inner connector's items for `source` (whatever it yields), reported one by one."""
        self.observer.source_started(source)
        count = 0
        try:
            for item in self.inner.fetch(source):
                count += 1
                self.observer.item_read(source)
                yield item
        finally:
            self.observer.source_finished(source, count)
