"""The service's scans: uploaded suspected leaks, traced on a thread over the scan's process
pool, one scan at a time, progress in the registry.

The uploads are kept in the workspace (``scans/<scan id>/<n>/<file name>``) so that a scan
outlives the request, is resumed by the next server if this one stops (the files recorded are
not traced again) and its bundles can show the leaks.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from ..errors import LeaktraceError
from ..registry import Scan, Workspace
from ..scan import scan
from ..workflow import Stopped
from .jobs import run_lock

__all__ = ["ScanRunner", "scan_folder"]

log = logging.getLogger("leaktrace.service")


def scan_folder(ws: Workspace, scan_id: str) -> Path:
    """Where a scan's uploads are kept."""
    return ws.home / "scans" / scan_id


class ScanRunner:
    """Runs the registry's queued scans in order on one thread."""

    def __init__(self, ws: Workspace, *, workers: int | None = None) -> None:
        self.ws, self.workers = ws, workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="leaktrace-scans", daemon=True)
        self._stop = threading.Event()

    def start(self) -> list[str]:
        """Resume the scans a previous server left, then run what comes."""
        left = [s.id for s in self.ws.scan_runs(status=["queued", "running"])]
        for scan_id in left:
            self._queue.put(scan_id)
        self._thread.start()
        return left

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, folder: Path, scan_id: str) -> Scan:
        scan_run = self.ws.update_scan(scan_id, status="queued", folder=str(folder))
        self._queue.put(scan_id)
        return scan_run

    def _run(self) -> None:
        while (scan_id := self._queue.get()) is not None:
            if self._stop.is_set():
                return
            with run_lock(self.ws, f"scan-{scan_id}") as mine:
                if mine:  # else another server process runs it
                    self._run_one(scan_id)

    def _run_one(self, scan_id: str) -> None:
        if self.ws.scan_run(scan_id).status not in ("queued", "running"):
            return  # run meanwhile by another server process
        folder = scan_folder(self.ws, scan_id)
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        try:
            self.ws.update_scan(scan_id, status="running")
            for _ in scan(
                self.ws, paths=paths, workers=self.workers, stop=self._stop, scan_id=scan_id
            ):
                pass
        except Stopped:
            self.ws.update_scan(scan_id, status="queued")  # the next server resumes it
        except LeaktraceError as exc:
            self.ws.update_scan(scan_id, status="failed", errors=str(exc).splitlines())
        except Exception as exc:  # a scan must end, whatever happens
            log.exception("scan %s failed", scan_id)
            self.ws.update_scan(
                scan_id,
                status="failed",
                errors=[f"internal error ({type(exc).__name__}); the server's log has it"],
            )
