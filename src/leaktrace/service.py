"""The HTTP service: the workflow behind a JSON API under ``/api/``, and the web page at ``/``.

Routes parse, call :mod:`leaktrace.workflow` or the :class:`~leaktrace.registry.Workspace`, and
render; HTTP status codes live here only (one handler maps the :mod:`leaktrace.errors` tree).
Every ``/api/`` route but ``GET /api/health`` needs ``Authorization: Bearer <token>``. Batches
of copies run as background jobs, one at a time, each over the workflow's process pool. The
contract (paths, bodies, codes) is in ``docs/api.md``; the OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from . import __version__
from .detect import DEFAULT_THRESHOLD
from .errors import (
    ConflictError,
    ImageTooLargeError,
    KeyFileError,
    LeaktraceError,
    NotFoundError,
    UnsupportedMediaError,
    WorkspaceError,
)
from .media import FORMATS, image_format
from .registry import Media, Workspace, file_sha256
from .report import html_report
from .workflow import make_copies, register_original, trace_file

__all__ = ["DEFAULT_MAX_UPLOAD", "create_app"]

DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
log = logging.getLogger("leaktrace.service")

# The most specific class first: UnknownRecipientError is a NotFoundError (404).
_STATUS: list[tuple[type[LeaktraceError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnsupportedMediaError, 415),
    (ImageTooLargeError, 413),
    (KeyFileError, 500),
    (LeaktraceError, 422),
]


def _status(exc: LeaktraceError) -> int:
    return next(code for cls, code in _STATUS if isinstance(exc, cls))


# -- request and response bodies -------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RecipientIn(BaseModel):
    handle: str
    name: str = ""
    email: str = ""


class RecipientOut(RecipientIn):
    copies: int = 0


class ImportOut(BaseModel):
    imported: int
    recipients: list[RecipientOut]


class MediaOut(BaseModel):
    id: int
    name: str
    sha256: str
    width: int
    height: int
    size: int
    copies: int
    created: datetime


class CopyOut(BaseModel):
    handle: str
    file: str
    sha256: str
    created: datetime


class CopiesIn(BaseModel):
    recipients: list[str] | Literal["all"]
    strength: float = Field(1.0, gt=0, le=4, description="Mark strength (1 ≈ 48 dB PSNR).")


class JobOut(BaseModel):
    id: str
    media_id: int
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    errors: list[str]
    download_url: str | None


class TraceSummary(BaseModel):
    id: int
    name: str
    verdict: str
    recipient: str | None
    p_value: float | None
    created: datetime


class Health(BaseModel):
    status: str
    version: str


# -- batches of copies -----------------------------------------------------------------------
@dataclass
class Job:
    """One batch of copies of one original; lives in the server's memory."""

    id: str
    media: Media
    handles: list[str] | None
    strength: float
    status: Literal["queued", "running", "done", "failed"] = "queued"
    done: int = 0
    total: int = 0
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def out(self) -> JobOut:
        return JobOut(
            id=self.id,
            media_id=self.media.id,
            status=self.status,
            done=self.done,
            total=self.total,
            errors=self.errors,
            download_url=f"/api/jobs/{self.id}/download" if self.status == "done" else None,
        )


class _Jobs:
    """Runs jobs in order on one thread; each job marks over the workflow's process pool."""

    def __init__(self, ws: Workspace, workers: int | None) -> None:
        self.ws, self.workers = ws, workers
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="leaktrace-jobs", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the copies in hand, record them, and end; queued jobs are dropped."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=60)

    def submit(self, media: Media, handles: list[str] | None, total: int, strength: float) -> Job:
        job = Job(secrets.token_hex(8), media, handles, strength, total=total)
        self.jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise NotFoundError(f"no job with id {job_id!r}")
        return self.jobs[job_id]

    def _run(self) -> None:
        while (job := self._queue.get()) is not None and not self._stopping.is_set():
            job.status = "running"
            try:
                batch = make_copies(
                    self.ws,
                    [self.ws.original_path(job.media)],
                    job.handles,
                    self.ws.home / "copies" / str(job.media.id),
                    names=[job.media.name],
                    workers=self.workers,
                    strength=job.strength,
                    on_total=partial(setattr, job, "total"),
                )
                with closing(batch):  # on the way out: cancel what has not started
                    for done in batch:
                        job.files.append(done.path)
                        job.done += 1
                        if self._stopping.is_set():
                            raise WorkspaceError("the server stopped; start the job again")
            except LeaktraceError as exc:
                job.errors.append(str(exc))
                job.status = "failed"
            except Exception as exc:  # a job must end, whatever happens; the log has the rest
                log.exception("job %s failed", job.id)
                job.errors.append(f"internal error: {type(exc).__name__}: {exc}")
                job.status = "failed"
            else:
                job.status = "done"


