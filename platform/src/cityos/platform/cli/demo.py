"""`cityos demo`: the whole platform in one process on embedded defaults."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import typer

from cityos.platform.cli.stack import (
    mqtt_endpoint,
    port_or_free,
    redact_url,
    running_worker,
    serve_http,
)
from cityos.platform.config import READ_SCOPES, Settings, load_settings
from cityos.platform.demo import Simulator, demo_data_dir, devices_and_sensors
from cityos.platform.domain.errors import AlreadyExists
from cityos.platform.domain.model import EXPORT_READ, SCOPES, OAuthClient
from cityos.platform.imports.service import import_facilities
from cityos.platform.ports import AuthServer, ClientSecret
from cityos.platform.runtime import Runtime

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SIMULATOR_INTERVAL_SECONDS = 2.0
EXAMPLE_QUERY = "{ sensors { nodes { id domain latest { time value } } } }"
PARTNER_NAME = "cityos demo partner"
ADMIN_NAME = "cityos demo admin"
PARTNER_SCOPES = READ_SCOPES | {EXPORT_READ}


def demo(
    port: Annotated[int, typer.Option("--port", help="HTTP port (a free one if taken)")] = 8000,
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", help="MQTT port (a free one if taken)")
    ] = 1883,
    secure: Annotated[bool, typer.Option("--secure", help="no anonymous read access")] = False,
) -> None:
    """Run API, embedded broker, ingest worker and the Omaezaki sensor simulator."""
    settings = _demo_settings(load_settings())
    runtime = Runtime.open(settings)
    try:
        _register_simulated_devices(runtime)
        _load_evacuation_sites(runtime)
        http_port = port_or_free(HOST, port, "HTTP")
        access = _demo_access(runtime, f"http://{HOST}:{http_port}")
        with (
            mqtt_endpoint(runtime, host=HOST, port=mqtt_port) as (url, broker),
            running_worker(runtime, url) as worker,
        ):
            publisher = runtime.new_publisher(url, client_id="cityos-demo-simulator")
            simulator = Simulator(
                lambda topic, payload: publisher.publish(topic, payload, qos=1),
                interval=SIMULATOR_INTERVAL_SECONDS,
            )
            simulator.start()
            try:
                broker_name = broker.name if broker else "external"
                _print_banner(http_port, url, broker_name, worker.protocol, secure=secure)
                _print_access(access, f"http://{HOST}:{http_port}")
                serve_http(
                    runtime,
                    host=HOST,
                    port=http_port,
                    anonymous_scopes=frozenset() if secure else READ_SCOPES,
                )
            finally:
                simulator.stop()
                publisher.close()
    finally:
        runtime.close()
    typer.echo("cityos demo stopped")


def _demo_settings(settings: Settings) -> Settings:
    """The demo runs in dev mode (GraphiQL)."""
    return settings.model_copy(update={"api": settings.api.model_copy(update={"dev_mode": True})})


def _register_simulated_devices(runtime: Runtime) -> None:
    """Register the simulator's devices once (later runs keep them)."""
    added = 0
    for device, sensors in devices_and_sensors():
        try:
            runtime.catalog.add_device(device, sensors)
            added += 1
        except AlreadyExists:
            continue
    if added:
        log.info("registered %d simulated devices", added)


def _load_evacuation_sites(runtime: Runtime) -> None:
    """Import Omaezaki's real GSI evacuation sites and shelters (idempotent)."""
    summary = import_facilities(
        catalog=runtime.catalog,
        connector=runtime.connector("gsi-evacuation"),
        source=str(demo_data_dir()),
    )
    log.info(
        "evacuation sites: %d read, %d inserted, %d updated, %d unchanged, %d rejected",
        summary.read,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.rejected,
    )


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """The demo partner's credentials and ready-made tokens (label, token)."""

    partner: ClientSecret
    tokens: list[tuple[str, str]]
    ttl_seconds: int


def _demo_client(auth: AuthServer, name: str, scopes: frozenset[str]) -> OAuthClient | None:
    """The demo client called `name` (not revoked, same scopes), if earlier runs made one."""
    for client in auth.list_clients():
        if client.name == name and not client.revoked and client.scopes == scopes:
            return client
    return None


def _demo_access(runtime: Runtime, base: str) -> DemoAccess:
    """Demo clients (made once, the partner's secret renewed each run) and tokens for them."""
    auth = runtime.require_auth()
    partner = _demo_client(auth, PARTNER_NAME, PARTNER_SCOPES)
    secret = (
        auth.add_client(name=PARTNER_NAME, scopes=PARTNER_SCOPES)
        if partner is None
        else auth.rotate_client_secret(partner.id)
    )
    admin = (
        _demo_client(auth, ADMIN_NAME, SCOPES)
        or auth.add_client(name=ADMIN_NAME, scopes=SCOPES).client
    )
    issuer = None if runtime.settings.auth.issuer else base
    tokens = []
    for label, client_id, scopes in (
        ("tourism:read only", secret.client.id, frozenset({"tourism:read"})),
        ("read + export", secret.client.id, PARTNER_SCOPES),
        ("every scope (admin)", admin.id, SCOPES),
    ):
        issued = auth.issue_token(client_id, scopes=scopes, issuer=issuer)
        tokens.append((label, issued.access_token))
    return DemoAccess(
        partner=secret, tokens=tokens, ttl_seconds=runtime.settings.auth.token_ttl_seconds
    )


def _print_access(access: DemoAccess, base: str) -> None:
    partner = access.partner
    minutes = access.ttl_seconds // 60
    lines = [f"Access tokens (valid {minutes} min; a token's scopes replace anonymous access):"]
    for label, token in access.tokens:
        lines += [f"  {label}:", f"    {token}"]
    lines += [
        '  GraphiQL: Headers tab -> {"Authorization": "Bearer <token>"}',
        f"  partner client {partner.client.id} ({' '.join(sorted(partner.client.scopes))}); "
        "a fresh token:",
        f"    curl -s -u {partner.client.id}:{partner.client_secret} "
        f"-d grant_type=client_credentials {base}/oauth/token",
        "",
    ]
    typer.echo("\n".join(lines))


def _print_banner(
    http_port: int, mqtt_url: str, broker: str, protocol: str, *, secure: bool
) -> None:
    base = f"http://{HOST}:{http_port}"
    lines = [
        "",
        "cityos demo is running (Ctrl-C stops)",
        f"  GraphiQL     {base}/graphql",
        f"  health       {base}/healthz    metrics {base}/metrics",
        f"  MQTT broker  {redact_url(mqtt_url)} ({broker}; ingest worker speaks {protocol})",
        "",
        "Try:",
        f"  curl -s {base}/graphql -H 'content-type: application/json' \\",
        f'    -d \'{{"query": "{EXAMPLE_QUERY}"}}\'',
        "  mosquitto_sub -h 127.0.0.1 -p "
        f"{mqtt_url.rsplit(':', 1)[-1]} -t 'cityos/v1/devices/+/up' -v",
        "",
    ]
    typer.echo("\n".join(lines))
    if not secure:
        typer.secho(
            "WARNING: demo mode grants anonymous callers the read scopes "
            f"({' '.join(sorted(READ_SCOPES))}); use --secure to turn that off. "
            "`cityos serve` never does this.",
            fg="red",
            bold=True,
            err=True,
        )
