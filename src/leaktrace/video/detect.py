"""Tracing a leaked video: find where it sits in time and space, read one soft symbol per
segment it shows, and score every candidate with the image engine's statistics.

1. **Time.** Every frame of the original has a 16×16 thumbnail (kept with the variants). The
   leak's frames, cut to the part of the picture that moves (so letterboxing and a screen
   recording's still UI drop out), are squeezed the same way; the offset that makes the most
   leak frames look like the original frames shown at their time is the leak's place, and
   each leak frame is then paired with the original frame nearest that time that it looks
   most like (frame-rate changes, dropped and duplicated frames).
2. **Space.** A few textured leak frames are registered onto their original frames with the
   image registration (:func:`leaktrace.register.align`); the best geometry is used for all.
3. **Symbols.** Each paired frame gives the informed residual (leak minus tone-matched
   original on the working grid, perceptual mask applied, as for photos); its correlation
   with the segment's pattern, weighted by the mark's envelope and by the inverse of the
   frame's own noise (a frame paired with the wrong original frame counts for little), adds
   to that segment's soft value. The same correlation with keyed decoy patterns nobody
   carries measures the noise of each segment's own sum; each segment's value, in those
   deviations, is scaled by what the segments around it read and clipped to ±1
   (:func:`soft_symbols`), so that a segment colluders averaged keeps its fraction.
4. **Scores.** A candidate's codeword has one ±1 symbol per segment, from the Tardos code
   (:mod:`leaktrace.codes`; fair coins for copies of format ≤ 2), scored over the segments
   present as a photo's over its code positions (:class:`leaktrace.detect.Scorer`); from
   format 4 (``tardos-v2``) under two scores, the symmetric one and one centred on what the
   biases predict (which catches colluders who interleave segments), each paid for. Whatever
   ``q`` is, an innocent's symbols are independent of it, so Chernoff's bound with their exact
   moment generating function gives each candidate's probability (for fair coins and n
   certain segments, the exact 2⁻ⁿ), corrected for the number of candidates (and of videos
   tried); every candidate under the threshold is named, so colluders can all be.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..codes import CODE_LENGTH, PHOTO_CODE, VARIANT_CODE, Codebook, Layout
from ..detect import DEFAULT_THRESHOLD, Candidates, Detection, Scorer, informed_values
from ..errors import DetectionInputError, MediaError
from ..keys import Key, keyed_bytes
from ..mask import perceptual_mask
from ..register import Geometry, align, warp
from ..transform import analyse, grid_gains, resize, working_shape
from .io import VideoFrame, frames, inspect_video
from .variants import (
    FORMAT,
    Plan,
    cut_thumb,
    envelope,
    segment_index,
    segment_layout,
    segment_pattern,
    small_frame,
    thumbnails,
)

__all__ = [
    "CERTAIN",
    "CLIP",
    "LEVEL",
    "MATCH_SIMILARITY",
    "NEIGHBOURS",
    "TYPICAL",
    "Timeline",
    "VideoDetection",
    "detect_video",
    "keyframes",
    "leak_timeline",
    "locate",
    "place_in",
    "probe_thumbs",
    "soft_symbols",
    "still_timeline",
    "thumb_vectors",
]

#: A segment reading fewer noise deviations than this is never taken as certain
#: (:func:`soft_symbols`).
CLIP = 3.0
#: A segment is ±1 when it reads :data:`CERTAIN` times the :data:`LEVEL` th percentile of
#: the segments within :data:`NEIGHBOURS` of it (noise deviations), which show the same shots.
NEIGHBOURS = 4
LEVEL = 75
CERTAIN = 0.7
#: ... and never under this share of the leak's median segment: where most segments read
#: tens of deviations, one reading three is mostly noise, even among others that read little.
TYPICAL = 0.5
#: Mean thumbnail correlation above which a leak is taken to show the original's frames.
MATCH_SIMILARITY = 0.6
#: Keyed decoy patterns read beside each segment's own: their spread is the segment's noise.
_DECOYS = 64
#: How much more alike (thumbnail correlation) a neighbouring original frame must look to be
#: paired with a leak frame instead of the frame shown at its time.
_CLEARLY = 0.05
_GEOMETRY_FRAMES = 3
#: An original's frames kept in the originals' index (:func:`keyframes`): one in each
#: second of it, and the first after every cut.
KEYFRAME_SECONDS = 1.0
_CUT = 0.8  # thumbnail correlation with the previous frame below which a frame starts a shot
#: Leak thumbnails looked up in the originals' index (:func:`probe_thumbs`).
PROBES = 24
#: A still leak is read against the original frame, within this many of the one its
#: thumbnail placed it on, that leaves the least residual (:func:`_still_frame`).
_STILL_NEIGHBOURS = 3
#: A leak whose small frames change (by more than 3 grey levels) over less than this share of
#: their pixels shows no motion: a still (:attr:`Timeline.still`).
_STILL = 0.01


@dataclass(frozen=True)
class VideoDetection(Detection):
    """A :class:`~leaktrace.detect.Detection` of a video leak, with where it was found:
    ``start``/``end`` (seconds of the original it shows), ``offset`` (original time minus
    leak time), ``frames`` (leak frames read), and per segment present its index and soft
    value ``q`` in [-1, 1] (``segments``, ``symbols``) and reading in deviations of its noise
    (``readings``)."""

    start: float = 0.0
    end: float = 0.0
    offset: float = 0.0
    frames: int = 0
    similarity: float = 0.0
    segments: np.ndarray | None = field(default=None, repr=False)
    symbols: np.ndarray | None = field(default=None, repr=False)
    readings: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Timeline:
    """A leak's frames seen small: times, the moving region's box (x0, y0, x1, y1 in leak
    pixels) and normalised thumbnails of that region; ``still``, for a leak that shows no
    motion (a screenshot: one frame), its small frame, from which :func:`place_in` cuts the
    thumbnail again the way each original's were cut (no moving region to find)."""

    times: np.ndarray
    box: tuple[int, int, int, int]
    thumbs: np.ndarray
    size: tuple[int, int]  # leak (width, height)
    still: np.ndarray | None = field(default=None, repr=False)

    def framed(self, box: tuple[float, float, float, float]) -> Timeline:
        """A still leak's thumbnail cut to ``box`` (fractions of its width and height, as an
        original's stored ``box``); any other leak as it is."""
        if self.still is None:
            return self
        w, h = self.size
        pixels = (round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h))
        thumbs = np.repeat(_normalised(cut_thumb(self.still, box)[None]), len(self.times), axis=0)
        return replace(self, box=pixels, thumbs=thumbs)


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """The first and last + 1 index of the longest run of True in ``flags`` ((0, 0): none)."""
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    starts, ends = edges[::2], edges[1::2]
    if starts.size == 0:
        return 0, 0
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def _content_box(small: np.ndarray) -> tuple[float, float, float, float]:
    """Where a still frame shows a picture (fractions): the largest block of rows, then of
    columns, with texture in them, so that black bars, plain borders and a player's or a
    page's flat UI around the video are left out (the whole frame when none is found)."""
    h, w = small.shape
    f = small.astype(np.float32)
    mean, square = cv2.blur(f, (3, 3)), cv2.blur(f * f, (3, 3))
    textured = np.sqrt(np.maximum(square - mean * mean, 0)) > 2.0
    # The 3 × 3 window reaches one pixel past the picture's edge on each side.
    r0, r1 = _longest_run(textured.mean(axis=1) > 0.2)
    r0, r1 = r0 + (r0 > 0), r1 - (r1 < h)
    c0, c1 = _longest_run(textured[r0:r1].mean(axis=0) > 0.2) if r1 > r0 else (0, 0)
    c0, c1 = c0 + (c0 > 0), c1 - (c1 < w)
    if r1 - r0 < h // 4 or c1 - c0 < w // 4:
        return (0.0, 0.0, 1.0, 1.0)
    return (c0 / w, r0 / h, c1 / w, r1 / h)


