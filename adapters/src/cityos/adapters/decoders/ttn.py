"""Decoder of The Things Stack v3 uplink messages (JSON as TTS publishes them on MQTT).

Decisions (see also CONTRACT.md, "MQTT"):
- `end_device_ids.device_id` must be the device of the topic (TTS ids are our ids).
- `uplink_message.decoded_payload` keys are quantities: numbers become readings; strings,
  booleans and null are problems ("non-numeric value"); arrays and objects are problems
  ("nested value"). Other messages (join accepts, downlink events, location solved, an uplink
  without a payload formatter) are refused as a whole: they carry no readings.
- Time: a `time` key in `decoded_payload` (RFC 3339, the device's own clock) is the
  observation time and not a reading; otherwise `uplink_message.received_at` (the Network
  Server's receive time, the closest trusted clock to the radio reception; gateway clocks are
  often unsynchronised), else the top-level `received_at`. A redelivered message thus keeps its
  time and is stored once. A bad time makes each reading of the message a problem.
- Metadata of every reading: `rssi`, `snr` and `gateway_id` of the best gateway (highest RSSI,
  then SNR), `f_cnt`, `frequency` (Hz), `spreading_factor`.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from cityos.adapters.decoders.senml import (
    MAX_NAME_LENGTH,
    MAX_RECORDS,
    MAX_TIME,
    MIN_TIME,
    excerpt,
    finite,
    json_type,
    load_json,
)
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput, PayloadError
from cityos.platform.ports import DecodeContext, DecodedPayload, Reading, ReadingProblem
from cityos.platform.timefmt import parse_rfc3339

MAX_FIELDS = MAX_RECORDS  # keys of decoded_payload
MAX_GATEWAYS = 100  # rx_metadata entries looked at for the best gateway
# Top-level keys of the other messages TTS publishes on its application topics.
_OTHER_MESSAGES = (
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
    "uplink_normalized",
)


class TtnDecoder:
    """The `ttn` payload format (pure: no I/O, no state)."""

    format = "ttn"

    def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
        """Decode one uplink; whole-message faults raise PayloadError, others are problems."""
        message = load_json(payload)
        if not isinstance(message, dict):
            raise PayloadError(
                f"a TTS message is a JSON object, not {json_type(message)}", excerpt=payload
            )
        _check_device(message, ctx, payload)
        uplink, fields = _uplink(message, payload)
        time = _time(message, uplink, fields)
        metadata = MappingProxyType(_metadata(uplink))
        readings: list[Reading] = []
        problems: list[ReadingProblem] = []
        for quantity, raw in fields.items():
            if quantity == "time":  # the observation time, not a quantity
                continue
            if isinstance(time, str):
                reason = time
            else:
                value = finite(raw)
                if value is not None and 0 < len(quantity) <= MAX_NAME_LENGTH:
                    readings.append(Reading(quantity, time, value, None, metadata))
                    continue
                reason = _problem(quantity, raw)
            shown = quantity[:MAX_NAME_LENGTH] or None
            problems.append(ReadingProblem(reason, excerpt({quantity: raw}), shown))
        return DecodedPayload(readings=readings, problems=problems)


def create_decoder(settings: Settings) -> TtnDecoder:
    """Entry point of `cityos.decoders: ttn`."""
    return TtnDecoder()


def _check_device(message: dict[str, Any], ctx: DecodeContext, payload: bytes) -> None:
    ids = message.get("end_device_ids")
    device_id = ids.get("device_id") if isinstance(ids, dict) else None
    if not isinstance(device_id, str):
        raise PayloadError("end_device_ids.device_id is missing", excerpt=payload)
    if device_id != ctx.device.id:
        raise PayloadError(
            f"device id mismatch: the message is from {device_id[:64]!r}, "
            f"the topic's device is {ctx.device.id!r}",
            excerpt=payload,
        )


def _uplink(message: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The uplink message and its decoded payload, or PayloadError saying what this is."""
    uplink = message.get("uplink_message")
    if uplink is None:
        kind = next((key for key in _OTHER_MESSAGES if key in message), None)
        what = f"a {kind} message" if kind else "not an uplink message (no uplink_message)"
        raise PayloadError(f"{what}: it carries no readings", excerpt=payload)
    if not isinstance(uplink, dict):
        raise PayloadError(
            f"uplink_message must be an object, not {json_type(uplink)}", excerpt=payload
        )
    fields = uplink.get("decoded_payload")
    if fields is None:
        raise PayloadError(
            "uplink without decoded_payload (is a payload formatter set up in TTS?): no readings",
            excerpt=payload,
        )
    if not isinstance(fields, dict):
        raise PayloadError(
            f"decoded_payload must be an object of quantity: number, not {json_type(fields)}",
            excerpt=payload,
        )
    if len(fields) > MAX_FIELDS:
        raise PayloadError(
            f"too many fields in decoded_payload: {len(fields)} (at most {MAX_FIELDS})",
            excerpt=payload,
        )
    if not fields or set(fields) == {"time"}:
        raise PayloadError("decoded_payload holds no readings", excerpt=payload)
    return uplink, fields


