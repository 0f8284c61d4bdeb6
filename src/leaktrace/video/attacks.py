"""What leakers do to videos: file in, file out through PyAV (shared by tests and benchmarks).

Every attack decodes ``source``, changes its pictures and timing, encodes the result into
``dest`` (MP4 unless the name ends in ``.webm``, ``.mkv`` or ``.mov``) and returns ``dest``;
none of them knows about watermarks. They all share one pipeline, :func:`_transcode`:

- pictures are handled as yuv420p planes (Y, U, V as numpy arrays), the way FFmpeg's filters
  see them: no RGB round trip unless the attack needs one (the screen recording);
- timing is re-sampled the way FFmpeg's ``fps`` filter does it: output frame *k* is shown at
  *k*/fps and holds the input frame whose time, rounded to the nearest output slot, is the
  last one at or before *k* (frames are repeated or dropped, never blended). At the source's
  own rate this maps each frame onto itself; a variable-rate source comes out constant-rate;
- the first audio stream, if any, is decoded, resampled to 48 kHz stereo (a 5.1 track is
  downmixed) and encoded again (AAC, or Opus in WebM), cut to the video's span;
- container metadata (``creation_time``, ``title``, ...) and each stream's ``language`` are
  copied, as ``ffmpeg`` does by default;
- encoders run with a fixed thread count, so the same input gives the same bytes (with the
  same FFmpeg build). The file appears under its name only once it is complete.

:data:`STANDARD` lists the named attacks of the video acceptance list.

Example
-------
>>> from leaktrace.video import attacks
>>> attacks.scale(Path("copy.mp4"), Path("leak_480p.mp4"), height=480)  # doctest: +SKIP
PosixPath('leak_480p.mp4')
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import cast

import av
import av.error
import cv2
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from ..errors import MediaError

__all__ = [
    "STANDARD",
    "chain",
    "change_fps",
    "crop",
    "grayscale",
    "letterbox",
    "reencode",
    "reshare",
    "scale",
    "screen_record",
    "tone",
    "trim",
]

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One yuv420p picture: Y (h×w), U and V (h/2×w/2), uint8, limited range (black is 16/128)."""

PlaneOp = Callable[[Planes], Planes]
VideoAttack = Callable[[Path, Path], Path]

#: The encoders an attack may use: name -> highest CRF.
_CRF_MAX = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63}
#: Output container by file suffix -> (FFmpeg muxer, video codecs it takes, audio codec).
_CONTAINERS = {
    ".mp4": ("mp4", ("libx264", "libx265", "libvpx-vp9"), "aac"),
    ".m4v": ("mp4", ("libx264", "libx265", "libvpx-vp9"), "aac"),
    ".mov": ("mov", ("libx264", "libx265", "libvpx-vp9"), "aac"),
    ".mkv": ("matroska", ("libx264", "libx265", "libvpx-vp9"), "aac"),
    ".webm": ("webm", ("libvpx-vp9",), "libopus"),
}
_X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
#: libvpx has no presets: each x264 preset name maps to a ``cpu-used`` speed (realtime deadline
#: for the fast ones, as a live re-streamer would use, "good" for the slow ones).
_VP9_SPEED = {
    "ultrafast": ("realtime", 8),
    "superfast": ("realtime", 8),
    "veryfast": ("realtime", 7),
    "faster": ("good", 5),
    "fast": ("good", 4),
    "medium": ("good", 3),
    "slow": ("good", 2),
    "slower": ("good", 1),
    "veryslow": ("good", 0),
    "placebo": ("good", 0),
}
_THREADS = 2  # fixed, not "auto": x264/x265/libvpx output depends on the thread count
_AUDIO_RATE = 48_000
_AUDIO_BIT_RATE = 128_000
#: Metadata that the muxer writes itself and must not be copied.
_MUXER_KEYS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


# ---------------------------------------------------------------------------------------------
# The attacks


