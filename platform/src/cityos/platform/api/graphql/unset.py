"""Optional GraphQL arguments without a printed default (`arg: T`, not `arg: T = null`)."""

from __future__ import annotations

from typing import TypeVar

import strawberry

T = TypeVar("T")


def given(value: T | None) -> T | None:
    """The argument's value, or None when the caller left it out."""
    return None if value is strawberry.UNSET else value
