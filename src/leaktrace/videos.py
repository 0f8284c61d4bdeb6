"""Videos in a workspace: register an original with its variants, write a recipient's copy,
trace a leaked video. Called by :mod:`leaktrace.workflow` for video files, so that ``embed``
and ``trace`` (CLI, service and page) take videos as they take photos.

Variants are made once per original, into ``variants/<sha256>.<random>.part`` first and
renamed to ``variants/<sha256>`` when complete, and only then is the original registered: an
interrupted run leaves no half-made variants in use and no record without its variants (the
next run starts over; the encode is deterministic, so it makes the same bytes). Copies go
through the same pending → file → done protocol as photos.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .codes import VARIANT_CODE, code
from .detect import DEFAULT_THRESHOLD
from .errors import LeaktraceError, MediaError
from .identify import fingerprint
from .keys import Key
from .registry import Media, Workspace, part_path
from .registry.keyframes import use_keyframes
from .verdicts import NULL_MODEL, matched, message, no_match, original, people, registration
from .video import (
    Plan,
    Settings,
    VideoDetection,
    VideoInfo,
    detect_video,
    inspect_video,
    leak_timeline,
    make_variants,
    remux,
)
from .video.detect import MATCH_SIMILARITY, Timeline, place_in, probe_thumbs
from .video.io import frames
from .video.variants import PER_RECIPIENT, encode_copy

__all__ = [
    "Places",
    "add_video",
    "copy_args",
    "copy_symbols",
    "judge_places",
    "make_copy",
    "place_leak",
    "register_video",
    "trace_video",
    "video_result",
]

_SHORTLIST = 3
#: Thumbnail similarity above which a picture is taken to show a video's frame whole (only
#: rescaled or re-encoded; 1.000 measured for such screenshots). Unrelated photos reach 0.92
#: on some frame of a 2-minute video: below this, the picture must register onto the frame.
STILL_SIMILARITY = 0.97


def copy_symbols(ws: Workspace, plan: Plan, handle: str, *, name: str = VARIANT_CODE) -> list[int]:
    """The variant each segment of ``handle``'s copy comes from (its symbols in the code
    ``name``: today's copies take the current format's)."""
    c = code(ws.key, plan.media_id, name, length=plan.segments).codeword(handle)
    return [int(v > 0) for v in c]


def plan_of(media: Media) -> Plan:
    if media.plan is None:
        raise MediaError(f"{media.name}: registered without variants; register it again")
    return Plan.from_json(media.plan["variants"])


def _register(
    ws: Workspace,
    source: Path,
    sha256: str,
    name: str,
    info: VideoInfo,
    plan: dict[str, Any] | None = None,
) -> Media:
    """Record the video ``source`` (its fingerprint from its middle frame) with its plan."""
    middle = next(frames(source, start=max(0.0, info.duration / 2)), None)
    if middle is None:
        raise MediaError(f"{source.name}: no video frame can be decoded")
    return ws.register_media(
        source,
        sha256=sha256,
        name=name,
        width=info.width,
        height=info.height,
        fingerprint=fingerprint(np.ascontiguousarray(middle.luma)),
        kind="video",
        plan=plan,
    )


def add_video(ws: Workspace, source: Path, sha256: str, name: str) -> Media:
    """Register the video ``source`` without its variants (``plan`` None): checked and kept,
    but not traceable until :func:`register_video` makes them (the first batch of copies)."""
    return _register(ws, source, sha256, name, inspect_video(source))


def register_video(
    ws: Workspace,
    source: Path,
    sha256: str,
    name: str,
    *,
    strength: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> Media:
    """The registered video ``source`` (content hash ``sha256``), its variants made first if
    they are not in the workspace yet."""
    media = ws.media_by_sha256(sha256)
    folder = ws.variants_dir(sha256)
    if media is not None and media.plan is not None and (folder / "plan.json").exists():
        made = plan_of(media).settings.strength
        if not math.isclose(made, strength):
            raise MediaError(
                f"{name}: its variants were made at strength {made:g}; copies of a video all "
                f"share them (use --strength {made:g})"
            )
        return media
    info = inspect_video(source)
    work = folder.with_name(f"{sha256}.{secrets.token_hex(4)}.part")
    ws.private_dir("variants")
    try:
        plan = make_variants(
            source,
            work,
            ws.key,
            f"sha256:{sha256}",
            settings=Settings(
                strength=strength,
                mode="recipient" if info.duration < PER_RECIPIENT else "variants",
            ),
            progress=progress,
            stop=None if stop is None else stop.is_set,
        )
        if folder.exists():  # left by a registration that did not finish recording
            shutil.rmtree(folder)
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    record = {"format": plan.format, "variants": plan.to_json()}
    return _register(ws, source, sha256, name, info, record)


def copy_args(
    ws: Workspace, media: Media, handle: str, target: Path, batch: str
) -> tuple[Key | None, Plan, str, str, list[int], str, str, str]:
    """The arguments of :func:`make_copy` for ``handle``'s copy of the video ``media`` (the
    key only when the copy is an encode of its own): a batch's process or a cluster's worker
    makes it from them."""
    plan = plan_of(media)
    own = plan.settings.mode == "recipient"
    return (
        ws.key if own else None,
        plan,
        os.fspath(ws.variants_dir(media.sha256)),
        os.fspath(ws.original_path(media)),
        [0] * plan.segments if own else copy_symbols(ws, plan, handle),
        handle,
        os.fspath(target),
        batch,
    )


def make_copy(
    key: Key | None,
    plan: Plan,
    folder: str,
    original: str,
    symbols: list[int],
    handle: str,
    target: str,
    batch: str,
) -> tuple[str, bool]:
    """Write the copy whose segments come from the variants ``symbols`` name (or, with a
    key, ``handle``'s own encode) to ``target`` unless a file has that name; returns (its
    sha256, whether it was placed)."""
    from .workflow import _place  # the photos' placement rule: never replace a file

    final = Path(target)
    part = part_path(final, batch)
    own = part.with_name(part.name + ".video.mp4")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if plan.settings.mode == "recipient":
            if key is None:
                raise ValueError("a per-recipient copy needs the key")
            # The recipient's own encode stands for the variants, in every segment.
            encode_copy(plan, original, key, handle, own)
            folder, plan = os.fspath(own.parent), replace(plan, files=[own.name])
        remux(plan, folder, original, symbols, part)
        h = hashlib.sha256()
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            os.fsync(fh.fileno())
        placed = _place(part, final)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise MediaError(f"cannot write {final}: {exc.strerror or exc}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        own.unlink(missing_ok=True)
    return h.hexdigest(), placed


def trace_video(
    ws: Workspace, path: Path, name: str, sha256: str, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[dict[str, Any], VideoDetection | None, Media | None]:
    """Trace a leaked video against every registered video (or those the keyframes' index
    names: :mod:`leaktrace.registry.keyframes`): the JSON-ready result, the detection and the
    media it was found in (None, None when it matches none; None and the original when the
    leak is a registered original itself)."""
    info = inspect_video(path)
    base: dict[str, Any] = {
        "leak": {
            "name": name,
            "sha256": sha256,
            "width": info.width,
            "height": info.height,
            "duration": round(info.duration, 3),
            "fps": round(info.fps, 3),
        },
        "threshold": threshold,
        "version": __version__,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    own = ws.media_by_sha256(sha256)
    if own is not None:
        return (
            {**original(name, own, "the same bytes"), "settings": video_settings(None), **base},
            None,
            own,
        )
    places = place_leak(ws, leak_timeline(path))
    best, sent, _ = judge_places(ws, path, places, threshold=threshold, tests=len(places.placed))
    if best is None:
        if places.placed and not sent:
            reason = "its original was never sent to anyone"
        elif places.unreadable:
            reason = (
                "matches no registered video it could be compared with: the kept variants of "
                f"{', '.join(places.unreadable)} are missing or damaged (under "
                f"{ws.home / 'variants'})"
            )
        else:
            reason = "matches no registered video"
        return {**no_match(name, reason), "settings": video_settings(None), **base}, None, None
    found, media = best
    return video_result(ws, found, media, tried=len(places.placed), base=base), found, media


@dataclass(frozen=True)
class Places:
    """Where a leak sits in the registered videos that look like it (at most
    :data:`_SHORTLIST`, best first): each video's framing of the leak's thumbnails, its
    (offset, similarity) and the video; ``unreadable`` names those whose kept thumbnails
    could not be read."""

    placed: list[tuple[Timeline, tuple[float, float], Media]]
    unreadable: list[str]


def place_leak(ws: Workspace, timeline: Timeline) -> Places:
    """Place a leak's ``timeline`` (a video's, or a picture's: :func:`still_timeline`) in
    the registered videos it may show: every video with its variants, or those the
    keyframes' index votes for. Only thumbnails are compared, never a codeword, so the
    videos kept are the hypotheses a trace pays for, whatever they then read."""
    if use_keyframes(ws):
        # Only the videos the keyframes' index votes for are read and placed.
        videos = ws.media_rows(ws.keyframes.search(probe_thumbs(timeline)))
    else:
        videos = ws.media()
    videos = [m for m in videos if m.kind == "video" and m.plan is not None]
    placed, unreadable = [], []
    for m in videos:
        try:
            with np.load(ws.variants_dir(m.sha256) / "thumbs.npz") as store:
                times, thumbs = store["times"], store["thumbs"]
                box = tuple(store["box"].tolist()) if "box" in store else None
        except (OSError, ValueError, KeyError):  # its kept variants were deleted or damaged
            unreadable.append(m.name)
            continue
        framed, place = place_in(timeline, times, thumbs, plan_of(m).fps, box)
        if place[1] >= MATCH_SIMILARITY:
            placed.append((framed, place, m))
    placed.sort(key=lambda p: -p[1][1])
    return Places(placed[:_SHORTLIST], unreadable)


def judge_places(
    ws: Workspace,
    leak: Path | np.ndarray,
    places: Places,
    *,
    threshold: float,
    tests: int,
) -> tuple[tuple[VideoDetection, Media] | None, bool, bool]:
    """Run :func:`detect_video` on ``leak`` (a video file, or a picture's luma) in every
    video it was placed in, each p-value multiplied by ``tests`` (the videos placed, and the
    photos tried too when the leak is a picture). Returns the most significant detection with
    its video (None when none could be read), whether the leak shows a video that was sent to
    anyone, and whether it shows any registered video at all.

    A picture shows a video when its whole frame looks like one of the video's frames
    (:data:`STILL_SIMILARITY`), or when it could be registered onto one (a crop, a frame in
    a player's or a page's frame): one small thumbnail is alike by chance to some frame of a
    long video far more often than a video's thumbnails are alike over time."""
    best: tuple[VideoDetection, Media] | None = None
    sent = shown = False
    picture = isinstance(leak, np.ndarray)
    for framed, place, m in places.placed:
        plan = plan_of(m)
        candidates = ws.media_candidates(m, variants=plan.settings.mode == "variants")
        alike = not picture or place[1] >= STILL_SIMILARITY
        if not candidates:
            shown = shown or alike
            continue
        try:
            found = detect_video(
                leak,
                ws.key,
                plan,
                ws.variants_dir(m.sha256),
                ws.original_path(m),
                candidates,
                threshold=threshold,
                hypotheses=tests,
                timeline=framed,
                place=place,
                codebook=ws.codebook,
            )
        except LeaktraceError:
            sent, shown = sent or alike, shown or alike
            continue
        if not alike and found.geometry is None:
            continue  # another picture, whose thumbnail looks like one of the frames
        sent = shown = True
        if best is None or found.log10_p_value < best[0].log10_p_value:
            best = (found, m)
    return best, sent, shown


def video_result(
    ws: Workspace, found: VideoDetection, media: Media, *, tried: int, base: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-ready verdict of ``found`` in the video ``media`` (``tried``: the originals
    tried, ``base``: the leak's own fields)."""
    named = people(ws, [h for h, _ in found.accused])
    segs = found.segments if found.segments is not None else np.zeros(0, int)
    q = found.symbols if found.symbols is not None else np.zeros(0)
    plan = plan_of(media)
    line = message(found, named, f"{_clock(found.start)}–{_clock(found.end)} of {media.name}")
    need = math.ceil(math.log2(max(1, len(found.scores)) / found.threshold))
    if plan.settings.mode == "variants" and found.verdict != "match" and len(segs) < need:
        # Each segment of a video marked with variants carries one symbol: an innocent
        # matches n of them by chance with probability 2^-n at best.
        line += (
            f"; the leak shows {len(segs)} of its {plan.settings.segment:g}-s segments, one "
            f"symbol each, and naming anyone among {len(found.scores):,} takes at least {need} "
            f"({need * plan.settings.segment:g} s of video)"
        )
    return {
        **matched(
            found, media, similarity=found.similarity, tried=tried, named=named, kind="video"
        ),
        "video": {
            "start": round(found.start, 3),
            "end": round(found.end, 3),
            "offset": round(found.offset, 3),
            "frames_read": found.frames,
            "segments_present": int(len(segs)),
            "segments_total": plan.segments,
            "segment_seconds": plan.settings.segment,
            "segments": [int(s) for s in segs],
            "soft_symbols": [round(float(v), 3) for v in q],
            # Per segment, how far its reading agrees with the named recipient's variant
            # (+1 sure agreement, -1 sure disagreement); only when someone is named.
            "agreement": []
            if found.recipient is None or len(q) == 0
            else [
                round(float(a), 3)
                for a in code(ws.key, plan.media_id, found.code, length=plan.segments).codeword(
                    found.recipient
                )[segs]
                * q
            ],
        },
        "registration": registration(found.geometry),
        "message": line,
        "settings": video_settings(plan, found.code),
        **base,
    }


def video_settings(plan: Plan | None, code_name: str = VARIANT_CODE) -> dict[str, Any]:
    """The parameters a video verdict depends on (for reports and records); ``code_name``: the
    code of the most suspect candidate's copy."""
    out: dict[str, Any] = {"code": code_name, "null_model": NULL_MODEL}
    if plan is not None:
        out.update(
            {
                "video_format": plan.format,
                "segment_seconds": plan.settings.segment,
                "mode": plan.settings.mode,
                "variants": len(plan.files),
                "encoder": f"{plan.settings.codec} crf {plan.settings.crf} "
                f"preset {plan.settings.preset}",
                "strength": plan.settings.strength,
            }
        )
    return out


def _clock(t: float) -> str:
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m)}:{s:04.1f}"
