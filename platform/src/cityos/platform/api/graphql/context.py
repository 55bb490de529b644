"""Per-request GraphQL context: the runtime, the caller, audit trail, budgets and DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from cityos.platform.audit.trail import AuditTrail
from cityos.platform.domain.model import Observation
from cityos.platform.observations.service import PointBudget, latest_of
from cityos.platform.runtime import Runtime
from cityos.platform.security import Principal


class GraphQLContext(BaseContext):
    """What every resolver gets as `info.context`."""

    def __init__(
        self, *, runtime: Runtime, principal: Principal, source_ip: str | None = None
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.principal = principal
        self.audit = AuditTrail(client_id=principal.client_id, source_ip=source_ip)
        self.points = PointBudget(limit=runtime.settings.api.max_points)
        self.latest = DataLoader[str, Observation | None](load_fn=self._load_latest)

    async def _load_latest(self, sensor_ids: Sequence[str]) -> list[Observation | None]:
        """Newest observation of many sensors in one store round trip."""
        return await asyncio.to_thread(latest_of, store=self.runtime.store, sensor_ids=sensor_ids)
