"""The v1-compatible HTTP API of InfluxDB: one pooled httpx client, errors classified once."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from cityos.platform.domain.errors import CityosError, ConfigError, RetryableError

SERVICE = "influxdb"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
POOL_SIZE = 16
_CREDENTIAL_HELP = (
    "set CITYOS__TIMESERIES__TOKEN (2.x / 3.x) or CITYOS__TIMESERIES__USERNAME and "
    "CITYOS__TIMESERIES__PASSWORD (1.x) to credentials that may read and write the database"
)

# What influxd 1.x says when it stops a running query for its own reasons (shutting down,
# an operator's KILL QUERY): the statement is fine, asking again later can succeed.
_TRANSIENT_QUERY_ERRORS = frozenset({"query engine shutdown", "query interrupted", "query aborted"})


class InfluxQueryError(CityosError):
    """InfluxDB refused or failed a query for good (a bug or a server-side limit)."""

    def __init__(self, message: str, *, statement: str, server_error: str) -> None:
        super().__init__(message)
        self.statement = statement
        self.server_error = server_error


def redact(url: str) -> str:
    """The URL without user info, query or fragment (safe for logs and error messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def excerpt(text: str, size: int = 300) -> str:
    """The start of a long text, marked when cut."""
    return text if len(text) <= size else text[:size] + f"... ({len(text)} chars)"


class InfluxHttp:
    """Talks to one InfluxDB server; every failure becomes a classified cityos error."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = READ_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = redact(url)
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        self._closed = threading.Event()
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
            transport=transport,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        context: str,
    ) -> httpx.Response:
        """Send one request; transport failures and 5xx are Retryable, 401/403 ConfigError."""
        self._check_open(context)
        with self._classified(context):
            response = self._client.request(method, path, params=params, data=data, content=content)
        self._check_status(response, context)
        return response

    def stream_lines(
        self,
        path: str,
        *,
        params: Mapping[str, str],
        data: Mapping[str, str],
        context: str,
    ) -> Generator[bytes, None, None]:
        """POST and yield the response body's non-empty lines as they arrive (a generator).

        Errors are classified as by `request`, also mid-stream; the response is closed when
        the generator ends, is closed or is collected, so the server stops sending at once.
        """
        self._check_open(context)
        # identity: gzip would cost CPU on both ends of what is usually a local connection
        request = self._client.build_request(
            "POST", path, params=params, data=data, headers={"Accept-Encoding": "identity"}
        )
        with self._classified(context):
            response = self._client.send(request, stream=True)
        try:
            with self._classified(context):
                if response.status_code >= 400:
                    response.read()  # an error body is small; the status check quotes it
            self._check_status(response, context)
            pieces: list[bytes] = []
            with self._classified(context):
                for data_piece in response.iter_bytes():
                    start = 0
                    end = data_piece.find(b"\n")
                    while end >= 0:
                        pieces.append(data_piece[start:end])
                        line = b"".join(pieces)
                        pieces.clear()
                        if line.strip():
                            yield line
                        start = end + 1
                        end = data_piece.find(b"\n", start)
                    if start < len(data_piece):
                        pieces.append(data_piece[start:])
            rest = b"".join(pieces)
            if rest.strip():
                yield rest
        finally:
            response.close()

    def _check_open(self, context: str) -> None:
        if self._closed.is_set():
            raise RetryableError(
                f"the InfluxDB store for {self.url} is closed ({context})", service=SERVICE
            )

    @contextmanager
    def _classified(self, context: str) -> Iterator[None]:
        """Turn transport failures (timeouts, refused or dropped connections) into Retryable."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"InfluxDB at {self.url} timed out while {context}: {type(exc).__name__}",
                service=SERVICE,
                attempt_context=context,
            ) from exc
        except (httpx.TransportError, RuntimeError) as exc:  # RuntimeError: closed meanwhile
            reason = str(exc) or type(exc).__name__
            raise RetryableError(
                f"InfluxDB at {self.url} is unreachable while {context}: {reason}",
                service=SERVICE,
                attempt_context=context,
            ) from exc

    def _check_status(self, response: httpx.Response, context: str) -> None:
        """401/403 are a ConfigError, 5xx Retryable; anything else is for the caller."""
        status = response.status_code
        if status in (401, 403):
            raise ConfigError(
                f"InfluxDB at {self.url} refused the credentials (HTTP {status}: "
                f"{excerpt(server_error(response))}) while {context}; {_CREDENTIAL_HELP}"
            )
        if status >= 500:
            raise RetryableError(
                f"InfluxDB at {self.url} failed (HTTP {status}: "
                f"{excerpt(server_error(response))}) while {context}",
                service=SERVICE,
                attempt_context=context,
            )

    def query(self, statement: str, *, db: str | None, context: str) -> list[dict[str, Any]]:
        """Run InfluxQL (POST, form data, epoch ns); one result dict per statement."""
        params = {"epoch": "ns"}
        if db is not None:
            params["db"] = db
        response = self.request(
            "POST", "/query", params=params, data={"q": statement}, context=context
        )
        try:
            body = response.json()
        except ValueError as exc:
            raise InfluxQueryError(
                f"InfluxDB at {self.url} sent no JSON (HTTP {response.status_code}) while "
                f"{context}: {excerpt(response.text)}",
                statement=excerpt(statement),
                server_error=response.text,
            ) from exc
        results = self.results_of(
            body, status=response.status_code, statement=statement, context=context
        )
        for result in results:
            if result.get("partial") or any(s.get("partial") for s in result.get("series", [])):
                # a server-side row limit (max-row-limit) cut the answer: never pass that on
                raise self.partial_result(statement, context=context)
        return results

    def results_of(
        self, body: object, *, status: int, statement: str, context: str
    ) -> list[dict[str, Any]]:
        """The `results` of a query answer; a refused query or failed statement raises."""
        error = body.get("error") if isinstance(body, dict) else "not a JSON object"
        results = body.get("results") if isinstance(body, dict) else None
        if error or status != 200 or not isinstance(results, list):
            raise InfluxQueryError(
                f"InfluxDB at {self.url} refused a query (HTTP {status}: "
                f"{error}) while {context}; statement: {excerpt(statement)}",
                statement=excerpt(statement),
                server_error=str(error),
            )
        for result in results:
            failed = result.get("error")
            if failed in _TRANSIENT_QUERY_ERRORS:
                raise RetryableError(
                    f"InfluxDB at {self.url} stopped statement {result.get('statement_id')} "
                    f"({failed}) while {context}",
                    service=SERVICE,
                    attempt_context=context,
                )
            if failed:
                raise InfluxQueryError(
                    f"InfluxDB at {self.url} failed statement {result.get('statement_id')} "
                    f"({failed}) while {context}; statement: {excerpt(statement)}",
                    statement=excerpt(statement),
                    server_error=str(failed),
                )
        return results

    def partial_result(self, statement: str, *, context: str) -> InfluxQueryError:
        """The error for an answer that InfluxDB cut short (never passed on as complete)."""
        return InfluxQueryError(
            f"InfluxDB at {self.url} returned a partial result while {context} "
            "(is [http] max-row-limit set?); statement: " + excerpt(statement),
            statement=excerpt(statement),
            server_error="partial result",
        )

    def ping(self) -> None:
        """GET /ping; anything but 204 is Retryable."""
        response = self.request("GET", "/ping", context="pinging")
        if response.status_code != 204:
            raise RetryableError(
                f"InfluxDB at {self.url} answered /ping with HTTP {response.status_code}",
                service=SERVICE,
            )

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        self._closed.set()
        self._client.close()


def server_error(response: httpx.Response) -> str:
    """The `error` of an InfluxDB error response, else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # 2.x style
        return str(body["message"])
    return response.text.strip()
