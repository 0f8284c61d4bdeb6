"""Segments and variants: mark a video once per symbol, not once per recipient.

The timeline is cut into segments of :data:`SEGMENT_SECONDS`, each starting with an IDR frame
(a closed GOP), so that any segment of one encode can follow any segment of another without
drift. The video is decoded once; every frame is encoded :data:`VARIANTS` times, variant ``k``
carrying ``(2k - 1)`` times the segment's keyed pattern — the image engine's wavelet bands
(:func:`leaktrace.transform.synthesise`) filled with keyed ±1 chips for (key, media id,
segment), shaped by the perceptual mask (:func:`leaktrace.mask.perceptual_mask`) of the frame.

Steadiness: the pattern is fixed inside a segment; the mask follows the picture, smoothed over
frames (an exponential average), so compression noise does not make it shimmer; and the mark
fades in over the first frames of a segment and out over its last ones (:func:`envelope`), so
a static region never jumps from one pattern to the next between two frames.

A recipient's copy then takes, segment by segment, the variant their codeword names
(:mod:`leaktrace.video.remux`). Only the luma changes; chroma is as decoded.

A clip shorter than :data:`PER_RECIPIENT` seconds cannot carry enough segments to name anyone
at the usual threshold, so it is marked per recipient instead (``mode="recipient"``,
:func:`encode_copy`): every frame carries the recipient's whole photo codeword, spread by a
layout keyed per segment (:func:`recipient_pattern`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..codes import Layout, codeword, layout
from ..errors import MediaError
from ..keys import Key, keyed_bytes
from ..mask import perceptual_mask
from ..transform import grid_gains, synthesise_flat, working_shape
from .io import VideoInfo, frames, inspect_video

__all__ = [
    "FORMAT",
    "SEGMENT_SECONDS",
    "VARIANTS",
    "MODES",
    "PER_RECIPIENT",
    "VIDEO_PSNR",
    "Plan",
    "Settings",
    "encode_copy",
    "envelope",
    "recipient_pattern",
    "make_variants",
    "segment_index",
    "segment_pattern",
    "moving_box",
    "small_frame",
    "thumbnails",
]

#: Version of the video format: segments, patterns, envelope and the code they carry.
FORMAT = 1
SEGMENT_SECONDS = 0.5
#: x264 threads per encode, fixed: left to x264 it takes 1.5 × the machine's cores, and its
#: output bytes depend on the thread count, so copies would differ from machine to machine.
ENCODER_THREADS = 4
VARIANTS = 2
#: PSNR (dB) of the mark where the perceptual mask is 1 everywhere; real frames, whose mask is
#: below 1 in smooth parts, get less.
VIDEO_PSNR = 44.0
#: Frames over which the mark fades in at a segment's start and out at its end.
RAMP_FRAMES = 3
#: Videos shorter than this (seconds) are marked per recipient: variants give one symbol per
#: segment, and at least 40 certain symbols are needed to name one of 1,000 at 1e-9.
PER_RECIPIENT = 60.0
MODES = ("variants", "recipient")
#: Weight of the newest frame in the mask's running average.
MASK_SMOOTHING = 0.5
#: Side of the per-frame thumbnail kept for finding a leak's place in time, and width of the
#: small frames it is cut from.
THUMB = 16
SMALL = 64


@dataclass(frozen=True)
class Settings:
    """How the variants are encoded (every variant alike).

    The preset's own x264 choices (adaptive quantisation, B-frames, mb-tree) are kept: a
    marked encode differs from the unmarked one mostly where x264 decides differently, about
    as much as the unmarked encode differs from itself made on another number of threads, and
    turning them off narrows that by 1-3 dB only, for a larger file or flatter areas less well
    kept (``benchmarks/video_psnr.py``).
    """

    codec: str = "libx264"
    crf: int = 20
    preset: str = "veryfast"
    strength: float = 1.0
    segment: float = SEGMENT_SECONDS
    #: "variants": two encodes shared by every copy; "recipient": one encode per copy, each
    #: frame carrying the recipient's whole photo codeword (short clips, see PER_RECIPIENT).
    mode: str = "variants"
    #: Extra x264 parameters (``key=value:key=value``).
    params: str = ""

    def options(self, fps: float) -> dict[str, str]:
        """Encoder options: IDR frames only where forced (segment starts), closed GOPs."""
        keyint = max(2, math.ceil(fps * self.segment * 4))
        return {
            "crf": str(self.crf),
            "preset": self.preset,
            "forced-idr": "1",
            "x264-params": f"keyint={keyint}:min-keyint=1:scenecut=0:open-gop=0"
            + f":threads={ENCODER_THREADS}"
            + (f":{self.params}" if self.params else ""),
        }


@dataclass(frozen=True)
class Plan:
    """Everything a copy or a trace needs to know about a video's variants (stored as JSON
    beside them and in the registry)."""

    format: int
    media_id: str
    settings: Settings
    width: int
    height: int
    fps: float
    duration: float
    frames: int
    time_base: tuple[int, int]
    starts: list[int]  # pts of each segment's first frame
    rotation: int
    files: list[str]  # the variants, relative to the plan's folder
    container: str
    notes: list[str] = field(default_factory=list)

    @property
    def segments(self) -> int:
        return len(self.starts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        data = dict(data)
        data["settings"] = Settings(**data["settings"])
        data["time_base"] = tuple(data["time_base"])
        return cls(**data)


def segment_index(t: float, *, segment: float = SEGMENT_SECONDS) -> int:
    """The segment a frame shown at ``t`` seconds (from the first frame) belongs to."""
    return int(math.floor(t / segment + 1e-6))


def envelope(t: float, *, fps: float, segment: float = SEGMENT_SECONDS) -> float:
    """Amplitude (0..1] of the mark at time ``t``: 1/RAMP_FRAMES at a segment's first and last
    frames, rising by as much each frame, 1 in between."""
    s = segment_index(t, segment=segment)
    frame = 1.0 / fps
    into = t - s * segment
    left = (s + 1) * segment - frame - t
    d = min(into, left)
    return float(np.clip((d / frame + 1) / RAMP_FRAMES, 1 / RAMP_FRAMES, 1.0))


def _unit_pattern(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    pattern = synthesise_flat(values, grid)
    return pattern / np.float32(np.sqrt(np.mean(pattern * pattern)))


def segment_pattern(key: Key, media_id: str, grid: tuple[int, int], segment: int) -> np.ndarray:
    """The unit-RMS float32 pattern of ``segment`` on a working grid of ``grid`` (h, w)."""
    gains = grid_gains(grid)
    count = gains.size
    ctx = f"leaktrace/video/v{FORMAT}/pattern\x00{media_id}\x00{grid[0]}x{grid[1]}\x00{segment}"
    chips = np.unpackbits(keyed_bytes(key, ctx, (count + 7) // 8))[:count]
    return _unit_pattern((chips.astype(np.float32) * 2 - 1) * gains, grid)


def recipient_pattern(
    key: Key, media_id: str, grid: tuple[int, int], segment: int, handle: str
) -> np.ndarray:
    """The unit-RMS pattern of ``handle``'s whole codeword (as a photo's) in ``segment``: the
    layout that spreads it is keyed per segment, so averaging frames of several segments
    cancels it instead of revealing it."""
    gains = grid_gains(grid)
    lay = segment_layout(key, media_id, grid, segment, gains.size)
    return _unit_pattern(lay.spread(codeword(key, media_id, handle)) * gains, grid)


def segment_layout(
    key: Key, media_id: str, grid: tuple[int, int], segment: int, count: int
) -> Layout:
    """The keyed layout of a per-recipient copy's codeword in ``segment``."""
    return layout(key, f"{media_id}\x00video/v{FORMAT}/segment {segment}", grid, count)


