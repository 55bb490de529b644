"""GET /exports/observations through the real app on the embedded store, tokens from /oauth/token.

Every format is read back by an independent reader and must equal what GraphQL returns for the
same range (raw and aggregated); every refusal comes before the first byte with a clear body.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage

from apikit import BASE, fetch_token
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.api.ratelimit import RateLimiter
from cityos.platform.config import ExportsSettings, Settings
from cityos.platform.domain.model import AuditEvent
from cityos.platform.runtime import Runtime
from testkit.exports_kit import (
    export_params,
    graphql_rows,
    rows_of,
    rows_of_csv,
    seed,
    sensors,
    unzip,
)
from testkit.memory_store import ScriptedStore
from testkit.served import served

START = datetime(2026, 11, 19, 15, tzinfo=UTC)  # 2026-11-20 00:00 JST
MINUTES = 20 * 24 * 60
FROM, TO = "2026-11-20T00:00:00+09:00", "2026-12-10T00:00:00+09:00"
TIDE, WATER, WIND, WBGT = list(sensors())
LICENCE = "CC BY 4.0 (Omaezaki City, test)"


@dataclass
class Api:
    runtime: Runtime
    http: TestClient
    tokens: dict[str, str]

    def bearer(self, token: str = "all") -> dict[str, str]:
        """The Authorization header with one of the tokens."""
        return {"Authorization": f"Bearer {self.tokens[token]}"}

    def get(
        self, params: list[tuple[str, str]], token: str | None = "all", path: str = ""
    ) -> httpx.Response:
        """GET an export (or its manifest) with one of the tokens (or a literal one)."""
        bearer = None if token is None else self.tokens.get(token, token)
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        return self.http.get(f"/exports/observations{path}", params=params, headers=headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "ITERATIONS", 1000)
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("exports") / "data",
            exports=ExportsSettings(licence=LICENCE, max_sensors=3, max_range_days=400),
        )
        runtime = Runtime.open(settings)
        seed(runtime, start=START, minutes=MINUTES)
        http = TestClient(create_app(runtime), base_url=BASE)
        scopes = {
            "all": "export:read disaster:read tourism:read health:read",
            "disaster": "export:read disaster:read",
            "reader": "disaster:read tourism:read health:read",
        }
        tokens = {}
        for name, granted in scopes.items():
            secret = runtime.require_auth().add_client(name=name, scopes=frozenset(granted.split()))
            tokens[name] = fetch_token(http, secret).access_token
        yield Api(runtime, http, tokens)
        runtime.close()


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "parquet", "zip"])
def test_raw_exports_equal_graphql(api: Api, export_format: str) -> None:
    chosen = [WBGT, TIDE]
    response = api.get(export_params(chosen, FROM, TO, export_format))
    assert response.status_code == 200, response.text
    got = rows_of(response.content, export_format)
    made = sensors()
    expected = [
        row for s in chosen for row in graphql_rows(api.http, api.tokens["all"], made[s], FROM, TO)
    ]
    assert len(expected) == 2 * 26_000  # 20 days of minutes less the gaps
    assert got == expected
    assert response.headers["x-cityos-expected-rows"] == str(len(expected))
    assert {row[5] for row in got} == {"good", "suspect", "bad"}


@pytest.mark.parametrize(
    ("every", "aggregate", "start", "export_format"),
    [
        ("1h", "mean", FROM, "parquet"),
        ("15m", "last", "2026-11-21T10:07:00+09:00", "csv"),
        ("1d", "max", "2026-11-20T05:30:00+09:00", "ndjson"),
        ("1w", "first", FROM, "csv"),
        ("1mo", "mean", "2026-11-01T00:00:00+09:00", "parquet"),
        ("1mo", "sum", FROM, "zip"),
        ("1y", "count", FROM, "ndjson"),
        ("1fy", "min", "2026-04-01T00:00:00+09:00", "csv"),
    ],
)
def test_aggregated_exports_equal_graphql(
    api: Api, every: str, aggregate: str, start: str, export_format: str
) -> None:
    chosen = [TIDE, WIND]
    params = export_params(chosen, start, TO, export_format, every=every, aggregate=aggregate)
    response = api.get(params)
    assert response.status_code == 200, response.text
    got = rows_of(response.content, export_format)
    made = sensors()
    expected = [
        row
        for s in chosen
        for row in graphql_rows(
            api.http, api.tokens["all"], made[s], start, TO, every=every, aggregate=aggregate
        )
    ]
    assert expected
    assert got == expected  # windows without data are no rows (GraphQL's fill NONE)
    assert "x-cityos-expected-rows" not in response.headers


# ---------------------------------------------------------------- headers, manifests


@pytest.mark.parametrize("export_format", ["csv", "parquet", "ndjson"])
def test_the_linked_manifest_describes_the_download(api: Api, export_format: str) -> None:
    response = api.get(export_params([TIDE, WBGT], FROM, TO, export_format))
    assert response.status_code == 200
    data = response.content
    disposition = response.headers["content-disposition"]
    assert disposition == (
        f'attachment; filename="cityos-observations-{TIDE}-and-1-more-'
        f'20261119T150000Z-20261209T150000Z.{export_format}"'
    )
    link, rel = response.headers["link"].split(";", 1)
    assert 'rel="describedby"' in rel
    assert link.startswith("</exports/observations/manifest?")
    manifest_response = api.http.get(
        link.strip("<>"), headers={"Authorization": f"Bearer {api.tokens['all']}"}
    )
    assert manifest_response.status_code == 200
    manifest = manifest_response.json()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["row_count"] == len(rows_of(data, export_format))
    assert manifest["data_file"]["name"] == disposition.split('"')[1]
    assert manifest["licence"] == LICENCE


def test_exports_of_different_sensors_over_one_range_have_different_file_names(
    api: Api,
) -> None:
    names = {
        api.get(export_params([sensor], FROM, TO, "csv")).headers["content-disposition"]
        for sensor in (TIDE, WATER, WIND)
    }
    assert names == {
        f'attachment; filename="cityos-observations-{s}-20261119T150000Z-20261209T150000Z.csv"'
        for s in (TIDE, WATER, WIND)
    }


def test_parquet_carries_schema_and_provenance(api: Api) -> None:
    response = api.get(export_params([TIDE], FROM, TO, "parquet"))
    file = pq.ParquetFile(io.BytesIO(response.content))
    assert str(file.schema_arrow.field("time").type) == "timestamp[ns, tz=UTC]"
    kv = file.metadata.metadata
    assert kv[b"cityos.licence"].decode() == LICENCE
    assert json.loads(kv[b"cityos.query"])["sensor"] == [TIDE]
    assert json.loads(kv[b"cityos.sensors"])[0]["unit"] == "m"
    assert b"cityos.generated_at" not in kv
    again = api.get(export_params([TIDE], FROM, TO, "parquet"))
    assert again.content == response.content  # the same bytes: the manifest's hash holds


def test_zip_bundles_csv_manifest_and_readme(api: Api) -> None:
    response = api.get(export_params([TIDE, WBGT], FROM, TO, "zip"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["link"].startswith("</exports/observations/manifest?")
    csv, manifest, readme = unzip(response.content)
    assert manifest["sha256"] == hashlib.sha256(csv).hexdigest()
    assert manifest["row_count"] == len(rows_of_csv(csv))
    assert manifest["query"]["sensor"] == [TIDE, WBGT]
    assert manifest["query"]["format"] == "zip"
    assert manifest["licence"] == LICENCE
    assert manifest["cityos_version"]
    generated = datetime.fromisoformat(manifest["generated_at"])
    assert abs(datetime.now(UTC) - generated) < timedelta(minutes=5)
    assert [(s["id"], s["unit"], s["domain"], s["location"]) for s in manifest["sensors"]] == [
        (TIDE, "m", "disaster", {"lat": 34.59, "lon": 138.22}),
        (WBGT, "Cel", "health", {"lat": 34.64, "lon": 138.13}),
    ]
    assert "CSV" in readme
    assert LICENCE in readme
    separate = api.get(export_params([TIDE, WBGT], FROM, TO, "zip"), path="/manifest").json()
    assert {**separate, "generated_at": None} == {**manifest, "generated_at": None}


def test_a_health_export_leaves_an_audit_event(api: Api) -> None:
    def exports() -> list[AuditEvent]:
        return [e for e in api.runtime.catalog.list_audit(limit=10_000) if e.operation == "export"]

    before = exports()
    assert api.get(export_params([WIND, WBGT], FROM, TO, "csv")).status_code == 200
    events = exports()[: len(exports()) - len(before)]  # newest first
    assert len(events) == 1
    assert events[0].resources == (WBGT,)
    assert events[0].details["kind"] == "health-read"
    assert events[0].client_id is not None
    assert api.get(export_params([WIND], FROM, TO, "csv")).status_code == 200
    assert len(exports()) == len(before) + 1  # no health sensor, no audit event


# ---------------------------------------------------------------- refusals


BAD_INPUT = [
    (export_params([TIDE], TO, FROM, "csv"), "to", "after `from`"),
    (export_params([TIDE], FROM, "2028-01-01T00:00:00+09:00", "csv"), "to", "maximum of 400 days"),
    (export_params([TIDE], "2026-11-20", TO, "csv"), "from", "RFC 3339"),
    (export_params([TIDE], "2026-11-20T00:00:00", TO, "csv"), "from", "no offset"),
    (export_params([TIDE], FROM, "2126-01-01T00:00:00Z", "csv"), "to", "outside"),
    (export_params([TIDE, WIND, WATER, WBGT], FROM, TO, "csv"), "sensor", "at most 3"),
    (export_params([TIDE, TIDE], FROM, TO, "csv"), "sensor", "given twice"),
    (export_params(["no dots"], FROM, TO, "csv"), "sensor", "malformed sensor id"),
    (export_params([TIDE], FROM, TO, "xlsx"), "format", "unknown format"),
    (export_params([TIDE], FROM, TO, "csv", every="1h"), "aggregate", "needs `aggregate`"),
    (export_params([TIDE], FROM, TO, "csv", aggregate="mean"), "every", "needs `every`"),
    (export_params([TIDE], FROM, TO, "csv", every="1h", aggregate="avg"), "aggregate", "unknown"),
    (
        [*export_params([TIDE], FROM, TO, "csv", every="1s", aggregate="mean"), ("to", TO)],
        "to",
        "2",
    ),
    ([("from", FROM), ("to", TO)], "sensor", "at least one"),
]


@pytest.mark.parametrize(("params", "field", "words"), BAD_INPUT)
@pytest.mark.parametrize("path", ["", "/manifest"])
def test_bad_input_is_a_400_naming_the_parameter(
    api: Api, params: list[tuple[str, str]], field: str, words: str, path: str
) -> None:
    response = api.get(params, path=path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in ("BAD_USER_INPUT", "LIMIT_EXCEEDED")
    assert error["field"] == field
    assert words in error["message"]


def test_a_window_count_beyond_the_limit_is_refused(api: Api) -> None:
    params = export_params([TIDE], "2026-01-01T00:00:00Z", TO, "csv", every="1s", aggregate="max")
    error = api.get(params).json()["error"]
    assert (error["code"], error["field"]) == ("LIMIT_EXCEEDED", "every")


def test_without_export_read_it_is_forbidden(api: Api) -> None:
    for token in (None, "reader"):
        response = api.get(export_params([TIDE], FROM, TO, "csv"), token=token)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "FORBIDDEN"
        assert "export:read" in response.json()["error"]["message"]


def test_a_sensor_outside_the_scopes_is_not_found_like_an_unknown_one(api: Api) -> None:
    hidden = api.get(export_params([TIDE, WBGT], FROM, TO, "csv"), token="disaster")
    unknown = api.get(export_params([TIDE, "city-hall.nothing"], FROM, TO, "csv"), token="all")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"].replace(WBGT, "X") == unknown.json()["error"][
        "message"
    ].replace("city-hall.nothing", "X")
    assert hidden.headers.keys() == unknown.headers.keys()


def test_a_bad_token_is_401(api: Api) -> None:
    response = api.get(export_params([TIDE], FROM, TO, "csv"), token="not-a-token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_the_rate_limit_applies(api: Api) -> None:
    limiter = RateLimiter("2/minute", MemoryStorage())
    http = TestClient(create_app(api.runtime, rate_limiter=limiter), base_url=BASE)
    headers = {"Authorization": f"Bearer {api.tokens['all']}"}
    params = export_params([TIDE], FROM, "2026-11-20T01:00:00+09:00", "csv")
    answers = [http.get("/exports/observations", params=params, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) >= 1


def test_an_audit_log_that_cannot_be_written_withholds_health_data(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_events: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(api.runtime.catalog, "append_audit", broken)
    response = api.get(export_params([TIDE, WBGT], FROM, TO, "csv"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "AUDIT_UNAVAILABLE"
    assert "audit log" in response.json()["error"]["message"]
    assert api.get(export_params([TIDE], FROM, TO, "csv")).status_code == 200  # not health


# ---------------------------------------------------------------- store failures


@pytest.fixture
def scripted(api: Api, monkeypatch: pytest.MonkeyPatch) -> ScriptedStore:
    """The module's store behind a ScriptedStore (blocks of 1000 rows), for one test."""
    store = ScriptedStore(api.runtime.store)
    monkeypatch.setattr(api.runtime, "store", store)
    return store


