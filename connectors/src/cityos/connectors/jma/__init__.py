"""JMA disaster XML (気象庁防災情報XML): Atom feeds and messages -> alert records."""

from __future__ import annotations

from cityos.connectors.jma.connector import JmaConnector, create_connector

__all__ = ["JmaConnector", "create_connector"]
