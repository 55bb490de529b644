"""`cityos connectors list|run`: the registered importers of administrative data, and a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.config import load_settings
from cityos.platform.connectors_admin import (
    ConnectorInfo,
    ObservedConnector,
    configured,
    kind_option,
    list_connectors,
    load_connector,
)
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Dataset
from cityos.platform.imports import ImportSummary, import_facilities, is_open_licence
from cityos.platform.ports import Catalog, Connector
from cityos.platform.timefmt import format_rfc3339

app = typer.Typer(
    help="Importers of administrative open data (推奨データセット CSV, GSI GeoJSON ...).",
    no_args_is_help=True,
)
SHOWN_REJECTIONS = 50
"""Rejected rows listed in the human summary (--json lists all)."""
_OPTION_OF_FIELD = {
    "connector": "NAME",
    "source": "--source",
    "kind": "--kind",
    "columns": "--columns",
    "licence": "--licence",
}


def _info_document(info: ConnectorInfo) -> dict[str, object]:
    options = (["--kind"] if info.kind_required else []) + (
        ["--columns"] if info.takes_columns else []
    )
    return {
        "name": info.name,
        "title": info.title,
        "kind": info.kind,
        "kind_required": info.kind_required,
        "options": options,
        "default_licence": info.default_licence,
        "file_suffixes": list(info.file_suffixes),
    }


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List the registered connectors: name, facility kind, options, title, default licence."""
    infos = list_connectors(load_settings())
    if as_json:
        emit_json([_info_document(info) for info in infos])
        return
    if not infos:
        typer.echo("no connectors installed")
        return
    width = max(len(info.name) for info in infos)
    typer.echo(f"{'NAME':<{width}}  {'KIND':<22} {'OPTIONS':<19} DATASET")
    for info in infos:
        kind = info.kind or ("--kind K" if info.kind_required else "per record")
        options = " ".join(cast(list[str], _info_document(info)["options"])) or "-"
        typer.echo(f"{info.name:<{width}}  {kind:<22} {options:<19} {info.title}")
        typer.echo(f"{'':<{width}}  default licence: {info.default_licence}")


class _NoCatalog:
    """Stands in for the catalog in a dry run: any use of it is a bug, so it raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a dry run must not use the catalog (tried {name!r})")


class _ProgressBar:
    """Shows one bar per source file on stderr (a spinner and a count: row totals are unknown)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def source_started(self, source: str) -> None:
        """Add a bar for `source`."""
        name = Path(source).name or source
        self.tasks[source] = self.progress.add_task(name, total=None)

    def item_read(self, source: str) -> None:
        """Count one row of `source`."""
        self.progress.advance(self.tasks[source])

    def source_finished(self, source: str, count: int) -> None:
        """Fill the bar of `source`."""
        self.progress.update(self.tasks[source], total=count, completed=count)


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _bad_option(exc: InvalidInput) -> typer.BadParameter:
    return typer.BadParameter(str(exc), param_hint=_OPTION_OF_FIELD.get(exc.field or ""))


def _run(
    catalog: Catalog, connector: Connector, source: str, licence: str | None, dry_run: bool
) -> ImportSummary:
    with _progress() as progress:
        observed = ObservedConnector(connector, _ProgressBar(progress))
        try:
            return import_facilities(
                catalog=catalog, connector=observed, source=source, licence=licence, dry_run=dry_run
            )
        except InvalidInput as exc:  # a bad source or mapping: the caller's to fix (exit 2)
            raise _bad_option(exc) from None


def _dataset_document(dataset: Dataset) -> dict[str, object]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "source": dataset.source,
        "licence": dataset.licence,
        "public": dataset.public,
        "fetched_at": format_rfc3339(dataset.fetched_at),
        "checksum": dataset.checksum,
        "row_count": dataset.row_count,
    }