@pytest.mark.parametrize("export_format", ["csv", "parquet", "zip"])
def test_a_store_failure_while_hashing_a_manifest_is_a_503_json_error(
    api: Api, scripted: ScriptedStore, export_format: str
) -> None:
    scripted.fail_after = 2
    response = api.get(export_params([TIDE, WIND], FROM, TO, export_format), path="/manifest")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "UNAVAILABLE",
            "message": "the time-series store is unavailable: the store went away mid-stream",
            "field": None,
        }
    }
    assert int(response.headers["retry-after"]) > 0
    assert scripted.closed_streams == 1
    assert scripted.open_streams == 0
    assert api.runtime.metrics.value("cityos_exports_in_progress") == 0


class Records(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """What the exports and uvicorn log (warnings and errors) during one test."""
    handler = Records()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "cityos.platform.api.exports")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.mark.parametrize("export_format", ["csv", "parquet", "ndjson", "zip"])
def test_a_store_failure_mid_stream_cuts_the_download_off_with_one_warning(
    api: Api, scripted: ScriptedStore, server_log: list[logging.LogRecord], export_format: str
) -> None:
    scripted.fail_after = 2  # blocks of 1000 rows: the first sensor's third block fails
    failed = {"format": export_format, "outcome": "failed"}
    before = api.runtime.metrics.value("cityos_exports_total", failed)
    params = export_params([TIDE, WIND], FROM, TO, export_format)
    tries = api.runtime.settings.exports.max_concurrent + 1  # a failure gives its slot back
    with (
        served(create_app(api.runtime)) as url,
        httpx.Client(base_url=f"http://{url}", headers=api.bearer()) as client,
    ):
        for _ in range(tries):
            with client.stream("GET", "/exports/observations", params=params) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    response.read()
    assert api.runtime.metrics.value("cityos_exports_total", failed) == before + tries
    assert api.runtime.metrics.value("cityos_exports_in_progress") == 0
    assert (scripted.open_streams, scripted.closed_streams) == (0, tries)
    warnings = [r for r in server_log if r.levelno >= logging.WARNING]
    assert len(warnings) == tries  # one line each, nothing from uvicorn
    warning = warnings[0]
    assert (warning.name, warning.levelname) == ("cityos.platform.api.exports", "WARNING")
    assert warning.exc_info is None
    message = warning.getMessage()
    assert "\n" not in message
    for words in (f"format {export_format}", f"sensor {TIDE}", "after 2000 rows", "mid-stream"):
        assert words in message, message


