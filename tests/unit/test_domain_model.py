"""Domain values: frozen, slotted, framework-free; scopes follow domains."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from cityos.platform.domain.model import (
    Alert,
    Dataset,
    Device,
    Domain,
    Facility,
    GeoPoint,
    Observation,
    Quality,
    Rejection,
    Sensor,
)
from cityos.platform.security import Principal

VALUES = [
    GeoPoint(34.6, 138.2),
    Device("omaezaki-port", "Port", Domain.DISASTER, "json"),
    Sensor("omaezaki-port.tide_level", "omaezaki-port", "tide_level", "m", Domain.DISASTER, "tide"),
    Observation("omaezaki-port.tide_level", datetime(2026, 1, 1, tzinfo=UTC), 1.0),
    Dataset("d", "n", "s", "CC BY 4.0", True, datetime(2026, 1, 1, tzinfo=UTC), "x", 1, "c"),
    Facility("f", "evacuation_site", "n", GeoPoint(34.6, 138.2), Domain.DISASTER, "d", "k"),
    Alert(
        "a", "jma", "津波注意報", "380", "静岡県", "issued", False, datetime(2026, 1, 1, tzinfo=UTC)
    ),
    Rejection(datetime(2026, 1, 1, tzinfo=UTC), "unknown_device: x", "t", "e"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_are_frozen_and_slotted(value: object) -> None:
    assert dataclasses.is_dataclass(value)
    assert not hasattr(value, "__dict__")
    field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


def test_domain_model_imports_no_framework() -> None:
    # In a fresh interpreter: purging sys.modules here would give later tests second copies
    # of the domain classes.
    probe = (
        "import sys, cityos.platform.domain.model, cityos.platform.domain.ids;"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(ast.literal_eval(result.stdout))
    assert not loaded & {"strawberry", "fastapi", "sqlalchemy", "pydantic", "paho", "httpx"}


def test_scopes_follow_domains() -> None:
    assert [d.read_scope for d in Domain] == ["disaster:read", "tourism:read", "health:read"]
    principal = Principal(client_id="c", scopes=frozenset({"tourism:read", "export:read"}))
    assert principal.readable_domains == {Domain.TOURISM}
    assert principal.can_read(Domain.TOURISM)
    assert not principal.can_read(Domain.HEALTH)
    assert Quality("good") is Quality.GOOD