def small_frame(luma: np.ndarray) -> np.ndarray:
    """The frame at :data:`SMALL` pixels wide (uint8), kept for :func:`thumbnails`."""
    h, w = luma.shape
    size = (SMALL, max(8, round(h * SMALL / w)))
    return np.asarray(cv2.resize(luma, size, interpolation=cv2.INTER_AREA), np.uint8)


def moving_box(small: np.ndarray) -> tuple[float, float, float, float]:
    """Where the picture changes over the frames ``small`` (N × h × w): (x0, y0, x1, y1) as
    fractions of the width and height. Black bars and a screen recording's still UI fall
    outside it; a still video gives the whole frame."""
    h, w = small.shape[1:]
    std = small.astype(np.float32).std(axis=0) if len(small) > 1 else np.zeros((h, w))
    active = std > 3.0
    rows = np.flatnonzero(active.mean(axis=1) > 0.1)
    cols = np.flatnonzero(active.mean(axis=0) > 0.1)
    if rows.size < h // 4 or cols.size < w // 4:
        return (0.0, 0.0, 1.0, 1.0)
    return (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)


def thumbnails(small: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """The moving box of ``small`` frames and each frame's part inside it squeezed to
    THUMB × THUMB (uint8): where it is light and dark, to find a leak's place in time."""
    box = moving_box(small)
    return box, np.stack([cut_thumb(f, box) for f in small])


def cut_thumb(small: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part ``box`` (fractions of width and height) of one small frame squeezed to
    THUMB × THUMB (uint8)."""
    h, w = small.shape
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 2, round(box[2] * w)), max(y0 + 2, round(box[3] * h))
    return np.asarray(cv2.resize(small[y0:y1, x0:x1], (THUMB, THUMB), interpolation=cv2.INTER_AREA))


def _shrink(luma: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``luma`` area-averaged to ``grid`` (float32). A frame at least twice the grid is
    first halved exactly (OpenCV's fast 2×2 path, rounded to 8 bits): a single area
    resampling by a non-integer ratio costs a 1080p frame 7–11 ms, a fifth of its encode."""
    h, w = luma.shape
    while h >= 2 * grid[0] and w >= 2 * grid[1]:
        h, w = h // 2, w // 2
        luma = cv2.resize(luma[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(luma.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA)


def _marked(plane: np.ndarray, change: np.ndarray, signs: list[float]) -> list[np.ndarray]:
    """``plane + sign·change`` rounded and saturated to uint8, for each sign (one OpenCV pass
    each, the float change added as it is)."""
    return [
        (cv2.add if sign > 0 else cv2.subtract)(plane, change, dtype=cv2.CV_8U) for sign in signs
    ]


class _Marker:
    """Per-frame marking state: the mask's running average and the current segment's
    pattern (its change at full resolution is computed once per frame for all variants)."""

    def __init__(
        self,
        key: Key,
        media_id: str,
        info: VideoInfo,
        settings: Settings,
        handle: str | None = None,
    ) -> None:
        self.key, self.media_id, self.settings, self.handle = key, media_id, settings, handle
        self.shape = (info.height & ~1, info.width & ~1)
        self.grid = working_shape(self.shape)
        self.fps = info.fps
        self.gain = np.float32(settings.strength * 255.0 / 10 ** (VIDEO_PSNR / 20))
        self.mask: np.ndarray | None = None
        self.segment = -1
        self.pattern = np.zeros(self.grid, np.float32)

    def change(self, luma: np.ndarray, t: float) -> np.ndarray:
        if self.gain == 0:  # strength 0: the frames as decoded (a plain transcode)
            return np.zeros(self.shape, np.float32)
        m = perceptual_mask(_shrink(luma, self.grid))
        a = MASK_SMOOTHING
        self.mask = m if self.mask is None else a * m + (1 - a) * self.mask
        s = segment_index(t, segment=self.settings.segment)
        if s != self.segment:
            self.segment = s
            if self.handle is None:
                self.pattern = segment_pattern(self.key, self.media_id, self.grid, s)
            else:
                self.pattern = recipient_pattern(self.key, self.media_id, self.grid, s, self.handle)
        amp = self.gain * np.float32(envelope(t, fps=self.fps, segment=self.settings.segment))
        change = self.pattern * self.mask * amp
        h, w = self.shape
        return cv2.resize(change, (w, h), interpolation=cv2.INTER_LINEAR)


def _open_variant(path: Path, info: VideoInfo, settings: Settings, tb: Fraction) -> Any:
    out = av.open(str(path), "w", format="mp4")
    stream: Any = out.add_stream(settings.codec, rate=Fraction(info.fps).limit_denominator(100000))
    stream.width, stream.height = info.width & ~1, info.height & ~1
    stream.pix_fmt = "yuv420p"
    stream.time_base = tb
    stream.codec_context.time_base = tb
    stream.options = settings.options(info.fps)
    if info.rotation:
        stream.set_display_rotation(info.rotation)
    return out, stream


def _encode(
    info: VideoInfo,
    marker: _Marker,
    outputs: list[tuple[Path, float]],
    *,
    progress: Callable[[int, int], None] | None,
    stop: Callable[[], bool] | None,
) -> tuple[Fraction, list[int], list[float], np.ndarray]:
    """Decode ``info``'s video once, writing to each output path the frames with the mark
    times its sign; return the time base, segment starts, frame times and small frames."""
    with av.open(str(info.path), metadata_errors="ignore") as probe:
        tb = probe.streams.video[0].time_base or Fraction(1, 90000)
    outs = [(_open_variant(path, info, marker.settings, tb), sign) for path, sign in outputs]
    starts: list[int] = []
    times: list[float] = []
    small: list[np.ndarray] = []
    total = max(1, info.frames)
    try:
        for f in frames(info.path, yuv=bool(outs)):
            if stop is not None and stop():
                raise InterruptedError("stopped")
            pts = round(f.time / tb)
            s = segment_index(f.time, segment=marker.settings.segment)
            first = s >= len(starts)
            while s >= len(starts):  # a gap in a variable-rate video leaves empty segments
                starts.append(pts)
            times.append(f.time)
            small.append(small_frame(f.luma))
            if outs and f.yuv is not None:
                change = marker.change(f.luma, f.time)
                pic, h = f.yuv, f.luma.shape[0]
                marked = _marked(f.luma, change, [sign for _, sign in outs])
                for ((out, stream), _), luma in zip(outs, marked, strict=True):
                    pic[:h] = luma  # f.luma is a view of pic: read before the first write
                    frame = av.VideoFrame.from_ndarray(pic, format="yuv420p")
                    frame.pts = pts
                    frame.time_base = tb
                    if first:
                        frame.pict_type = av.video.frame.PictureType.I
                    for packet in stream.encode(frame):
                        out.mux(packet)
            if progress is not None and (f.index % 8 == 0):
                progress(f.index + 1, total)
        for (out, stream), _ in outs:
            for packet in stream.encode(None):
                out.mux(packet)
    finally:
        for (out, _), _ in outs:
            out.close()
    if not times:
        raise MediaError(f"{info.path.name}: no video frame can be decoded")
    return tb, starts, times, np.stack(small)


def make_variants(
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    key: Key,
    media_id: str,
    *,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Plan:
    """Decode ``source`` once and write its :data:`VARIANTS` marked encodes into ``folder``
    (``v0.mp4``, ``v1.mp4``, ``plan.json``, ``thumbs.npz``); return the plan. In
    ``mode="recipient"`` no variant is encoded (each copy is, by :func:`encode_copy`); the
    plan and thumbnails are written all the same.

    ``progress(done, total)`` is called every few frames; ``stop()`` returning True abandons
    the work (an :class:`InterruptedError` is raised and the folder is left for the caller to
    remove).
    """
    settings = settings or Settings()
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {settings.mode!r}")
    info = inspect_video(source)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = _Marker(key, media_id, info, settings)
    names = [f"v{k}.mp4" for k in range(VARIANTS)] if settings.mode == "variants" else []
    outputs = [(folder / n, 2.0 * k - 1) for k, n in enumerate(names)]
    tb, starts, times, small = _encode(info, marker, outputs, progress=progress, stop=stop)
    count = len(times)
    plan = Plan(
        format=FORMAT,
        media_id=media_id,
        settings=settings,
        width=info.width & ~1,
        height=info.height & ~1,
        fps=info.fps,
        duration=times[-1] + 1 / info.fps,
        frames=count,
        time_base=(tb.numerator, tb.denominator),
        starts=starts,
        rotation=info.rotation,
        files=names,
        container=info.container,
        notes=list(info.notes),
    )
    box, thumbs = thumbnails(small)
    np.savez(folder / "thumbs.npz", times=np.asarray(times), thumbs=thumbs, box=np.asarray(box))
    (folder / "plan.json").write_text(json.dumps(plan.to_json(), indent=1))
    if progress is not None:
        progress(count, count)
    return plan


def encode_copy(
    plan: Plan, source: str | os.PathLike[str], key: Key, handle: str, dest: str | os.PathLike[str]
) -> None:
    """Encode ``handle``'s own marked video (no audio) to ``dest``: the per-recipient mode's
    copy, before :func:`~leaktrace.video.remux.remux` adds the original's audio."""
    info = inspect_video(source)
    marker = _Marker(key, plan.media_id, info, plan.settings, handle)
    _encode(info, marker, [(Path(dest), 1.0)], progress=None, stop=None)
