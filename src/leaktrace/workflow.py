"""The two jobs a creator runs, on a workspace: make marked copies, trace a leak.

The CLI and the service both call these; neither re-implements any of it.

``make_copies`` judges every source before doing any work (readable image, within limits, not
a copy itself, able to carry a mark that survives a re-share), registers the new originals,
records every copy it is about to make as pending, then marks over a process pool (or a Dask
cluster's workers: :mod:`leaktrace.cluster`): each process writes a copy under a temporary
name and links it to its final name (never replacing a file), and the batch records it done
with its hash. A batch stopped at any moment (Ctrl-C,
SIGTERM, SIGKILL, power cut) is settled when the workspace is next opened, so every copy file
under its final name is recorded and every record names its file. Copies already made and
recorded are skipped; nothing is overwritten.

Copies are named ``OUT/<handle>/<original's file name>``; when that name is taken (a copy of
another original with the same file name, or any other file), ``<stem>~<first 8 hex digits of
the original's SHA-256><ext>``.

``trace_file`` identifies the original a leak comes from (fingerprint and feature shortlists),
tests exactly the recipients of that original, and records the trace.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from . import __version__, attacks
from .codes import CODE_LENGTH, FORMAT_VERSION, PHOTO_CODE
from .detect import DEFAULT_THRESHOLD, Detection, detect, extract, score
from .embed import EmbedPlan, apply, prepare
from .errors import LeaktraceError, MediaError, RecipientError, WorkspaceError
from .identify import features, fingerprint
from .keys import Key
from .media import encode_image, image_format, is_video, read_image
from .register import Geometry
from .registry import Batch, Media, Workspace, file_sha256, part_path
from .registry.index import identify, keep_up
from .transform import MARKED_LEVELS, WAVELET, WORK_SIDE, luma
from .verdicts import NULL_MODEL, matched, message, no_match, original, people, registration

if TYPE_CHECKING:
    from distributed import Client

    from .video import VideoDetection
    from .videos import Places

__all__ = [
    "MAX_STRENGTH",
    "MIN_STRENGTH",
    "BatchSummary",
    "CopyDone",
    "InputError",
    "Stopped",
    "TraceOutcome",
    "make_copies",
    "register_original",
    "trace_file",
    "write_photo_copy",
]

#: The range of ``strength`` a batch accepts: 1 aims at 48 dB PSNR, 2 at 42 dB (the most that
#: stays invisible on textured photos); below 0.25 (60 dB) a mark hardly survives a re-share.
MIN_STRENGTH, MAX_STRENGTH = 0.25, 2.0
#: The leak a new original's mark is tested against before any copy is made: longest side
#: 1080 and JPEG 72, what social networks do to a photo.
PROBE_SIDE, PROBE_QUALITY = 1080, 72
#: The score a copy must keep through that re-share: what names one of 1,000 recipients at
#: the default threshold (z ≈ 7.4); below it the batch is refused, below 1.5× it warned.
PROBE_RECIPIENTS = 1000
#: The longest original's file name (UTF-8 bytes): its copies' names add ``~<8 hex digits>``,
#: their temporary names ``.<name>.<batch>.part``, and a file name holds 255 bytes.
NAME_BYTES = 200


class InputError(MediaError):
    """Some files of a batch cannot be marked; the message has one line per file."""


class Stopped(Exception):
    """A batch stopped because it was asked to (its ``stop`` event was set)."""


def _utf8(name: str) -> str:
    """A file name as text the registry can hold: bytes that are not UTF-8 (kept by Python as
    lone surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped


@dataclass(frozen=True)
class CopyDone:
    """One copy that exists and is recorded (``skipped``: it already was)."""

    source: Path
    handle: str
    path: Path
    sha256: str
    skipped: bool


@dataclass
class BatchSummary:
    """What a batch did, filled in as it runs (read it after an interruption too)."""

    total: int = 0
    made: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    path: Path
    label: Path  # the name its copies are named after
    sha256: str
    media: Media | None


#: A copy to make: its (record id, source, handle, target), the function and its arguments.
_Work = tuple[tuple[int, _Source, str, Path], Callable[..., tuple[str, bool]], tuple[Any, ...]]


# -- worker side ------------------------------------------------------------------------------
#: The original a worker marks (decoded, with its plan), kept for its next copy: one at a time.
_worker_cache: dict[tuple[Key, str, float], tuple[np.ndarray, EmbedPlan]] = {}
_worker_cache_lock = threading.Lock()  # a Dask worker may run copies in several threads
_worker_lock: int | None = None


def _init_worker(threads: int, lock: str, parent: int) -> None:
    """Set up a pool process: OpenCV threads, the batch's lock (held until it exits, so the
    batch is not settled while it may still write), Ctrl-C left to the parent, and an exit of
    its own if the parent dies."""
    global _worker_lock
    cv2.setNumThreads(threads)
    _worker_lock = os.open(lock, os.O_RDWR)
    fcntl.flock(_worker_lock, fcntl.LOCK_SH)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(70)

    threading.Thread(target=watch, name="leaktrace-orphan-watch", daemon=True).start()


def _prepared(
    key: Key, source: str, media_sha: str, strength: float
) -> tuple[np.ndarray, EmbedPlan]:
    """The original's pixels and marking plan, made once per worker and original."""
    with _worker_cache_lock:
        found = _worker_cache.get((key, media_sha, strength))
        if found is None:
            _worker_cache.clear()  # one original at a time per worker
            pixels = read_image(source)
            plan = prepare(pixels, key, f"sha256:{media_sha}", strength=strength)
            found = _worker_cache[key, media_sha, strength] = (pixels, plan)
        return found


def _make_copy(
    key: Key, source: str, media_sha: str, handle: str, target: str, batch: str, strength: float
) -> tuple[str, bool]:
    """Write ``handle``'s copy of ``source`` to ``target`` unless something is there already;
    returns (its sha256, whether it was placed). The key comes with every copy (a pickle in
    memory: to a pool process through its pipe, to a Dask worker through the scheduler)."""
    pixels, plan = _prepared(key, source, media_sha, strength)
    return write_photo_copy(plan, pixels, source, handle, target, batch)


def write_photo_copy(
    plan: EmbedPlan, pixels: np.ndarray, source: str, handle: str, target: str, batch: str
) -> tuple[str, bool]:
    """Write ``handle``'s copy of the photo ``source`` (decoded as ``pixels``, prepared as
    ``plan``) to ``target`` through the batch's temporary name, unless a file has that name;
    returns (its sha256, whether it was placed)."""
    data = encode_image(apply(plan, pixels, handle), target, like=source)
    final, part = Path(target), part_path(target, batch)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        placed = _place(part, final)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise MediaError(f"cannot write {final}: {exc.strerror or exc}") from exc
    return hashlib.sha256(data).hexdigest(), placed


def _place(part: Path, final: Path) -> bool:
    """Give the finished ``part`` its final name unless a file has that name; False if one has."""
    try:
        os.link(part, final)  # fails if the name is taken: nothing is ever replaced
    except FileExistsError:
        part.unlink(missing_ok=True)
        return False
    except OSError:  # a file system without hard links
        if final.exists():
            part.unlink(missing_ok=True)
            return False
        os.replace(part, final)
        return True
    part.unlink()
    return True


# -- checking and planning --------------------------------------------------------------------
def register_original(
    ws: Workspace, source: Path, *, name: str | None = None
) -> tuple[Media, list[str]]:
    """Register one original, checked as a batch's sources are (a new photo must carry a mark
    that survives a re-share at the default strength); returns it with any warnings.

    A video is registered without its variants: the first batch of its copies makes them (the
    long encode, reported by ``make_copies``'s ``on_variants``), at that batch's strength."""
    (checked,) = _checked_sources(ws, [source], None if name is None else [name])
    if is_video(checked.path):
        if checked.media is not None:
            return checked.media, []
        from .videos import add_video  # PyAV, loaded for videos only

        return add_video(ws, checked.path, checked.sha256, checked.label.name), []
    problems: list[str] = []
    warnings: list[str] = []
    fresh = set() if checked.media is not None else {checked.sha256}
    registered = _registered(ws, [checked], fresh, 1.0, problems, warnings)
    if problems:
        raise InputError("\n".join(problems))
    return registered[0], warnings


def _checked_sources(
    ws: Workspace, sources: Sequence[Path], names: Sequence[str] | None
) -> list[_Source]:
    """Header checks of every source (nothing decoded, nothing registered): one problem line
    per file, raised together."""
    problems, found = [], []
    labels = [Path(_utf8(Path(n).name)) for n in (names if names is not None else sources)]
    seen: set[str] = set()
    for src, label in zip(sources, labels, strict=True):
        try:
            if src.is_dir():
                raise MediaError(f"{src}: is a directory, not an image")
            if is_video(src):
                from .video import copy_suffix, inspect_video  # PyAV, loaded for videos only

                # Copies are H.264 in MP4 (Matroska when the audio cannot go in MP4).
                info = inspect_video(src)
                label = label.with_suffix(copy_suffix(info.audio))
            else:
                image_format(src)  # the header, judged as an original's
            sha = file_sha256(src)
        except MediaError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:
            problems.append(f"{src}: cannot read ({exc.strerror or exc})")
            continue
        if len(label.name.encode("utf-8")) > NAME_BYTES:
            problems.append(
                f"{src}: the file name is longer than {NAME_BYTES} bytes; its copies' names "
                "would not fit (rename it)"
            )
            continue
        copy = ws.copy_by_sha256(sha)
        if copy is not None:
            problems.append(
                f"{src}: this file is {copy.handle}'s copy of {copy.media_name} "
                f"(made {copy.created:%Y-%m-%d}); mark the original instead"
            )
            continue
        if sha not in seen:  # the same file given twice is marked once
            seen.add(sha)
            found.append(_Source(src, label, sha, ws.media_by_sha256(sha)))
    if problems:
        raise InputError("\n".join(problems))
    return found


def _probe(key: Key, pixels: np.ndarray, media_sha: str, strength: float) -> float:
    """The score a copy of ``pixels`` keeps after a social-network re-share."""
    media_id = f"sha256:{media_sha}"
    copy = apply(prepare(pixels, key, media_id, strength=strength), pixels, "leaktrace:probe")
    side = max(copy.shape[:2])
    leak = attacks.jpeg(attacks.rescale(copy, min(1.0, PROBE_SIDE / side)), PROBE_QUALITY)
    soft = extract(leak, key, media_id, original=pixels)
    return float(score(soft, key, media_id, ["leaktrace:probe"])[0])


def _registered(
    ws: Workspace,
    sources: Sequence[_Source],
    marking: set[str],
    strength: float,
    problems: list[str],
    warnings: list[str],
    stop: threading.Event | None = None,
    on_variants: Callable[[str, int, int], None] | None = None,
) -> list[Media]:
    """Decode what must be decoded — new originals (for their fingerprint) and those about to
    be marked (for the re-share probe) — then register the new ones if no file failed."""
    needed = math.sqrt(2 * math.log(PROBE_RECIPIENTS / DEFAULT_THRESHOLD))
    new: list[tuple[_Source, dict[str, Any]]] = []
    for src in sources:
        _check_stop(stop)
        if src.media is not None and src.sha256 not in marking:
            continue
        if is_video(src.path):
            continue  # registered below, with its variants, once every photo passed
        try:
            pixels = read_image(src.path, purpose="original")
            if src.sha256 in marking:
                z = _probe(ws.key, pixels, src.sha256, strength)
                if z < needed:
                    problems.append(
                        f"{src.path}: too flat or too small to carry a mark that survives a "
                        f"re-share (test score {z:.1f}, a match needs {needed:.1f})"
                    )
                    continue
                if z < 1.5 * needed:
                    warnings.append(
                        f"{src.path}: its mark is weak (test re-share score {z:.1f}, a match "
                        f"needs {needed:.1f}); stronger edits may erase it"
                    )
        except LeaktraceError as exc:
            problems.append(str(exc))
            continue
        if src.media is None:
            new.append(
                (
                    src,
                    {
                        "width": int(pixels.shape[1]),
                        "height": int(pixels.shape[0]),
                        "fingerprint": fingerprint(pixels),
                        "features": features(pixels),
                    },
                )
            )
    if problems:
        return []
    made = {
        src.sha256: ws.register_media(src.path, sha256=src.sha256, name=src.label.name, **meta)
        for src, meta in new
    }
    if made:
        keep_up(ws)
    for src in sources:
        if is_video(src.path) and (src.media is None or src.sha256 in marking):
            from .videos import register_video

            def told(done: int, total: int, name: str = src.path.name) -> None:
                if on_variants is not None:
                    on_variants(name, done, total)

            try:
                made[src.sha256] = register_video(
                    ws,
                    src.path,
                    src.sha256,
                    src.label.name,
                    strength=strength,
                    progress=told,
                    stop=stop,
                )
            except InterruptedError as exc:
                raise Stopped() from exc
            except LeaktraceError as exc:
                problems.append(str(exc))
                return []
            keep_up(ws)  # the video's keyframes (and its row) join the index
    found = []
    for src in sources:
        media = made.get(src.sha256) or src.media
        if media is None:
            raise WorkspaceError(f"{src.path}: was not registered")
        found.append(media)
    return found


def _planned(
    ws: Workspace, sources: Sequence[_Source], handles: Sequence[str], out: Path
) -> tuple[list[tuple[_Source, str, Path]], list[CopyDone]]:
    """Where each copy goes, and which are made and recorded already."""
    known = [s.media for s in sources if s.media is not None]
    recorded: dict[Path, list[tuple[str, str, str]]] = {}
    for c in ws.copies(known) if known else []:
        recorded.setdefault(Path(c.path), []).append((c.media_sha256, c.handle, c.sha256))
    todo, skipped, taken = [], [], set()
    for src in sources:
        stem, suffix = src.label.stem, src.label.suffix
        names = [src.label.name, f"{stem}~{src.sha256[:8]}{suffix}"]
        for h in handles:
            for name in names:
                target = (out / h / name).absolute()
                here = recorded.get(target, [])
                mine = [sha for m, rh, sha in here if (m, rh) == (src.sha256, h)]
                if target in taken:
                    continue
                if target.exists():
                    sha = file_sha256(target) if mine and target.is_file() else None
                    if sha in mine:
                        skipped.append(CopyDone(src.path, h, target, sha, True))
                        taken.add(target)
                        break
                    continue  # another original's copy, or any other file: never replaced
                taken.add(target)
                todo.append((src, h, target))
                break
            else:
                raise WorkspaceError(
                    f"cannot name {h}'s copy of {src.path}: {out / h / names[0]} and "
                    f"{out / h / names[1]} are taken; choose another output folder"
                )
    return todo, skipped


# -- making copies ----------------------------------------------------------------------------
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
    summary: BatchSummary | None = None,
    job_id: str | None = None,
    stop: threading.Event | None = None,
    on_variants: Callable[[str, int, int], None] | None = None,
    cluster: str | None = None,
) -> Generator[CopyDone]:
    """Make and record every recipient's copy of every source, yielding each as it lands.

    ``handles=None`` means every registered recipient. Every source is checked before any
    work (one line per bad file in the :class:`InputError`), and so are the recipients, the
    strength and the output folder. ``names`` (one per source) are the file names the copies
    are named after, when the sources' own are not (an original kept in the workspace under
    its hash). ``summary`` receives the counts and warnings as the batch runs. Setting
    ``stop`` ends the batch at its next safe point: copies in hand are finished and recorded,
    then :class:`Stopped` is raised.

    A video source is marked once per variant (``on_variants(name, frames done, frames)``
    reports it; the variants are kept in the workspace for later batches) and each copy is
    then a remux of them, made in this process (on a cluster, by its workers).

    ``cluster``: the address of a Dask scheduler (``tcp://host:8786``) whose workers make the
    copies instead of this machine's processes (see :mod:`leaktrace.cluster`: the
    workspace, sources and output folder on storage every worker mounts at the same path).
    It is reached before anything is recorded; ``workers`` is then refused.
    """
    summary = summary if summary is not None else BatchSummary()
    if not (MIN_STRENGTH <= strength <= MAX_STRENGTH):
        raise InputError(
            f"strength must be between {MIN_STRENGTH} and {MAX_STRENGTH} (1 ≈ 48 dB PSNR), "
            f"not {strength:g}"
        )
    recipients = [r.handle for r in ws.recipients(handles)]
    if not recipients:
        raise RecipientError("no recipients: add some with `leaktrace recipients add`")
    if names is not None and len(names) != len(sources):
        raise ValueError("make_copies: one name per source")
    ws.key  # noqa: B018 - a missing or foreign key is refused before any work
    checked = _checked_sources(ws, [Path(s) for s in sources], names)
    out = Path(out_dir)
    if _utf8(os.fspath(out.absolute())) != os.fspath(out.absolute()):
        raise InputError(f"{_utf8(os.fspath(out))}: the output folder's name is not UTF-8 text")
    client = None
    if cluster is not None:
        if workers is not None:
            raise InputError(
                "a batch on a cluster uses all of its workers; leave the number of "
                "processes (--workers) unset"
            )
        from .cluster import connect  # Dask, loaded for clusters only

        client = connect(cluster)  # before any record: an unreachable cluster changes nothing
    try:
        yield from _batch(
            ws,
            checked,
            recipients,
            out,
            strength,
            summary,
            job_id,
            stop,
            on_total,
            on_variants,
            workers,
            client,
        )
    finally:
        if client is not None:
            client.close()


