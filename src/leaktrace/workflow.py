"""The two jobs a creator runs, on a workspace: make marked copies, trace a leak.

The CLI and the service both call these; neither re-implements any of it.

``make_copies`` registers each original, then marks it for each recipient over a process pool
(one decode and one :func:`~leaktrace.embed.prepare` per original and worker), writing each copy
to a temporary name, renaming it into place and only then recording it — so a batch killed at
any moment and run again ends with exactly one record per copy, each naming a file that is
there with the recorded hash. Copies already made and recorded are skipped.

``trace_file`` identifies the original a leak comes from (fingerprint and feature shortlists),
tests exactly the recipients of that original, and records the trace.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import __version__
from .codes import CODE_LENGTH, FORMAT_VERSION
from .detect import DEFAULT_THRESHOLD, Detection, detect
from .embed import EmbedPlan, apply, prepare
from .errors import RecipientError, WorkspaceError
from .identify import feature_shortlist, features, fingerprint, shortlist, similarities
from .keys import Key
from .media import read_image, write_image
from .register import Geometry
from .registry import Media, Workspace, file_sha256
from .transform import MARKED_LEVELS, WAVELET, WORK_SIDE

__all__ = [
    "CopyDone",
    "TraceOutcome",
    "copy_name",
    "make_copies",
    "register_original",
    "trace_file",
]


def copy_name(source: Path, handle: str) -> str:
    """``<stem>.<handle><ext>``: the file name of ``handle``'s copy of ``source``."""
    return f"{source.stem}.{handle}{source.suffix}"


@dataclass(frozen=True)
class CopyDone:
    """One copy that exists and is recorded (``skipped``: it already was)."""

    source: Path
    handle: str
    path: Path
    sha256: str
    skipped: bool


# -- worker side ------------------------------------------------------------------------------
_worker_key: Key | None = None
_worker_cache: dict[str, tuple[np.ndarray, EmbedPlan]] = {}


def _init_worker(key: Key, threads: int) -> None:
    global _worker_key
    _worker_key = key
    cv2.setNumThreads(threads)


def _marked_chunk(
    source: str, media_sha: str, handles: list[str], targets: list[str], strength: float
) -> list[tuple[str, str, str]]:
    """Mark ``source`` for ``handles``; return (handle, path, sha256) for each written copy."""
    if _worker_key is None:
        raise RuntimeError("worker used before _init_worker")
    if media_sha not in _worker_cache:
        _worker_cache.clear()  # one original at a time per worker
        pixels = read_image(source)
        _worker_cache[media_sha] = (
            pixels,
            prepare(pixels, _worker_key, f"sha256:{media_sha}", strength=strength),
        )
    pixels, plan = _worker_cache[media_sha]
    done = []
    for handle, target in zip(handles, targets, strict=True):
        write_image(target, apply(plan, pixels, handle), like=source)
        done.append((handle, target, file_sha256(target)))
    return done


# -- orchestration ----------------------------------------------------------------------------
def register_original(ws: Workspace, source: Path) -> Media:
    """Register one original in the workspace; an original already there is not decoded."""
    sha = file_sha256(source)
    known = ws.media_by_sha256(sha)
    if known is not None:
        return known
    pixels = read_image(source)
    return ws.register_media(
        source,
        sha256=sha,
        width=pixels.shape[1],
        height=pixels.shape[0],
        fingerprint=fingerprint(pixels),
        features=features(pixels),
    )


