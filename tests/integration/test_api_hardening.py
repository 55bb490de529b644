"""Hardening of POST /graphql: depth, alias and token bombs, introspection, points, CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from graphql import get_introspection_query
from graphql.language import Lexer, Source, TokenKind
from graphql.validation.validate import ValidationAbortedError

from apikit import FROM, TO, gql, post_graphql, seed
from cityos.platform.api.app import create_app
from cityos.platform.api.graphql import limits
from cityos.platform.api.graphql.errors import code_of
from cityos.platform.api.graphql.limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, MAX_TOKENS
from cityos.platform.api.ratelimit import RateLimiter, open_storage
from cityos.platform.config import READ_SCOPES, ApiSettings, Settings
from cityos.platform.runtime import Runtime


class Calls:
    """Counts calls of the catalog and store methods resolvers use."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for target, names in (
            (runtime.catalog, ("list_sensors", "count_sensors", "get_sensor", "list_devices")),
            (runtime.store, ("query_range", "count_range", "latest", "aggregate")),
        ):
            for name in names:
                monkeypatch.setattr(target, name, self._counting(getattr(target, name)))

    def _counting(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return method(*args, **kwargs)

        return counted


def open_runtime(tmp_path: Path, **api: Any) -> Runtime:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data", api=ApiSettings(**api)))
    seed(runtime)
    return runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def http(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))