def _batch(
    ws: Workspace,
    checked: list[_Source],
    recipients: list[str],
    out: Path,
    strength: float,
    summary: BatchSummary,
    job_id: str | None,
    stop: threading.Event | None,
    on_total: Callable[[int], None] | None,
    on_variants: Callable[[str, int, int], None] | None,
    workers: int | None,
    client: Client | None,
) -> Iterator[CopyDone]:
    """``make_copies`` once its arguments are checked: register, plan, mark, record."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise WorkspaceError(f"cannot write to the output folder {out}: {exc.strerror}") from exc
    todo, skipped = _planned(ws, checked, recipients, out)
    problems: list[str] = []
    marking = {src.sha256 for src, _, _ in todo}
    media = _registered(
        ws, checked, marking, strength, problems, summary.warnings, stop, on_variants
    )
    if problems:
        raise InputError("\n".join(problems))
    by_sha = {src.sha256: m for src, m in zip(checked, media, strict=True)}
    summary.total = len(todo) + len(skipped)
    if on_total is not None:
        on_total(summary.total)
    for done in skipped:
        summary.skipped += 1
        yield done
    if not todo:
        return
    _check_stop(stop)
    batch, ids = ws.begin_batch(
        [(by_sha[src.sha256], h, target) for src, h, target in todo],
        strength=strength,
        job_id=job_id,
    )
    tasks = [(copy_id, src, h, target) for copy_id, (src, h, target) in zip(ids, todo, strict=True)]
    clips: list[_Work] = []
    if any(is_video(t[1].path) for t in tasks):
        from .videos import copy_args, make_copy

        clips = [
            (t, make_copy, copy_args(ws, by_sha[t[1].sha256], t[2], t[3], batch.id))
            for t in tasks
            if is_video(t[1].path)
        ]
    work: list[_Work] = [
        (t, _make_copy, (ws.key, str(t[1].path), t[1].sha256, t[2], str(t[3]), batch.id, strength))
        for t in tasks
        if not is_video(t[1].path)
    ]
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    try:
        if client is not None:  # every copy on the cluster
            from .cluster import ClusterExecutor, translated

            with translated(client.scheduler.address):
                remote = ClusterExecutor(client, batch.lock)
                yield from _pooled(ws, summary, clips + work, remote, remote.slots, stop)
            return
        for task, fn, args in clips:  # a remux, or an encode that uses every core
            _check_stop(stop)
            yield from _landed(ws, summary, [(*task, *fn(*args))])
        if len(work) == 1 or (work and n_workers == 1):
            try:
                for task, fn, args in work:
                    _check_stop(stop)
                    yield from _landed(ws, summary, [(*task, *fn(*args))])
            finally:
                _worker_cache.clear()
        elif work:
            yield from _pooled(ws, summary, work, _process_pool(batch, n_workers), n_workers, stop)
    finally:
        # Copies that landed as the batch was stopped; a cluster's tasks whose futures were
        # dropped (the scheduler lost) may still write: then the next open settles them.
        summary.made += ws.end_batch(batch, shared=client is not None)


def _landed(
    ws: Workspace,
    summary: BatchSummary,
    results: list[tuple[int, _Source, str, Path, str, bool]],
) -> Iterator[CopyDone]:
    """Record the copies whose files are in place; a name taken meanwhile is not overwritten.

    A name taken by this copy's very bytes holds this copy: made meanwhile by another batch,
    whose record it is, or by this batch when a cluster worker died after placing it and its
    task ran again elsewhere; then no record has it yet, and this one is kept."""
    made = []
    for _, _, _, target, sha, placed in results:
        if not placed and file_sha256(target) != sha:
            raise WorkspaceError(f"{target} appeared while the batch ran; it was not overwritten")
        made.append(placed or ws.copy_by_sha256(sha) is None)
    ws.finish_copies([(r[0], r[4]) for r, mine in zip(results, made, strict=True) if mine])
    ws.forget_copies([r[0] for r, mine in zip(results, made, strict=True) if not mine])
    for (_, src, h, target, sha, _), mine in zip(results, made, strict=True):
        if mine:
            summary.made += 1
        else:
            summary.skipped += 1
        yield CopyDone(src.path, h, target, sha, skipped=not mine)


def _submit(pool: Executor, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
    """Submit one copy; a process started meanwhile never sees Ctrl-C (it is the batch's to
    handle), since a signal blocked when a process starts stays blocked in it."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(fn, *args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _process_pool(batch: Batch, n_workers: int) -> ProcessPoolExecutor:
    """This machine's processes for a batch, each holding its lock and dying with us."""
    return ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context("spawn"),  # OpenCV's threads do not survive fork
        initializer=_init_worker,
        initargs=(1, str(batch.lock), os.getpid()),
    )


