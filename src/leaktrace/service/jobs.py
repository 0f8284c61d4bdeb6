"""The service's batches of copies: kept in the registry, run one at a time on a thread.

A job is stored when it is accepted, with its recipients fixed then (``"all"`` is resolved to
the handles registered at that moment), and its status and progress are written to the
registry as its copies land. So a job outlives the server: one left queued or running by a
server that stopped or died is resumed by the next (the workflow skips the copies already
made), and its download is built from the registry's records.

Cancelling records ``cancelled`` at once (so a restart does not resume it) and stops the batch
at its next safe point: the copies in hand are finished and recorded, and stay downloadable.

The first batch of a video first marks it (its variants: one long encode, frame by frame); the
running job's phase — ``marking`` with frames done and total, then ``copies`` — is kept in
memory only (a resumed job marks again from the start).
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConflictError, LeaktraceError
from ..registry import CopyRecord, Job, Media, Workspace
from ..workflow import BatchSummary, Stopped, make_copies
from .schemas import utc

__all__ = ["ACTIVE", "JobRunner", "Progress", "job_copies", "job_folder", "run_lock"]

log = logging.getLogger("leaktrace.service")

#: The statuses of a job that has not ended.
ACTIVE = ("queued", "running")


@contextmanager
def run_lock(ws: Workspace, name: str) -> Iterator[bool]:
    """Hold the lock file ``locks/<name>.run`` while running a job or scan, if no other
    process holds it (yields whether this one does): with several server processes, each
    resumes the jobs left at start and takes new ones, and this keeps each run once."""
    path = ws.private_dir("locks") / f"{name}.run"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            # The run's status says it ended (or will be resumed): whoever opens the name
            # next reads that before running anything.
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def job_folder(ws: Workspace, media_id: int) -> Path:
    """Where the service writes the copies of one original: ``copies/<media id>/<handle>/``."""
    return ws.home / "copies" / str(media_id)


def job_copies(ws: Workspace, job: Job) -> list[CopyRecord]:
    """The copies a job delivers, one per recipient (by handle): those it made, and for the
    others, the copy it found made already in the service's folder for that original."""
    made = {c.handle: c for c in ws.copies(job_id=job.id)}  # the newest wins
    wanted = set(job.handles) - set(made)
    if wanted:
        folder = job_folder(ws, job.media_id).absolute()
        accepted = utc(job.created)
        for c in ws.copies(ws.media_by_id(job.media_id)):
            if (
                c.handle in wanted
                and utc(c.created) <= accepted
                and Path(c.path).is_relative_to(folder)
            ):
                made[c.handle] = c
    return [made[h] for h in sorted(made)]


@dataclass(frozen=True)
class Progress:
    """Where the running job is: marking a video (``frames`` of ``frames_total`` encoded), or
    making the copies (counted in the job's record)."""

    phase: Literal["marking", "copies"]
    frames: int | None = None
    frames_total: int | None = None


