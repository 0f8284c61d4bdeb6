"""The evidence reports of the service's traces: ``reports/<trace id>.html`` in the workspace.

Reports are private to the workspace's owner (folder 0700, files 0600) and kept for a set
number of days after their trace (``leaktrace serve --keep-reports``, 0 = for ever); older
ones are deleted when the server starts and after each trace. The trace's record stays, so
its verdict can still be read; asking for its report says that it expired.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import MediaError, NotFoundError, WorkspaceError
from ..media import write_file
from ..registry import Trace, Workspace
from .schemas import utc

__all__ = ["DEFAULT_KEEP_DAYS", "expire_reports", "report_path", "write_report"]

DEFAULT_KEEP_DAYS = 90
_FOLDER = "reports"


def write_report(ws: Workspace, trace_id: int, html: str) -> Path:
    """Store a trace's report (mode 0600), whole or not at all."""
    final = ws.private_dir(_FOLDER) / f"{trace_id}.html"
    try:
        return write_file(final, html.encode("utf-8"), mode=0o600)
    except MediaError as exc:
        raise WorkspaceError(f"cannot store the report of trace {trace_id}: {exc}") from exc


def _cutoff(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def expire_reports(ws: Workspace, days: int) -> int:
    """Delete the reports of traces made more than ``days`` ago (none when 0), and make the
    others private; returns how many were deleted."""
    folder = ws.home / _FOLDER
    if not folder.is_dir():
        return 0
    os.chmod(folder, 0o700)
    cutoff = _cutoff(days)
    deleted = 0
    for path in folder.glob("*.html"):
        # A report is written after its trace is recorded: only an old file can be expired,
        # and the trace's record says when it was made.
        old = days and path.stat().st_mtime < cutoff.timestamp()
        if old and path.stem.isdigit() and _trace_made(ws, int(path.stem)) < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
        else:
            os.chmod(path, 0o600)
    return deleted


def _trace_made(ws: Workspace, trace_id: int) -> datetime:
    try:
        return utc(ws.trace(trace_id).created)
    except NotFoundError:  # a report without its trace (a registry restored from a backup)
        return datetime.min.replace(tzinfo=UTC)


def report_path(ws: Workspace, trace: Trace, days: int) -> Path:
    """The stored report of a trace; NotFoundError saying why when there is none."""
    path = ws.home / _FOLDER / f"{trace.id}.html"
    if path.is_file():
        return path
    if days and utc(trace.created) < _cutoff(days):
        raise NotFoundError(
            f"report expired after {days} days (reports are kept that long; trace {trace.id} "
            "itself is kept)"
        )
    raise NotFoundError(f"trace {trace.id} has no stored report (traced by the CLI?)")