def _pooled(
    ws: Workspace,
    summary: BatchSummary,
    work: list[_Work],
    pool: Executor,
    slots: int,
    stop: threading.Event | None,
) -> Iterator[CopyDone]:
    """Make ``work`` on ``pool`` (this machine's processes, or a cluster's workers), two
    copies in flight per slot (a process, a worker's thread), recording each as it lands."""
    running: dict[Future[Any], tuple[int, _Source, str, Path]] = {}
    queue = iter(work)
    try:
        while True:
            while len(running) < 2 * slots and (item := next(queue, None)) is not None:
                task, fn, args = item
                running[_submit(pool, fn, args)] = task
            if not running:
                return
            ready, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            results = []
            for fut in ready:
                task = running.pop(fut)
                results.append((*task, *fut.result()))
            yield from _landed(ws, summary, results)
            _check_stop(stop)
    except BrokenProcessPool as exc:
        _check_stop(stop)  # the processes were stopped with the batch (SIGTERM to the group)
        raise WorkspaceError(
            "a marking process died (out of memory, or killed); run the same command again"
        ) from exc
    finally:
        # Copies in hand are finished (and recorded by end_batch); the rest never start.
        pool.shutdown(wait=True, cancel_futures=True)


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
        "code": PHOTO_CODE,
        "null_model": NULL_MODEL,
    }


