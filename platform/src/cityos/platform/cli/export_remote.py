"""`cityos export --url ...`: a client_credentials token, then the export streamed to a file."""

from __future__ import annotations

import io
import json
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from cityos.platform.exports.request import ExportFormat, ExportRequest
from cityos.platform.exports.service import EXPORT_PATH

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
EXPECTED_ROWS_HEADER = "X-Cityos-Expected-Rows"
TAIL_BYTES = 16 * 1024 * 1024
"""The end of a Parquet or zip download kept when it is not written to a file (stdout, a FIFO):
enough for the Parquet footer or the zip's manifest and directory, which give its rows."""
TIMEOUT = httpx.Timeout(30.0, read=300.0)
"""Connect/write/pool 30 s; up to 300 s between two reads (the server plans before it sends)."""


class RemoteError(Exception):
    """The server refused or failed, or could not be reached; `usage` marks a 400 (exit 2)."""

    def __init__(self, message: str, *, usage: bool = False, field: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        self.field = field


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """What an error response said: a message and, for bad input, the parameter."""

    message: str
    code: str | None = None
    field: str | None = None


def server_answer(response: httpx.Response) -> ServerAnswer:
    """The one-line reason of an error response, whichever error shape the server used.

    Shapes: `{"error": {"code", "message", "field"}}` (exports), `{"error", "error_description"}`
    (OAuth, RFC 6749) and `{"errors": [{"message", "extensions": {"code"}}]}` (401, 429).
    """
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            field = error.get("field")
            return ServerAnswer(
                str(error["message"]),
                _text(error.get("code")),
                None if field is None else str(field),
            )
        if isinstance(error, str):
            return ServerAnswer(str(body.get("error_description") or error), error)
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            extensions = errors[0].get("extensions")
            code = extensions.get("code") if isinstance(extensions, dict) else None
            return ServerAnswer(str(errors[0].get("message", "")), _text(code))
    text = " ".join(response.text.split())[:200]
    return ServerAnswer(text or response.reason_phrase or "no reason given")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _refusal(what: str, response: httpx.Response) -> RemoteError:
    answer = server_answer(response)
    code = f" {answer.code}" if answer.code else ""
    message = f"{what} (HTTP {response.status_code}{code}): {answer.message}"
    retry_after = response.headers.get("retry-after")
    if response.status_code == 429 and retry_after:
        message += f"; retry in {retry_after} s"
    return RemoteError(message, usage=response.status_code == 400, field=answer.field)


def fetch_token(http: httpx.Client, *, client_id: str, client_secret: str) -> str:
    """An access token for the client (client_credentials, HTTP Basic), all its scopes."""
    response = http.post(
        TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=(client_id, client_secret)
    )
    if response.status_code != 200:
        refusal = _refusal("the server refused the client credentials", response)
        if server_answer(response).code == "invalid_client":  # authlib's text names methods
            refusal = RemoteError(
                f"the server refused the client credentials (HTTP {response.status_code} "
                "invalid_client): unknown client id, wrong secret, or the client was revoked"
            )
        raise refusal
    token = response.json().get("access_token")
    if not isinstance(token, str) or not token:
        raise RemoteError("the token endpoint answered without an access_token")
    return token


@dataclass
class Download:
    """An export response that was accepted; iterate `chunks()` for the file's bytes."""

    response: httpx.Response
    expected_rows: int | None

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        yield from self.response.iter_bytes()


def open_client(url: str) -> httpx.Client:
    """An HTTP client for the cityos at `url`."""
    return httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT, follow_redirects=False)


def start_download(http: httpx.Client, *, token: str, request: ExportRequest) -> Download:
    """Send the export request; RemoteError unless the server accepts it (status 200).

    The caller must close `download.response`.
    """
    sent = http.build_request(
        "GET",
        EXPORT_PATH,
        params=tuple(request.query_params()),
        headers={"Authorization": f"Bearer {token}"},
    )
    response = http.send(sent, stream=True)
    if response.status_code != 200:
        try:
            response.read()
        finally:
            response.close()
        raise _refusal("the server refused the export", response)
    header = response.headers.get(EXPECTED_ROWS_HEADER)
    expected = int(header) if header is not None and header.strip().isdigit() else None
    return Download(response=response, expected_rows=expected)


class LineCounter:
    """Rows of CSV or NDJSON bytes as they stream: newlines, less the CSV header line."""

    def __init__(self, *, header: bool) -> None:
        self.header = header
        self._header_pending = header
        self.rows = 0
        self.size = 0
        self._last = b""

    def feed(self, chunk: bytes) -> int:
        """Count the rows completed by `chunk`; return how many."""
        if not chunk:
            return 0
        lines = chunk.count(b"\n")
        if self._header_pending and lines:
            lines -= 1
            self._header_pending = False
        self.rows += lines
        self.size += len(chunk)
        self._last = chunk[-1:]
        return lines

    @property
    def complete(self) -> bool:
        """Whether the bytes end a line (and, for CSV, hold the header): not cut off."""
        if self.size == 0:
            return not self.header
        return self._last == b"\n" and not self._header_pending


class Tail:
    """The last bytes of a stream (at least `keep` of them), to read its row count at the end."""

    def __init__(self, keep: int = TAIL_BYTES) -> None:
        self.keep = keep
        self.size = 0
        self._chunks: deque[bytes] = deque()
        self._kept = 0

    def feed(self, chunk: bytes) -> None:
        """Add `chunk`; forget whole chunks that are no longer needed."""
        self._chunks.append(chunk)
        self._kept += len(chunk)
        self.size += len(chunk)
        while self._kept - len(self._chunks[0]) >= self.keep:
            self._kept -= len(self._chunks.popleft())

    def file(self) -> IO[bytes]:
        """The stream as a read-only file; reading before the kept end is an OSError."""
        return io.BufferedReader(_TailFile(b"".join(self._chunks), self.size))


class _TailFile(io.RawIOBase):
    """A file of `size` bytes of which only the last `len(tail)` can be read."""

    def __init__(self, tail: bytes, size: int) -> None:
        super().__init__()
        self._tail = tail
        self._start = size - len(tail)
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        """Yes."""
        return True

    def seekable(self) -> bool:
        """Yes."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to `offset` (from the start, the current position or the end)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        """The position."""
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Read from the kept end into `buffer`."""
        if self._position >= self._size:
            return 0
        if self._position < self._start:
            raise OSError(f"what is needed lies before the last {len(self._tail):,} bytes kept")
        data = self._tail[self._position - self._start :][: len(buffer)]
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def rows_in_file(path: Path | IO[bytes], export_format: ExportFormat) -> int:
    """The rows of a downloaded Parquet file (its footer) or zip (its manifest.json).

    RemoteError if the file is not whole (a cut-off download has no footer, no zip directory).
    """
    try:
        if export_format is ExportFormat.PARQUET:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with zipfile.ZipFile(path) as bundle:
            names = [
                name for name in bundle.namelist() if name.rsplit("/", 1)[-1] == "manifest.json"
            ]
            if len(names) != 1:
                raise ValueError("no manifest.json in the zip")
            manifest = json.loads(bundle.read(names[0]))
            return int(manifest["row_count"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise RemoteError(
            f"the downloaded {export_format.value} file is incomplete or damaged ({exc})"
        ) from None
