"""``/api/trace`` and ``/api/traces``: name the source of a leak, and the traces made."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse

from ...detect import DEFAULT_THRESHOLD
from ...report import html_report
from ...workflow import trace_file
from ..deps import ServiceDep
from ..reports import expire_reports, report_path, write_report
from ..schemas import TraceOut, TraceSummary, errors, utc
from ..uploads import named_for_tracing, saved

__all__ = ["router"]

router = APIRouter(tags=["traces"])

_NO_TRACE = {404: "No trace with that id"}


def _out(result: dict[str, Any], trace_id: int) -> dict[str, Any]:
    return {**result, "trace_id": trace_id, "report_url": f"/api/traces/{trace_id}/report"}


@router.post(
    "/trace",
    response_model=TraceOut,
    response_model_exclude_unset=True,
    responses=errors(
        {
            400: "The multipart body cannot be parsed",
            413: "The upload is larger than the limit (a video's or a photo's), or the image "
            "has too many pixels",
            415: "Not an image or a video leaktrace reads, or a video without a video stream",
            422: "No file, an empty, truncated or corrupt one, or a threshold not in (0, 1)",
        }
    ),
)
def trace(
    file: Annotated[UploadFile, File()],
    s: ServiceDep,
    threshold: Annotated[float, Form(gt=0, lt=1, allow_inf_nan=False)] = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Trace a leaked photo or video: the recipient it came from and the false-accusation
    probability, or "no_match" (answered 200 too). The evidence report is kept for the
    server's ``--keep-reports`` days. A video takes a while (it is decoded twice and read
    segment by segment): the answer comes when it is done, however long that is."""
    with saved(file) as path, s.tracing:
        outcome = trace_file(s.ws, named_for_tracing(path), threshold=threshold)
        html = html_report(outcome.result, outcome.leak, outcome.original, outcome.geometry)
    write_report(s.ws, outcome.trace_id, html)
    expire_reports(s.ws, s.keep_reports)
    return _out(outcome.result, outcome.trace_id)


@router.get("/traces")
def list_traces(s: ServiceDep) -> list[TraceSummary]:
    """Every trace, the newest first, with the person a match names."""
    return [
        TraceSummary(
            id=t.id,
            name=t.name,
            verdict=t.verdict,
            recipient=t.recipient,
            person=t.result.get("person"),
            media_id=t.media_id,
            p_value=t.p_value,
            created=utc(t.created),
        )
        for t in reversed(s.ws.traces())
    ]


@router.get(
    "/traces/{trace_id}",
    response_model=TraceOut,
    response_model_exclude_unset=True,
    responses=errors(_NO_TRACE),
)
def get_trace(trace_id: int, s: ServiceDep) -> dict[str, Any]:
    t = s.ws.trace(trace_id)
    return _out(t.result, t.id)


@router.get(
    "/traces/{trace_id}/report",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The self-contained evidence report"},
        **errors({404: "No trace with that id, no stored report, or its report expired"}),
    },
)
def get_report(trace_id: int, s: ServiceDep) -> FileResponse:
    """A trace's evidence report (HTML), while it is kept."""
    path = report_path(s.ws, s.ws.trace(trace_id), s.keep_reports)
    return FileResponse(path, media_type="text/html")