def make_copies(
    ws: Workspace,
    sources: Sequence[str | os.PathLike[str]],
    handles: Sequence[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    strength: float = 1.0,
    on_total: Callable[[int], None] | None = None,
    names: Sequence[str] | None = None,
) -> Generator[CopyDone]:
    """Make and record every recipient's copy of every source, yielding each as it lands.

    ``handles=None`` means every registered recipient. Unknown handles, unreadable sources and
    an unwritable output folder are refused before any copy is made. ``names`` (one per
    source) are the file names the copies are named after, when the sources' own are not
    (an original kept in the workspace under its hash).
    """
    recipients = [r.handle for r in ws.recipients(handles)]
    if not recipients:
        raise RecipientError("no recipients: add some with `leaktrace recipients add`")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot create the output folder {out}: {exc}") from exc
    given = [Path(s) for s in sources]
    if names is not None and len(names) != len(given):
        raise ValueError("make_copies: one name per source")
    label = dict(zip(given, given if names is None else map(Path, names), strict=True))
    originals = [(src, register_original(ws, src)) for src in label]
    planned = {copy_name(label[src], h) for src, _ in originals for h in recipients}
    if len(planned) < len(originals) * len(recipients):
        raise RecipientError("two sources share a file name; their copies would collide")

    recorded = {(c.media_sha256, c.handle): c for c in ws.copies()}
    todo: list[tuple[Path, Media, list[str]]] = []
    skipped: list[CopyDone] = []
    for src, media in originals:
        pending = []
        for h in recipients:
            target = out / copy_name(label[src], h)
            rec = recorded.get((media.sha256, h))
            if (
                rec is not None
                and Path(rec.path) == target.resolve()
                and target.is_file()
                and file_sha256(target) == rec.sha256
            ):
                skipped.append(CopyDone(src, h, target, rec.sha256, skipped=True))
            else:
                pending.append(h)
        if pending:
            todo.append((src, media, pending))
    for stale in out.glob(".*.part"):  # temporary files of a run that was killed
        stale.unlink(missing_ok=True)
    if on_total is not None:
        on_total(len(skipped) + sum(len(p) for _, _, p in todo))
    yield from skipped

    by_sha = {media.sha256: (src, media) for src, media in originals}

    def finish(chunk: list[tuple[str, str, str]], media_sha: str) -> Iterator[CopyDone]:
        src, media = by_sha[media_sha]
        for handle, target, sha in chunk:
            ws.record_copy(media, handle, Path(target).resolve(), sha, strength=strength)
            yield CopyDone(src, handle, Path(target), sha, skipped=False)

    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    chunks = [
        (
            str(src),
            media.sha256,
            pending[i : i + 8],
            [str(out / copy_name(label[src], h)) for h in pending[i : i + 8]],
        )
        for src, media, pending in todo
        for i in range(0, len(pending), 8)
    ]
    if n_workers == 1 or len(chunks) == 1 and len(chunks[0][2]) == 1:
        _init_worker(ws.key, cv2.getNumThreads())
        try:
            for source, sha, hs, targets in chunks:
                yield from finish(_marked_chunk(source, sha, hs, targets, strength), sha)
        finally:
            _worker_cache.clear()
        return
    ctx = multiprocessing.get_context("spawn")  # OpenCV's thread pool does not survive fork
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(ws.key, 1)
    ) as pool:
        pending_futures: dict[Future[Any], str] = {}
        queue = iter(chunks)
        try:
            for _ in range(2 * n_workers):
                _submit(pool, pending_futures, queue, strength)
            while pending_futures:
                ready, _ = wait(pending_futures, return_when=FIRST_COMPLETED)
                for fut in ready:
                    sha = pending_futures.pop(fut)
                    yield from finish(fut.result(), sha)
                    _submit(pool, pending_futures, queue, strength)
        finally:
            for fut in pending_futures:
                fut.cancel()


def _submit(
    pool: ProcessPoolExecutor,
    futures: dict[Future[Any], str],
    queue: Iterator[tuple[str, str, list[str], list[str]]],
    strength: float,
) -> None:
    item = next(queue, None)
    if item is not None:
        source, sha, hs, targets = item
        futures[pool.submit(_marked_chunk, source, sha, hs, targets, strength)] = sha


# -- tracing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceOutcome:
    """A trace's JSON-ready ``result`` plus what a report needs to show it."""

    result: dict[str, Any]
    leak: np.ndarray
    original: np.ndarray | None
    trace_id: int
    geometry: Geometry | None = None

    @property
    def matched(self) -> bool:
        return bool(self.result["verdict"] == "match")


def settings() -> dict[str, Any]:
    """The engine parameters a verdict depends on (for reports and records)."""
    return {
        "code_length": CODE_LENGTH,
        "format_version": FORMAT_VERSION,
        "wavelet": WAVELET,
        "marked_levels": list(MARKED_LEVELS),
        "working_side": WORK_SIDE,
        "null_model": "Hoeffding bound exp(-z^2/2), Bonferroni over candidates and originals tried",
    }


