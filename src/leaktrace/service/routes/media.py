"""``/api/media``: registered originals, their copies, and new batches of copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from ...errors import RecipientError
from ...registry import Media, file_sha256
from ...workflow import register_original
from ..deps import ServiceDep
from ..schemas import CopiesIn, CopyOut, JobOut, MediaOut, errors, utc
from ..uploads import as_uploaded, named_for_its_format, saved
from .jobs import job_out

__all__ = ["media_out", "router"]

router = APIRouter(prefix="/media", tags=["media"])

_NO_MEDIA = {404: "No media with that id"}


def media_out(m: Media, copies: int, warnings: list[str] | None = None) -> MediaOut:
    return MediaOut(
        id=m.id,
        name=m.name,
        sha256=m.sha256,
        width=m.width,
        height=m.height,
        size=m.size,
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
                413: "The upload is larger than the limit, or the image has too many pixels",
                415: "Not an image leaktrace reads, or one it can trace but not mark",
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
    """Register an original (JPEG, PNG, WebP or TIFF) under the name it was uploaded with."""
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


@router.get("/{media_id}/copies", responses=errors(_NO_MEDIA))
def list_copies(media_id: int, s: ServiceDep) -> list[CopyOut]:
    """Every copy made of an original, oldest first."""
    records = s.ws.copies(s.ws.media_by_id(media_id))
    return [
        CopyOut(
            handle=c.handle,
            file=f"{c.handle}/{Path(c.path).name}",
            sha256=c.sha256,
            created=utc(c.created),
        )
        for c in records
    ]


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
