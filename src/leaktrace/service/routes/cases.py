"""``/api/scan``, ``/api/scans`` and ``/api/cases``: many suspected leaks at once, the cases
they make, and a case's evidence bundle."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ...bundle import export_case
from ...cases import case_dict, case_view, case_views
from ...errors import MediaError
from ...registry import Scan, Workspace
from ..deps import ServiceDep
from ..scans import scan_folder
from ..schemas import CaseDetailOut, CaseOut, ScanOut, errors, utc
from ..uploads import clean_name, container_suffix

__all__ = ["router"]

router = APIRouter(tags=["cases"])

_NO_CASE = {404: "No case with that id"}
#: The most files one scan request takes.
MAX_FILES = 1000


def _uploads_named(ws: Workspace, text: str) -> str:
    """A message about uploads, naming them as uploaded, not where the workspace keeps them."""
    where = re.escape(f"{ws.home / 'scans'}{os.sep}")
    return re.sub(rf"{where}[0-9a-f]+{re.escape(os.sep)}[0-9]+{re.escape(os.sep)}", "", text)


def _scan_out(ws: Workspace, run: Scan) -> ScanOut:
    files = ws.scanned(scan_id=run.id)
    return ScanOut(
        id=run.id,
        status=run.status,  # type: ignore[arg-type]  # the registry stores one of ScanStatus
        done=run.done,
        total=run.total,
        errors=run.errors,
        created=utc(run.created),
        finished=None if run.finished is None else utc(run.finished),
        files=[
            {  # type: ignore[misc]
                "name": f.name,
                "sha256": f.sha256,
                "status": f.status,
                "reason": _uploads_named(ws, f.reason),
                "case_id": f.case_id,
                "trace_id": f.trace_id,
            }
            for f in files
        ],
    )


@router.post(
    "/scan",
    status_code=202,
    responses=errors(
        {
            400: "The multipart body cannot be parsed",
            413: "The upload is larger than the limit",
            422: "No files, or more than 1,000",
        }
    ),
)
def start_scan(files: Annotated[list[UploadFile], File()], s: ServiceDep) -> ScanOut:
    """Scan suspected leaks (pictures and videos; other files are listed as unreadable with
    the reason): a job that traces them over all cores, then groups the matches into cases.
    Poll ``GET /api/scans/{id}`` for its progress and its files' verdicts."""
    if not files:
        raise MediaError("no files to scan")
    if len(files) > MAX_FILES:
        raise MediaError(f"{len(files)} files: a scan takes at most {MAX_FILES} at once")
    run = s.ws.begin_scan("(uploads)", len(files), status="queued")
    folder = scan_folder(s.ws, run.id)
    for i, upload in enumerate(files):
        target = s.ws.private_dir("scans", run.id, str(i)) / clean_name(upload.filename)
        with target.open("wb") as fh:
            shutil.copyfileobj(upload.file, fh, 1 << 20)
        suffix = container_suffix(target)
        if suffix is not None and target.suffix.lower() != suffix:
            target.rename(target.with_name(target.name + suffix))
    return _scan_out(s.ws, s.scans.submit(folder, run.id))


@router.get("/scans")
def list_scans(s: ServiceDep) -> list[ScanOut]:
    """Every scan, the most recent first (without their files)."""
    return [
        _scan_out(s.ws, run).model_copy(update={"files": []}) for run in reversed(s.ws.scan_runs())
    ]


@router.get("/scans/{scan_id}", responses=errors({404: "No scan with that id"}))
def get_scan(scan_id: str, s: ServiceDep) -> ScanOut:
    return _scan_out(s.ws, s.ws.scan_run(scan_id))


def _case_out(ws: Workspace, data: dict[str, Any]) -> dict[str, Any]:
    data["export_url"] = f"/api/cases/{data['id']}/export"
    for f in data.get("file_list", []):
        f["report_url"] = f"/api/traces/{f['trace_id']}/report"
    return data


@router.get("/cases")
def list_cases(s: ServiceDep) -> list[CaseOut]:
    """Every case, oldest first: the leaker(s), the media, the files, the combined
    false-accusation probability."""
    return [
        CaseOut.model_validate(_case_out(s.ws, case_dict(v, files=False))) for v in case_views(s.ws)
    ]


@router.get("/cases/{case_id}", responses=errors(_NO_CASE))
def get_case(case_id: int, s: ServiceDep) -> CaseDetailOut:
    """One case with every file."""
    return CaseDetailOut.model_validate(_case_out(s.ws, case_dict(case_view(s.ws, case_id))))


@router.get(
    "/cases/{case_id}/export",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "The case's evidence bundle (index, reports, hashes, the registry's "
            "record, a draft takedown notice); never the key",
        },
        **errors(_NO_CASE),
    },
)
def export(
    case_id: int,
    s: ServiceDep,
    found_at: Annotated[
        str | None, Query(max_length=2000, description="Where the files were found (a URL).")
    ] = None,
) -> FileResponse:
    """The case's evidence bundle as a zip (each export is recorded, so ``leaktrace cases
    verify`` can check it later)."""
    fd, tmp = tempfile.mkstemp(prefix="leaktrace-case-", suffix=".zip")
    os.close(fd)
    try:
        export_case(s.ws, case_id, tmp, found_at=found_at)
    except BaseException:
        os.unlink(tmp)
        raise
    return FileResponse(
        tmp,
        media_type="application/zip",
        filename=f"case-{case_id}.zip",
        background=BackgroundTask(os.unlink, tmp),
    )
