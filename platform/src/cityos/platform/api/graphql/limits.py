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
MAX_FIELDS = 250
"""Most fields per document, counted like aliases: graphql-core's check that repeated fields
can be merged takes time quadratic in their number (300 copies of one field: ~60 ms)."""
MAX_TOKENS = 2000
"""Most lexical tokens per document; the parser stops at the next one (~15 us per token)."""

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
    """Refuses documents deeper than `max_depth`, or with too many aliases or fields.

    Runs before graphql-core's validation, which a refused document then skips, and takes time
    linear in the document because each fragment is measured once. (strawberry's
    QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread: a 500-byte
    document of nested fragment spreads keeps them busy for seconds.) With `introspection`
    (dev mode), `__schema` and `__type` subtrees are not counted (GraphiQL's own query is 13
    deep); without, a document that asks for them is FORBIDDEN at once.
    """

    def __init__(
        self,
        *,
        max_depth: int = MAX_DEPTH,
        max_aliases: int = MAX_ALIASES,
        max_fields: int = MAX_FIELDS,
        introspection: bool = False,
    ) -> None:
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_fields = max_fields
        self.introspection = introspection

    def on_validate(self) -> Iterator[None]:
        """Measure the parsed document; on refusal, validation and execution are skipped."""
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            errors = self.check(context.graphql_document)
            if errors:
                context.pre_execution_errors = errors
        yield

    def check(self, document: DocumentNode) -> list[GraphQLError]:
        """The errors that refuse `document` (none when it may go on to validation)."""
        measure = _Measure(document, self.introspection)
        try:
            depth, aliases, fields = measure.document()
        except RecursionError:
            return [_limit_error("fragments are nested too deeply")]
        if measure.introspects:
            return [
                GraphQLError(
                    "GraphQL introspection is off (on in dev mode only)",
                    extensions={"code": FORBIDDEN},
                )
            ]
        errors = []
        if fields > self.max_fields:
            errors.append(_limit_error(f"{fields} fields exceed the maximum of {self.max_fields}"))
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


_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
Shape = tuple[int, int, int]
"""Depth, aliases and fields of a selection set (fragments counted at each spread)."""


class _Measure:
    """The shape of a document's operations; each fragment measured once."""

    def __init__(self, document: DocumentNode, introspection: bool) -> None:
        self._document = document
        self._introspection = introspection
        self.introspects = False  # asks for __schema or __type where they are not allowed
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, Shape] = {}
        self._open: set[str] = set()

    def document(self) -> Shape:
        """Deepest operation's depth; aliases and fields of all operations together."""
        depth = aliases = fields = 0
        for definition in self._document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                d, a, f = self._selections(definition.selection_set)
                depth, aliases, fields = max(depth, d), aliases + a, fields + f
        return depth, aliases, fields

    def _selections(self, selection_set: SelectionSetNode | None) -> Shape:
        depth = aliases = fields = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if selection.name.value in _INTROSPECTION_ROOTS:
                    if self._introspection:
                        continue
                    self.introspects = True
                d, a, f = self._selections(selection.selection_set)
                depth = max(depth, d + 1)
                aliases += a + (selection.alias is not None)
                fields += f + 1
                continue
            if isinstance(selection, InlineFragmentNode):
                d, a, f = self._selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                d, a, f = self._fragment(selection.name.value)
            else:  # pragma: no cover (graphql-core has no other selection kinds)
                continue
            depth, aliases, fields = max(depth, d), aliases + a, fields + f
        return depth, aliases, fields

    def _fragment(self, name: str) -> Shape:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return 0, 0, 0  # unknown fragments and cycles are refused by validation
        self._open.add(name)
        measured = self._selections(fragment.selection_set)
        self._open.discard(name)
        self._measured[name] = measured
        return measured


def hardening_extensions(*, dev_mode: bool) -> list[Callable[[], SchemaExtension]]:
    """Extension factories (one instance per request) that bound what a request may ask."""
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(TokenLimit, max_token_count=MAX_TOKENS),
        partial(DocumentLimits, introspection=dev_mode),
    ]
    if not dev_mode:
        extensions.append(NoIntrospection)
    return extensions
