"""The settings tree: defaults, environment names of CONTRACT.md, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cityos.platform.config import READ_SCOPES, load_settings


def test_defaults_are_embedded(no_cityos_env: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == Path(".cityos")
    assert settings.db.url is None
    assert settings.db_url == f"sqlite:///{no_cityos_env / '.cityos' / 'catalog.db'}"
    assert settings.timeseries.backend == "sqlite"
    assert settings.mqtt.url is None
    assert settings.mqtt.client_id == "cityos-ingest"
    assert settings.mqtt.share_group == "cityos"
    assert settings.ingest.max_payload_bytes == 262144
    assert settings.ingest.max_future_seconds == 300
    assert settings.auth.audience == "cityos"
    assert settings.auth.token_ttl_seconds == 900
    assert settings.auth.external_scope_claim == "scope"
    assert settings.api.dev_mode is False
    assert settings.api.rate_limit == "600/minute"
    assert settings.api.max_range_days == 366
    assert settings.api.max_points == 100000
    assert not hasattr(settings.api, "anonymous_scopes")  # never configurable: serve grants none


def test_contract_environment_variables(
    no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "CITYOS__DATA_DIR": "/var/lib/cityos",
        "CITYOS__DB__URL": "postgresql+psycopg://cityos:dbpw@db/cityos",
        "CITYOS__TIMESERIES__BACKEND": "influxdb",
        "CITYOS__TIMESERIES__URL": "http://influx:8086",
        "CITYOS__TIMESERIES__DATABASE": "omaezaki",
        "CITYOS__TIMESERIES__TOKEN": "s3cret-token",
        "CITYOS__MQTT__URL": "mqtts://worker:mqpw@broker:8883",
        "CITYOS__MQTT__CLIENT_ID": "ingest-1",
        "CITYOS__MQTT__SHARE_GROUP": "workers",
        "CITYOS__INGEST__MAX_PAYLOAD_BYTES": "1024",
        "CITYOS__API__DEV_MODE": "true",
        "CITYOS__API__CORS_ORIGINS": "https://a.example, https://b.example",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.data_dir == Path("/var/lib/cityos")
    assert settings.db_url == "postgresql+psycopg://cityos:dbpw@db/cityos"
    assert settings.timeseries.backend == "influxdb"
    assert settings.timeseries.database == "omaezaki"
    assert settings.timeseries.token is not None
    assert settings.timeseries.token.get_secret_value() == "s3cret-token"
    for secret in ("s3cret-token", "dbpw", "mqpw"):  # secrets never show in logs or reprs
        assert secret not in repr(settings)
        assert secret not in str(settings.model_dump())
    assert settings.mqtt.url is not None
    assert settings.mqtt.url.get_secret_value() == "mqtts://worker:mqpw@broker:8883"
    assert settings.mqtt.client_id == "ingest-1"
    assert settings.mqtt.share_group == "workers"
    assert settings.ingest.max_payload_bytes == 1024
    assert settings.api.dev_mode is True
    assert settings.api.cors_origins == ["https://a.example", "https://b.example"]


def test_dotenv_file_is_read(no_cityos_env: Path) -> None:
    (no_cityos_env / ".env").write_text("CITYOS__TIMESERIES__DATABASE=from_dotenv\n")
    assert load_settings().timeseries.database == "from_dotenv"


def test_invalid_values_are_rejected(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS__INGEST__MAX_PAYLOAD_BYTES", "0")
    with pytest.raises(ValidationError, match="max_payload_bytes"):
        load_settings()


def test_settings_are_not_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing every platform module with a broken environment must not fail."""
    import importlib
    import pkgutil

    import cityos.platform

    monkeypatch.setenv("CITYOS__INGEST__MAX_PAYLOAD_BYTES", "not-a-number")
    for module in pkgutil.walk_packages(cityos.platform.__path__, "cityos.platform."):
        importlib.import_module(module.name)


def test_read_scopes_cover_every_domain() -> None:
    assert frozenset({"disaster:read", "tourism:read", "health:read"}) == READ_SCOPES


def test_redacted_urls_hide_passwords() -> None:
    from cityos.platform.cli.stack import redact_url

    assert redact_url("mqtt://w:secret@broker:1883") == "mqtt://w:***@broker:1883"
    assert redact_url("mqtt://w:secret@[::1]:1883") == "mqtt://w:***@[::1]:1883"
    assert redact_url("mqtt://broker:1883") == "mqtt://broker:1883"
