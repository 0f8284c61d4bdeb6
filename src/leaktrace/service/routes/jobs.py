"""``/api/jobs``: batches of copies, their progress, cancelling one, and its zip."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ...errors import ConflictError
from ...registry import Job, Media
from ..deps import Service, ServiceDep
from ..jobs import ACTIVE, job_copies
from ..schemas import JobOut, JobStatus, errors, utc

__all__ = ["job_out", "router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])

_NO_JOB = {404: "No job with that id"}


def job_out(s: Service, job: Job, media: Media | None = None) -> JobOut:
    media = media or s.ws.media_by_id(job.media_id)
    ended = job.status not in ACTIVE and not s.jobs.busy(job.id)
    progress = s.jobs.progress(job.id)
    return JobOut(
        id=job.id,
        media_id=job.media_id,
        media_name=media.name,
        status=job.status,  # type: ignore[arg-type]  # the registry stores one of JobStatus
        done=job.done,
        total=job.total,
        phase=None if progress is None else progress.phase,
        frames=None if progress is None else progress.frames,
        frames_total=None if progress is None else progress.frames_total,
        strength=job.strength,
        errors=job.errors,
        warnings=job.warnings,
        created=utc(job.created),
        finished=None if job.finished is None else utc(job.finished),
        download_url=f"/api/jobs/{job.id}/download" if ended and job.done else None,
    )


@router.get("")
def list_jobs(
    s: ServiceDep, status: Annotated[list[JobStatus] | None, Query()] = None
) -> list[JobOut]:
    """Every job, the most recent first (only those with the given statuses, if any)."""
    media = {m.id: m for m in s.ws.media()}
    jobs = s.ws.jobs(status=status)
    return [job_out(s, job, media[job.media_id]) for job in reversed(jobs)]


@router.get("/{job_id}", responses=errors(_NO_JOB))
def get_job(job_id: str, s: ServiceDep) -> JobOut:
    return job_out(s, s.ws.job(job_id))


@router.post(
    "/{job_id}/cancel",
    responses=errors(
        {
            **_NO_JOB,
            409: "The job has ended already (done, failed or cancelled)",
            413: "A body larger than the upload limit (none is needed)",
        }
    ),
)
def cancel_job(job_id: str, s: ServiceDep) -> JobOut:
    """Cancel a queued or running job. Answers once the copies in hand are recorded; the
    copies made stay recorded and downloadable."""
    return job_out(s, s.jobs.cancel(job_id))


@router.get(
    "/{job_id}/download",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "<handle>/<file name> each"},
        **errors(
            {
                **_NO_JOB,
                409: "The job has not ended, made no copies, or a copy's file is gone",
            }
        ),
    },
)
def download_job(job_id: str, s: ServiceDep) -> FileResponse:
    """The copies of an ended job as a zip, one ``<handle>/<file name>`` per recipient."""
    job = s.ws.job(job_id)
    if job.status in ACTIVE or s.jobs.busy(job.id):
        raise ConflictError(f"job {job_id} is {job.status}; download it once it has ended")
    copies = job_copies(s.ws, job)
    if not copies:
        raise ConflictError(f"job {job_id} made no copies")
    missing = [f"{c.handle}/{Path(c.path).name}" for c in copies if not Path(c.path).is_file()]
    if missing:
        raise ConflictError(f"{missing[0]} is no longer there; make the copies again")
    fd, tmp = tempfile.mkstemp(prefix="leaktrace-", suffix=".zip")
    with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for c in copies:  # images and videos are compressed already
            zf.write(c.path, f"{c.handle}/{Path(c.path).name}")
    media = s.ws.media_by_id(job.media_id)
    return FileResponse(
        tmp,
        media_type="application/zip",
        filename=f"{Path(media.name).stem}-copies.zip",
        background=BackgroundTask(os.unlink, tmp),
    )
