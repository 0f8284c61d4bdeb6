"""``/api/media``: registered originals, their copies, and new batches of copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.responses import FileResponse

from ...errors import ConflictError, NotFoundError, RecipientError
from ...registry import CopyRecord, Media, Workspace, file_sha256
from ...workflow import register_original
from ..deps import Service, ServiceDep
from ..jobs import job_folder
from ..schemas import CopiesIn, CopyOut, JobOut, MediaOut, errors, utc
from ..uploads import as_uploaded, named_for_its_format, saved
from .jobs import job_out

__all__ = ["ON_DEMAND", "copy_out", "deliver", "media_out", "router", "served"]

#: Content types of the copies the service writes, by suffix.
_TYPES = {
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}

router = APIRouter(prefix="/media", tags=["media"])

_NO_MEDIA = {404: "No media with that id"}


def _duration(m: Media) -> float | None:
    """A marked video's length (its plan has it); None for a photo or an unmarked video."""
    if m.kind != "video" or m.plan is None:
        return None
    from ...videos import plan_of  # PyAV, loaded for videos only

    return round(plan_of(m).duration, 3)


def media_out(m: Media, copies: int, warnings: list[str] | None = None) -> MediaOut:
    return MediaOut(
        id=m.id,
        name=m.name,
        kind="video" if m.kind == "video" else "image",
        sha256=m.sha256,
        width=m.width,
        height=m.height,
        size=m.size,
        duration=_duration(m),
        copies=copies,
        created=utc(m.created),
        warnings=warnings or [],
    )


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": MediaOut, "description": "Those exact bytes were registered already"},
        **errors(
            {
                400: "The multipart body cannot be parsed",
                413: "The upload is larger than the limit (a video's or a photo's), or the "
                "image has too many pixels",
                415: "Not an image or a video leaktrace reads, a video without a video stream, "
                "or a picture it can trace but not mark",
                422: "No file, an empty, truncated or corrupt one, a picture too flat or too "
                "small to carry a mark that survives a re-share (saying which), or a recorded "
                "copy (naming whose copy of what)",
            }
        ),
    },
)
def upload_media(
    file: Annotated[UploadFile, File()], response: Response, s: ServiceDep
) -> MediaOut:
    """Register an original under the name it was uploaded with: a photo (JPEG, PNG, WebP or
    TIFF) or a video (MP4, MOV, MKV, WebM or AVI). A video is checked and kept now, and marked
    by its first batch of copies."""
    with saved(file) as path:
        if s.ws.media_by_sha256(file_sha256(path)) is not None:
            response.status_code = 200
        media, warnings = register_original(s.ws, named_for_its_format(path))
        warnings = [as_uploaded(w, path) for w in warnings]
    return media_out(media, len(s.ws.media_recipients(media)), warnings)


@router.get("")
def list_media(s: ServiceDep) -> list[MediaOut]:
    """Every registered original, oldest first."""
    counts: dict[str, set[str]] = {}
    for c in s.ws.copies():
        counts.setdefault(c.media_sha256, set()).add(c.handle)
    return [media_out(m, len(counts.get(m.sha256, ()))) for m in s.ws.media()]


@router.get("/{media_id}", responses=errors(_NO_MEDIA))
def get_media(media_id: int, s: ServiceDep) -> MediaOut:
    media = s.ws.media_by_id(media_id)
    return media_out(media, len(s.ws.media_recipients(media)))


def served(ws: Workspace, media: Media) -> dict[str, CopyRecord]:
    """The newest copy of ``media`` the service made for each recipient (by handle)."""
    folder = job_folder(ws, media.id).absolute()
    return {c.handle: c for c in ws.copies(media) if Path(c.path).is_relative_to(folder)}


def copy_out(c: CopyRecord, served: dict[str, CopyRecord]) -> CopyOut:
    """A copy as the API shows it; ``served``: the copies of its original the service made
    (:func:`served`), which alone can be downloaded."""
    return CopyOut(
        handle=c.handle,
        media_id=c.media_id,
        media_name=c.media_name,
        file=f"{c.handle}/{Path(c.path).name}",
        sha256=c.sha256,
        created=utc(c.created),
        download_url=f"/api/media/{c.media_id}/copies/{c.handle}/download"
        if served.get(c.handle) == c and Path(c.path).is_file()
        else None,
    )


