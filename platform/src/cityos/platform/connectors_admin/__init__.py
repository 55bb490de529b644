"""Connector administration: the registry of connectors and how one is configured for a run."""

from __future__ import annotations

from cityos.platform.connectors_admin.registry import (
    ConfigurableConnector,
    ConnectorInfo,
    ImportObserver,
    ObservedConnector,
    configured,
    connector_names,
    describe,
    kind_option,
    list_connectors,
    load_connector,
)

__all__ = [
    "ConfigurableConnector",
    "ConnectorInfo",
    "ImportObserver",
    "ObservedConnector",
    "configured",
    "connector_names",
    "describe",
    "kind_option",
    "list_connectors",
    "load_connector",
]
