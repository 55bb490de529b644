"""Research exports: observations streamed as CSV, Parquet, NDJSON or a zip with provenance."""

from cityos.platform.exports.request import ExportFormat, ExportRequest, parse_export_request
from cityos.platform.exports.service import (
    ExportPlan,
    build_manifest,
    export_chunks,
    export_manifest,
    plan_export,
)

__all__ = [
    "ExportFormat",
    "ExportPlan",
    "ExportRequest",
    "build_manifest",
    "export_chunks",
    "export_manifest",
    "parse_export_request",
    "plan_export",
]