def _summary_document(
    *,
    name: str,
    source: str,
    kind: str | None,
    licence: str,
    summary: ImportSummary,
    datasets: list[Dataset],
) -> dict[str, object]:
    return {
        "connector": name,
        "source": source,
        "kind": kind,
        "licence": licence,
        "public": is_open_licence(licence),
        "dry_run": summary.dry_run,
        "read": summary.read,
        "valid": summary.read - summary.rejected - summary.skipped,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "withdrawn": summary.withdrawn,
        "rejected": summary.rejected,
        "merged": summary.merged,
        "skipped": summary.skipped,
        "skipped_kinds": dict(summary.skipped_kinds),
        "rejections": [
            {"source": r.source, "line": r.line, "reason": r.reason} for r in summary.rejections
        ],
        "datasets": [_dataset_document(d) for d in datasets]
        if datasets
        else [{"id": ds_id} for ds_id in summary.datasets],
    }


def _echo_summary(document: dict[str, Any]) -> None:
    visibility = "public" if document["public"] else "not public: needs the domain read scope"
    typer.echo(f"{document['connector']} <- {document['source']}")
    typer.echo(f"  licence: {document['licence']} ({visibility})")
    if document["dry_run"]:
        typer.echo(
            f"  dry run, nothing written: read {document['read']}, valid {document['valid']}, "
            f"rejected {document['rejected']}"
        )
    else:
        counts = ("read", "inserted", "updated", "unchanged", "withdrawn", "rejected")
        typer.echo("  " + ", ".join(f"{key} {document[key]}" for key in counts))
    if document["merged"]:
        merged = int(document["merged"])
        typer.echo(
            f"  merged: {merged} row{' describes a place' if merged == 1 else 's describe places'}"
            " that other sources have too (same 共通ID, or the same name within 50 m)"
        )
    if document["skipped"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in document["skipped_kinds"].items())
        typer.echo(f"  skipped {document['skipped']} not handled by this connector ({kinds})")
    for dataset in document["datasets"]:
        rows = (
            f", {dataset['row_count']} rows, {dataset['checksum']}"
            if "row_count" in dataset
            else ""
        )
        typer.echo(f"  dataset {dataset['id']}{rows}")
    rejections = document["rejections"]
    many = len({r["source"] for r in rejections}) > 1
    for rejection in rejections[:SHOWN_REJECTIONS]:
        where = f"{Path(rejection['source']).name} " if many else ""
        typer.echo(f"  rejected {where}line {rejection['line']}: {rejection['reason']}")
    if len(rejections) > SHOWN_REJECTIONS:
        typer.echo(f"  ... and {len(rejections) - SHOWN_REJECTIONS} more rejected (see --json)")


@app.command("run")
def run(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="connector name (see `connectors list`)")
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="file, directory (each file the connector reads) or URL (connectors that fetch)",
        ),
    ],
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="facility kind for facilities-csv, e.g. first-aid-station"),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="map the file's headers: FIELD=Header,... where FIELD is key, name, kana, "
            "address, lat, lon, phone, url, opened, note, email or a standard header name",
        ),
    ] = None,
    licence: Annotated[
        str | None,
        typer.Option("--licence", help="the publisher's licence, e.g. 'CC BY 4.0' (open = public)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read and validate only; write nothing")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a source: upsert its facilities, withdraw the ones gone, report every rejected row."""
    settings = load_settings()
    try:
        connector = configured(load_connector(settings, name), kind=kind, columns=columns)
    except InvalidInput as exc:
        raise _bad_option(exc) from None
    chosen_licence = (licence or "").strip() or connector.default_licence
    stored_kind = getattr(connector, "kind", None)
    datasets: list[Dataset] = []
    if dry_run:
        summary = _run(cast(Catalog, _NoCatalog()), connector, source, licence, dry_run=True)
    else:
        with open_runtime() as runtime:
            summary = _run(runtime.catalog, connector, source, licence, dry_run=False)
            wanted = set(summary.datasets)
            datasets = [d for d in runtime.catalog.list_datasets() if d.id in wanted]
    document = _summary_document(
        name=name,
        source=source,
        kind=None if stored_kind is None else kind_option(stored_kind),
        licence=chosen_licence,
        summary=summary,
        datasets=datasets,
    )
    if as_json:
        emit_json(document)
    else:
        _echo_summary(document)
