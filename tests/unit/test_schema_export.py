"""docs/schema.graphql is the published schema: it must match the code."""

from __future__ import annotations

from pathlib import Path

from cityos.platform.api.graphql.schema import schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "schema.graphql"


def test_published_schema_matches_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), (
        "docs/schema.graphql drifted from the code; regenerate it with "
        "`uv run python -m cityos.platform.api.graphql.schema > docs/schema.graphql`"
    )


def test_contract_signatures_are_published() -> None:
    sdl = SCHEMA_FILE.read_text(encoding="utf-8")
    for line in [
        "sensors(domain: Domain, deviceId: String, first: Int = 100, after: String)"
        ": SensorConnection!",
        "sensor(id: ID!): Sensor",
        "observations(sensorId: ID!, from: DateTime!, to: DateTime!",
        "enum Domain {",
        "enum Quality {",
        "scalar DateTime",
    ]:
        assert line in sdl
