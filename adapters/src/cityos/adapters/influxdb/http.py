"""The v1-compatible HTTP API of InfluxDB: one pooled httpx client, errors classified once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
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
        if self._closed.is_set():
            raise RetryableError(
                f"the InfluxDB store for {self.url} is closed ({context})", service=SERVICE
            )
        try:
            response = self._client.request(method, path, params=params, data=data, content=content)
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
        return response

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
        error = body.get("error") if isinstance(body, dict) else "not a JSON object"
        results = body.get("results") if isinstance(body, dict) else None
        if error or response.status_code != 200 or not isinstance(results, list):
            raise InfluxQueryError(
                f"InfluxDB at {self.url} refused a query (HTTP {response.status_code}: "
                f"{error}) while {context}; statement: {excerpt(statement)}",
                statement=excerpt(statement),
                server_error=str(error),
            )
        for result in results:
            failed = result.get("error")
            if failed:
                raise InfluxQueryError(
                    f"InfluxDB at {self.url} failed statement {result.get('statement_id')} "
                    f"({failed}) while {context}; statement: {excerpt(statement)}",
                    statement=excerpt(statement),
                    server_error=str(failed),
                )
            if result.get("partial") or any(s.get("partial") for s in result.get("series", [])):
                # a server-side row limit (max-row-limit) cut the answer: never pass that on
                raise InfluxQueryError(
                    f"InfluxDB at {self.url} returned a partial result while {context} "
                    "(is [http] max-row-limit set?); statement: " + excerpt(statement),
                    statement=excerpt(statement),
                    server_error="partial result",
                )
        return results

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
