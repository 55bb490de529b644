"""`cityos devices ...`: register, list, update, rotate and revoke devices."""

from __future__ import annotations

from typing import Annotated

import typer

from cityos.platform.audit.service import record_cli_action
from cityos.platform.cli.output import JSON_OPTION, emit_json
from cityos.platform.cli.session import open_runtime
from cityos.platform.devices.service import (
    DeviceChanges,
    NewDeviceCredentials,
    build_device,
    parse_sensor_spec,
    register_device,
    revoke_device,
    rotate_credentials,
    update_device,
)
from cityos.platform.domain.model import Device, Domain, GeoPoint, Sensor

app = typer.Typer(help="Register, list, update, rotate and revoke devices.", no_args_is_help=True)
DEVICE_ID = typer.Argument(metavar="ID", help="device id, e.g. omaezaki-port", show_default=False)


def _device_document(device: Device, sensors: list[Sensor]) -> dict[str, object]:
    return {
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


def _echo_device(device: Device, sensors: list[Sensor]) -> None:
    state = " (revoked)" if device.revoked else ""
    typer.echo(
        f"{device.id}{state}  {device.domain.value:<8} {device.payload_format:<5} {device.name}"
    )
    for s in sensors:
        retired = "  (retired)" if s.retired else ""
        typer.echo(f"    {s.id}  [{s.unit}]  range {s.valid_min}..{s.valid_max}{retired}")


def _emit_credentials(credentials: NewDeviceCredentials) -> None:
    emit_json(
        {
            "device_id": credentials.device_id,
            "mqtt_username": credentials.mqtt_username,
            "mqtt_password": credentials.mqtt_password,
        }
    )


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
    with open_runtime() as runtime:
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
        record_cli_action(runtime.catalog, "devices add", [device.id], domain=device.domain.value)
    if as_json:
        _emit_credentials(credentials)
        return
    typer.echo(f"registered device {device.id} with sensors {', '.join(s.id for s in sensors)}")
    typer.echo(f"MQTT username: {credentials.mqtt_username}")
    typer.echo(f"MQTT password: {credentials.mqtt_password}   (shown once; stored hashed)")
    typer.echo(f"publish to:    cityos/v1/devices/{device.id}/up")


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List registered devices and their sensors."""
    with open_runtime() as runtime:
        rows = [
            (device, runtime.catalog.sensors_of_device(device.id))
            for device in runtime.catalog.list_devices()
        ]
    if as_json:
        emit_json([_device_document(device, sensors) for device, sensors in rows])
        return
    if not rows:
        typer.echo("no devices registered")
    for device, sensors in rows:
        _echo_device(device, sensors)


@app.command("update")
def update(
    device_id: Annotated[str, DEVICE_ID],
    name: Annotated[str | None, typer.Option("--name", help="new human-readable name")] = None,
    lat: Annotated[float | None, typer.Option("--lat")] = None,
    lon: Annotated[float | None, typer.Option("--lon")] = None,
    sensor: Annotated[
        list[str] | None,
        typer.Option(
            "--sensor",
            help="QUANTITY:UNIT[:MIN:MAX], repeatable: add a sensor or set its range "
            "(no MIN:MAX = no range); a retired sensor comes back",
        ),
    ] = None,
    retire: Annotated[
        list[str] | None, typer.Option("--retire", help="QUANTITY to retire, repeatable")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a device's name, location or sensors (stored readings are kept)."""
    if (lat is None) != (lon is None):
        raise typer.BadParameter("--lat and --lon go together")
    with open_runtime() as runtime:
        changes = DeviceChanges(
            name=name,
            location=None if lat is None or lon is None else GeoPoint(lat=lat, lon=lon),
            sensors=[parse_sensor_spec(spec) for spec in sensor or ()],
            retire=list(retire or ()),
        )
        device, sensors = update_device(
            catalog=runtime.catalog, device_id=device_id, changes=changes
        )
        record_cli_action(runtime.catalog, "devices update", [device.id])
    if as_json:
        emit_json(_device_document(device, sensors))
        return
    typer.echo(f"updated device {device.id}")
    _echo_device(device, sensors)


@app.command("rotate")
def rotate(device_id: Annotated[str, DEVICE_ID], as_json: bool = JSON_OPTION) -> None:
    """Give a device a new MQTT password, printed once (run `mosquitto sync` afterwards)."""
    with open_runtime() as runtime:
        credentials = rotate_credentials(catalog=runtime.catalog, device_id=device_id)
        record_cli_action(runtime.catalog, "devices rotate", [device_id])
    if as_json:
        _emit_credentials(credentials)
        return
    typer.echo(f"new MQTT password for {credentials.device_id}")
    typer.echo(f"MQTT username: {credentials.mqtt_username}")
    typer.echo(f"MQTT password: {credentials.mqtt_password}   (shown once; stored hashed)")
    typer.echo("the broker accepts it after `cityos mosquitto sync ... --pid-file P`")


@app.command("revoke")
def revoke(device_id: Annotated[str, DEVICE_ID], as_json: bool = JSON_OPTION) -> None:
    """Revoke a device: ingestion refuses it, `mosquitto sync` leaves it out."""
    with open_runtime() as runtime:
        newly = revoke_device(catalog=runtime.catalog, device_id=device_id)
        record_cli_action(runtime.catalog, "devices revoke", [device_id])
    if as_json:
        emit_json({"device_id": device_id, "revoked": True, "already_revoked": not newly})
        return
    typer.echo(f"device {device_id} {'revoked' if newly else 'was already revoked'}")
    typer.echo(
        "the broker refuses its new connections after `cityos mosquitto sync ... --pid-file P`"
    )