def _time(
    message: dict[str, Any], uplink: dict[str, Any], fields: dict[str, Any]
) -> datetime | str:
    """The observation time of the uplink as aware UTC, or the reason it cannot be one."""
    if "time" in fields:
        where, raw = "decoded_payload.time", fields["time"]
    elif "received_at" in uplink:
        where, raw = "uplink_message.received_at", uplink["received_at"]
    elif "received_at" in message:
        where, raw = "received_at", message["received_at"]
    else:
        return "the uplink has no time (neither decoded_payload.time nor received_at)"
    try:
        return parse_rfc3339(raw, field=where, earliest=MIN_TIME, latest=MAX_TIME)
    except InvalidInput as exc:
        return str(exc)


def _problem(quantity: str, raw: Any) -> str:
    """Why one decoded_payload field cannot be a reading."""
    if not 0 < len(quantity) <= MAX_NAME_LENGTH:
        return f"quantity name must be 1..{MAX_NAME_LENGTH} characters, got {len(quantity)}"
    if isinstance(raw, dict | list):
        return f"nested value ({json_type(raw)}): only quantity: number fields are readings"
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return f"non-numeric value ({json_type(raw)}): values are numbers"
    return f"value is not finite ({excerpt(raw)})"


def _metadata(uplink: dict[str, Any]) -> dict[str, Any]:
    """Radio metadata worth keeping with each reading (malformed parts are left out)."""
    metadata: dict[str, Any] = {}
    best: tuple[float, float, dict[str, Any]] | None = None
    gateways = uplink.get("rx_metadata")
    for gateway in gateways[:MAX_GATEWAYS] if isinstance(gateways, list) else ():
        if not isinstance(gateway, dict):
            continue
        rssi = finite(gateway.get("rssi"))
        if rssi is None:
            rssi = finite(gateway.get("channel_rssi"))
        snr = finite(gateway.get("snr"))
        key = (
            rssi if rssi is not None else float("-inf"),
            snr if snr is not None else float("-inf"),
        )
        if best is None or key > best[:2]:
            best = (*key, gateway)
    if best is not None:
        rssi, snr, gateway = best
        if rssi != float("-inf"):
            metadata["rssi"] = rssi
        if snr != float("-inf"):
            metadata["snr"] = snr
        ids = gateway.get("gateway_ids")
        gateway_id = ids.get("gateway_id") if isinstance(ids, dict) else None
        if isinstance(gateway_id, str):
            metadata["gateway_id"] = gateway_id[:64]
    f_cnt = uplink.get("f_cnt", 0)  # TTS omits zero values, so a missing f_cnt is 0
    if type(f_cnt) is int:
        metadata["f_cnt"] = f_cnt
    settings = uplink.get("settings")
    if isinstance(settings, dict):
        frequency = settings.get("frequency")  # TTS sends 64-bit integers as strings
        if (
            isinstance(frequency, str)
            and frequency.isascii()
            and frequency.isdigit()
            and len(frequency) <= 12
        ):
            metadata["frequency"] = int(frequency)
        elif type(frequency) is int:
            metadata["frequency"] = frequency
        rate = settings.get("data_rate")
        lora = rate.get("lora") if isinstance(rate, dict) else None
        factor = lora.get("spreading_factor") if isinstance(lora, dict) else None
        if type(factor) is int:
            metadata["spreading_factor"] = factor
    return metadata