# ---------------------------------------------------------------- how many at once


def _busy(response: httpx.Response) -> bool:
    """Whether this is the 503 of a process already streaming its most exports."""
    if response.status_code != 503:
        return False
    error = response.json()["error"]
    assert error["code"] == "UNAVAILABLE"
    assert error["field"] is None
    assert "most exports at once (2)" in error["message"]
    assert response.headers["retry-after"] == "10"
    return True


def test_exports_and_manifests_beyond_max_concurrent_are_503_before_any_byte(
    api: Api, scripted: ScriptedStore
) -> None:
    assert api.runtime.settings.exports.max_concurrent == 2
    http = TestClient(create_app(api.runtime), base_url=BASE, headers=api.bearer())
    metrics = api.runtime.metrics
    busy_before = metrics.value("cityos_exports_busy_total")
    audit_before = len(api.runtime.catalog.list_audit(limit=10_000))
    gates = [scripted.hold(TIDE), scripted.hold(WIND)]
    with ThreadPoolExecutor(2) as pool:
        try:
            export = pool.submit(http.get, "/exports/observations", params=[
                *export_params([TIDE], FROM, TO, "csv")])  # fmt: skip
            manifest = pool.submit(
                http.get,
                "/exports/observations/manifest",
                params=export_params([WIND], FROM, TO, "zip"),
            )
            scripted.wait_until_waiting(TIDE, WIND)  # both hold a slot, mid-stream
            assert metrics.value("cityos_exports_in_progress") == 2
            refused = [
                http.get(
                    f"/exports/observations{path}", params=export_params([WBGT], FROM, TO, "csv")
                )
                for path in ("", "/manifest")
            ]
            bad = http.get("/exports/observations", params=export_params([WBGT], TO, FROM, "csv"))
            forbidden = http.get(
                "/exports/observations",
                params=export_params([WBGT], FROM, TO, "csv"),
                headers=api.bearer("reader"),
            )
        finally:
            for gate in gates:
                gate.set()
        done = [export.result(timeout=60), manifest.result(timeout=60)]
    assert all(_busy(response) for response in refused)
    assert (bad.status_code, forbidden.status_code) == (400, 403)  # checked before the slot
    assert metrics.value("cityos_exports_busy_total") == busy_before + 2
    assert len(api.runtime.catalog.list_audit(limit=10_000)) == audit_before  # no health read
    assert [response.status_code for response in done] == [200, 200]
    assert len(rows_of_csv(done[0].content)) == 26_000
    assert done[1].json()["row_count"] == 26_000
    assert (
        http.get(  # the slots came back
            "/exports/observations", params=export_params([WBGT], FROM, TO, "csv")
        ).status_code
        == 200
    )


