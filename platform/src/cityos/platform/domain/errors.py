"""Errors classified by the reaction they need; mapped to HTTP/GraphQL/CLI in one place each."""

from __future__ import annotations


class CityosError(Exception):
    """Base of every error cityos raises on purpose."""


class ConfigError(CityosError):
    """The configuration is wrong or a plugin cannot be loaded: stop and tell the operator."""


class RetryableError(CityosError):
    """A dependency is down or timed out: try again later; nothing was lost."""

    def __init__(self, message: str, *, service: str = "", attempt_context: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.attempt_context = attempt_context


class InvalidInput(CityosError):
    """Input from outside is malformed or out of bounds (GraphQL BAD_USER_INPUT, HTTP 400)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LimitExceeded(InvalidInput):
    """A request asks for more than a configured limit allows (GraphQL LIMIT_EXCEEDED)."""


class NotFound(CityosError):
    """The thing asked for does not exist, or the caller may not know that it exists."""


class AlreadyExists(CityosError):
    """A create would overwrite something that already exists."""


class PermissionDenied(CityosError):
    """The caller is known but lacks the scope for this action (GraphQL FORBIDDEN)."""


class PayloadError(CityosError):
    """A device payload cannot be decoded as a whole; carries the reason and an excerpt."""

    def __init__(self, reason: str, *, excerpt: bytes | str = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        raw = excerpt.encode("utf-8", "replace") if isinstance(excerpt, str) else excerpt
        self.excerpt = raw[:200].decode("utf-8", "replace")


class RejectedPoints(CityosError):
    """The store refused some points for good (e.g. a field-type conflict); the rest are stored.

    `rejected` maps the index of each refused observation in the written batch to the store's
    reason, so the writer can dead-letter exactly those.
    """

    def __init__(self, message: str, *, rejected: dict[int, str]) -> None:
        super().__init__(message)
        self.rejected = rejected
