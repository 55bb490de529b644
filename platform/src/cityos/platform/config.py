"""The one typed configuration tree (env `CITYOS__SECTION__KEY`, `.env` file, secret files).

Built once by the CLI or the app factory (`load_settings`) and passed down; never read at
import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import limits
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cityos.platform.domain.model import Domain


class DbSettings(BaseModel):
    """The SQL catalog."""

    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file `catalog.db` in the data dir",
    )


class TimeSeriesSettings(BaseModel):
    """The time-series store."""

    backend: str = Field(default="sqlite", description="`sqlite` (embedded) or `influxdb`")
    url: str | None = Field(default=None, description="InfluxDB base URL (v1-compatible API)")
    database: str = Field(default="cityos", description="InfluxDB database (1.x) / DBRP name")
    token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x API token")
    username: str | None = Field(default=None, description="InfluxDB 1.x user")
    password: SecretStr | None = Field(default=None, description="InfluxDB 1.x password")


class MqttSettings(BaseModel):
    """The MQTT broker that devices publish to."""

    url: SecretStr | None = Field(
        default=None,
        description="`mqtt://user:pass@host:port` (`mqtts://` for TLS); unset = embedded broker",
    )
    client_id: str = Field(default="cityos-ingest", description="MQTT client id of the worker")
    share_group: str = Field(default="cityos", description="MQTT v5 shared-subscription group")
    embedded_broker: str = Field(
        default="auto", description="`auto` (mosquitto on PATH, else amqtt), `mosquitto`, `amqtt`"
    )
    session_expiry_seconds: int = Field(
        default=86400, ge=0, description="how long the broker keeps the worker's session"
    )
    receive_maximum: int = Field(
        default=5000,
        ge=1,
        le=65535,
        description="MQTT v5 Receive Maximum (unacked in flight; cover a batch window)",
    )
    worker_password: SecretStr | None = Field(
        default=None, description="password `mosquitto sync --worker-username` gives the workers"
    )
    worker_password_file: Path | None = Field(
        default=None, description="... or a secret file holding it (first line)"
    )


class TtnSettings(BaseModel):
    """A The Things Stack (v3) MQTT server that `cityos ingest` also subscribes to."""

    url: str | None = Field(
        default=None,
        description="TTS MQTT server, e.g. `mqtts://eu1.cloud.thethings.network:8883`; unset = off",
    )
    application: str | None = Field(
        default=None, description="`<application id>@<tenant id>` (the MQTT username), e.g. `x@ttn`"
    )
    api_key: SecretStr | None = Field(
        default=None, description="TTS API key with the right to read application traffic"
    )
    api_key_file: Path | None = Field(
        default=None, description="... or a secret file holding it (first line)"
    )
    client_id: str = Field(default="cityos-ttn", description="MQTT client id used at TTS")

    @field_validator("application")
    @classmethod
    def _check_application(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"[a-z0-9](?:[-]?[a-z0-9]){1,35}@[a-z0-9-]+", value
        ):
            raise ValueError("expected `<application id>@<tenant id>`, e.g. `omaezaki-sensors@ttn`")
        return value


class IngestSettings(BaseModel):
    """The ingestion worker."""

    max_payload_bytes: int = Field(default=262144, ge=1, description="larger payloads are refused")
    max_future_seconds: int = Field(
        default=300, ge=0, description="readings further in the future are refused"
    )
    batch_size: int = Field(default=5000, ge=1, description="flush a batch at this many readings")
    flush_interval_ms: int = Field(default=100, ge=1, description="... or after this long")
    metrics_host: str = Field(
        default="127.0.0.1", description="interface of `cityos ingest`'s own GET /metrics"
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="... and its port (0 = off)"
    )
    rejected_retention_days: int = Field(
        default=90,
        ge=0,
        description="purge dead letters older than this (hourly in `ingest`); 0 keeps all",
    )
    device_cache_seconds: float = Field(
        default=5.0, ge=0, description="how long device/sensor lookups are cached"
    )


class ImportJobSettings(BaseModel):
    """One scheduled connector run."""

    connector: str = Field(description="connector name, e.g. gsi-evacuation")
    source: str = Field(description="path or URL the connector reads")
    every: str = Field(default="1d", description="interval: 30m, 6h, 1d, 1w ...")
    licence: str | None = Field(default=None, description="dataset licence (connector default)")
    kind: str | None = Field(
        default=None, description="facility kind for facilities-csv (as --kind), e.g. shelter"
    )
    columns: str | None = Field(
        default=None, description="header mapping (as --columns), e.g. key=#property,lat=latitude"
    )


class ConnectorsSettings(BaseModel):
    """Administrative-data imports run by `cityos serve`."""

    schedule: list[ImportJobSettings] = Field(
        default_factory=list,
        description='JSON list of jobs: `[{"connector": "gsi-evacuation", "source": "/data/gsi", '
        '"every": "1d"}]`',
    )


class AuthSettings(BaseModel):
    """OAuth2 (authorization server and token verification)."""

    issuer: str | None = Field(default=None, description="token issuer; default: server URL")
    audience: str = Field(default="cityos", description="`aud` of issued/accepted tokens")
    token_ttl_seconds: int = Field(default=900, ge=1, description="access-token lifetime")
    external_issuer: str | None = Field(default=None, description="an external IdP's issuer")
    external_jwks_url: str | None = Field(default=None, description="... and its JWKS URL")
    external_scope_claim: str = Field(default="scope", description="... and its scope claim")


RATE_LIMIT_SCHEMES = frozenset({"memory", "redis", "rediss", "redis+unix"})
"""Storage URL schemes the API's rate limiter accepts."""


