"""The Omaezaki sensor simulator: catalogue, daily patterns, payloads and the publishing thread."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cityos.platform.demo import (
    DEVICES,
    Simulator,
    devices_and_sensors,
    messages_at,
    models,
    payload_for,
    readings_at,
    topic_for,
)
from cityos.platform.domain.ids import is_device_id, is_quantity, split_sensor_id
from cityos.platform.domain.model import Domain

JST = timezone(timedelta(hours=9))
SENML_UNITS = {"m", "m/s", "deg", "mm", "Cel", "count", "%"}
# Omaezaki city's rough bounding box.
LAT_RANGE = (34.55, 34.72)
LON_RANGE = (138.05, 138.25)


def _steps(start: datetime, *, days: float, minutes: int = 10) -> list[datetime]:
    count = int(days * 24 * 60 / minutes)
    return [start + timedelta(minutes=minutes * i) for i in range(count)]


def _series(device_id: str, quantity: str, times: list[datetime], seed: int = 0) -> list[float]:
    return [readings_at(device_id, when, seed=seed)[quantity] for when in times]


# ---------------------------------------------------------------- catalogue


def test_catalogue_has_at_least_eight_sensors_in_all_three_domains() -> None:
    pairs = devices_and_sensors()
    sensors = [sensor for _, device_sensors in pairs for sensor in device_sensors]
    assert len(sensors) >= 8
    assert {device.domain for device, _ in pairs} == set(Domain)
    quantities = {(s.device_id, s.quantity, s.unit) for s in sensors}
    assert ("omaezaki-port", "tide_level", "m") in quantities
    assert ("omaezaki-cape-marine", "wave_height", "m") in quantities
    assert ("omaezaki-cape-marine", "wind_speed", "m/s") in quantities
    assert ("omaezaki-cape-marine", "wind_direction", "deg") in quantities
    assert ("niino-river", "water_level", "m") in quantities
    assert ("niino-river", "rainfall", "mm") in quantities
    assert ("omaezaki-lighthouse", "visitors", "count") in quantities
    assert ("omaezaki-cape-parking", "occupancy", "%") in quantities
    assert sum(1 for s in sensors if s.quantity == "wbgt" and s.unit == "Cel") >= 3


def test_ids_units_and_places_follow_the_contract() -> None:
    device_ids = [device.id for device, _ in devices_and_sensors()]
    assert len(device_ids) == len(set(device_ids))
    for device, sensors in devices_and_sensors():
        assert is_device_id(device.id)
        assert device.payload_format == "json"
        assert device.location is not None
        assert LAT_RANGE[0] < device.location.lat < LAT_RANGE[1]
        assert LON_RANGE[0] < device.location.lon < LON_RANGE[1]
        assert "(" in device.name  # Japanese name (English name)
        for sensor in sensors:
            assert split_sensor_id(sensor.id) == (device.id, sensor.quantity)
            assert is_quantity(sensor.quantity)
            assert sensor.unit in SENML_UNITS
            assert sensor.domain == device.domain
            assert sensor.valid_min is not None
            assert sensor.valid_max is not None
            assert sensor.valid_min < sensor.valid_max


def test_domains_match_the_use_cases() -> None:
    domains = {device.id: device.domain for device in DEVICES}
    assert domains["omaezaki-port"] is Domain.DISASTER
    assert domains["niino-river"] is Domain.DISASTER
    assert domains["omaezaki-cape-marine"] is Domain.TOURISM
    assert domains["omaezaki-lighthouse"] is Domain.TOURISM
    assert domains["omaezaki-city-hall"] is Domain.HEALTH


# ---------------------------------------------------------------- ranges and determinism


@pytest.mark.parametrize(
    "start",
    [datetime(2025, 8, 1, tzinfo=JST), datetime(2026, 1, 12, tzinfo=JST)],
    ids=["summer", "winter"],
)
def test_every_sensor_stays_in_range_over_a_week(start: datetime) -> None:
    specs = {(d.id, s.quantity): s for d in DEVICES for s in d.sensors}
    for when in _steps(start, days=7):
        for device in DEVICES:
            readings = readings_at(device.id, when, seed=7)
            assert set(readings) == {s.quantity for s in device.sensors}
            for quantity, value in readings.items():
                spec = specs[(device.id, quantity)]
                assert spec.valid_min <= value <= spec.valid_max, (device.id, quantity, when)
            if "wind_direction" in readings:
                assert 0 <= readings["wind_direction"] < 360


def test_readings_are_deterministic_given_time_and_seed() -> None:
    when = datetime(2025, 8, 1, 14, 0, tzinfo=JST)
    assert messages_at(when, seed=3) == messages_at(when, seed=3)
    seeds = {json.dumps([readings_at(d.id, when, seed=s) for d in DEVICES]) for s in range(4)}
    assert len(seeds) > 1  # the seed changes the noise and the weather


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        readings_at("omaezaki-port", datetime(2025, 8, 1, 12, 0))


# ---------------------------------------------------------------- daily shapes


def test_wbgt_peaks_in_the_afternoon_and_in_summer() -> None:
    for day in range(1, 15):
        afternoon = datetime(2025, 8, day, 14, 0, tzinfo=JST)
        dawn = datetime(2025, 8, day, 4, 0, tzinfo=JST)
        for site in ("omaezaki-city-hall", "hamaoka-kita-school", "omaezaki-park"):
            assert readings_at(site, afternoon)["wbgt"] > readings_at(site, dawn)["wbgt"] + 3
    august = datetime(2025, 8, 5, 14, 0, tzinfo=JST)
    january = datetime(2026, 1, 20, 14, 0, tzinfo=JST)
    assert readings_at("omaezaki-city-hall", august)["wbgt"] >= 26
    assert readings_at("omaezaki-city-hall", january)["wbgt"] < 15


def test_daily_wbgt_maximum_is_near_two_pm() -> None:
    times = _steps(datetime(2025, 8, 10, tzinfo=JST), days=1)
    values = _series("omaezaki-city-hall", "wbgt", times)
    peak = times[values.index(max(values))]
    assert 12 <= peak.astimezone(JST).hour <= 15


def test_tide_has_two_highs_per_lunar_day() -> None:
    # The astronomical tide is exact; the observed series is judged on hourly means.
    for start in (datetime(2025, 8, 1, tzinfo=JST), datetime(2025, 8, 8, tzinfo=JST)):
        times = _steps(start, days=24.84 / 24, minutes=5)
        levels = [models.astronomical_tide(t) for t in times]
        highs = [i for i in range(1, len(levels) - 1) if levels[i - 1] < levels[i] >= levels[i + 1]]
        lows = [i for i in range(1, len(levels) - 1) if levels[i - 1] > levels[i] <= levels[i + 1]]
        assert len(highs) == 2
        assert len(lows) == 2
        assert 10.0 < (highs[1] - highs[0]) * 5 / 60 < 14.5


def test_observed_tide_range_is_about_plus_minus_one_metre() -> None:
    times = _steps(datetime(2025, 8, 1, tzinfo=JST), days=15, minutes=30)
    levels = _series("omaezaki-port", "tide_level", times)
    mean = sum(levels) / len(levels)
    assert 0.8 < mean < 1.6
    assert 0.6 < max(levels) - mean < 1.3
    assert 0.6 < mean - min(levels) < 1.3
    hourly = [sum(levels[i : i + 2]) / 2 for i in range(0, len(levels) - 1, 2)]
    highs = sum(1 for i in range(1, len(hourly) - 1) if hourly[i - 1] < hourly[i] >= hourly[i + 1])
    assert 27 <= highs <= 31  # 15 days / 12.42 h ≈ 29


def test_sea_breeze_makes_afternoons_windier_and_southerly() -> None:
    afternoon, night = [], []
    for day in range(1, 29):
        afternoon.append(models.wind(datetime(2025, 7, day, 14, tzinfo=JST), 0, with_noise=False))
        night.append(models.wind(datetime(2025, 7, day, 4, tzinfo=JST), 0, with_noise=False))
    assert sum(w.speed for w in afternoon) > sum(w.speed for w in night) + 28 * 1.5
    southerly = [w for w in afternoon if 135 <= w.direction <= 250]
    assert len(southerly) >= 20


def test_waves_follow_the_wind() -> None:
    times = _steps(datetime(2025, 12, 1, tzinfo=JST), days=30, minutes=180)
    pairs = sorted(
        (models.wind(t - timedelta(hours=1), 1, with_noise=False).speed, models.wave_height(t, 1))
        for t in times
    )
    third = len(pairs) // 3
    calm = sum(h for _, h in pairs[:third]) / third
    windy = sum(h for _, h in pairs[-third:]) / third
    assert windy > calm


def test_rain_is_mostly_zero_with_showers_and_the_river_answers_late() -> None:
    times = _steps(datetime(2025, 6, 1, tzinfo=JST), days=30, minutes=10)
    rain = [models.rainfall(t, 5) for t in times]
    level = [models.water_level(t, 5) for t in times]
    dry = sum(1 for r in rain if r == 0.0)
    assert dry > len(rain) * 0.5
    assert max(rain) > 1.0
    # the river's peak comes after the heaviest rain hour, within a few hours
    wettest = rain.index(max(rain))
    window = level[wettest : wettest + 6 * 8]
    peak_offset = window.index(max(window))
    assert 0 < peak_offset <= 6 * 6
    assert max(window) > level[max(0, wettest - 6 * 6)]


def test_visitors_and_parking_follow_daylight_and_weekends() -> None:
    saturday_noon = datetime(2025, 8, 2, 12, tzinfo=JST)
    tuesday_noon = datetime(2025, 8, 5, 12, tzinfo=JST)
    midnight = datetime(2025, 8, 5, 0, tzinfo=JST)
    visitors = "omaezaki-lighthouse"
    parking = "omaezaki-cape-parking"
    assert readings_at(visitors, midnight)["visitors"] == 0
    assert readings_at(visitors, saturday_noon)["visitors"] > (
        1.5 * readings_at(visitors, tuesday_noon)["visitors"]
    )
    assert (
        readings_at(parking, saturday_noon)["occupancy"]
        > readings_at(parking, midnight)["occupancy"]
    )
    assert (
        readings_at(parking, saturday_noon)["occupancy"]
        > (readings_at(parking, tuesday_noon)["occupancy"])
    )


# ---------------------------------------------------------------- payloads


def test_payloads_follow_the_contract_format() -> None:
    when = datetime(2025, 8, 1, 5, 30, 12, 345000, tzinfo=UTC)
    messages = messages_at(when, seed=1)
    assert len(messages) == len(DEVICES)
    for (topic, payload), device in zip(messages, DEVICES, strict=True):
        assert topic == f"cityos/v1/devices/{device.id}/up" == topic_for(device.id)
        document = json.loads(payload)
        assert set(document) == {"time", "readings"}
        assert document["time"] == "2025-08-01T14:30:12+09:00"
        parsed = datetime.fromisoformat(document["time"])
        assert parsed.utcoffset() == timedelta(hours=9)
        assert parsed == when.replace(microsecond=0)
        assert set(document["readings"]) == {s.quantity for s in device.sensors}
        for value in document["readings"].values():
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)


def test_payload_for_one_device_matches_its_readings() -> None:
    when = datetime(2025, 8, 1, 14, tzinfo=JST)
    document = json.loads(payload_for("omaezaki-port", when, seed=2))
    assert document["readings"] == readings_at("omaezaki-port", when, seed=2)
    with pytest.raises(KeyError):
        payload_for("no-such-device", when)


# ---------------------------------------------------------------- the thread


class _Recorder:
    def __init__(self, *, fail_first: int = 0) -> None:
        self.messages: list[tuple[float, str, bytes]] = []
        self.fail_first = fail_first
        self.calls = 0
        self.lock = threading.Lock()
        self.event = threading.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise ConnectionError("broker down")
            self.messages.append((time.monotonic(), topic, payload))
            if len(self.messages) >= 2 * len(DEVICES):
                self.event.set()


def test_thread_publishes_every_device_within_the_interval_and_stops_fast() -> None:
    recorder = _Recorder()
    simulator = Simulator(recorder, interval=0.3, seed=1)
    started = time.monotonic()
    simulator.start()
    try:
        assert recorder.event.wait(2.0)
        assert simulator.running
    finally:
        stop_at = time.monotonic()
        simulator.stop()
        stopped_in = time.monotonic() - stop_at
    assert stopped_in < 1.0
    assert not simulator.running
    first_round = recorder.messages[: len(DEVICES)]
    assert first_round[0][0] - started < 0.3  # the first round goes out at once
    assert {topic for _, topic, _ in first_round} == {topic_for(d.id) for d in DEVICES}
    second = recorder.messages[len(DEVICES)][0]
    assert 0.2 < second - first_round[0][0] < 0.9


def test_default_interval_meets_the_five_second_contract() -> None:
    simulator = Simulator(lambda topic, payload: None)
    assert simulator._interval <= 5.0


def test_stop_returns_promptly_with_a_long_interval() -> None:
    recorder = _Recorder()
    simulator = Simulator(recorder, interval=60.0)
    simulator.start()
    deadline = time.monotonic() + 2.0
    while len(recorder.messages) < len(DEVICES) and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    simulator.stop()
    assert time.monotonic() - began < 1.0
    assert not simulator.running


def test_publish_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    recorder = _Recorder(fail_first=len(DEVICES) + 1)
    simulator = Simulator(recorder, interval=0.05)
    with simulator:
        assert recorder.event.wait(3.0)
    assert simulator.failures == len(DEVICES) + 1
    assert not simulator.running
    assert "retrying next tick" in caplog.text


def test_simulated_clock_is_used_for_payload_times() -> None:
    fixed = datetime(2025, 8, 1, 5, 0, tzinfo=UTC)
    sent: list[bytes] = []
    simulator = Simulator(lambda topic, payload: sent.append(payload), clock=lambda: fixed)
    assert simulator.tick() == len(DEVICES)
    assert all(json.loads(p)["time"] == "2025-08-01T14:00:00+09:00" for p in sent)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Simulator(lambda topic, payload: None, interval=0)