def reencode(
    source: Path,
    dest: Path,
    *,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Decode and encode again at a constant quality, nothing else changed.

    ``codec`` is ``"libx264"``, ``"libx265"`` or ``"libvpx-vp9"`` (constant quality: ``crf``
    with no bit-rate cap, ``-crf N -b:v 0``; write VP9 to a ``.webm`` name for a WebM file
    with Opus audio). ``preset`` is an x264 preset name; for VP9 it picks a ``cpu-used`` speed.

    >>> reencode(Path("in.mp4"), Path("out.webm"), codec="libvpx-vp9", crf=35)  # doctest: +SKIP
    """
    return _transcode(source, dest, encoding=_Encoding(codec, crf, preset), keep_audio=keep_audio)


def scale(
    source: Path,
    dest: Path,
    *,
    height: int,
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Resize to ``height`` lines, keeping the aspect ratio (width rounded to an even number,
    as FFmpeg's ``scale=-2:height``): area averaging down, bicubic up; x264 at ``crf``."""
    if not isinstance(height, int) or height < 16 or height % 2:
        raise ValueError(f"height must be an even number of lines, 16 or more (got {height!r})")

    def op(planes: Planes) -> Planes:
        h, w = planes[0].shape
        return _resize(planes, (_even(w * height / h), height))

    return _transcode(
        source, dest, op=op, encoding=_Encoding("libx264", crf, preset), keep_audio=keep_audio
    )


def change_fps(
    source: Path,
    dest: Path,
    *,
    fps: float | Fraction,
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Re-sample to ``fps`` frames per second by repeating or dropping frames (FFmpeg's ``fps``
    filter: no blending), same duration; x264 at ``crf``.

    A float rate is read as a fraction with a denominator up to 1001; pass
    ``Fraction(30000, 1001)`` for NTSC's 29.97 exactly.
    """
    return _transcode(
        source,
        dest,
        fps=_rate(fps),
        encoding=_Encoding("libx264", crf, preset),
        keep_audio=keep_audio,
    )


def crop(
    source: Path,
    dest: Path,
    *,
    fraction: float = 0.1,
    at: tuple[float, float] = (0.5, 0.5),
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Cut ``fraction`` of the width and of the height away and keep the rest at its own size.

    ``at`` places the kept rectangle as in :func:`leaktrace.attacks.crop`: (0.5, 0.5), the
    default, keeps the centre (``fraction`` / 2 off each side); (0, 0) keeps the top-left
    corner, (1, 1) the bottom-right one. Sides and offsets are rounded to even numbers.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be at least 0 and below 1 (got {fraction!r})")
    if not all(0 <= a <= 1 for a in at):
        raise ValueError(f"at must be two numbers from 0 to 1 (got {at!r})")

    def op(planes: Planes) -> Planes:
        h, w = planes[0].shape
        ch, cw = _even(h * (1 - fraction)), _even(w * (1 - fraction))
        y, x = _even_offset((h - ch) * at[0]), _even_offset((w - cw) * at[1])
        return _cut(planes, x, y, cw, ch)

    return _transcode(
        source, dest, op=op, encoding=_Encoding("libx264", crf, preset), keep_audio=keep_audio
    )


def letterbox(
    source: Path,
    dest: Path,
    *,
    size: tuple[int, int] = (1920, 1080),
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Scale to fit inside a black canvas of ``size`` (width, height) and centre it: black bars
    above and below (letterbox) or left and right (pillarbox); x264 at ``crf``."""
    cw, ch = size
    if cw < 16 or ch < 16 or cw % 2 or ch % 2:
        raise ValueError(f"size must be even (width, height), 16 or more (got {size!r})")

    def op(planes: Planes) -> Planes:
        h, w = planes[0].shape
        fit = min(cw / w, ch / h)
        sw, sh = min(cw, _even(w * fit)), min(ch, _even(h * fit))
        return _pad(_resize(planes, (sw, sh)), (cw, ch), ((cw - sw) // 4 * 2, (ch - sh) // 4 * 2))

    return _transcode(
        source, dest, op=op, encoding=_Encoding("libx264", crf, preset), keep_audio=keep_audio
    )


def tone(
    source: Path,
    dest: Path,
    *,
    brightness: float = 20,
    contrast: float = 0.8,
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Change brightness and contrast on the luma plane only, like FFmpeg's ``eq`` filter:
    ``Y' = (Y - 128) * contrast + 128 + brightness``, clipped to 0–255; colour (U, V) is left
    alone. x264 at ``crf``."""
    if not -255 <= brightness <= 255 or not 0 <= contrast <= 10:
        raise ValueError(
            f"brightness must be within ±255 and contrast 0–10 (got {brightness!r}, {contrast!r})"
        )
    lut = np.clip(np.rint((np.arange(256) - 128) * contrast + 128 + brightness), 0, 255)
    lut = lut.astype(np.uint8)

    def op(planes: Planes) -> Planes:
        return cv2.LUT(planes[0], lut), planes[1], planes[2]

    return _transcode(
        source, dest, op=op, encoding=_Encoding("libx264", crf, preset), keep_audio=keep_audio
    )


def grayscale(
    source: Path,
    dest: Path,
    *,
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Drop colour: luma kept, both chroma planes set to neutral 128 (FFmpeg's ``hue=s=0``);
    x264 at ``crf``."""

    def op(planes: Planes) -> Planes:
        neutral = np.full_like(planes[1], 128)
        return planes[0], neutral, neutral.copy()

    return _transcode(
        source, dest, op=op, encoding=_Encoding("libx264", crf, preset), keep_audio=keep_audio
    )


def screen_record(
    source: Path,
    dest: Path,
    *,
    scale: float = 0.9,
    fps: float | Fraction = 30,
    crf: int = 28,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """A screen capture of the video playing in a browser window: the picture, resized by
    ``scale``, inside synthetic window chrome (title bar, address bar, side panel with text,
    a light background, a mouse pointer over the video) of the source's own size, re-sampled to
    ``fps`` and encoded with x264 at ``crf``.

    The composition runs in RGB (BT.601), as a capture of a screen does; the window layout
    depends only on the frame size, so the same input gives the same output.
    """
    if not 0.3 <= scale <= 0.95:
        raise ValueError(f"scale must be from 0.3 to 0.95 so that the window fits (got {scale!r})")
    screen: dict[tuple[int, int], _Screen] = {}

    def op(planes: Planes) -> Planes:
        h, w = planes[0].shape
        if (w, h) not in screen:
            screen[w, h] = _Screen.build(w, h, scale)
        return screen[w, h].show(planes)

    return _transcode(
        source,
        dest,
        op=op,
        fps=_rate(fps),
        encoding=_Encoding("libx264", crf, preset),
        keep_audio=keep_audio,
    )


def trim(
    source: Path,
    dest: Path,
    *,
    start: float,
    duration: float,
    crf: int = 23,
    preset: str = "veryfast",
    keep_audio: bool = True,
) -> Path:
    """Keep ``duration`` seconds from ``start`` (seconds after the first frame), frame accurate:
    decoded and encoded again (x264 at ``crf``), not cut at keyframes. The first frame is the
    one showing at ``start``; the clip is shorter when the source ends first."""
    if not start >= 0 or not duration > 0:
        raise ValueError(f"start must be >= 0 and duration > 0 (got {start!r}, {duration!r})")
    return _transcode(
        source,
        dest,
        start=start,
        duration=duration,
        encoding=_Encoding("libx264", crf, preset),
        keep_audio=keep_audio,
    )


def chain(source: Path, dest: Path, *steps: VideoAttack) -> Path:
    """Apply ``steps`` one after the other, each one's file the next one's source (each step
    re-encodes: generation loss, as in a chain of re-shares). Intermediate files live in a
    temporary folder next to ``dest`` and are removed.

    >>> chain(src, dst, partial(trim, start=2, duration=5), partial(scale, height=480),
    ...       partial(reencode, crf=32))  # doctest: +SKIP
    """
    if not steps:
        raise ValueError("chain needs at least one step")
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix=".chain-", dir=dest.parent) as tmp:
        current = Path(source)
        for i, step in enumerate(steps[:-1]):
            current = step(current, Path(tmp) / f"step{i}.mp4")
        return steps[-1](current, dest)


def reshare(source: Path, dest: Path, *, start: float = 2.0, duration: float = 5.0) -> Path:
    """A clip cut out and passed on: trim (``start``, ``duration``) → 480p → x264 CRF 32, each
    step encoded again (the first two at CRF 23)."""
    return chain(
        source,
        dest,
        partial(trim, start=start, duration=duration),
        partial(scale, height=480),
        partial(reencode, crf=32),
    )


# ---------------------------------------------------------------------------------------------
# Pictures as yuv420p planes


def _even(value: float) -> int:
    """A side length: the nearest even integer, at least 2."""
    return max(2, 2 * round(value / 2))


def _even_offset(value: float) -> int:
    """An offset: the even integer at or below ``value`` (at least 0)."""
    return max(0, 2 * math.floor(value / 2))


def _resize(planes: Planes, size: tuple[int, int]) -> Planes:
    w, h = size
    if planes[0].shape == (h, w):
        return planes
    inter = cv2.INTER_AREA if w < planes[0].shape[1] else cv2.INTER_CUBIC
    y = cv2.resize(planes[0], (w, h), interpolation=inter)
    u, v = (cv2.resize(p, (w // 2, h // 2), interpolation=inter) for p in planes[1:])
    return y, u, v


def _cut(planes: Planes, x: int, y: int, w: int, h: int) -> Planes:
    return (
        np.ascontiguousarray(planes[0][y : y + h, x : x + w]),
        *(
            np.ascontiguousarray(p[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2])
            for p in planes[1:]
        ),
    )  # type: ignore[return-value]


def _pad(planes: Planes, size: tuple[int, int], at: tuple[int, int]) -> Planes:
    """Place the picture at (x, y), both even, on a black canvas of ``size``."""
    (cw, ch), (x, y) = size, at
    h, w = planes[0].shape
    out = (
        np.full((ch, cw), 16, np.uint8),
        np.full((ch // 2, cw // 2), 128, np.uint8),
        np.full((ch // 2, cw // 2), 128, np.uint8),
    )
    out[0][y : y + h, x : x + w] = planes[0]
    for src, dst in zip(planes[1:], out[1:], strict=True):
        dst[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = src
    return out


def _to_rgb(planes: Planes) -> np.ndarray:
    h, w = planes[0].shape
    i420 = np.concatenate([p.reshape(-1) for p in planes]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def _from_rgb(rgb: np.ndarray) -> Planes:
    h, w = rgb.shape[:2]
    flat = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    q = h * w // 4
    return (
        flat[: h * w].reshape(h, w),
        flat[h * w : h * w + q].reshape(h // 2, w // 2),
        flat[h * w + q :].reshape(h // 2, w // 2),
    )


def _frame_planes(frame: VideoFrame) -> Planes:
    """A decoded frame as yuv420p planes (converted if needed; an odd last row or column is
    dropped, as 4:2:0 cannot hold it)."""
    w, h = frame.width // 2 * 2, frame.height // 2 * 2
    if frame.format.name != "yuv420p" or (w, h) != (frame.width, frame.height):
        frame = frame.reformat(width=w, height=h, format="yuv420p")
    flat = frame.to_ndarray().reshape(-1)
    q = h * w // 4
    return (
        flat[: h * w].reshape(h, w),
        flat[h * w : h * w + q].reshape(h // 2, w // 2),
        flat[h * w + q :].reshape(h // 2, w // 2),
    )


def _planes_frame(planes: Planes) -> VideoFrame:
    h, w = planes[0].shape
    i420 = np.concatenate([p.reshape(-1) for p in planes]).reshape(h * 3 // 2, w)
    return VideoFrame.from_ndarray(i420, format="yuv420p")


@dataclass(frozen=True)
class _Screen:
    """A synthetic browser window on a desktop, with a video area of the given size."""

    chrome: np.ndarray  # RGB, the screen around the video
    box: tuple[int, int, int, int]  # x, y, w, h of the video area (even)
    pointer: np.ndarray  # (n, 2) int32 polygon of the mouse pointer

    @classmethod
    def build(cls, w: int, h: int, scale: float) -> _Screen:
        vw, vh = _even(w * scale), _even(h * scale)
        x = _even_offset(w - vw - max(2, w * 0.012))  # right margin ~1 % of the width
        y = _even_offset(h - vh - max(2, h * 0.02))  # bottom margin ~2 % of the height
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (232, 234, 238)  # page background
        s = h / 720  # text and bar sizes follow the frame height
        font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
        bar = max(6, round(y * 0.45))
        img[:bar] = (38, 42, 54)  # title bar with window buttons and a tab
        for i, colour in enumerate(((237, 94, 84), (245, 190, 80), (98, 197, 84))):
            cv2.circle(img, (round((14 + 20 * i) * s), bar // 2), max(2, round(6 * s)), colour, -1)
        cv2.rectangle(img, (round(80 * s), 3), (round(330 * s), bar), (58, 63, 78), -1)
        title = (round(92 * s), round(bar * 0.7))
        cv2.putText(img, "Screening copy - Player", title, font, 0.42 * s, (225, 228, 235), 1, aa)
        cv2.rectangle(img, (0, bar), (w, y - 2), (250, 250, 252), -1)  # address bar
        field = ((round(60 * s), bar + 3), (w - round(60 * s), y - 5))
        cv2.rectangle(img, *field, (236, 238, 242), -1)
        url = (round(72 * s), round((bar + y) / 2 + 4 * s))
        cv2.putText(
            img,
            "https://screener.example.com/watch?v=a8F3kq",
            url,
            font,
            0.4 * s,
            (70, 70, 80),
            1,
            aa,
        )
        cv2.rectangle(img, (0, y), (x - 4, h), (246, 247, 250), -1)  # side panel
        for i, line in enumerate(("Library", "Recent", "Shared", "Downloads", "Settings")):
            ty = y + round((28 + 26 * i) * s)
            if ty < h - 4:
                cv2.putText(img, line, (round(8 * s), ty), font, 0.36 * s, (60, 64, 72), 1, aa)
        cv2.rectangle(img, (x - 2, y - 2), (x + vw + 1, y + vh + 1), (20, 20, 20), 2)
        tip = np.array([x + vw * 0.62, y + vh * 0.55])
        arrow = np.array([[0, 0], [0, 17], [4, 13], [7, 20], [10, 19], [7, 12], [12, 12]])
        pointer = np.rint(tip + arrow * 1.2 * s).astype(np.int32)
        return cls(img, (x, y, vw, vh), pointer)

    def show(self, planes: Planes) -> Planes:
        x, y, vw, vh = self.box
        rgb = self.chrome.copy()
        rgb[y : y + vh, x : x + vw] = cv2.resize(
            _to_rgb(planes), (vw, vh), interpolation=cv2.INTER_AREA
        )
        cv2.fillPoly(rgb, [self.pointer], (255, 255, 255), cv2.LINE_AA)
        cv2.polylines(rgb, [self.pointer], True, (0, 0, 0), 1, cv2.LINE_AA)
        return _from_rgb(rgb)


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass(frozen=True)
class _Encoding:
    codec: str
    crf: int
    preset: str

    def __post_init__(self) -> None:
        if self.codec not in _CRF_MAX:
            raise ValueError(f"codec must be one of {', '.join(_CRF_MAX)} (got {self.codec!r})")
        top = _CRF_MAX[self.codec]
        if not isinstance(self.crf, int) or not 0 <= self.crf <= top:
            raise ValueError(f"crf for {self.codec} must be an integer 0–{top} (got {self.crf!r})")
        if self.preset not in _X26X_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(_X26X_PRESETS)}")

    def options(self) -> dict[str, str]:
        if self.codec == "libvpx-vp9":
            deadline, speed = _VP9_SPEED[self.preset]
            return {
                "crf": str(self.crf),
                "b": "0",
                "deadline": deadline,
                "cpu-used": str(speed),
                "row-mt": "1",
            }
        opts = {"crf": str(self.crf), "preset": self.preset}
        if self.codec == "libx265":
            opts["x265-params"] = f"log-level=error:pools={_THREADS}:frame-threads=1"
        return opts


def _rate(fps: float | Fraction) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if not 1 <= rate <= 240:
        raise ValueError(f"fps must be from 1 to 240 (got {fps!r})")
    return rate


def _slot(t: Fraction, fps: Fraction) -> int:
    """The output frame index a time falls on, rounding to the nearest (halves up)."""
    return math.floor(t * fps + Fraction(1, 2))


@dataclass
class _Retimer:
    """FFmpeg's ``fps`` filter over a window: feed each decoded picture with its source time,
    get the pictures of the output frames in order. Each picture is processed (``op``) once,
    when it is first shown; one that is never shown is never processed."""

    fps: Fraction
    origin: Fraction  # source time of output frame 0
    limit: int | None  # output frame count when the window is shorter than the source
    op: PlaneOp | None
    shown: int = 0
    _held: Planes | None = None
    _done: Planes | None = None

    @property
    def full(self) -> bool:
        return self.limit is not None and self.shown >= self.limit

    def push(self, t: Fraction, planes: Planes) -> Iterator[Planes]:
        yield from self._emit_until(_slot(t - self.origin, self.fps))
        self._held, self._done = planes, None

    def finish(self, end: Fraction) -> Iterator[Planes]:
        yield from self._emit_until(_slot(end - self.origin, self.fps))

    def _emit_until(self, slot: int) -> Iterator[Planes]:
        held = self._held
        if held is None:  # nothing decoded yet: the first picture also fills earlier slots
            return
        if self.limit is not None:
            slot = min(slot, self.limit)
        while self.shown < slot:
            if self._done is None:
                self._done = self.op(held) if self.op else held
            self.shown += 1
            yield self._done


class _AudioCut:
    """The audio of the output: decoded frames in, 48 kHz stereo samples placed on the output
    timeline (sample 0 at source time ``origin``), earlier samples dropped, gaps filled with
    silence, handed out up to a given sample as frames to encode."""

    def __init__(self, origin: Fraction) -> None:
        self.origin = origin
        self.written = 0  # samples handed out
        self.end = 0  # samples queued or handed out
        self._queue: list[np.ndarray] = []
        self._next: int | None = None  # output index of the next resampled sample
        self._resampler = AudioResampler(format="fltp", layout="stereo", rate=_AUDIO_RATE)

    def push(self, frame: AudioFrame | None) -> None:
        if frame is not None and self._next is None:
            self._next = 0
            if frame.pts is not None and frame.time_base is not None:
                start = Fraction(frame.pts) * frame.time_base - self.origin
                self._next = math.floor(start * _AUDIO_RATE + Fraction(1, 2))
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray()
            first = self._next if self._next is not None else self.end
            self._next = first + samples.shape[1]
            if first > self.end:  # a gap, or audio that starts after the video: silence
                self._queue.append(np.zeros((2, first - self.end), np.float32))
            elif first < self.end:  # before the window, or overlapping what is queued
                samples = samples[:, self.end - first :]
            if samples.shape[1]:
                self._queue.append(samples)
            self.end = max(self.end, self._next)

    def take(self, upto: int) -> Iterator[AudioFrame]:
        """Frames holding the queued samples before output sample ``upto``."""
        if upto <= self.written or not self._queue:
            return
        queued = np.concatenate(self._queue, axis=1)
        n = min(upto - self.written, queued.shape[1])
        self._queue = [queued[:, n:]] if n < queued.shape[1] else []
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(queued[:, :n]), format="fltp", layout="stereo"
        )
        frame.sample_rate = _AUDIO_RATE
        frame.time_base = Fraction(1, _AUDIO_RATE)
        frame.pts = self.written
        self.written += n
        yield frame


def _open(source: Path) -> InputContainer:
    try:
        return av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read {source} as a video: {exc}") from exc


def _transcode(
    source: Path,
    dest: Path,
    *,
    encoding: _Encoding,
    op: PlaneOp | None = None,
    fps: Fraction | None = None,
    start: float = 0.0,
    duration: float | None = None,
    keep_audio: bool = True,
) -> Path:
    """The one implementation behind every attack: decode, re-time, ``op``, encode, mux.

    The output shows the source from ``start`` seconds after its first frame, for
    ``duration`` seconds (or to its end), at ``fps`` (or the source's average rate).
    """
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in _CONTAINERS:
        raise ValueError(f"dest must end in one of {', '.join(_CONTAINERS)} (got {dest.name!r})")
    muxer, video_codecs, audio_codec = _CONTAINERS[suffix]
    if encoding.codec not in video_codecs:
        raise ValueError(f"a {suffix} file cannot hold {encoding.codec}: use .mp4 or .mkv")
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=suffix, dir=dest.parent)
    os.close(fd)
    part = Path(name)
    try:
        with _open(source) as inp:
            if not inp.streams.video:
                raise MediaError(f"{source} has no video stream")
            # Matroska draws random segment and track UIDs unless told to be bit-exact.
            bitexact = {"fflags": "+bitexact"} if muxer in ("matroska", "webm") else {}
            with av.open(str(part), "w", format=muxer, options=bitexact) as out:
                _run(inp, out, encoding, op, fps, start, duration, keep_audio, audio_codec)
        part.replace(dest)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot transcode {source}: {exc}") from exc
    finally:
        part.unlink(missing_ok=True)
    return dest


def _run(
    inp: InputContainer,
    out: OutputContainer,
    encoding: _Encoding,
    op: PlaneOp | None,
    fps: Fraction | None,
    start: float,
    duration: float | None,
    keep_audio: bool,
    audio_codec: str,
) -> None:
    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio and keep_audio else None
    vin.thread_type = "AUTO"
    in_rate = Fraction(vin.average_rate or vin.guessed_rate or 25).limit_denominator(1001)
    rate = fps or in_rate
    first = Fraction(vin.start_time or 0) * (vin.time_base or 0)
    origin = first + Fraction(start).limit_denominator(1_000_000)
    limit = None if duration is None else _slot(Fraction(duration), rate)
    if limit == 0:
        raise ValueError(f"duration {duration} s is shorter than one frame at {float(rate)} fps")
    if start > 0:  # decode from the keyframe at or before the cut, not from the beginning
        inp.seek(math.floor(origin * av.time_base), backward=True)

    out.metadata.update({k: v for k, v in inp.metadata.items() if k.lower() not in _MUXER_KEYS})
    # The output size is what ``op`` makes of a picture of the source's size.
    w, h = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
    chroma = np.zeros((h // 2, w // 2), np.uint8)
    blank: Planes = (np.zeros((h, w), np.uint8), chroma, chroma)
    oh, ow = (op(blank) if op else blank)[0].shape
    vout = _video_stream(out, encoding, rate, (ow, oh), vin)
    aout, audio = None, None
    if ain is not None:
        aout = cast(AudioStream, out.add_stream(audio_codec, rate=_AUDIO_RATE))
        aout.layout = "stereo"
        aout.bit_rate = _AUDIO_BIT_RATE
        _copy_language(ain, aout)
        audio = _AudioCut(origin)
    retimer = _Retimer(rate, origin, limit, op)

    def write(pictures: Iterator[Planes]) -> None:
        for planes in pictures:
            frame = _planes_frame(planes)
            frame.pts, frame.time_base = retimer.shown - 1, vout.codec_context.time_base
            out.mux(vout.encode(frame))
        if audio is not None and aout is not None:  # audio up to the video written so far
            for chunk in audio.take(_samples(retimer.shown, rate)):
                out.mux(aout.encode(chunk))

    last_t, step = None, 1 / in_rate
    for packet in inp.demux(*([vin] if ain is None else [vin, ain])):
        if packet.stream is vin:
            for frame in vin.decode(packet):
                if frame.duration and frame.time_base:
                    step = Fraction(frame.duration) * frame.time_base
                last_t = _time(frame, last_t, step)
                write(retimer.push(last_t, _frame_planes(frame)))
            if retimer.full and (audio is None or audio.end >= _samples(retimer.shown, rate)):
                break
        elif audio is not None and ain is not None:
            for aframe in ain.decode(packet):
                audio.push(aframe)
    if last_t is not None:
        write(retimer.finish(last_t + step))
    if retimer.shown == 0:
        raise ValueError(f"start {start} s is past the end of the video")
    out.mux(vout.encode(None))
    if audio is not None and aout is not None:
        audio.push(None)
        for chunk in audio.take(_samples(retimer.shown, rate)):
            out.mux(aout.encode(chunk))
        out.mux(aout.encode(None))


def _samples(frames: int, rate: Fraction) -> int:
    """Audio samples in the span of ``frames`` video frames."""
    return math.floor(Fraction(frames) / rate * _AUDIO_RATE)


def _time(frame: VideoFrame, last: Fraction | None, step: Fraction) -> Fraction:
    if frame.pts is not None and frame.time_base is not None:
        return Fraction(frame.pts) * frame.time_base
    return Fraction(0) if last is None else last + step


def _video_stream(
    out: OutputContainer,
    encoding: _Encoding,
    rate: Fraction,
    size: tuple[int, int],
    vin: VideoStream,
) -> VideoStream:
    stream = cast(
        VideoStream, out.add_stream(encoding.codec, rate=rate, options=encoding.options())
    )
    cc = stream.codec_context
    cc.width, cc.height = size
    cc.pix_fmt = "yuv420p"
    cc.time_base = 1 / rate
    cc.thread_count = _THREADS
    if encoding.codec == "libvpx-vp9":
        cc.bit_rate = 0
    src = vin.codec_context  # colour tags travel with the pictures, as in ffmpeg
    cc.color_range, cc.colorspace = src.color_range, src.colorspace
    cc.color_primaries, cc.color_trc = src.color_primaries, src.color_trc
    _copy_language(vin, stream)
    return stream


def _copy_language(src: VideoStream | AudioStream, dst: VideoStream | AudioStream) -> None:
    language = src.metadata.get("language")
    if language:
        dst.metadata["language"] = language


# ---------------------------------------------------------------------------------------------
# The acceptance list

#: The attacks of the video acceptance list, by name: a function (source, dest) -> dest.
#: Give the VP9 one a ``.webm`` name for a WebM file (an ``.mp4`` name makes VP9 in MP4).
#: ``fps30`` is meant for 25 fps sources, ``fps24`` for 30 fps ones.
STANDARD: dict[str, VideoAttack] = {
    "x264-crf23": partial(reencode, crf=23),
    "x264-crf30": partial(reencode, crf=30),
    "x264-crf35": partial(reencode, crf=35),
    "x265-crf30": partial(reencode, codec="libx265", crf=30),
    "vp9-crf35": partial(reencode, codec="libvpx-vp9", crf=35),
    "480p": partial(scale, height=480),
    "360p": partial(scale, height=360),
    "fps30": partial(change_fps, fps=30),
    "fps24": partial(change_fps, fps=24),
    "crop10": partial(crop, fraction=0.1),
    "letterbox1080": partial(letterbox, size=(1920, 1080)),
    "tone": partial(tone, brightness=20, contrast=0.8),
    "grayscale": grayscale,
    "screen-record": partial(screen_record, scale=0.9, fps=30),
    "trim": partial(trim, start=2.0, duration=5.0),
    "trim+480p+crf32": reshare,
}
