"""Find adapters, decoders, connectors, brokers and auth by short name through entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from cityos.platform.domain.errors import ConfigError

CATALOGS = "cityos.catalog"
TIMESERIES = "cityos.timeseries"
DECODERS = "cityos.decoders"
MESSAGE_SOURCES = "cityos.message_sources"
MESSAGE_PUBLISHERS = "cityos.message_publishers"
BROKERS = "cityos.brokers"
CONNECTORS = "cityos.connectors"
AUTH = "cityos.auth"


def available(group: str) -> dict[str, EntryPoint]:
    """The entry points registered in `group`, by name."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str) -> Any:
    """Load the plugin `name` of `group`; a missing or broken plugin is a ConfigError."""
    registered = available(group)
    if name not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise ConfigError(f"no plugin {name!r} in entry-point group {group} (known: {known})")
    try:
        return registered[name].load()
    except Exception as exc:  # a broken plugin must stop start-up loudly
        raise ConfigError(f"plugin {name!r} of {group} failed to load: {exc!r}") from exc
