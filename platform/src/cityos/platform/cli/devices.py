"""`cityos devices ...`: register and list devices."""

from __future__ import annotations

from typing import Annotated

import typer

from cityos.platform.cli.output import JSON_OPTION, emit_json, fail
from cityos.platform.config import load_settings
from cityos.platform.devices.service import build_device, parse_sensor_spec, register_device
from cityos.platform.domain.errors import AlreadyExists, InvalidInput
from cityos.platform.domain.model import Domain, GeoPoint
from cityos.platform.runtime import Runtime

app = typer.Typer(help="Register and list devices.", no_args_is_help=True)


@app.command("add")
def add(
    device_id: Annotated[str, typer.Option("--id", help="device id, e.g. omaezaki-port")],
    name: Annotated[str, typer.Option("--name", help="human-readable name")],
    domain: Annotated[Domain, typer.Option("--domain", case_sensitive=False)],
    payload_format: Annotated[str, typer.Option("--format", help="json, senml or ttn")],
    sensor: Annotated[
        list[str], typer.Option("--sensor", help="QUANTITY:UNIT[:MIN:MAX], repeatable")
    ],
    lat: Annotated[float | None, typer.Option("--lat")] = None,
    lon: Annotated[float | None, typer.Option("--lon")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a device and its sensors; print its MQTT credentials once."""
    if (lat is None) != (lon is None):
        raise typer.BadParameter("--lat and --lon go together")
    runtime = Runtime.open(load_settings())
    try:
        device, sensors = build_device(
            device_id=device_id,
            name=name,
            domain=domain,
            payload_format=payload_format,
            sensors=[parse_sensor_spec(spec) for spec in sensor],
            location=None if lat is None or lon is None else GeoPoint(lat=lat, lon=lon),
            known_formats=runtime.decoders.keys(),
        )
        credentials = register_device(catalog=runtime.catalog, device=device, sensors=sensors)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None  # a usage error: exit code 2
    except AlreadyExists as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "device_id": credentials.device_id,
                "mqtt_username": credentials.mqtt_username,
                "mqtt_password": credentials.mqtt_password,
            }
        )
        return
    typer.echo(f"registered device {device.id} with sensors {', '.join(s.id for s in sensors)}")
    typer.echo(f"MQTT username: {credentials.mqtt_username}")
    typer.echo(f"MQTT password: {credentials.mqtt_password}   (shown once; stored hashed)")
    typer.echo(f"publish to:    cityos/v1/devices/{device.id}/up")


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List registered devices and their sensors."""
    runtime = Runtime.open(load_settings())
    try:
        rows = [
            (device, runtime.catalog.sensors_of_device(device.id))
            for device in runtime.catalog.list_devices()
        ]
    finally:
        runtime.close()
    if as_json:
        emit_json(
            [
                {
                    "device_id": device.id,
                    "name": device.name,
                    "domain": device.domain.value,
                    "format": device.payload_format,
                    "revoked": device.revoked,
                    "location": None
                    if device.location is None
                    else {"lat": device.location.lat, "lon": device.location.lon},
                    "sensors": [
                        {
                            "id": s.id,
                            "quantity": s.quantity,
                            "unit": s.unit,
                            "min": s.valid_min,
                            "max": s.valid_max,
                            "retired": s.retired,
                        }
                        for s in sensors
                    ],
                }
                for device, sensors in rows
            ]
        )
        return
    if not rows:
        typer.echo("no devices registered")
    for device, sensors in rows:
        state = " (revoked)" if device.revoked else ""
        typer.echo(
            f"{device.id}{state}  {device.domain.value:<8} {device.payload_format:<5} {device.name}"
        )
        for s in sensors:
            typer.echo(f"    {s.id}  [{s.unit}]  range {s.valid_min}..{s.valid_max}")
