"""What every route depends on: the one :class:`Service` an app holds."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request

from ..ondemand import CopyMaker
from ..registry import Workspace
from .jobs import JobRunner
from .scans import ScanRunner

__all__ = ["Service", "ServiceDep"]


@dataclass
class Service:
    """The workspace an app serves, its job runner, copy maker and settings."""

    ws: Workspace
    jobs: JobRunner
    #: Traces are CPU-bound: at most one per core runs, the others wait their turn.
    tracing: threading.BoundedSemaphore
    #: Days a trace's evidence report is kept (0: for ever).
    keep_reports: int
    #: Scans of uploaded suspected leaks, one at a time.
    scans: ScanRunner
    #: Copies made on demand (a download of a copy not made yet), with their prepared photos.
    copies: CopyMaker = field(default_factory=CopyMaker)


async def _service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


ServiceDep = Annotated[Service, Depends(_service)]