def _judged(
    scanned: dict[str, Any] | None,
    result: dict[str, Any],
    media: Media | None,
    leak: np.ndarray | None,
) -> dict[str, Any] | None:
    """The scan file record of a traced file (None when it is not a scan's)."""
    if scanned is None:
        return None
    verdict = result["verdict"]
    if verdict not in ("match", "original"):
        verdict = "no_match" if media is not None else "unrelated"
    return {
        **scanned,
        "status": verdict,
        "reason": result["message"][:1000],
        "media_id": None if media is None else media.id,
        "fingerprint": b"" if leak is None else fingerprint(leak),
    }


def trace_file(
    ws: Workspace,
    path: str | os.PathLike[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    scanned: dict[str, Any] | None = None,
) -> TraceOutcome:
    """Trace a leaked file against the workspace and record the trace (``scanned``: the
    fields of the scan's record of this file, written with the trace in one transaction)."""
    ws.key  # noqa: B018 - a missing or foreign key is refused before any work
    leak_path = Path(path)
    leak_name = _utf8(leak_path.name)
    if is_video(leak_path):
        return _trace_video_file(ws, leak_path, leak_name, threshold, scanned)
    leak = read_image(leak_path)
    leak_sha = file_sha256(leak_path)

    def recorded(
        result: dict[str, Any],
        media: Media | None,
        pixels: np.ndarray | None,
        geometry: Geometry | None = None,
    ) -> TraceOutcome:
        scan = _judged(scanned, result, media, leak)
        trace_id = ws.record_trace(
            sha256=leak_sha, name=leak_name, result=result, media=media, scanned=scan
        )
        return TraceOutcome(result, leak, pixels, trace_id, geometry)

    # Originals to test: the global fingerprint's shortlist, then those the leak's local
    # features vote for (crops, rotated screenshots, collages); among many originals, found
    # through the workspace's index; and the videos the picture may be a frame of (a
    # screenshot). Every one tried counts in the p-value.
    found_in = identify(ws, leak, fingerprint(leak))
    tried = [m for m in found_in.tried if m.kind == "image"]  # videos: by their frames
    # The picture as one frame of a video, when videos are registered.
    still = _still_luma(leak) if ws.video_stamp()[0] else None
    stills = None if still is None else _video_places(ws, still)
    tests = len(tried) + (0 if stills is None else len(stills.placed))
    similar_ids = {m.id for m in found_in.similar}
    base: dict[str, Any] = {
        "leak": {
            "name": leak_name,
            "sha256": leak_sha,
            "width": int(leak.shape[1]),
            "height": int(leak.shape[0]),
        },
        "threshold": threshold,
        "settings": settings(),
        "version": __version__,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    decoded: dict[int, np.ndarray] = {}  # originals read so far, by media id
    own = _own_original(ws, leak, leak_sha, found_in.similar, decoded)
    if own is not None:
        media, how, pixels = own
        result = {**original(leak_name, media, how), **base}
        return recorded(result, media, pixels)
    best: tuple[Detection, Media, np.ndarray] | None = None
    sent = shown = False  # shown: the picture shows a registered video's frame
    for media in tried:
        candidates = ws.media_candidates(media)
        if not candidates:
            continue
        sent = True
        if media.id in decoded:
            pixels = decoded.pop(media.id)
        else:
            pixels = read_image(ws.original_path(media))
        found = detect(
            leak,
            ws.key,
            media.mark_id,
            candidates,
            original=pixels,
            threshold=threshold,
            hypotheses=tests,
            codebook=ws.codebook,
        )
        # The leak comes from this original if it looks like it as a whole, or if it could
        # be registered onto it (a crop, a screenshot); otherwise it is someone else's picture.
        related = media.id in similar_ids or found.geometry is not None
        if related and (best is None or found.log10_p_value < best[0].log10_p_value):
            best = (found, media, pixels)
    if still is not None and stills is not None and stills.placed:
        from .videos import judge_places, video_result

        in_video, video_sent, shown = judge_places(
            ws, still, stills, threshold=threshold, tests=tests
        )
        sent = sent or video_sent
        if in_video is not None and (
            best is None or in_video[0].log10_p_value < best[0].log10_p_value
        ):
            shot, video = in_video
            result = video_result(
                ws,
                shot,
                video,
                tried=tests,
                base={k: v for k, v in base.items() if k != "settings"},  # the video's own
            )
            frame = _frame_at(ws.original_path(video), shot.offset)
            return recorded(result, video, frame, shot.geometry)
    if best is None:
        reason = (
            "its original was never sent to anyone"
            if (tried or shown) and not sent
            else "matches no registered media"
        )
        result = {**no_match(leak_name, reason), **base}
        return recorded(result, None, None)
    found, media, pixels = best
    sim = found_in.similarity[media.id]
    named = people(ws, [h for h, _ in found.accused])
    result = {
        **matched(found, media, similarity=sim, tried=len(tried), named=named),
        "evidence_coverage": None if found.coverage is None else round(found.coverage, 4),
        "registration": registration(found.geometry),
        "match_score": found.needed,
        "message": message(found, named, f"media: {media.name}"),
        **base,
    }
    return recorded(result, media, pixels, found.geometry)


def _video_places(ws: Workspace, still: np.ndarray) -> Places:
    """Where the picture (its luma ``still``) may sit in the registered videos, as a
    screenshot of one frame (:func:`leaktrace.videos.place_leak`)."""
    from .video.detect import still_timeline
    from .videos import place_leak

    return place_leak(ws, still_timeline(still))


def _still_luma(leak: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(luma(leak) + 0.5, 0, 255), np.uint8)


def _frame_at(video: Path, t: float) -> np.ndarray | None:
    """The luma of ``video``'s frame shown at ``t`` seconds (None past its end)."""
    from .video.io import frames

    frame = next((f.luma for f in frames(video, start=max(0.0, t))), None)
    return None if frame is None else np.ascontiguousarray(frame)


def _own_original(
    ws: Workspace,
    leak: np.ndarray,
    sha256: str,
    similar: Sequence[Media],
    decoded: dict[int, np.ndarray],
) -> tuple[Media, str, np.ndarray] | None:
    """The registered original ``leak`` is (the same file, or the same pixels: among the
    originals it looks like, those of its size), with what is identical and its pixels; the
    originals it reads are left in ``decoded`` for the trace."""
    same = ws.media_by_sha256(sha256)
    if same is not None:
        return same, "the same bytes", leak
    for media in similar:
        if media.kind == "image" and (media.height, media.width) == leak.shape[:2]:
            pixels = decoded[media.id] = read_image(ws.original_path(media))
            if pixels.shape == leak.shape and np.array_equal(pixels, leak):
                return media, "the same pixels", pixels
    return None


def _trace_video_file(
    ws: Workspace, path: Path, name: str, threshold: float, scanned: dict[str, Any] | None
) -> TraceOutcome:
    """``trace_file`` for a video: the verdict, with a leak frame and the original frame it
    shows (middle of the matched range) for the report."""
    from .videos import trace_video

    sha = file_sha256(path)
    result, found, media = trace_video(ws, path, name, sha, threshold=threshold)
    leak_frame, original_frame = _frames_at(
        path, None if media is None else ws.original_path(media), found
    )
    trace_id = ws.record_trace(
        sha256=sha,
        name=name,
        result=result,
        media=media,
        scanned=_judged(scanned, result, media, leak_frame),
    )
    return TraceOutcome(
        result, leak_frame, original_frame, trace_id, None if found is None else found.geometry
    )


def _frames_at(
    leak: Path, original: Path | None, found: VideoDetection | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A leak frame from the middle of what it shows, and the original's frame at that time."""
    from .video.io import frames

    mid = 0.0 if found is None else max(0.0, (found.start + found.end) / 2 - found.offset)
    leak_frame = next((f.luma for f in frames(leak, start=mid)), None)
    if leak_frame is None:
        leak_frame = next(f.luma for f in frames(leak))
    original_frame = None
    if original is not None and found is not None:
        original_frame = next((f.luma for f in frames(original, start=mid + found.offset)), None)
    return np.ascontiguousarray(leak_frame), (
        None if original_frame is None else np.ascontiguousarray(original_frame)
    )
