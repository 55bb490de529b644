"""Refuse request bodies above a size before anything decodes them (HTTP 413)."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.platform.api.graphql.errors import LIMIT_EXCEEDED

MAX_BODY_BYTES = 256 * 1024
"""Largest request body: GraphQL documents are bounded by tokens anyway, variables are small."""


class _TooLarge(Exception):
    """The body grew past the limit while it was read."""


def too_large_response(limit: int) -> JSONResponse:
    """HTTP 413 in the GraphQL error shape."""
    return JSONResponse(
        {
            "errors": [
                {
                    "message": f"request body larger than {limit} bytes",
                    "extensions": {"code": LIMIT_EXCEEDED},
                }
            ]
        },
        status_code=413,
    )


class LimitBody:
    """ASGI middleware: a body announced or found to be larger than `limit` bytes is a 413."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length first; count chunked bodies as they are received."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await too_large_response(self.limit)(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await too_large_response(self.limit)(scope, receive, send)