def _normalised(thumbs: np.ndarray) -> np.ndarray:
    t = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    t -= t.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(t, axis=1, keepdims=True)
    return t / np.where(norm > 1e-3, norm, np.inf)


def thumb_vectors(thumbs: np.ndarray) -> np.ndarray:
    """``thumbs`` (N × THUMB × THUMB) as unit rows of zero mean (float32, N × THUMB²): their
    inner products are the similarities :func:`locate` uses. A flat thumbnail gives zeros."""
    return _normalised(thumbs)


def keyframes(
    times: np.ndarray, thumbs: np.ndarray, *, seconds: float = KEYFRAME_SECONDS
) -> np.ndarray:
    """The indices of an original's frames (``times``, raw ``thumbs``) that stand for it in
    the originals' index: the first frame of every ``seconds`` of it and the first frame of
    every shot (a cut: a frame unlike the one before it), so that any stretch of the video
    has a keyframe of its own shot within ``seconds``.

    >>> keyframes(np.arange(50) / 25, np.zeros((50, 16, 16), np.uint8)).tolist()
    [0, 25]
    """
    if len(times) == 0:
        return np.zeros(0, np.intp)
    t = np.asarray(times, np.float64)
    v = _normalised(thumbs)
    tick = np.floor((t - t[0]) / seconds)
    new_tick = np.r_[True, tick[1:] != tick[:-1]]
    cut = np.r_[False, np.einsum("ij,ij->i", v[1:], v[:-1]) < _CUT]
    # A flat frame (a fade through black) has no similarity to anything: not a cut.
    cut &= np.r_[False, (np.abs(v[1:]).sum(axis=1) > 0) & (np.abs(v[:-1]).sum(axis=1) > 0)]
    return np.flatnonzero(new_tick | cut)


