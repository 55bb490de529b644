"""One place that maps errors to GraphQL `extensions.code`; unexpected ones are masked."""

from __future__ import annotations

import logging

from graphql import GraphQLError
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import MaskErrors

from cityos.platform.domain.errors import (
    InvalidInput,
    LimitExceeded,
    NotFound,
    PermissionDenied,
)

log = logging.getLogger(__name__)

BAD_USER_INPUT = "BAD_USER_INPUT"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
FORBIDDEN = "FORBIDDEN"
UNAUTHENTICATED = "UNAUTHENTICATED"
RATE_LIMITED = "RATE_LIMITED"
INTERNAL = "INTERNAL"


def code_of(error: GraphQLError) -> str:
    """The `extensions.code` an error is reported with."""
    if isinstance(error, ValidationAbortedError):  # graphql-core's validation work budget
        return LIMIT_EXCEEDED
    original = error.original_error
    while isinstance(original, GraphQLError):  # variable coercion wraps the scalar's error
        original = original.original_error
    if isinstance(original, LimitExceeded):
        return LIMIT_EXCEEDED
    if isinstance(original, InvalidInput | NotFound):
        # NotFound is reported like bad input: hidden and unknown ids must look alike.
        return BAD_USER_INPUT
    if isinstance(original, PermissionDenied):
        return FORBIDDEN
    if original is None:  # parse and validation errors found by GraphQL itself
        return str((error.extensions or {}).get("code", BAD_USER_INPUT))
    return INTERNAL


class ClassifyErrors(MaskErrors):
    """Adds `extensions.code` to every error and hides the details of unexpected ones."""

    def __init__(self) -> None:
        super().__init__(error_message="Internal error")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed: list[GraphQLError] = []
        for error in errors:
            code = code_of(error)
            if code == INTERNAL:
                log.error("unexpected error in GraphQL execution", exc_info=error.original_error)
                error = self.anonymise_error(error)
            elif isinstance(error, ValidationAbortedError):
                error = GraphQLError(
                    "validation aborted: the document is too complex to check "
                    "(too many repeated fields, fragment spreads or errors)"
                )
            processed.append(
                GraphQLError(
                    message=error.message,
                    nodes=error.nodes,
                    source=error.source,
                    positions=error.positions,
                    path=error.path,
                    original_error=error.original_error,
                    extensions={**(error.extensions or {}), "code": code},
                )
            )
        return processed
