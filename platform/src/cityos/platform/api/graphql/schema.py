"""The GraphQL schema, assembled from the feature slices."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from cityos.platform.alerts.types import ALERTS_DESCRIPTION, AlertType, resolve_alerts
from cityos.platform.api.graphql.auditing import WriteAuditTrail
from cityos.platform.api.graphql.errors import ClassifyErrors
from cityos.platform.api.graphql.limits import hardening_extensions
from cityos.platform.api.graphql.scalars import SCALAR_MAP
from cityos.platform.audit.types import AuditEventType, resolve_audit
from cityos.platform.clients.types import (
    ClientMutations,
    OAuthClientConnection,
    OAuthClientType,
    resolve_client,
    resolve_clients,
)
from cityos.platform.devices.types import (
    DeviceConnection,
    DeviceMutations,
    DeviceType,
    RejectedMessageType,
    resolve_device,
    resolve_devices,
    resolve_rejected_messages,
)
from cityos.platform.facilities.types import (
    DatasetType,
    FacilityConnection,
    resolve_datasets,
    resolve_facilities,
)
from cityos.platform.observations.types import (
    OBSERVATIONS_DESCRIPTION,
    ObservationConnection,
    resolve_observations,
)
from cityos.platform.sensors.types import (
    SensorConnection,
    SensorType,
    resolve_sensor,
    resolve_sensors,
)


@strawberry.type
class Query:
    """Read access to cityos."""

    sensors: SensorConnection = strawberry.field(
        resolver=resolve_sensors, description="Sensors the caller may read, ordered by id"
    )
    sensor: SensorType | None = strawberry.field(
        resolver=resolve_sensor, description="One sensor; null when unknown or hidden"
    )
    observations: ObservationConnection = strawberry.field(
        resolver=resolve_observations, description=OBSERVATIONS_DESCRIPTION
    )
    facilities: FacilityConnection = strawberry.field(
        resolver=resolve_facilities,
        description="Facilities from administrative data: nearest first with `near` "
        "(within radiusM), else by id",
    )
    datasets: list[DatasetType] = strawberry.field(
        resolver=resolve_datasets, description="Imported datasets with provenance"
    )
    alerts: list[AlertType] = strawberry.field(
        resolver=resolve_alerts, description=ALERTS_DESCRIPTION
    )
    devices: DeviceConnection = strawberry.field(
        resolver=resolve_devices, description="Registered devices (scope devices:admin)"
    )
    device: DeviceType | None = strawberry.field(
        resolver=resolve_device, description="One device; null when unknown (devices:admin)"
    )
    rejected_messages: list[RejectedMessageType] = strawberry.field(
        resolver=resolve_rejected_messages,
        description="Messages and readings ingestion refused, newest first (devices:admin)",
    )
    clients: OAuthClientConnection = strawberry.field(
        resolver=resolve_clients, description="Registered OAuth clients (scope clients:admin)"
    )
    client: OAuthClientType | None = strawberry.field(
        resolver=resolve_client, description="One OAuth client; null when unknown (clients:admin)"
    )
    audit: list[AuditEventType] = strawberry.field(
        resolver=resolve_audit,
        description="The audit log (health-data reads, admin actions), newest first "
        "(scope clients:admin)",
    )


@strawberry.type
class Mutation(DeviceMutations, ClientMutations):
    """Changes to cityos; each needs its admin scope, expected failures are result types."""


class CityosSchema(strawberry.Schema):
    """Strawberry schema that leaves error logging to `ClassifyErrors` (internal errors only)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Expected errors (bad input, limits) are the caller's business: do not log them."""


def build_schema(*, dev_mode: bool = False) -> strawberry.Schema:
    """The cityos GraphQL schema with its request limits (introspection only in dev mode)."""
    return CityosSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[*hardening_extensions(dev_mode=dev_mode), WriteAuditTrail, ClassifyErrors],
    )


def schema_sdl() -> str:
    """The schema in SDL, as published in docs/schema.graphql."""
    return build_schema().as_str() + "\n"


if __name__ == "__main__":
    print(schema_sdl(), end="")