def test_a_client_that_disconnects_gives_its_slot_back(api: Api, scripted: ScriptedStore) -> None:
    aborted = {"format": "csv", "outcome": "aborted"}
    aborted_before = api.runtime.metrics.value("cityos_exports_total", aborted)
    gone, held = scripted.hold(TIDE), scripted.hold(WIND)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(served(create_app(api.runtime)))
        client = stack.enter_context(httpx.Client(base_url=f"http://{url}", headers=api.bearer()))
        stack.callback(gone.set)  # whatever happens, nothing stays held
        stack.callback(held.set)
        host, port = url.split(":")
        leaving = stack.enter_context(socket.create_connection((host, int(port))))
        query = urlencode(export_params([TIDE], FROM, TO, "csv"))
        leaving.sendall(
            f"GET /exports/observations?{query} HTTP/1.1\r\nHost: {url}\r\n"
            f"Authorization: {api.bearer()['Authorization']}\r\n\r\n".encode()
        )
        assert leaving.recv(65536).startswith(b"HTTP/1.1 200 ")
        staying = stack.enter_context(
            client.stream(
                "GET", "/exports/observations", params=export_params([WIND], FROM, TO, "csv")
            )
        )
        assert staying.status_code == 200
        scripted.wait_until_waiting(TIDE, WIND)  # two exports mid-stream: no slot left

        def water() -> httpx.Response:
            return client.get(
                "/exports/observations", params=export_params([WATER], FROM, TO, "csv")
            )

        assert _busy(water())
        leaving.close()
        gone.set()  # the held read returns; the export sees the disconnect and stops
        _eventually(lambda: api.runtime.metrics.value("cityos_exports_in_progress") == 1)
        answer = water()  # the slot is back as soon as the export has ended
        assert answer.status_code == 200
        assert len(rows_of_csv(answer.content)) == 26_000
        assert api.runtime.metrics.value("cityos_exports_total", aborted) == aborted_before + 1
        held.set()
        assert len(rows_of_csv(staying.read())) == 26_000
    assert api.runtime.metrics.value("cityos_exports_in_progress") == 0
    assert scripted.open_streams == 0


def _eventually(check: Callable[[], bool]) -> None:
    """Return once `check()` holds (AssertionError after 10 s)."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the check never held"
        time.sleep(0.02)