class JobRunner:
    """Runs the registry's jobs in the order they were accepted, one at a time, each over the
    workflow's process pool (``workers`` processes, default all cores) or on the workers of
    the Dask scheduler at ``cluster``."""

    def __init__(
        self, ws: Workspace, *, workers: int | None = None, cluster: str | None = None
    ) -> None:
        self.ws, self.workers, self.cluster = ws, workers, cluster
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="leaktrace-jobs", daemon=True)
        # Guards status changes, so that a cancel and a job's end cannot cross.
        self._lock = threading.Lock()
        self._current: str | None = None
        self._progress: Progress | None = None
        self._stop = threading.Event()
        self._ended = threading.Condition(self._lock)
        self._closing = False

    # -- control -----------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Resume the jobs a previous server left queued or running, then run what comes;
        returns the ids of the jobs resumed."""
        left = [job.id for job in self.ws.jobs(status=list(ACTIVE))]
        for job_id in left:
            self._queue.put(job_id)
        self._thread.start()
        return left

    def stop(self, timeout: float = 60) -> None:
        """Stop at the running job's next safe point; it and the queued ones stay in the
        registry for the next server to resume."""
        with self._lock:
            self._closing = True
            self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, media: Media, handles: Sequence[str], strength: float) -> Job:
        """Store a job for exactly these recipients, and queue it."""
        job = self.ws.add_job(media, handles, strength)
        self._queue.put(job.id)
        return job

    def cancel(self, job_id: str, *, wait: float = 60) -> Job:
        """Cancel a queued or running job; a running one is waited for (up to ``wait``
        seconds) until the copies in hand are recorded."""
        with self._lock:
            job = self.ws.job(job_id)
            if job.status not in ACTIVE:
                raise ConflictError(
                    f"job {job_id} has ended ({job.status}); only a queued or running job "
                    "can be cancelled"
                )
            job = self.ws.update_job(job_id, status="cancelled")
            if self._current == job_id:
                self._stop.set()
                self._ended.wait_for(lambda: self._current != job_id, timeout=wait)
                job = self.ws.job(job_id)
        return job

    def busy(self, job_id: str) -> bool:
        """Whether this job is being run (or stopped) right now."""
        return self._current == job_id

    def progress(self, job_id: str) -> Progress | None:
        """The phase of this job if it is running and has started its work."""
        progress = self._progress
        return progress if self._current == job_id else None

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with run_lock(self.ws, f"job-{job_id}") as mine:
                if mine:  # else another server process runs it
                    self._run_one(job_id)
            if self._closing:
                return

    def _run_one(self, job_id: str) -> None:
        with self._lock:
            if self._closing:
                return
            job = self.ws.job(job_id)
            if job.status not in ACTIVE:  # cancelled while it waited, or run elsewhere
                return
            job = self.ws.update_job(job_id, status="running")
            self._current = job_id
            self._progress = None
            self._stop = threading.Event()
        try:
            self._make(job)
        except Exception:  # a job must end, whatever happens; the log has the rest
            log.exception("job %s could not be recorded as ended", job_id)
        finally:
            with self._lock:
                self._current = None
                self._progress = None
                self._ended.notify_all()

    def _make(self, job: Job) -> None:
        ws = self.ws
        summary = BatchSummary()
        errors: list[str] = []
        names: dict[str, str] = {}  # the original's path in the workspace -> its name

        def said(messages: list[str]) -> list[str]:
            for path, name in names.items():
                messages = [m.replace(path, name) for m in messages]
            return messages

        def total(n: int) -> None:
            self._progress = Progress("copies")
            ws.update_job(job.id, total=n)

        def marking(_name: str, frames: int, frames_total: int) -> None:
            self._progress = Progress("marking", frames, frames_total)

        stopped = False
        try:
            media = ws.media_by_id(job.media_id)
            original = ws.original_path(media)
            names[str(original)] = media.name
            batch = make_copies(
                ws,
                [original],
                job.handles,
                job_folder(ws, media.id),
                names=[media.name],
                workers=None if self.cluster else self.workers,
                cluster=self.cluster,
                strength=job.strength,
                on_total=total,
                on_variants=marking,
                summary=summary,
                job_id=job.id,
                stop=self._stop,
            )
            with closing(batch):  # on the way out: the copies in hand are recorded
                for done, _ in enumerate(batch, 1):
                    now = ws.update_job(job.id, done=done, warnings=said(summary.warnings))
                    if now.status == "cancelled":  # by another server process
                        self._stop.set()
        except Stopped:
            stopped = True
        except LeaktraceError as exc:
            errors = said(str(exc).splitlines())
        except Exception as exc:
            log.exception("job %s failed", job.id)
            errors = [f"internal error ({type(exc).__name__}); the server's log has the details"]
        with self._lock:
            if ws.job(job.id).status == "cancelled":
                status = "cancelled"
            elif stopped:  # the server is stopping: the next one resumes the job
                status = "queued"
            else:
                status = "failed" if errors else "done"
            ws.update_job(
                job.id,
                status=status,
                done=summary.made + summary.skipped,
                errors=errors,
                warnings=said(summary.warnings),
            )
