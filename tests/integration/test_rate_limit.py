"""Per-client rate limits: 429 with Retry-After, keys, the OAuth endpoints, Redis-shared limits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from apikit import BASE, post_graphql
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.api.ratelimit import RateLimiter, open_storage
from cityos.platform.config import ApiSettings, Settings
from cityos.platform.runtime import Runtime
from testkit.services import free_port

REDIS = "redis://127.0.0.1:6379/0"
QUERY = "{ __typename }"


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    yield runtime
    runtime.close()


def memory_limiter(rate: str) -> RateLimiter:
    return RateLimiter(rate, open_storage("memory://"))


def token_of(runtime: Runtime, name: str) -> str:
    auth = runtime.require_auth()
    secret = auth.add_client(name=name, scopes=frozenset({"tourism:read"}))
    return auth.issue_token(secret.client.id, issuer=BASE).access_token


def statuses(http: TestClient, count: int, token: str | None = None) -> list[int]:
    return [post_graphql(http, QUERY, token).status_code for _ in range(count)]


def test_a_client_over_its_rate_gets_429_with_retry_after(runtime: Runtime) -> None:
    http = TestClient(create_app(runtime, rate_limiter=memory_limiter("3/minute")), base_url=BASE)
    token = token_of(runtime, "busy")
    assert statuses(http, 3, token) == [200, 200, 200]
    refused = post_graphql(http, QUERY, token)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json() == {
        "errors": [
            {
                "message": "rate limit exceeded (3/minute); "
                f"retry after {refused.headers['retry-after']} s",
                "extensions": {"code": "RATE_LIMITED"},
            }
        ]
    }


def test_clients_and_anonymous_addresses_have_separate_budgets(runtime: Runtime) -> None:
    http = TestClient(create_app(runtime, rate_limiter=memory_limiter("2/minute")), base_url=BASE)
    first, second = token_of(runtime, "one"), token_of(runtime, "two")
    assert statuses(http, 3, first) == [200, 200, 429]
    assert statuses(http, 3, second) == [200, 200, 429]
    assert statuses(http, 3) == [200, 200, 429]  # anonymous: by source address


def test_bad_tokens_count_against_the_source_address(runtime: Runtime) -> None:
    http = TestClient(create_app(runtime, rate_limiter=memory_limiter("2/minute")), base_url=BASE)
    assert statuses(http, 2, "forged") == [401, 401]
    assert statuses(http, 1, "forged") == [429]
    assert statuses(http, 1) == [429]  # the same address, now without a token
    assert statuses(http, 1, token_of(runtime, "good")) == [200]  # a real client is not


def test_the_oauth_endpoints_are_limited_per_address(runtime: Runtime) -> None:
    app = create_app(runtime, oauth_rate_limiter=memory_limiter("2/minute"))
    http = TestClient(app, base_url=BASE)
    secret = runtime.require_auth().add_client(name="p", scopes=frozenset({"tourism:read"}))
    form = {"grant_type": "client_credentials"}
    wrong = (secret.client.id, "wrong")
    assert http.post("/oauth/token", data=form, auth=wrong).status_code == 401
    assert http.post("/oauth/token", data=form, auth=wrong).status_code == 401
    refused = http.post("/oauth/token", data=form, auth=(secret.client.id, secret.client_secret))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert http.post("/oauth/introspect", data={"token": "x"}, auth=wrong).status_code == 429
    assert http.get("/.well-known/jwks.json").status_code == 200  # reads are not limited
    assert post_graphql(http, QUERY).status_code == 200  # nor is the API by this limit


def test_the_configured_rate_applies(tmp_path: Path) -> None:
    runtime = Runtime.open(
        Settings(data_dir=tmp_path / "data", api=ApiSettings(rate_limit="2/minute"))
    )
    try:
        http = TestClient(create_app(runtime), base_url=BASE)
        assert statuses(http, 3) == [200, 200, 429]
    finally:
        runtime.close()


def test_bad_rate_settings_are_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="a rate such as"):
        ApiSettings(rate_limit="lots")
    with pytest.raises(ValidationError, match="rate-limit storage must be one of"):
        ApiSettings(rate_limit_storage="memcached://localhost:11211")  # type: ignore[arg-type]


# ---------------------------------------------------------------- shared through Redis


def redis_limiter(rate: str, prefix: str) -> RateLimiter:
    """A limiter with its own Redis connection (as another replica would have)."""
    return RateLimiter(rate, open_storage(REDIS, key_prefix=prefix))


def test_replicas_share_limits_through_redis(runtime: Runtime) -> None:
    prefix = f"cityos-test-{uuid.uuid4().hex}"
    replica_a = TestClient(
        create_app(runtime, rate_limiter=redis_limiter("4/minute", prefix)), base_url=BASE
    )
    replica_b = TestClient(
        create_app(runtime, rate_limiter=redis_limiter("4/minute", prefix)), base_url=BASE
    )
    token = token_of(runtime, "spread")
    answers = [post_graphql(http, QUERY, token) for http in (replica_a, replica_b) * 3]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    # a replica with its own memory counters would have let the fifth request through
    alone = TestClient(create_app(runtime, rate_limiter=memory_limiter("4/minute")))
    assert post_graphql(alone, QUERY, token).status_code == 200


def test_redis_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "ITERATIONS", 1000)
    api = ApiSettings(rate_limit="2/minute", rate_limit_storage=REDIS)  # type: ignore[arg-type]
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data", api=api))
    try:
        token = token_of(runtime, f"settings-{uuid.uuid4().hex}")  # a fresh key in Redis
        one = TestClient(create_app(runtime), base_url=BASE)
        two = TestClient(create_app(runtime), base_url=BASE)
        assert [post_graphql(h, QUERY, token).status_code for h in (one, two, one)] == [
            200,
            200,
            429,
        ]
    finally:
        runtime.close()


def test_an_unreachable_redis_lets_requests_through_and_warns_once(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    down = RateLimiter("1/minute", open_storage(f"redis://127.0.0.1:{free_port()}/0"))
    http = TestClient(create_app(runtime, rate_limiter=down), base_url=BASE)
    with caplog.at_level(logging.WARNING, logger="cityos.platform.api.ratelimit"):
        assert statuses(http, 3) == [200, 200, 200]
    warnings = [r for r in caplog.records if "rate-limit storage unavailable" in r.getMessage()]
    assert len(warnings) == 1