# -- middleware ------------------------------------------------------------------------------
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


class _RequireToken:
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


class _UploadLimit:
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


# -- uploads ---------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._()+ -]+")


@contextmanager
def _saved(upload: UploadFile) -> Iterator[Path]:
    """The upload as a file named like it (safely) in a private temporary folder."""
    name = _UNSAFE.sub("_", Path(upload.filename or "").name).strip(" .")[-200:] or "upload"
    with tempfile.TemporaryDirectory(prefix="leaktrace-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as fh:
            shutil.copyfileobj(upload.file, fh, 1 << 20)
        if path.stat().st_size == 0:
            raise HTTPException(422, f"{name} is empty")
        try:
            yield path
        except LeaktraceError as exc:  # name the file as uploaded, not where it was kept
            raise type(exc)(str(exc).replace(f"{tmp}{os.sep}", "")) from exc


def _named_for_its_format(path: Path) -> Path:
    """Give an image the suffix of its real format, so copies are written and named right."""
    suffixes = FORMATS[image_format(path)]
    if path.suffix.lower() in suffixes:
        return path
    return path.rename(path.with_name(path.name + suffixes[0]))


# -- the app ---------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False)


def _web_dir() -> Path:
    packaged = Path(str(resources.files("leaktrace"))) / "web"  # in a wheel
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "web"


def create_app(
    home: str | os.PathLike[str] | None = None,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    workers: int | None = None,
) -> FastAPI:
    """The service on the workspace at ``home`` (refused at once if there is none)."""
    ws = Workspace.open(home)
    jobs = _Jobs(ws, workers)
    # Traces are CPU-bound: at most one per core runs, the others wait their turn.
    tracing = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        jobs.start()
        yield
        jobs.stop()
        ws.close()

    app = FastAPI(
        title="leaktrace",
        version=__version__,
        description="Invisible per-recipient watermarks; name the source of a leak.",
        lifespan=lifespan,
    )
    # The outermost runs first: the token is checked before a byte of the body is read.
    app.add_middleware(_UploadLimit, limit=max_upload)
    app.add_middleware(_RequireToken, valid=ws.token_valid)

    @app.exception_handler(LeaktraceError)
    async def _leaktrace_error(_request: Request, exc: LeaktraceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, _status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.get("/api/health", tags=["service"])
    def health() -> Health:
        return Health(status="ok", version=__version__)

    # _RequireToken enforces the token; declaring it here puts it in the OpenAPI docs.
    api = APIRouter(prefix="/api", dependencies=[Security(_bearer)])

    # -- recipients --------------------------------------------------------------------------
    @api.get("/recipients", tags=["recipients"])
    def list_recipients() -> list[RecipientOut]:
        n = ws.copy_counts()
        return [
            RecipientOut(handle=r.handle, name=r.name, email=r.email, copies=n.get(r.handle, 0))
            for r in ws.recipients()
        ]

    @api.post("/recipients", status_code=201, tags=["recipients"])
    def add_recipient(body: RecipientIn) -> RecipientOut:
        r = ws.add_recipient(body.handle, name=body.name, email=body.email)
        return RecipientOut(handle=r.handle, name=r.name, email=r.email)

    @api.post("/recipients/import", status_code=201, tags=["recipients"])
    def import_recipients(file: Annotated[UploadFile, File()]) -> ImportOut:
        with _saved(file) as path:
            added = ws.import_recipients(path)
        people = [RecipientOut(handle=r.handle, name=r.name, email=r.email) for r in added]
        return ImportOut(imported=len(people), recipients=people)

    @api.delete("/recipients/{handle}", status_code=204, tags=["recipients"])
    def remove_recipient(handle: str) -> Response:
        ws.remove_recipient(handle)
        return Response(status_code=204)

    # -- media and copies --------------------------------------------------------------------
    def media_out(m: Media, copies: int) -> MediaOut:
        return MediaOut(
            id=m.id,
            name=m.name,
            sha256=m.sha256,
            width=m.width,
            height=m.height,
            size=m.size,
            copies=copies,
            created=_utc(m.created),
        )

    @api.post("/media", status_code=201, tags=["media"])
    def upload_media(file: Annotated[UploadFile, File()], response: Response) -> MediaOut:
        with _saved(file) as path:
            if ws.media_by_sha256(file_sha256(path)) is not None:
                response.status_code = 200
            media, _ = register_original(ws, _named_for_its_format(path))
        return media_out(media, len(ws.media_recipients(media)))

    @api.get("/media", tags=["media"])
    def list_media() -> list[MediaOut]:
        counts: dict[str, int] = {}
        for c in ws.copies():
            counts[c.media_sha256] = counts.get(c.media_sha256, 0) + 1
        return [media_out(m, counts.get(m.sha256, 0)) for m in ws.media()]

    @api.get("/media/{media_id}", tags=["media"])
    def get_media(media_id: int) -> MediaOut:
        media = ws.media_by_id(media_id)
        return media_out(media, len(ws.media_recipients(media)))

    @api.get("/media/{media_id}/copies", tags=["media"])
    def list_copies(media_id: int) -> list[CopyOut]:
        records = ws.copies(ws.media_by_id(media_id))
        return [
            CopyOut(
                handle=c.handle,
                file=f"{c.handle}/{Path(c.path).name}",
                sha256=c.sha256,
                created=_utc(c.created),
            )
            for c in records
        ]

    @api.post("/media/{media_id}/copies", status_code=202, tags=["media"])
    def make_media_copies(media_id: int, body: CopiesIn) -> JobOut:
        media = ws.media_by_id(media_id)
        handles = None if body.recipients == "all" else list(body.recipients)
        people = ws.recipients(handles) if handles != [] else []
        if not people:
            raise HTTPException(422, "no recipients to make copies for")
        return jobs.submit(media, handles, len(people), body.strength).out()

    @api.get("/jobs/{job_id}", tags=["media"])
    def get_job(job_id: str) -> JobOut:
        return jobs.get(job_id).out()

    @api.get(
        "/jobs/{job_id}/download",
        tags=["media"],
        response_class=FileResponse,
        responses={200: {"content": {"application/zip": {}}}},
    )
    def download_job(job_id: str) -> FileResponse:
        job = jobs.get(job_id)
        if job.status != "done":
            raise HTTPException(409, f"job {job_id} is {job.status}, not done")
        missing = [p.name for p in job.files if not p.is_file()]
        if missing:
            raise HTTPException(409, f"{missing[0]} is no longer there; make the copies again")
        fd, tmp = tempfile.mkstemp(prefix="leaktrace-", suffix=".zip")
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            for path in job.files:  # images are compressed already
                zf.write(path, f"{path.parent.name}/{path.name}")
        return FileResponse(
            tmp,
            media_type="application/zip",
            filename=f"{Path(job.media.name).stem}-copies.zip",
            background=BackgroundTask(os.unlink, tmp),
        )

    # -- traces ------------------------------------------------------------------------------
    @api.post("/trace", tags=["traces"])
    def trace(
        file: Annotated[UploadFile, File()],
        threshold: Annotated[float, Form(gt=0, lt=1)] = DEFAULT_THRESHOLD,
    ) -> dict[str, Any]:
        with _saved(file) as path, tracing:
            outcome = trace_file(ws, path, threshold=threshold)
            html = html_report(outcome.result, outcome.leak, outcome.original, outcome.geometry)
        reports = ws.home / "reports"
        reports.mkdir(exist_ok=True)
        part = reports / f".{outcome.trace_id}.html.part"
        part.write_text(html, encoding="utf-8")
        part.replace(reports / f"{outcome.trace_id}.html")
        return {
            **outcome.result,
            "trace_id": outcome.trace_id,
            "report_url": f"/api/traces/{outcome.trace_id}/report",
        }

    @api.get("/traces", tags=["traces"])
    def list_traces() -> list[TraceSummary]:
        return [
            TraceSummary(
                id=t.id,
                name=t.name,
                verdict=t.verdict,
                recipient=t.recipient,
                p_value=t.p_value,
                created=_utc(t.created),
            )
            for t in reversed(ws.traces())
        ]

    @api.get("/traces/{trace_id}", tags=["traces"])
    def get_trace(trace_id: int) -> dict[str, Any]:
        t = ws.trace(trace_id)
        return {**t.result, "trace_id": t.id, "report_url": f"/api/traces/{t.id}/report"}

    @api.get("/traces/{trace_id}/report", tags=["traces"], response_class=FileResponse)
    def get_report(trace_id: int) -> FileResponse:
        ws.trace(trace_id)
        path = ws.home / "reports" / f"{trace_id}.html"
        if not path.is_file():
            raise HTTPException(404, f"trace {trace_id} has no stored report (traced by the CLI?)")
        return FileResponse(path, media_type="text/html")

    app.include_router(api)
    web = _web_dir()
    if web.is_dir():
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app
