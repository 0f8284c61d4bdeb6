"""Scan: trace every file of a folder of suspected leaks over all cores, then group the
matches into cases (:mod:`leaktrace.cases`).

Each file is hashed (SHA-256) first. A content some scan judged already is not traced again:
its record is reused (a file with the same bytes elsewhere is another place the same leak was
found). The others are traced over a process pool (``spawn``; one OpenCV thread per process),
each process recording the file's trace and its scan record in ONE transaction as it
completes; a file that cannot be read is recorded with its one-line reason. So a scan stopped
at any moment (Ctrl-C, kill, power cut) loses nothing, and run again it traces only what was
not recorded.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from .cases import regroup
from .detect import DEFAULT_THRESHOLD
from .errors import KeyFileError, LeaktraceError, MediaError, WorkspaceError
from .registry import Workspace, file_sha256
from .workflow import InputError, Stopped, trace_file

__all__ = ["STATUSES", "Scanned", "files_in", "scan"]

#: What a scanned file is, in the order a summary lists them.
STATUSES = {
    "match": "traced: names a recipient",
    "no_match": "one of your media, nobody named",
    "original": "your unmarked original",
    "unrelated": "not one of your media",
    "unreadable": "not a picture or video leaktrace reads",
}


@dataclass(frozen=True)
class Scanned:
    """One file of a scan: where, its hash, what it is and why (``again``: its content was
    judged before, by this scan or an earlier one, and was not traced again)."""

    path: str
    sha256: str
    status: str
    reason: str
    again: bool


def files_in(folder: str | os.PathLike[str]) -> list[Path]:
    """Every file under ``folder`` (recursively, in name order); a clear error if there is
    no such folder or nothing in it."""
    root = Path(folder)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (give the folder the suspected leaks are in)")
    try:
        found = sorted(p for p in root.rglob("*") if p.is_file())
    except OSError as exc:
        raise InputError(f"{root}: cannot list it ({exc.strerror or exc})") from exc
    if not found:
        raise InputError(f"{root}: the folder holds no files to scan")
    return found


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:1000]


# -- worker side ------------------------------------------------------------------------------
_worker_ws: Workspace | None = None


def _init_worker(home: str, threads: int) -> None:
    global _worker_ws
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scan's to handle
    cv2.setNumThreads(threads)
    _worker_ws = Workspace.open(home)


def _judge(path: str, sha: str, scan_id: str, threshold: float) -> tuple[str, str]:
    """Trace one file and record it (with its trace, in one transaction); returns its status
    and reason. Runs in a pool process (or in the scan's own)."""
    ws = _worker_ws
    if ws is None:
        raise RuntimeError("worker used before _init_worker")
    fields: dict[str, Any] = {
        "scan_id": scan_id,
        "path": path,
        "name": Path(path).name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        "sha256": sha,
        "size": _size(path),
    }
    try:
        outcome = trace_file(ws, path, threshold=threshold, scanned=fields)
    except (WorkspaceError, KeyFileError):
        raise
    except OSError as exc:
        reason = f"{path}: cannot read ({exc.strerror or exc})"
    except (LeaktraceError, ValueError) as exc:
        reason = _one_line(exc)
    else:
        result = outcome.result
        verdict = result["verdict"]
        if verdict not in ("match", "original"):
            verdict = "no_match" if result.get("media") else "unrelated"
        return verdict, str(result["message"])
    ws.add_scanned(**fields, status="unreadable", reason=reason)
    return "unreadable", reason


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# -- the scan ---------------------------------------------------------------------------------
def scan(
    ws: Workspace,
    folder: str | os.PathLike[str] | None = None,
    *,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    workers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    on_total: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    scan_id: str | None = None,
) -> Generator[Scanned]:
    """Trace every file of ``folder`` (or the files ``paths``), yielding each as it is judged.

    ``workers``: processes (default: all cores). ``stop``: set it to end the scan at its next
    safe point (the files in hand are finished and recorded), then :class:`Stopped` is raised.
    ``scan_id``: the scan record to report progress to (a new one is made when None).
    When every file is judged, the matches are grouped into cases
    (:func:`leaktrace.cases.regroup`) before the scan is marked done.
    """
    if not 0 < threshold < 1:
        raise InputError("the threshold must be between 0 and 1")
    ws.key  # noqa: B018 - a missing or foreign key is refused before any work
    if paths is None:
        if folder is None:
            raise InputError("give a folder to scan")
        found = files_in(folder)
        where = str(folder)
    else:
        found = [Path(p) for p in paths]
        if not found:
            raise InputError("no files to scan")
        where = str(found[0].parent)
    if scan_id is None:
        scan_id = ws.begin_scan(where, len(found)).id
    else:
        ws.update_scan(scan_id, total=len(found), status="running")
    if on_total is not None:
        on_total(len(found))
    done = 0
    todo: list[tuple[str, str]] = []
    hashed: list[tuple[str, str]] = []
    for p in found:
        text = os.fspath(p)
        try:
            hashed.append((text, file_sha256(p)))
        except OSError as exc:  # unreadable: recorded under no hash, reported each time
            reason = f"{text}: cannot read ({exc.strerror or exc})"
            yield Scanned(text, "", "unreadable", reason, again=False)
            done += 1
    known = ws.scanned_by_sha256(sorted({sha for _, sha in hashed}))
    seen_here: set[tuple[str, str]] = {
        (f.path, f.sha256) for f in ws.scanned() if f.sha256 in known
    }
    queued: set[str] = set()
    later: list[tuple[str, str]] = []  # same bytes as a file being traced in this scan
    for text, sha in hashed:
        first = known.get(sha)
        if first is not None:
            if (text, sha) not in seen_here:
                ws.add_scanned(**_copied(first, scan_id, text))
            yield Scanned(text, sha, first.status, first.reason, again=True)
            done += 1
        elif sha in queued:
            later.append((text, sha))
        else:
            queued.add(sha)
            todo.append((text, sha))
    ws.update_scan(scan_id, done=done)
    try:
        for item in _traced(ws, todo, scan_id, threshold, workers, stop):
            done += 1
            ws.update_scan(scan_id, done=done)
            yield item
        if later:
            known = ws.scanned_by_sha256(sorted({sha for _, sha in later}))
            for text, sha in later:
                first = known[sha]
                ws.add_scanned(**_copied(first, scan_id, text))
                done += 1
                yield Scanned(text, sha, first.status, first.reason, again=True)
    except Stopped:
        ws.update_scan(scan_id, status="stopped", done=done)
        raise
    except BaseException as exc:
        ws.update_scan(scan_id, status="failed", done=done, errors=[_one_line(exc)])
        raise
    regroup(ws)  # a scan is done once its matches are in their cases
    ws.update_scan(scan_id, status="done", done=done)


def _copied(first: Any, scan_id: str, path: str) -> dict[str, Any]:
    """A record of ``path`` whose bytes a scan judged already (``first``): the same verdict
    and trace, another place it was found."""
    return {
        "scan_id": scan_id,
        "path": path,
        "name": Path(path).name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        "sha256": first.sha256,
        "size": first.size,
        "status": first.status,
        "reason": first.reason,
        "trace_id": first.trace_id,
        "media_id": first.media_id,
        "fingerprint": first.fingerprint,
    }


def _traced(
    ws: Workspace,
    todo: list[tuple[str, str]],
    scan_id: str,
    threshold: float,
    workers: int | None,
    stop: threading.Event | None,
) -> Generator[Scanned]:
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    if not todo:
        return
    if n_workers == 1 or len(todo) == 1:
        global _worker_ws
        _worker_ws = ws
        try:
            for text, sha in todo:
                if stop is not None and stop.is_set():
                    raise Stopped
                status, reason = _judge(text, sha, scan_id, threshold)
                yield Scanned(text, sha, status, reason, again=False)
        finally:
            _worker_ws = None
        return
    ctx = multiprocessing.get_context("spawn")  # OpenCV's thread pool does not survive fork
    pool = ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(str(ws.home), 1)
    )
    running: dict[Future[tuple[str, str]], tuple[str, str]] = {}
    queue = iter(todo)
    try:
        while True:
            while len(running) < 2 * n_workers and (task := next(queue, None)) is not None:
                running[pool.submit(_judge, task[0], task[1], scan_id, threshold)] = task
            if not running:
                return
            ready, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in ready:
                text, sha = running.pop(fut)
                status, reason = fut.result()
                yield Scanned(text, sha, status, reason, again=False)
            if stop is not None and stop.is_set():
                raise Stopped
    except BrokenProcessPool as exc:
        raise MediaError(
            "a tracing process died (out of memory, or killed); run the same scan again: "
            "the files recorded are not traced twice"
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
