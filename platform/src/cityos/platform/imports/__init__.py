"""Importing administrative data: run a connector, upsert its records with provenance."""

from __future__ import annotations

from cityos.platform.imports.alerts import import_alerts, yields_alerts
from cityos.platform.imports.service import (
    dataset_id,
    domain_of_kind,
    import_alerts_from,
    import_facilities,
    is_open_licence,
)
from cityos.platform.imports.summary import ImportRejection, ImportSummary

__all__ = [
    "ImportRejection",
    "ImportSummary",
    "dataset_id",
    "domain_of_kind",
    "import_alerts",
    "import_alerts_from",
    "import_facilities",
    "is_open_licence",
    "yields_alerts",
]