@pytest.fixture
def calls(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(runtime, monkeypatch)


def refused(http: TestClient, query: str) -> dict[str, Any]:
    """The single error of a request refused before execution."""
    response = post_graphql(http, query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert isinstance(error, dict)
    return error


def fragment_bomb(levels: int, fan: int, leaf: str) -> str:
    """Each fragment spreads the next `fan` times: `fan ** levels` paths through the document."""
    fragments = [
        f"fragment F{i} on SensorConnection {{ {' '.join([f'...F{i + 1}'] * fan)} }}"
        for i in range(levels)
    ]
    fragments.append(f"fragment F{levels} on SensorConnection {{ {leaf} }}")
    return "{ sensors { ...F0 } } " + " ".join(fragments)


# ---------------------------------------------------------------- depth, aliases, tokens


def test_real_queries_pass(http: TestClient, calls: Calls) -> None:
    body = gql(http, "{ sensors { nodes { id latest { time value } location { lat } } } }")
    assert len(body["data"]["sensors"]["nodes"]) == 5
    assert calls.count > 0


def test_too_deep_a_query_is_refused_before_validation_and_execution(
    http: TestClient, calls: Calls
) -> None:
    fields = ["sensors", "nodes", *(f"f{i}" for i in range(MAX_DEPTH - 1))]
    query = "{ " + " { ".join(fields) + " }" * len(fields)
    error = refused(http, query)
    # depth counts before validation: the unknown fields f0.. are never even looked up
    assert error["message"] == f"query depth {MAX_DEPTH + 1} exceeds the maximum of {MAX_DEPTH}"
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert calls.count == 0


def test_depth_through_fragments_counts(http: TestClient, calls: Calls) -> None:
    fragments = " ".join(
        f"fragment D{i} on Sensor {{ d{i} {{ ...D{i + 1} }} }}" for i in range(MAX_DEPTH)
    )
    query = f"{{ sensors {{ nodes {{ ...D0 }} }} }} {fragments} fragment D{MAX_DEPTH} on X {{ x }}"
    error = refused(http, query)
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert "query depth" in error["message"]
    assert calls.count == 0


def test_aliases_up_to_the_limit_pass_one_more_is_refused(http: TestClient, calls: Calls) -> None:
    def aliased(n: int) -> str:
        return "{ " + " ".join(f"a{i}: sensors {{ totalCount }}" for i in range(n)) + " }"

    error = refused(http, aliased(MAX_ALIASES + 1))
    assert error["message"] == f"{MAX_ALIASES + 1} aliases exceed the maximum of {MAX_ALIASES}"
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert calls.count == 0
    body = gql(http, aliased(MAX_ALIASES))
    assert len(body["data"]) == MAX_ALIASES
    assert calls.count == 2 * MAX_ALIASES  # list + count per alias


def test_a_fragment_bomb_is_measured_in_linear_time(
    http: TestClient, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked = 0
    selections = limits._Measure._selections

    def counting(self: Any, selection_set: Any) -> tuple[int, int, int]:
        nonlocal walked
        walked += 1
        return selections(self, selection_set)

    monkeypatch.setattr(limits._Measure, "_selections", counting)
    levels, fan = 12, 8  # 8**12 = 68 billion paths; strawberry's own limiters walk them all
    body = post_graphql(http, fragment_bomb(levels, fan, "a: totalCount")).json()
    assert body["data"] is None
    assert {e["message"] for e in body["errors"]} == {
        f"{fan**levels + 1} fields exceed the maximum of {MAX_FIELDS}",
        f"{fan**levels} aliases exceed the maximum of {MAX_ALIASES}",
    }
    assert {e["extensions"]["code"] for e in body["errors"]} == {"LIMIT_EXCEEDED"}
    assert walked <= 2 * (levels + 3)  # each selection set once
    assert calls.count == 0


def test_reused_fragments_within_the_limits_execute_each_field_once(
    http: TestClient, calls: Calls
) -> None:
    body = gql(http, fragment_bomb(3, 3, "totalCount"))
    assert body == {"data": {"sensors": {"totalCount": 5}}}
    assert calls.count == 2  # one list, one count: repeated spreads are merged


def test_fields_up_to_the_limit_pass_one_more_is_refused(http: TestClient, calls: Calls) -> None:
    def repeated(n: int) -> str:  # `sensors` and n - 1 copies of `totalCount`
        return "{ sensors { " + "totalCount " * (n - 1) + "} }"

    error = refused(http, repeated(MAX_FIELDS + 1))
    assert error["message"] == f"{MAX_FIELDS + 1} fields exceed the maximum of {MAX_FIELDS}"
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert calls.count == 0
    assert gql(http, repeated(MAX_FIELDS)) == {"data": {"sensors": {"totalCount": 5}}}


def tokens(query: str) -> int:
    lexer, count = Lexer(Source(query)), 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def test_too_many_tokens_stop_the_parser(http: TestClient, calls: Calls) -> None:
    field = (  # many tokens, few fields: identical copies of one field are merged
        'observations(sensorId: "omaezaki-port.tide_level", from: "2026-11-01T09:00:00+09:00",'
        ' to: "2026-11-02T09:00:00+09:00", first: 5, fill: NONE) { totalCount } '
    )
    copies = (MAX_TOKENS - 2) // tokens(field)
    fits = "{ " + field * copies + "}"
    assert MAX_TOKENS - tokens(field) < tokens(fits) <= MAX_TOKENS
    assert gql(http, fits) == {"data": {"observations": {"totalCount": 10}}}
    calls.count = 0
    error = refused(http, "{ " + field * (copies + 1) + "}")
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert f"more than {MAX_TOKENS} tokens" in error["message"]
    assert calls.count == 0


def test_graphql_cores_validation_budget_is_a_limit_too() -> None:
    assert code_of(ValidationAbortedError("Validation aborted.")) == "LIMIT_EXCEEDED"


def test_a_body_above_the_maximum_is_413(http: TestClient, calls: Calls) -> None:
    padding = {"padding": "x" * 300_000}
    response = http.post("/graphql", json={"query": "{ __typename }", "variables": padding})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"query": "{ __typename }", "variables": {"padding": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}}'

    chunked = http.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert calls.count == 0


def test_nesting_too_deep_for_the_parser_is_a_limit_too(http: TestClient, calls: Calls) -> None:
    error = refused(http, "{" + "a {" * 500 + "b" + "}" * 501)
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert "nested too deeply" in error["message"]
    assert calls.count == 0


# ---------------------------------------------------------------- introspection


INTROSPECTION = (
    "{ __schema { types { name } } }",
    '{ __type(name: "Sensor") { name } }',
    "{ sensors { totalCount } __schema { queryType { name } } }",
    get_introspection_query(),
)


@pytest.mark.parametrize("query", INTROSPECTION)
def test_introspection_is_off_outside_dev_mode(http: TestClient, calls: Calls, query: str) -> None:
    error = refused(http, query)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "introspection is off" in error["message"]
    assert calls.count == 0
    assert gql(http, "{ __typename }") == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("query", INTROSPECTION)
def test_introspection_and_graphiql_in_dev_mode(tmp_path: Path, query: str) -> None:
    runtime = open_runtime(tmp_path, dev_mode=True)
    try:
        http = TestClient(create_app(runtime))
        assert "errors" not in gql(http, query)
        assert "graphiql" in http.get("/graphql", headers={"accept": "text/html"}).text.lower()
    finally:
        runtime.close()


def test_no_graphiql_outside_dev_mode(http: TestClient) -> None:
    response = http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code in {404, 405}


# ---------------------------------------------------------------- time range and points


OBSERVATIONS_ALIASES = (
    "query($from: DateTime!, $to: DateTime!) {"
    ' a: observations(sensorId: "omaezaki-port.tide_level", from: $from, to: $to) { totalCount }'
    ' b: observations(sensorId: "omaezaki-port.wave_height", from: $from, to: $to) { totalCount }'
    ' c: observations(sensorId: "omaezaki-cape.wind_speed", from: $from, to: $to) { totalCount }'
    "}"
)


def test_points_are_limited_per_request_across_aliases(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, max_points=25)
    try:
        http = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
        body = gql(http, OBSERVATIONS_ALIASES, **{"from": FROM, "to": TO})
        [error] = body["errors"]  # the third field to finish goes over the budget
        assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert "more than 25 observations" in error["message"]
        assert body["data"] is None  # observations is non-null: the whole answer is refused
        # one field alone stays within the budget
        alone = gql(
            http,
            "query($from: DateTime!, $to: DateTime!) { observations("
            'sensorId: "omaezaki-port.tide_level", from: $from, to: $to) { nodes { value } } }',
            **{"from": FROM, "to": TO},
        )
        assert len(alone["data"]["observations"]["nodes"]) == 10
    finally:
        runtime.close()


def test_a_time_range_above_the_maximum_is_a_clear_limit_error(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, max_range_days=7)
    try:
        http = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
        query = (
            'query($to: DateTime!) { observations(sensorId: "city-hall.wbgt",'
            ' from: "2026-11-01T00:00:00+09:00", to: $to) { totalCount } }'
        )
        ok = gql(http, query, to="2026-11-08T00:00:00+09:00")
        assert ok["data"]["observations"]["totalCount"] == 10
        [error] = gql(http, query, to="2026-11-09T00:00:00+09:00")["errors"]
        assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert error["message"] == "time range of 8 days exceeds the maximum of 7 days"
    finally:
        runtime.close()


# ---------------------------------------------------------------- CORS


ORIGIN = "https://map.omaezaki.example.jp"


def test_cors_allows_the_configured_origins_on_every_answer(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, cors_origins=[ORIGIN])
    try:
        app = create_app(runtime, rate_limiter=RateLimiter("2/minute", open_storage("memory://")))
        http = TestClient(app)
        preflight = http.options(
            "/graphql",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        headers = {"Origin": ORIGIN}
        ok = http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        bad = http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={**headers, "Authorization": "Bearer nope"},
        )
        assert bad.status_code == 401
        assert bad.headers["access-control-allow-origin"] == ORIGIN
        limited = http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert limited.status_code == 429
        assert limited.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in limited.headers["access-control-expose-headers"].lower()
        other = http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        runtime.close()


def test_without_configured_origins_there_are_no_cors_headers(http: TestClient) -> None:
    response = http.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
