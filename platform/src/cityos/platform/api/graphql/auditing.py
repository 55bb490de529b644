"""Writes a request's audit trail once execution is done; health data is withheld on failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from cityos.platform.api.graphql.context import GraphQLContext
from cityos.platform.audit.trail import AuditUnavailable


class WriteAuditTrail(SchemaExtension):
    """Appends the audited reads and admin actions of one operation in one catalog write."""

    async def on_execute(self) -> AsyncIterator[None]:
        """Name the operation in the trail, let it run, then write its events."""
        context = self.execution_context.context
        if not isinstance(context, GraphQLContext):
            yield
            return
        context.audit.operation_name = self.execution_context.operation_name
        yield
        if not context.audit.pending:
            return
        try:
            await asyncio.to_thread(context.audit.flush, context.runtime.catalog)
        except AuditUnavailable as exc:
            result = self.execution_context.result
            if result is not None:  # fail closed: no health data leaves unrecorded
                result.data = None
                result.errors = [GraphQLError(str(exc), original_error=exc)]
