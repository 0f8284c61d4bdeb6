"""ASGI middleware: the token is checked, and the upload limit counted, before a request's body
is read."""

from __future__ import annotations

import re
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


#: The routes whose file may be a video, and so may be up to ``video_limit`` bytes.
VIDEO_ROUTES = frozenset({"/api/media", "/api/trace"})
#: How much of a body is searched for the file part's name (its headers come first).
_HEAD = 64 * 1024
_FILENAME = re.compile(rb'filename\*?=(?:"([^"\r\n]*)"|([^;\r\n]*))', re.IGNORECASE)


def _names_a_video(head: bytes, suffixes: tuple[str, ...]) -> bool:
    """Whether a multipart body starting with ``head`` sends a file named like a video."""
    for quoted, bare in _FILENAME.findall(head):
        name = (quoted or bare).strip().lower()
        if name.endswith(tuple(s.encode() for s in suffixes)):
            return True
    return False


class UploadLimit:
    """ASGI middleware: 413 for request bodies over ``limit`` bytes, before they are stored.

    A file sent to :data:`VIDEO_ROUTES` under a video's name (``suffixes``) may be up to
    ``video_limit`` bytes: a body is held to ``limit`` until its file part's headers, which
    come first, name a video.
    """

    def __init__(
        self,
        app: Any,
        limit: int,
        video_limit: int | None = None,
        suffixes: tuple[str, ...] = (),
    ) -> None:
        self.app, self.limit = app, limit
        self.video_limit = max(limit, video_limit or limit)
        self.suffixes = suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        videos = (
            self.video_limit > self.limit
            and scope.get("method") == "POST"
            and scope.get("path") in VIDEO_ROUTES
        )
        most = self.video_limit if videos else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > most:
            return await self._refuse(send, most, videos)
        limit = self.limit
        head = bytearray()
        seen, exceeded, started = 0, False, False

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen, exceeded, limit
            message = await receive()
            body = message.get("body", b"")
            if videos and limit < most and len(head) < _HEAD:
                head.extend(body[: _HEAD - len(head)])
                if _names_a_video(bytes(head), self.suffixes):
                    limit = most
            seen += len(body)
            if seen > limit:
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
            await self._refuse(send, limit, videos)

    async def _refuse(self, send: Send, limit: int, videos: bool) -> None:
        if not videos:
            detail = f"upload larger than the {_mb(limit)} limit"
        elif limit < self.video_limit:
            detail = (
                f"upload larger than the {_mb(limit)} limit "
                f"(a video may have up to {_mb(self.video_limit)})"
            )
        else:
            detail = f"upload larger than the {_mb(limit)} limit for a video"
        await JSONResponse({"detail": detail}, 413)({"type": "http"}, _no_body, send)


def _mb(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb / 1024:g} GB" if mb >= 1024 and mb % 1024 == 0 else f"{mb:g} MB"


async def _no_body() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
