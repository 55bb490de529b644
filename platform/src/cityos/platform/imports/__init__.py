"""Importing administrative data: run a connector, upsert its records with provenance."""

from __future__ import annotations

from cityos.platform.imports.service import (
    ImportRejection,
    ImportSummary,
    dataset_id,
    domain_of_kind,
    import_facilities,
    is_open_licence,
)

__all__ = [
    "ImportRejection",
    "ImportSummary",
    "dataset_id",
    "domain_of_kind",
    "import_facilities",
    "is_open_licence",
]
