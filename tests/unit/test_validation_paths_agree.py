"""The ingest hot path (`accept_readings`) refuses exactly what `validate_reading` refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cityos.platform.domain.model import Domain, Observation, Sensor
from cityos.platform.ingest.validation import ReadingRejected, accept_readings, validate_reading
from cityos.platform.ports import Reading

RECEIVED = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
MAX_FUTURE = timedelta(seconds=300)
SENSORS = {
    "tide_level": Sensor(
        "d1.tide_level", "d1", "tide_level", "m", Domain.DISASTER, "t", None, -3, 5
    ),
    "rainfall": Sensor("d1.rainfall", "d1", "rainfall", "mm", Domain.DISASTER, "r", None, 0, None),
    "count": Sensor("d1.count", "d1", "count", "", Domain.TOURISM, "c"),
}

readings = st.builds(
    Reading,
    quantity=st.sampled_from([None, "tide_level", "rainfall", "count", "unknown"]),
    time=st.sampled_from([0, 299, 300, 301, -86400]).map(lambda s: RECEIVED + timedelta(seconds=s)),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-3.0, 5.0, 0.0])
    ),
    unit=st.sampled_from([None, "m", "mm", "Cel", ""]),
)


@given(st.lists(readings, max_size=20))
def test_fast_path_and_explanations_agree(pack: list[Reading]) -> None:
    into: list[Observation] = []
    used: dict[str, Sensor] = {}
    refused = accept_readings(
        pack, sensors=SENSORS, received_at=RECEIVED, max_future=MAX_FUTURE, into=into, used=used
    )
    results = [
        validate_reading(r, sensors=SENSORS, received_at=RECEIVED, max_future=MAX_FUTURE)
        for r in pack
    ]
    assert into == [r for r in results if isinstance(r, Observation)]
    assert refused == [
        r for r, res in zip(pack, results, strict=True) if isinstance(res, ReadingRejected)
    ]
    assert set(used) >= {o.sensor_id for o in into}