@router.get("/{media_id}/copies", responses=errors(_NO_MEDIA))
def list_copies(media_id: int, s: ServiceDep) -> list[CopyOut]:
    """Every copy made of an original, oldest first."""
    media = s.ws.media_by_id(media_id)
    mine = served(s.ws, media)
    return [copy_out(c, mine) for c in s.ws.copies(media)]


@router.get(
    "/{media_id}/copies/{handle}/download",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"video/mp4": {}, "image/png": {}, "application/octet-stream": {}},
            "description": "The copy's file, named as in a job's zip",
        },
        **errors(
            {
                404: "No media with that id, or no copy of it the service made for that recipient",
                409: "The copy's file is gone",
            }
        ),
    },
)
def download_copy(media_id: int, handle: str, s: ServiceDep) -> FileResponse:
    """One recipient's copy of an original: the newest the service made (a video's copies
    are large; this spares a zip of them all)."""
    media = s.ws.media_by_id(media_id)
    made = {h.casefold(): c for h, c in served(s.ws, media).items()}
    copy = made.get(handle.casefold())
    if copy is None:
        raise NotFoundError(f"no copy of {media.name} made by the service for {handle}")
    path = Path(copy.path)
    if not path.is_file():
        raise ConflictError(f"{copy.handle}/{path.name} is no longer there; make the copy again")
    return _file(path)


def _file(path: Path, made: bool | None = None) -> FileResponse:
    """A copy's file as a download, named as in a job's zip."""
    return FileResponse(
        path,
        media_type=_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        filename=path.name,
        headers=None if made is None else {"X-Copy-Made": "true" if made else "false"},
    )


#: The answers of a route that serves a copy made on demand (also through a signed link).
ON_DEMAND = {
    200: {
        "content": {"image/jpeg": {}, "image/png": {}, "video/mp4": {}},
        "description": "The copy's file, named as in a job's zip; X-Copy-Made says whether "
        "this request made it",
    },
    **errors(
        {
            404: "No media with that id, or no recipient with that handle",
            409: "A video not marked yet (its first batch marks it), or the copy is being made "
            "by another process for longer than a request waits",
        }
    ),
}


@router.get("/{media_id}/copies/{handle}", response_class=FileResponse, responses=ON_DEMAND)
def copy_on_demand(media_id: int, handle: str, s: ServiceDep) -> FileResponse:
    """One recipient's copy of an original, made now if it was not made yet: recorded before
    it is sent, made once however many ask for it at once (a photo's per-original work is
    cached, so each further recipient's copy costs its mark and encode)."""
    return deliver(s, s.ws.media_by_id(media_id), handle)


def deliver(s: Service, media: Media, handle: str) -> FileResponse:
    """``handle``'s copy of ``media`` (made on demand) as a download."""
    done = s.copies.copy(s.ws, media, handle, job_folder(s.ws, media.id))
    return _file(done.path, done.made)


@router.post(
    "/{media_id}/copies",
    status_code=202,
    responses=errors(
        {
            400: "The body cannot be decoded (not UTF-8)",
            404: "No media with that id, or an unknown recipient (named)",
            413: "The body is larger than the upload limit",
            422: "Not JSON, no recipients, or a strength out of range",
        }
    ),
)
def make_media_copies(media_id: int, body: CopiesIn, s: ServiceDep) -> JobOut:
    """Accept a batch of copies: its recipients are fixed now ("all": everyone registered at
    this moment) and it runs in the background, after the jobs accepted before it."""
    media = s.ws.media_by_id(media_id)
    wanted = None if body.recipients == "all" else body.recipients
    handles = [r.handle for r in s.ws.recipients(wanted)]
    if not handles:
        raise RecipientError("no recipients to make copies for: add some first")
    job = s.jobs.submit(media, handles, body.strength)
    return job_out(s, job, media)