def probe_thumbs(leak: Timeline, *, most: int = PROBES) -> np.ndarray:
    """At most ``most`` of the leak's normalised thumbnails, spread evenly over it and none
    flat: what the originals' index is asked about (for a still leak, its whole picture and
    its part that is not flat: an original's thumbnails leave out its black bars)."""
    rows = leak.thumbs
    if leak.still is not None:
        rows = np.vstack([rows[:1], leak.framed(_content_box(leak.still)).thumbs[:1]])
    rows = rows[np.abs(rows).sum(axis=1) > 0]
    if len(rows) > most:
        rows = rows[np.linspace(0, len(rows), most, endpoint=False).astype(np.intp)]
    return np.ascontiguousarray(rows, np.float32)


def _timeline(leak: Iterable[VideoFrame], name: str) -> Timeline:
    times, small = [], []
    size = (0, 0)
    for f in leak:
        size = (f.luma.shape[1], f.luma.shape[0])
        small.append(small_frame(f.luma))
        times.append(f.time)
    if not times:
        raise MediaError(f"{name}: no video frame can be decoded")
    stack = np.stack(small)
    box, thumbs = thumbnails(stack)
    pixels = (
        round(box[0] * size[0]),
        round(box[1] * size[1]),
        round(box[2] * size[0]),
        round(box[3] * size[1]),
    )
    moving = float((stack.astype(np.float32).std(axis=0) > 3.0).mean()) if len(stack) > 1 else 0
    still = stack[len(stack) // 2] if moving < _STILL else None
    return Timeline(np.asarray(times), pixels, _normalised(thumbs), size, still)


def leak_timeline(path: str | os.PathLike[str]) -> Timeline:
    """Decode the leak once at low resolution and return its :class:`Timeline`."""
    return _timeline(frames(path), Path(path).name)


def still_timeline(luma: np.ndarray) -> Timeline:
    """The :class:`Timeline` of a picture (a screenshot's luma, uint8 H × W) taken as a
    one-frame leak of a video."""
    return _timeline(_still_frames(luma), "the picture")


def _still_frames(luma: np.ndarray) -> Iterator[VideoFrame]:
    h, w = luma.shape[0] & ~1, luma.shape[1] & ~1
    yield VideoFrame(0, 0.0, 0, np.ascontiguousarray(luma[:h, :w], np.uint8))


def _leak_frames(leak: Path | np.ndarray) -> Iterator[VideoFrame]:
    return _still_frames(leak) if isinstance(leak, np.ndarray) else frames(leak)


def locate(
    leak: Timeline, times: np.ndarray, thumbs: np.ndarray, fps: float
) -> tuple[float, float]:
    """The offset (original time − leak time) that best lines the leak's thumbnails up with
    the original's (``times``, raw ``thumbs``), and the mean similarity it gives."""
    orig = _normalised(thumbs)
    step = max(1, len(leak.times) // 400)
    rows = np.arange(0, len(leak.times), step)
    sims = leak.thumbs[rows] @ orig.T
    best = np.argsort(-sims, axis=1)[:, :5]
    offsets = (times[best] - leak.times[rows, None]).ravel()
    half = 0.5 / fps
    candidates = np.unique(np.round(offsets * fps) / fps)
    top, top_score = 0.0, -np.inf
    for offset in candidates:
        want = leak.times[rows] + offset
        j = np.clip(np.searchsorted(times, want - half), 0, len(times) - 1)
        near = np.abs(times[j] - want) <= 1.5 / fps
        score = float(np.where(near, sims[np.arange(len(rows)), j], -0.2).mean())
        if score > top_score:
            top, top_score = float(offset), score
    return top, top_score


def place_in(
    leak: Timeline,
    times: np.ndarray,
    thumbs: np.ndarray,
    fps: float,
    box: tuple[float, float, float, float] | None = None,
) -> tuple[Timeline, tuple[float, float]]:
    """:func:`locate` ``leak`` in an original whose thumbnails were cut to ``box``: a still
    leak (no motion tells where its picture is) is tried cut to that box (a screenshot of the
    whole frame) and to its own part that is not flat (one with other bars around it), and the
    better is kept. Returns the leak as framed and (offset, similarity). Nothing here looks at
    a codeword: the choice costs no hypothesis."""
    if leak.still is None or box is None:
        return leak, locate(leak, times, thumbs, fps)
    framed = [leak.framed(b) for b in (box, _content_box(leak.still))]
    found = [locate(f, times, thumbs, fps) for f in framed]
    best = max(range(len(found)), key=lambda k: found[k][1])
    return framed[best], found[best]


def _pairs(leak: Timeline, offset: float, times: np.ndarray, thumbs: np.ndarray, fps: float):
    """For each leak frame, the original frame it shows (index, or -1 when outside)."""
    orig = _normalised(thumbs)
    out = np.full(len(leak.times), -1, np.intp)
    for i, t in enumerate(leak.times + offset):
        lo = np.searchsorted(times, t - 1.5 / fps)
        hi = np.searchsorted(times, t + 1.5 / fps)
        if hi <= lo:
            continue
        # The frame shown at that time, unless a neighbour looks clearly more like the leak
        # frame (a dropped or repeated frame); in a slow pan neighbours look alike, and the
        # time is the better guide.
        near = lo + int(np.argmin(np.abs(times[lo:hi] - t)))
        sims = orig[lo:hi] @ leak.thumbs[i]
        best = lo + int(np.argmax(sims))
        out[i] = best if sims[best - lo] > sims[near - lo] + _CLEARLY else near
    return out


def _decoys(key: Key, media_id: str, count: int) -> np.ndarray:
    ctx = f"leaktrace/video/v{FORMAT}/decoys\x00{media_id}\x00{count}"
    bits = np.unpackbits(keyed_bytes(key, ctx, (_DECOYS * count + 7) // 8))[: _DECOYS * count]
    return (bits.astype(np.float32) * 2 - 1).reshape(_DECOYS, count)


def _nearest(times: np.ndarray, t: float) -> int:
    j = int(np.clip(np.searchsorted(times, t), 1, len(times) - 1))
    return j if abs(times[j] - t) < abs(times[j - 1] - t) else j - 1


class _Originals:
    """The original's frames decoded forward from a start time, looked up by their index in
    the thumbnails' ``times`` (a few recent ones kept: leak frames may repeat one)."""

    def __init__(self, path: Path, start: float, times: np.ndarray) -> None:
        self._it = frames(path, start=max(0.0, start))
        self._times = times
        self._buf: dict[int, np.ndarray] = {}

    def get(self, index: int) -> np.ndarray | None:
        while index not in self._buf:
            f = next(self._it, None)
            if f is None:
                return None
            j = _nearest(self._times, f.time)
            self._buf[j] = f.luma
            for old in [k for k in self._buf if k < j - 8]:
                del self._buf[old]
            if j > index:
                return None
        return self._buf[index]


def _geometry(
    leak_path: Path | np.ndarray,
    original: Path,
    pairs: np.ndarray,
    orig_times: np.ndarray,
    grid: tuple[int, int],
    shape: tuple[int, int],
) -> Geometry | None:
    """Register a few textured, paired leak frames onto their originals (of ``shape``); the
    geometry with the most agreeing features (None: the leak is the whole picture, only
    rescaled)."""
    usable = np.flatnonzero(pairs >= 0)
    if usable.size == 0:
        return None
    picks = usable[np.linspace(0, usable.size - 1, _GEOMETRY_FRAMES + 2)[1:-1].astype(int)]
    wanted = {int(i) for i in picks}
    leaks = {}
    for f in _leak_frames(leak_path):
        if f.index in wanted:
            leaks[f.index] = f.luma.astype(np.float32)
        if f.index >= max(wanted):
            break
    best: Geometry | None = None
    found_only_resized = 0
    for i in sorted(leaks):
        j = int(pairs[i])
        base_luma = _Originals(original, orig_times[j] - 1.0, orig_times).get(j)
        if base_luma is None:
            continue
        base = resize(base_luma.astype(np.float32), grid)
        _, _, _, g = align(leaks[i], base, shape=shape)
        if g is None:
            found_only_resized += 1
        elif best is None or g.inliers > best.inliers:
            best = g
    return None if found_only_resized > len(leaks) // 2 else best


def _reference(
    luma: np.ndarray, geometry: Geometry | None, base: np.ndarray, native: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The leak frame ``luma`` on the working grid, the pixels it covers, and the original's
    frame ``base`` (on the grid) as the leak saw it (smaller, if it was)."""
    grid = base.shape
    plane, valid, scale = warp(luma.astype(np.float32), geometry, (grid[0], grid[1]))
    reference = base
    if scale < 0.9 * min(1.0, native):  # the leak saw the original smaller: so must we
        small = (max(8, round(grid[0] * scale)), max(8, round(grid[1] * scale)))
        reference = resize(resize(base, small), (grid[0], grid[1]))
    return plane, valid, reference


def _still_frame(
    luma: np.ndarray,
    placed: int,
    original: Path,
    orig_times: np.ndarray,
    geometry: Geometry | None,
    grid: tuple[int, int],
    native: float,
) -> int:
    """The original frame a still leak shows: of those within :data:`_STILL_NEIGHBOURS` of
    the one its thumbnail ``placed`` it on, the one whose informed residual has the least
    energy in the marked bands. Thumbnails of 16 × 16 cannot tell neighbouring frames of a
    slow shot apart, but a frame away leaves the motion in the residual, which drowns the
    mark; the choice looks at no codeword, so it is no hypothesis to pay for."""
    lo = max(0, placed - _STILL_NEIGHBOURS)
    hi = min(len(orig_times) - 1, placed + _STILL_NEIGHBOURS)
    originals = _Originals(original, orig_times[lo] - 0.5, orig_times)
    best, least = placed, np.inf
    for j in range(lo, hi + 1):
        base_luma = originals.get(j)
        if base_luma is None:
            continue
        base = resize(base_luma.astype(np.float32), grid)
        plane, valid, reference = _reference(luma, geometry, base, native)
        values = informed_values(plane, reference, valid, perceptual_mask(base), foreign=False)
        energy = float(values @ values)
        if energy < least:
            best, least = j, energy
    return best


def _thinned(pairs: np.ndarray, times: np.ndarray, plan: Plan, most: int) -> np.ndarray:
    """Keep at most ``most`` leak frames per segment, spread over it, preferring frames where
    the mark is at full strength; the others get -1 (not read)."""
    out = np.full_like(pairs, -1)
    by_segment: dict[int, list[int]] = {}
    seg_len = plan.settings.segment
    for i in np.flatnonzero(pairs >= 0):
        t = float(times[pairs[i]])
        by_segment.setdefault(segment_index(t, segment=seg_len), []).append(int(i))
    for members in by_segment.values():
        full = [
            i
            for i in members
            if envelope(float(times[pairs[i]]), fps=plan.fps, segment=seg_len) >= 1.0
        ] or members
        pick = np.linspace(0, len(full) - 1, min(most, len(full))).round().astype(int)
        for k in np.unique(pick):
            out[full[k]] = pairs[full[k]]
    return out


def soft_symbols(readings: np.ndarray) -> np.ndarray:
    """Each segment's soft symbol in [-1, 1] from its reading in deviations of its own
    noise (``readings``, in the order of the segments). A segment's noise is the spread of its
    own decoys' sums, never its neighbours': in a still shot a strongly compressed leak
    repeats one picture, whose mark is an earlier segment's, so a segment's frames may share
    all their noise while the next segment's frames share none.

    How much a re-encoded segment reads varies sixfold with what it shows (the codec keeps
    more of the mark in some shots), and much less between neighbours, which show the same
    shot. So a segment reading :data:`CERTAIN` times the :data:`LEVEL` th percentile of the
    segments within :data:`NEIGHBOURS` of it (itself included) is ±1, and one reading less
    keeps its share: a segment that three colluders split 2–1 and averaged reads a third of a
    unanimous one and stays about half as sure (a majority vote would make it whole, and lose
    what the average tells). Under :data:`CLIP` deviations, or :data:`TYPICAL` times the
    leak's median segment, nothing is certain: a still shot frozen by strong compression
    repeats one segment's mark, and its later segments read a few deviations of noise.
    Nothing here looks at a codeword, so an innocent's symbols stay independent of the result
    and the scorer's bound holds.

    >>> soft_symbols(np.array([40.0, -42.0, 14.0, 38.0, -2.0])).round(2).tolist()
    [1.0, -1.0, 0.5, 1.0, -0.08]
    """
    size = np.abs(readings)
    if size.size == 0:
        return np.zeros(0)
    padded = np.pad(size, NEIGHBOURS, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * NEIGHBOURS + 1)
    level = np.maximum(CERTAIN * np.percentile(windows, LEVEL, axis=1), CLIP)
    level = np.maximum(level, TYPICAL * float(np.median(size)))
    return np.clip(readings / level, -1.0, 1.0)


def detect_video(
    leak_path: str | os.PathLike[str] | np.ndarray,
    key: Key,
    plan: Plan,
    folder: str | os.PathLike[str],
    original: str | os.PathLike[str],
    candidates: Candidates,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    hypotheses: int = 1,
    timeline: Timeline | None = None,
    place: tuple[float, float] | None = None,
    frames_per_segment: int = 4,
    codebook: Codebook | None = None,
) -> VideoDetection:
    """Test every candidate as the source of a leaked video made from ``plan``'s variants.

    ``leak_path`` is the leaked video's file, or a picture's luma (uint8 H × W: a screenshot
    of one frame). ``folder`` holds the plan's thumbnails, ``original`` is the unmarked
    source; the leak may be trimmed, re-encoded, rescaled, cropped, letterboxed, re-timed or
    screen-recorded.
    ``hypotheses`` counts the videos tried on this leak (the p-value is multiplied by it).
    ``timeline`` and ``place`` (offset, similarity from :func:`locate`) skip finding them again
    when the caller has. At most ``frames_per_segment`` leak frames are read per segment of a
    variant-marked video (all of them for a clip marked per recipient, whose evidence grows
    with every frame). ``codebook`` keeps the candidates' codewords between traces.
    """
    if not 0 < threshold < 1:
        raise DetectionInputError("threshold must be between 0 and 1")
    per_recipient = plan.settings.mode == "recipient"
    if per_recipient:  # every frame carries a picture's whole codeword
        scorer = Scorer(key, plan.media_id, candidates, default=PHOTO_CODE, codebook=codebook)
    else:  # one symbol per segment
        scorer = Scorer(
            key,
            plan.media_id,
            candidates,
            length=plan.segments,
            default=VARIANT_CODE,
            codebook=codebook,
        )
    original = Path(original)
    if isinstance(leak_path, np.ndarray):
        name = "the picture"
        leak = timeline or still_timeline(leak_path)
    else:
        leak_path = Path(leak_path)
        name = leak_path.name
        inspect_video(leak_path)
        leak = timeline or leak_timeline(leak_path)
    with np.load(Path(folder) / "thumbs.npz") as store:
        orig_times, orig_thumbs = store["times"], store["thumbs"]
        box = tuple(store["box"].tolist()) if "box" in store else None
    if place is None:
        leak, place = place_in(leak, orig_times, orig_thumbs, plan.fps, box)
    offset, similarity = place
    pairs = _pairs(leak, offset, orig_times, orig_thumbs, plan.fps)
    grid = working_shape((plan.height, plan.width))
    native = math.sqrt(plan.height * plan.width / (grid[0] * grid[1]))
    geometry = _geometry(leak_path, original, pairs, orig_times, grid, (plan.height, plan.width))
    seg_len = plan.settings.segment
    count = grid_gains(grid).size
    decoys = _decoys(key, plan.media_id, count)
    sums: dict[int, np.ndarray] = {}  # segment -> [value, decoys...]
    patterns: dict[int, np.ndarray] = {}
    layouts: dict[int, Layout] = {}
    whole = np.zeros(CODE_LENGTH)  # per-recipient mode: the photo codeword's soft values
    if plan.settings.mode == "variants":  # a segment's one symbol is sure from a few frames
        pairs = _thinned(pairs, orig_times, plan, frames_per_segment)
    if len(pairs) == 1 and pairs[0] >= 0:  # a screenshot: find its very frame
        still = next(_leak_frames(leak_path)).luma
        pairs = pairs.copy()
        pairs[0] = _still_frame(still, int(pairs[0]), original, orig_times, geometry, grid, native)
        offset = float(orig_times[pairs[0]] - leak.times[0])
    used = [j for j in pairs if j >= 0]
    originals = _Originals(original, orig_times[min(used)] - 0.5 if used else 0.0, orig_times)
    read = 0
    for f in _leak_frames(leak_path):
        j = int(pairs[f.index]) if f.index < len(pairs) else -1
        if j < 0:
            continue
        base_luma = originals.get(j)
        if base_luma is None:
            continue
        t = float(orig_times[j])
        s = segment_index(t, segment=seg_len)
        if s >= plan.segments:
            continue
        base = resize(base_luma.astype(np.float32), grid)
        plane, valid, reference = _reference(f.luma, geometry, base, native)
        values = informed_values(plane, reference, valid, perceptual_mask(base), foreign=False)
        weight = envelope(t, fps=plan.fps, segment=seg_len)
        if per_recipient:
            if s not in layouts:
                layouts[s] = segment_layout(key, plan.media_id, grid, s, count)
            whole = whole + layouts[s].collect(values) * weight
            sums[s] = np.zeros(1)
        else:
            if s not in patterns:
                pattern_bands = analyse(segment_pattern(key, plan.media_id, grid, s))
                patterns[s] = np.concatenate([b.ravel() for b in pattern_bands])
            row = np.concatenate([[values @ patterns[s]], decoys @ values])
            # Inverse-variance weighting by the frame's own noise (its decoys): a frame paired
            # with the wrong original frame, or damaged, counts for little.
            noise = float(np.mean(row[1:] ** 2))
            sums[s] = sums.get(s, 0) + row * (weight / max(noise, 1e-12))
        read += 1
    if not sums:
        raise MediaError(f"{name}: no frame of the leak could be matched to the video")
    segs = np.array(sorted(sums))
    if per_recipient:
        # Every frame carries the whole codeword: soft values per code position, as a photo's.
        q, positions = whole, None
    else:
        table = np.stack([sums[s] for s in segs])
        spread = np.sqrt(np.maximum((table[:, 1:] ** 2).mean(axis=1), 1e-24))
        readings = table[:, 0] / spread
        q, positions = soft_symbols(readings), segs
    found = scorer.judge(q, threshold=threshold, tests=hypotheses, positions=positions)
    first, last = int(segs[0]), int(segs[-1])
    return VideoDetection.of(
        found,
        threshold=threshold,
        mode="informed",
        geometry=geometry,
        coverage=None,
        soft=q,
        start=first * seg_len,
        end=min(plan.duration, (last + 1) * seg_len),
        offset=offset,
        frames=read,
        similarity=similarity,
        segments=segs,
        symbols=None if per_recipient else q,
        readings=None if per_recipient else readings,
    )
