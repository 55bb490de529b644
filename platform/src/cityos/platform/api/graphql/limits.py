"""Refuse oversized GraphQL documents cheaply: before validation, long before any resolver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, SchemaExtension

from cityos.platform.api.graphql.errors import FORBIDDEN, LIMIT_EXCEEDED

MAX_DEPTH = 10
"""Deepest nesting of fields (real queries such as `devices { nodes { sensors { id } } }`: 4)."""
MAX_ALIASES = 50
"""Most aliased fields per document (fields in a fragment count at each spread)."""
MAX_TOKENS = 5000
"""Most lexical tokens per document; the parser stops at the next one."""

_PARSER_LIMIT = "Parsing aborted."  # graphql-core ends its token and nesting limit errors so


class TokenLimit(MaxTokensLimiter):
    """strawberry's MaxTokensLimiter; its errors (and too deep nesting) are LIMIT_EXCEEDED."""

    def on_parse(self) -> Iterator[None]:
        """Tag the parser's resource-limit errors with their code."""
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if error.message.endswith(_PARSER_LIMIT):
                error.extensions = {**(error.extensions or {}), "code": LIMIT_EXCEEDED}


class NoIntrospection(DisableIntrospection):
    """strawberry's DisableIntrospection; `__schema` and `__type` are FORBIDDEN."""

    def on_validate(self) -> Iterator[None]:
        """Tag the introspection rule's errors with their code."""
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if "introspection" in error.message:
                error.extensions = {**(error.extensions or {}), "code": FORBIDDEN}


class DocumentLimits(SchemaExtension):
    """Refuses documents nested deeper than `max_depth` or with more than `max_aliases` aliases.

    Runs before graphql-core's validation, which a refused document then skips, and takes time
    linear in the document because each fragment is measured once. (strawberry's
    QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread: a 500-byte
    document of nested fragment spreads keeps them busy for seconds.)
    """

    def __init__(self, *, max_depth: int = MAX_DEPTH, max_aliases: int = MAX_ALIASES) -> None:
        self.max_depth = max_depth
        self.max_aliases = max_aliases

    def on_validate(self) -> Iterator[None]:
        """Measure the parsed document; on refusal, validation and execution are skipped."""
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            errors = self.check(context.graphql_document)
            if errors:
                context.pre_execution_errors = errors
        yield

    def check(self, document: DocumentNode) -> list[GraphQLError]:
        """The limit errors of `document` (empty when it is within the limits)."""
        try:
            depth, aliases = _Measure(document).document()
        except RecursionError:
            return [_limit_error("fragments are nested too deeply")]
        errors = []
        if depth > self.max_depth:
            errors.append(
                _limit_error(f"query depth {depth} exceeds the maximum of {self.max_depth}")
            )
        if aliases > self.max_aliases:
            errors.append(
                _limit_error(f"{aliases} aliases exceed the maximum of {self.max_aliases}")
            )
        return errors


def _limit_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": LIMIT_EXCEEDED})


class _Measure:
    """Depth and alias count of a document's operations; fragments measured once each."""

    def __init__(self, document: DocumentNode) -> None:
        self._document = document
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, tuple[int, int]] = {}
        self._open: set[str] = set()

    def document(self) -> tuple[int, int]:
        """Deepest operation's depth, and the aliases of all operations together."""
        depth = aliases = 0
        for definition in self._document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                d, a = self._selections(definition.selection_set)
                depth, aliases = max(depth, d), aliases + a
        return depth, aliases

    def _selections(self, selection_set: SelectionSetNode | None) -> tuple[int, int]:
        depth = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue  # introspection (refused outside dev mode) and __typename
                d, a = self._selections(selection.selection_set)
                depth = max(depth, d + 1)
                aliases += a + (selection.alias is not None)
            elif isinstance(selection, InlineFragmentNode):
                d, a = self._selections(selection.selection_set)
                depth, aliases = max(depth, d), aliases + a
            elif isinstance(selection, FragmentSpreadNode):
                d, a = self._fragment(selection.name.value)
                depth, aliases = max(depth, d), aliases + a
        return depth, aliases

    def _fragment(self, name: str) -> tuple[int, int]:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return 0, 0  # unknown fragments and cycles are refused by validation
        self._open.add(name)
        measured = self._selections(fragment.selection_set)
        self._open.discard(name)
        self._measured[name] = measured
        return measured


def hardening_extensions(*, dev_mode: bool) -> list[Callable[[], SchemaExtension]]:
    """Extension factories (one instance per request) that bound what a request may ask."""
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(TokenLimit, max_token_count=MAX_TOKENS),
        DocumentLimits,
    ]
    if not dev_mode:
        extensions.append(NoIntrospection)
    return extensions