def trace_file(
    ws: Workspace, path: str | os.PathLike[str], *, threshold: float = DEFAULT_THRESHOLD
) -> TraceOutcome:
    """Trace a leaked file against the workspace and record the trace."""
    leak_path = Path(path)
    leak = read_image(leak_path)
    leak_sha = file_sha256(leak_path)
    registered = ws.media()
    probe = fingerprint(leak)
    prints = [m.fingerprint for m in registered]
    sims = similarities(probe, prints)
    # Originals to test: the global fingerprint's shortlist, then those the leak's local
    # features vote for (crops, rotated screenshots, collages). Every one tried counts in
    # the p-value.
    similar = shortlist(probe, prints)
    picks = similar + feature_shortlist(leak, [m.features for m in registered])
    tried = [registered[i] for i in dict.fromkeys(picks)]
    similar_ids = {registered[i].id for i in similar}
    base: dict[str, Any] = {
        "leak": {
            "name": leak_path.name,
            "sha256": leak_sha,
            "width": int(leak.shape[1]),
            "height": int(leak.shape[0]),
        },
        "threshold": threshold,
        "settings": settings(),
        "version": __version__,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    best: tuple[Detection, Media, np.ndarray] | None = None
    sent = False
    for media in tried:
        candidates = ws.media_recipients(media)
        if not candidates:
            continue
        sent = True
        original = read_image(ws.original_path(media))
        found = detect(
            leak,
            ws.key,
            media.mark_id,
            candidates,
            original=original,
            threshold=threshold,
            hypotheses=len(tried),
        )
        # The leak comes from this original if it looks like it as a whole, or if it could
        # be registered onto it (a crop, a screenshot); otherwise it is someone else's picture.
        related = media.id in similar_ids or found.geometry is not None
        if related and (best is None or found.log10_p_value < best[0].log10_p_value):
            best = (found, media, original)
    if best is None:
        reason = (
            "its original was never sent to anyone"
            if tried and not sent
            else "matches no registered media"
        )
        result = {
            "verdict": "no_match",
            "recipient": None,
            "p_value": 1.0,
            "log10_p_value": 0.0,
            "mode": None,
            "media": None,
            "candidates": [],
            "message": f"no confident match: {leak_path.name} {reason}",
            **base,
        }
        trace_id = ws.record_trace(sha256=leak_sha, name=leak_path.name, result=result, media=None)
        return TraceOutcome(result, leak, None, trace_id)
    found, media, original = best
    sim = float(sims[registered.index(media)])
    if found.verdict == "match":
        message = (
            f"leaked by {found.recipient} (media: {media.name}, "
            f"false-accusation probability {_p_text(found)})"
        )
    else:
        message = f"no confident match (best: {found.best}, p={_p_text(found)})"
    result = {
        "verdict": found.verdict,
        "recipient": found.recipient,
        "p_value": found.p_value,
        "log10_p_value": found.log10_p_value,
        "mode": found.mode,
        "media": {
            "id": media.id,
            "name": media.name,
            "sha256": media.sha256,
            "similarity": round(sim, 4),
            "originals_tried": len(tried),
        },
        "candidates": [{"handle": h, "score": round(z, 4)} for h, z in found.scores.items()],
        "evidence_coverage": None if found.coverage is None else round(found.coverage, 4),
        "registration": None
        if found.geometry is None
        else {
            "frame_coverage": round(found.geometry.coverage, 4),
            "flipped": found.geometry.flipped,
            "inliers": found.geometry.inliers,
            "matrix": [[round(v, 6) for v in row] for row in found.geometry.matrix.tolist()],
        },
        "match_score": math.sqrt(2 * math.log(len(found.scores) * len(tried) / threshold)),
        "message": message,
        **base,
    }
    trace_id = ws.record_trace(sha256=leak_sha, name=leak_path.name, result=result, media=media)
    return TraceOutcome(result, leak, original, trace_id, found.geometry)


def _p_text(found: Detection) -> str:
    if found.p_value > 0:
        return f"{found.p_value:.2g}"
    return f"1e{found.log10_p_value:.0f}"
