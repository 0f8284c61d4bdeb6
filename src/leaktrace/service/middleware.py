"""ASGI middleware: the token is checked, and the upload limit counted, before a request's body
is read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

__all__ = ["RequireToken", "UploadLimit"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_UNAUTHORISED = JSONResponse(
    {
        "detail": "a valid API token is needed: Authorization: Bearer <token> "
        "(make one with `leaktrace token create`)"
    },
    401,
    headers={"WWW-Authenticate": "Bearer"},
)


class RequireToken:
    """ASGI middleware: 401 for ``/api/`` requests (but the health check) without a valid token,
    answered before the request body is read."""

    def __init__(self, app: Any, valid: Callable[[str], bool]) -> None:
        self.app, self.valid = app, valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/api/") and path != "/api/health":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not await run_in_threadpool(self.valid, token.strip()):
                return await _UNAUTHORISED(scope, receive, send)
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: 413 for request bodies over ``limit`` bytes, before they are stored."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen, exceeded, started = 0, False, False

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                exceeded = True
                raise _TooLarge
            return message

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a cut-off body (often a 400) is replaced by a 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            pass
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        mb = self.limit / (1024 * 1024)
        await JSONResponse({"detail": f"upload larger than the {mb:g} MB limit"}, 413)(
            {"type": "http"}, _no_body, send
        )


async def _no_body() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
