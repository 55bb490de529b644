"""The Things Stack v3 uplink decoder: the official docs example, refusals, time, properties."""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.adapters.decoders.ttn import MAX_FIELDS, TtnDecoder, create_decoder
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import PayloadError
from cityos.platform.domain.model import Device, Domain
from cityos.platform.ports import DecodeContext, DecodedPayload, PayloadDecoder

DOCS = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "payloads"
    / "ttn-v3"
    / "tts-docs_integrations_data-formats_index.md"
)
RECEIVED = datetime(2020, 2, 12, 15, 15, 47, tzinfo=UTC)
CTX = DecodeContext(
    device=Device(id="dev1", name="dev1", domain=Domain.DISASTER, payload_format="ttn"),
    sensors={},
    topic="v3/app1@tenant1/devices/dev1/up",
    received_at=RECEIVED,
)
DECODER = TtnDecoder()
MISSING_COMMA = '    }\n    "received_at" : "2020-02-12T15:15:45.789585559Z"'


def docs_examples() -> dict[str, str]:
    """The ```json example blocks of the TTS docs page, by the summary above each."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.findall(r"<summary>(.*?)</summary>\s*```json\n(.*?)```", text, re.S)
    return dict(found)


EXAMPLES = docs_examples()
UPLINK_AS_PRINTED = EXAMPLES["Uplink message example"]
UPLINK_TEXT = UPLINK_AS_PRINTED.replace(MISSING_COMMA, MISSING_COMMA.replace("}", "},", 1))
UPLINK: dict[str, Any] = json.loads(UPLINK_TEXT)


def decode(message: Any, ctx: DecodeContext = CTX) -> DecodedPayload:
    payload = message.encode() if isinstance(message, str) else json.dumps(message).encode()
    return DECODER.decode(payload, ctx)


def uplink(decoded: Any = None, **changes: Any) -> dict[str, Any]:
    """The docs example with another decoded_payload and top-level/uplink changes."""
    message = copy.deepcopy(UPLINK)
    if decoded is not None:
        message["uplink_message"]["decoded_payload"] = decoded
    for key, value in changes.items():
        target = message["uplink_message"] if key.startswith("up_") else message
        key = key.removeprefix("up_")
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return message


def payload_error(message: Any) -> str:
    with pytest.raises(PayloadError) as info:
        decode(message)
    return info.value.reason


# ---------------------------------------------------------------- registration and oracle


def test_entry_point_creates_the_decoder() -> None:
    decoder = plugins.load(plugins.DECODERS, "ttn")(Settings())
    assert isinstance(decoder, TtnDecoder)
    assert isinstance(decoder, PayloadDecoder)
    assert decoder.format == "ttn"
    assert isinstance(create_decoder(Settings()), TtnDecoder)


def test_the_docs_example_as_printed_is_broken_json_and_says_where() -> None:
    assert set(EXAMPLES) >= {"Uplink message example", "Join message example"}
    with pytest.raises(PayloadError) as info:
        DECODER.decode(UPLINK_AS_PRINTED.encode(), CTX)
    assert "broken JSON: Expecting ',' delimiter at line 79" in info.value.reason


def test_official_uplink_example() -> None:
    result = DECODER.decode(UPLINK_TEXT.encode(), CTX)
    assert result.problems == []
    assert result.location is None
    ns_time = datetime(2020, 2, 12, 15, 15, 45, 789585, tzinfo=UTC)  # uplink_message.received_at
    assert [(r.quantity, r.value, r.time, r.unit) for r in result.readings] == [
        ("temperature", 1.0, ns_time, None),
        ("luminosity", 0.64, ns_time, None),
    ]
    for reading in result.readings:
        assert dict(reading.metadata) == {
            "rssi": -35.0,
            "snr": 5.0,
            "gateway_id": "gtw1",
            "f_cnt": 1,
            "frequency": 868_300_000,
            "spreading_factor": 7,
        }
        assert type(reading.value) is float


# ---------------------------------------------------------------- time


def test_device_time_in_decoded_payload_wins_and_is_not_a_reading() -> None:
    result = decode(uplink({"time": "2020-02-12T15:15:40+09:00", "water_level": 2}))
    (reading,) = result.readings
    assert reading.time == datetime(2020, 2, 12, 6, 15, 40, tzinfo=UTC)


def test_top_level_received_at_when_the_uplink_has_none() -> None:
    (reading, _) = decode(uplink(up_received_at=None)).readings
    assert reading.time == datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"up_received_at": None, "received_at": None}, "has no time"),
        ({"up_received_at": "2020-02-12T15:15:45"}, "has no offset"),
        ({"up_received_at": 1581520545}, "not an RFC 3339 date-time"),
        ({"up_received_at": "1999-12-31T23:59:59Z"}, "outside 2000-01-01..2100-01-01"),
    ],
)
def test_bad_time_makes_every_reading_a_problem(changes: dict[str, Any], reason: str) -> None:
    result = decode(uplink(None, **changes))
    assert result.readings == []
    assert [p.quantity for p in result.problems] == ["temperature", "luminosity"]
    assert all(reason in p.reason for p in result.problems)


def test_bad_device_time_is_named() -> None:
    result = decode(uplink({"time": "yesterday", "q": 1}))
    assert "decoded_payload.time" in result.problems[0].reason


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12.5", "non-numeric value (a string)"),
        (True, "non-numeric value (a boolean)"),
        (None, "non-numeric value (null)"),
        ({"x": 1}, "nested value (an object)"),
        ([1, 2], "nested value (an array)"),
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (10**400, "not finite"),
    ],
)
def test_bad_values_are_problems_and_neighbours_survive(value: Any, reason: str) -> None:
    message = uplink({"a": 1, "bad": 0, "b": -2.5})
    text = json.dumps(message, allow_nan=True).replace('"bad": 0', f'"bad": {_raw(value)}')
    result = DECODER.decode(text.encode(), CTX)
    assert [(r.quantity, r.value) for r in result.readings] == [("a", 1.0), ("b", -2.5)]
    (problem,) = result.problems
    assert problem.quantity == "bad"
    assert reason in problem.reason


def _raw(value: Any) -> str:
    return (
        str(value)
        if isinstance(value, int) and not isinstance(value, bool)
        else json.dumps(value, allow_nan=True)
    )


def test_quantity_name_lengths() -> None:
    result = decode(uplink({"": 1, "q" * 129: 2, "ok": 3}))
    assert [r.quantity for r in result.readings] == ["ok"]
    assert [p.quantity for p in result.problems] == [None, "q" * 128]


def test_best_gateway_by_rssi_then_snr_and_malformed_metadata_is_left_out() -> None:
    gateways = [
        {"gateway_ids": {"gateway_id": "far"}, "rssi": -110, "snr": -7.5},
        {"gateway_ids": {"gateway_id": "near"}, "rssi": -60, "snr": 2},
        {"gateway_ids": {"gateway_id": "near-better"}, "rssi": -60, "snr": 9.25},
        "garbage",
        {"rssi": "loud"},
    ]
    message = uplink(up_rx_metadata=gateways, up_f_cnt="7", up_settings={"frequency": "9x"})
    (reading, _) = decode(message).readings
    assert dict(reading.metadata) == {"rssi": -60.0, "snr": 9.25, "gateway_id": "near-better"}


def test_missing_f_cnt_is_zero_as_tts_omits_zero_values() -> None:
    (reading, _) = decode(uplink(up_f_cnt=None, up_rx_metadata=None)).readings
    assert reading.metadata["f_cnt"] == 0
    assert "rssi" not in reading.metadata


# ---------------------------------------------------------------- whole-message errors


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        ("Join message example", "a join_accept message: it carries no readings"),
        ("Downlink event message example", "a downlink_ack message"),
        ("Downlink failed event message example", "a downlink_failed message"),
        ("Downlink message example", "not an uplink message"),
    ],
)
def test_other_docs_messages_are_refused(summary: str, reason: str) -> None:
    assert reason in payload_error(EXAMPLES[summary])


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (uplink(end_device_ids={"device_id": "dev2"}), "device id mismatch"),
        (uplink(end_device_ids=None), "device_id is missing"),
        (uplink(end_device_ids={"device_id": 1}), "device_id is missing"),
        (uplink(up_decoded_payload=None), "without decoded_payload"),
        (uplink(uplink_message=[1]), "uplink_message must be an object"),
        (uplink([1]), "decoded_payload must be an object"),
        (uplink({}), "holds no readings"),
        (uplink({"time": "2020-02-12T15:15:40Z"}), "holds no readings"),
        ([UPLINK], "not an array"),
        ("\ufeff", "broken JSON"),
    ],
)
def test_whole_message_errors(message: Any, reason: str) -> None:
    assert reason in payload_error(message)


def test_field_cap() -> None:
    fields = {f"q{i}": i for i in range(MAX_FIELDS + 1)}
    assert f"at most {MAX_FIELDS}" in payload_error(uplink(fields))


def test_nesting_cap() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"x": deep}
    assert "nested deeper than 32" in payload_error(uplink({"q": 1}, up_locations=deep))


# ---------------------------------------------------------------- properties


def _check(result: DecodedPayload) -> None:
    for reading in result.readings:
        assert type(reading.value) is float
        assert math.isfinite(reading.value)
        assert reading.time.utcoffset() == timedelta(0)
    for problem in result.problems:
        assert problem.reason
        assert len(problem.excerpt) <= 200


def _decode_or_payload_error(payload: bytes) -> DecodedPayload | None:
    try:
        result = DECODER.decode(payload, CTX)
    except PayloadError as exc:
        reason = exc.reason
        assert reason
        return None
    _check(result)
    return result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_payload_error(payload: bytes) -> None:
    _decode_or_payload_error(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_only_ever_raises_payload_error(document: Any) -> None:
    _decode_or_payload_error(json.dumps(document, allow_nan=True).encode())


times = st.sampled_from(["2020-02-12T15:15:45.789585559Z", "2020-02-12", None]) | json_values


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8) | st.just("time"), json_values, max_size=8),
    times,
    json_values,
    json_values,
)
def test_every_field_is_a_reading_or_a_problem(
    fields: dict[str, Any], received_at: Any, rx_metadata: Any, settings_: Any
) -> None:
    message = uplink(fields, up_received_at=received_at, up_rx_metadata=rx_metadata)
    message["uplink_message"]["settings"] = settings_
    result = _decode_or_payload_error(json.dumps(message, allow_nan=True).encode())
    if result is None:
        return
    assert len(result.readings) + len(result.problems) == len(fields) - ("time" in fields)
