"""`format=zip`: the CSV data file, then manifest.json and README.txt, in one streamed zip."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from cityos.platform.exports.formats import Sink
from cityos.platform.timefmt import JST

DATA_NAME = "observations.csv"
"""The data file inside every zip export (CSV)."""
MANIFEST_NAME = "manifest.json"
README_NAME = "README.txt"
COMPRESS_LEVEL = 1
"""zlib level of the data file: CSV shrinks ~4x at level 1 already, at several times the speed."""

README = """\
cityos research export
======================

{data_name}    the data, as CSV (UTF-8, comma-separated, header line):
                    time,sensor_id,quantity,unit,value,quality
                    time: RFC 3339 with the +09:00 offset (Japan time)
                    rows: {rows};
                    sensor by sensor in the order asked, oldest first
manifest.json       how this file came about: the query, the sensors (units,
                    locations, domains), the licence, when it was generated,
                    the row count and the SHA-256 of {data_name}.
README.txt          this text.

Check the data file:  sha256sum {data_name}   (compare with manifest.json "sha256")

Licence of the sensor data: {licence}
Query: {query}
"""


def readme_text(manifest: Mapping[str, object]) -> str:
    """The README of a zip export, from its manifest."""
    return README.format(
        data_name=DATA_NAME,
        rows=str(manifest.get("rows", "")),
        licence=manifest.get("licence", ""),
        query=manifest.get("url", ""),
    )


def zip_chunks(
    data: Iterator[bytes],
    *,
    generated_at: datetime,
    manifest: Callable[[], Mapping[str, object]],
) -> Iterator[bytes]:
    """Stream a zip of `data` (as DATA_NAME), then the manifest (asked for once data is done).

    The archive is written without seeking (sizes follow each file in a data descriptor),
    DEFLATE-compressed; entries carry `generated_at` (Japan time) as their date.
    """
    sink = Sink()
    local = generated_at.astimezone(JST)
    stamp = (local.year, local.month, local.day, local.hour, local.minute, local.second)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = _entry(DATA_NAME, stamp)
        with archive.open(entry, "w", force_zip64=True) as out:
            for chunk in data:
                out.write(chunk)
                yield sink.take()  # also when empty (zlib buffers): a consumer may stop here
        described = manifest()
        text = json.dumps(described, ensure_ascii=False, indent=2) + "\n"
        archive.writestr(_entry(MANIFEST_NAME, stamp), text.encode())
        archive.writestr(_entry(README_NAME, stamp), readme_text(described).encode())
    yield sink.take()


def _entry(name: str, stamp: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=stamp)
    entry.compress_type = zipfile.ZIP_DEFLATED
    # The level's attribute is `_compresslevel` before Python 3.13 (an alias after it).
    setattr(entry, "_compresslevel", COMPRESS_LEVEL)  # noqa: B010
    entry.external_attr = 0o644 << 16
    return entry