class AlertsSettings(BaseModel):
    """Official alerts (JMA) served by `alerts`."""

    max_age_hours: float = Field(
        default=24,
        gt=0,
        description="an alert without its own validity lapses this long after its newest message",
    )


class ExportsSettings(BaseModel):
    """Research exports (`GET /exports/observations`, `cityos export`)."""

    licence: str = Field(
        default="CC BY 4.0 (Omaezaki City)",
        description="licence stated in every export's manifest for the sensor data",
    )
    max_sensors: int = Field(default=100, ge=1, description="most sensors per export")
    max_range_days: int = Field(
        default=3660, ge=1, description="longest time range of one export (raw or aggregated)"
    )
    max_concurrent: int = Field(
        default=2, ge=1, description="exports (and manifests) streamed at once by one process"
    )


class ApiSettings(BaseModel):
    """The HTTP / GraphQL API."""

    dev_mode: bool = Field(default=False, description="GraphiQL and introspection on")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed CORS origins"
    )
    rate_limit: str = Field(
        default="600/minute",
        description="requests per client (per source IP when anonymous), e.g. `600/minute`",
    )
    rate_limit_storage: SecretStr = Field(
        default=SecretStr("memory://"),
        description="where rate-limit counters live: `memory://` (per process) or "
        "`redis://host:6379/0` (shared by replicas)",
    )
    max_range_days: int = Field(default=366, ge=1, description="longest time range per request")
    max_points: int = Field(default=100000, ge=1, description="most points per request")

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(
                f"expected a rate such as `600/minute` or `10/second` (got {value!r})"
            ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().split("://", 1)[0]
        if scheme not in RATE_LIMIT_SCHEMES:
            raise ValueError(
                f"rate-limit storage must be one of {', '.join(sorted(RATE_LIMIT_SCHEMES))} "
                f"URLs (got scheme {scheme!r})"
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    """Everything cityos can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="CITYOS__",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        secrets_dir=None,
    )

    data_dir: Path = Field(default=Path(".cityos"), description="where embedded state lives")
    db: DbSettings = Field(default_factory=DbSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ttn: TtnSettings = Field(default_factory=TtnSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    connectors: ConnectorsSettings = Field(default_factory=ConnectorsSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    exports: ExportsSettings = Field(default_factory=ExportsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @property
    def db_url(self) -> str:
        """The catalog's SQLAlchemy URL (the configured one, else SQLite in the data dir)."""
        if self.db.url is not None:
            return self.db.url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"


READ_SCOPES: frozenset[str] = frozenset(domain.read_scope for domain in Domain)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings tree from the environment (and `.env`), with explicit overrides."""
    return Settings(**overrides)
