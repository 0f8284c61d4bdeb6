"""The HTTP service: the workflow behind a JSON API under ``/api/``, and the web page at ``/``.

::

    __init__.py     create_app: assembles the routers, middleware and the one error handler
    routes/         one router per resource: recipients, media, copies, jobs, traces, cases
    schemas.py      request and response bodies; the error answers each route documents
    deps.py         the Service every route depends on (workspace, job runner, settings)
    jobs.py         batches of copies, kept in the registry, run one at a time
    scans.py        scans of uploaded suspected leaks, kept in the registry, one at a time
    reports.py      evidence reports: private files, kept for --keep-reports days
    uploads.py      uploaded files under their own (cleaned) names, videos told from pictures
    middleware.py   token check and upload limits (photos, videos), before a body is read

Routes parse, call :mod:`leaktrace.workflow` or the :class:`~leaktrace.registry.Workspace`,
and render; HTTP status codes live in this package only (``_STATUS`` maps the
:mod:`leaktrace.errors` tree). Every ``/api/`` route but ``GET /api/health`` needs
``Authorization: Bearer <token>``. The contract (paths, bodies, codes) is ``docs/api.md``; the
OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount, compile_path
from starlette.types import Scope

from .. import __version__
from ..errors import (
    ConflictError,
    ImageTooLargeError,
    KeyFileError,
    LeaktraceError,
    LinkGoneError,
    LinkRefusedError,
    NotFoundError,
    UnsupportedMediaError,
)
from ..media import VIDEO_SUFFIXES
from ..registry import Workspace
from . import routes
from .deps import Service
from .jobs import JobRunner
from .middleware import RequireToken, UploadLimit
from .reports import DEFAULT_KEEP_DAYS, expire_reports
from .scans import ScanRunner
from .schemas import Health, errors

__all__ = ["DEFAULT_KEEP_DAYS", "DEFAULT_MAX_UPLOAD", "DEFAULT_MAX_VIDEO_UPLOAD", "create_app"]

DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
#: The largest video upload (an original or a leak): 2 GiB, about 25 minutes of 1080p at
#: 10 Mb/s. Uploads are streamed to disk, never held in memory.
DEFAULT_MAX_VIDEO_UPLOAD = 2 * 1024 * 1024 * 1024
log = logging.getLogger("leaktrace.service")

# The most specific class first: UnknownRecipientError is a NotFoundError (404).
_STATUS: list[tuple[type[LeaktraceError], int]] = [
    (LinkRefusedError, 403),
    (LinkGoneError, 410),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnsupportedMediaError, 415),
    (ImageTooLargeError, 413),
    (KeyFileError, 500),
    (LeaktraceError, 422),
]


def _status(exc: LeaktraceError) -> int:
    return next(code for cls, code in _STATUS if isinstance(exc, cls))


def _one_error_body(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the 422 FastAPI adds to routes with parameters with the body it really has
    (``_invalid`` turns a validation error into one line)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in json.dumps(answer):
                answer["description"] = "A parameter or the body is malformed (named)"
                answer["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    return schema


def _methods(schema: dict[str, Any], path: str) -> list[str]:
    """The methods the OpenAPI documents for ``path`` (empty if it documents no such path)."""
    for template, operations in schema.get("paths", {}).items():
        if compile_path(template)[0].match(path):
            return sorted(method.upper() for method in operations)
    return []


def _web_dir() -> Path:
    packaged = Path(str(resources.files("leaktrace"))) / "web"  # in a wheel
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "web"


def create_app(
    home: str | os.PathLike[str] | None = None,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    max_video_upload: int = DEFAULT_MAX_VIDEO_UPLOAD,
    workers: int | None = None,
    keep_reports: int = DEFAULT_KEEP_DAYS,
    cluster: str | None = None,
) -> FastAPI:
    """The service on the workspace at ``home`` (refused at once if there is none).

    ``max_upload``: the largest request body, in bytes; ``max_video_upload``: the largest
    video sent as an original or a leak (at least ``max_upload``). ``workers``: processes per
    batch of copies (default: all cores), and per scan. ``keep_reports``: days an evidence
    report is kept after its trace (0: for ever). ``cluster``: the address of a Dask scheduler
    whose workers make the batches' copies (see :mod:`leaktrace.cluster`).
    """
    if keep_reports < 0:
        raise ValueError("keep_reports is a number of days, 0 or more")
    ws = Workspace.open(home)
    service = Service(
        ws=ws,
        jobs=JobRunner(ws, workers=workers, cluster=cluster),
        tracing=threading.BoundedSemaphore(max(1, os.cpu_count() or 1)),
        keep_reports=keep_reports,
        scans=ScanRunner(ws, workers=workers),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        expire_reports(ws, keep_reports)
        resumed = service.jobs.start()
        if resumed:
            log.info("resuming %d job(s) a previous server left: %s", len(resumed), resumed)
        rescans = service.scans.start()
        if rescans:
            log.info("resuming %d scan(s) a previous server left: %s", len(rescans), rescans)
        yield
        service.scans.stop()
        service.jobs.stop()
        ws.close()

    app = FastAPI(
        title="leaktrace",
        version=__version__,
        description="Invisible per-recipient watermarks; name the source of a leak. Errors "
        'are `{"detail": "<one line>"}`.',
        lifespan=lifespan,
    )
    app.state.service = service
    # The outermost runs first: the token is checked before a byte of the body is read.
    app.add_middleware(
        UploadLimit, limit=max_upload, video_limit=max_video_upload, suffixes=VIDEO_SUFFIXES
    )
    app.add_middleware(RequireToken, valid=ws.token_valid)

    @app.exception_handler(LeaktraceError)
    async def _leaktrace_error(_request: Request, exc: LeaktraceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, _status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(405)
    async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette names the methods of the first route with this path only.
        allowed = _methods(app.openapi(), request.scope.get("path", ""))
        if not allowed:  # a file of the page: what StaticFiles said
            headers = getattr(exc, "headers", None)
            return JSONResponse({"detail": "Method Not Allowed"}, 405, headers)
        listed = ", ".join(allowed)
        return JSONResponse(
            {"detail": f"{request.method} is not allowed here (use {listed})"},
            405,
            headers={"Allow": listed},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug: the log has the traceback, the client one line.
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); the server's log has the details"},
            500,
        )

    @app.get("/api/health", tags=["service"])
    def health() -> Health:
        return Health(status="ok", version=__version__)

    # RequireToken enforces the token; declaring it here puts it in the OpenAPI docs.
    api = APIRouter(
        prefix="/api",
        dependencies=[Security(HTTPBearer(auto_error=False))],
        responses=errors({401: "No valid API token: nothing was done"}),
    )
    for module in (
        routes.recipients,
        routes.media,
        routes.links,
        routes.copies,
        routes.jobs,
        routes.traces,
        routes.cases,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(routes.links.public)  # /d/{token}: the link is the credential

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _one_error_body(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    web = _web_dir()
    if web.is_dir():
        app.router.routes.append(_Page("/", StaticFiles(directory=web, html=True), name="web"))
    return app


class _Page(Mount):
    """The web page at ``/``, leaving ``/api/`` to the API: an unknown API path is a JSON 404,
    a method a route does not take a 405 naming those it does (``Allow``)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("path", "").startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)
