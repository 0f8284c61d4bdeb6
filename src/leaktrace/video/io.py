"""Reading videos: the video engine's only module that opens files for reading.

:func:`inspect_video` opens the container and decodes its first frame only, and refuses with a
one-line :class:`~leaktrace.MediaError` naming the file anything that should not be worked on:
a missing or empty file, data that is not a video container, a file with no video stream
(audio only, a picture), a frame size the engine cannot mark, and a file whose index or data
ends before its streams say it does (truncated). :func:`frames` then decodes luma planes (and
the full YUV picture when asked) with their times.

Videos are read as stored: the rotation a player applies is reported (``rotation``) and kept on
copies, never applied to pixels. Pictures of more than 8 bits a sample, and 4:2:2 / 4:4:4
chroma, are converted to 8-bit 4:2:0 — what the copies are encoded in — and say so in
``notes``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import MediaError, UnsupportedMediaError
from ..media import VIDEO_SUFFIXES, is_video
from ..transform import check_shape

__all__ = ["SUFFIXES", "VideoFrame", "VideoInfo", "frames", "inspect_video", "is_video"]

SUFFIXES = VIDEO_SUFFIXES
#: Largest frame accepted (8K UHD); larger is refused before decoding.
MAX_FRAME_PIXELS = 7680 * 4320
#: A stream whose decoded duration falls this far short of the declared one is truncated.
_SHORT = 0.9


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its header and first frame."""

    path: Path
    width: int
    height: int
    fps: float
    duration: float
    frames: int
    rotation: int
    codec: str
    pix_fmt: str
    audio: tuple[str, ...]
    container: str
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its time (seconds from the stream's first frame), its luma plane
    (uint8, H×W) and, when asked for, its full 8-bit 4:2:0 picture (H·3/2 × W, FFmpeg's
    ``yuv420p`` layout)."""

    index: int
    time: float
    pts: int
    luma: np.ndarray
    yuv: np.ndarray | None = None


def _fail(path: Path, why: str) -> MediaError:
    return MediaError(f"{path.name}: {why}")


def inspect_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path``'s header and first frame; raise :class:`MediaError` when it cannot be
    worked on (see the module docstring)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise _fail(p, f"cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise _fail(p, "is empty")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaError(f"{p.name}: not a video file leaktrace can read") from exc
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            what = ("only " + " and ".join(kinds)) if kinds else "no streams"
            raise UnsupportedMediaError(f"{p.name}: has no video stream ({what})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        w, h = int(ctx.width), int(ctx.height)
        if w * h > MAX_FRAME_PIXELS:
            raise _fail(p, f"frames of {w}×{h} are larger than 8K ({MAX_FRAME_PIXELS:,} pixels)")
        try:
            check_shape((h, w))
        except Exception as exc:
            raise _fail(p, str(exc)) from exc
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        count = int(stream.frames or 0) or (round(duration * fps) if fps else 0)
        try:
            first = next(container.decode(stream))
        except (StopIteration, av.error.FFmpegError) as exc:
            raise _fail(p, "is truncated or damaged: no video frame can be decoded") from exc
        notes = []
        fmt = first.format.name
        if fmt not in ("yuv420p", "yuvj420p"):
            notes.append(f"{fmt} pictures are converted to 8-bit 4:2:0")
        if w % 2 or h % 2:
            notes.append(f"an odd frame size ({w}×{h}) is cropped to even by one pixel")
        if fps <= 0 or not math.isfinite(fps):
            raise _fail(p, "has no frame rate")
        audio = tuple(s.codec_context.name for s in container.streams.audio)
        rotation = int(round(first.rotation or 0)) % 360
        info = VideoInfo(
            path=p,
            width=w,
            height=h,
            fps=fps,
            duration=duration,
            frames=count,
            rotation=rotation,
            codec=ctx.name,
            pix_fmt=fmt,
            audio=audio,
            container=container.format.name,
            notes=tuple(notes),
        )
    _check_complete(info)
    return info


def _check_complete(info: VideoInfo) -> None:
    """Refuse a file whose packets stop well before its declared duration (a cut download):
    reading packet headers only, no decoding."""
    if info.duration <= 0:
        return
    last = 0.0
    try:
        with av.open(str(info.path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            start = stream.start_time or 0
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    end = (packet.pts - start + (packet.duration or 0)) * packet.time_base
                    last = max(last, float(end))
    except av.error.FFmpegError as exc:
        raise _fail(info.path, f"is truncated or damaged ({exc.strerror})") from exc
    if last < _SHORT * info.duration - 0.5:
        raise _fail(
            info.path,
            f"is truncated: its video stops at {last:.1f} s of the {info.duration:.1f} s "
            "it declares",
        )


def frames(
    path: str | os.PathLike[str], *, yuv: bool = False, start: float = 0.0
) -> Iterator[VideoFrame]:
    """Decode the first video stream of ``path`` from ``start`` seconds (stream time, from its
    first frame) to the end, frame by frame, in presentation order.

    Frames are cropped to an even size (4:2:0 needs it). A decoding error mid-way raises
    :class:`MediaError`.
    """
    p = Path(path)
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise UnsupportedMediaError(f"{p.name}: not a video file leaktrace can read") from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90000)
        origin: int | None = None
        if start > 0:
            first = stream.start_time or 0
            container.seek(first + int(start / tb), stream=stream, backward=True)
            origin = first
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if origin is None:
                    origin = frame.pts
                t = float((frame.pts - origin) * tb)
                if t < start - 1e-6:
                    continue
                w, h = frame.width & ~1, frame.height & ~1
                if (w, h) != (frame.width, frame.height):
                    pic = _even(frame, w, h)
                    luma = pic[:h]
                elif yuv or frame.format.name not in ("yuv420p", "yuvj420p", "gray"):
                    if frame.format.name not in ("yuv420p", "yuvj420p"):
                        frame = frame.reformat(format="yuv420p")
                    pic = frame.to_ndarray(format="yuv420p")
                    luma = pic[:h]
                else:
                    plane = frame.planes[0]
                    raw = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
                    luma = raw[:h, :w]
                    pic = None
                yield VideoFrame(index, t, int(frame.pts or 0), luma, pic if yuv else None)
                index += 1
        except av.error.FFmpegError as exc:
            raise _fail(p, f"cannot be decoded past frame {index} ({exc.strerror})") from exc


def _even(frame: av.VideoFrame, w: int, h: int) -> np.ndarray:
    """A frame of an odd width or height as an 8-bit 4:2:0 picture cropped to ``w``×``h``
    (even): through 4:4:4, whose planes can be cropped anywhere, chroma averaged 2×2."""
    planes = frame.reformat(format="yuv444p").to_ndarray(format="yuv444p")
    if planes.shape[0] != 3:  # (H, W, 3) in some PyAV versions
        planes = np.moveaxis(planes, -1, 0)
    y = planes[0, :h, :w]
    chroma = [
        np.rint(p[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))).astype(np.uint8)
        for p in planes[1:3]
    ]
    return np.concatenate([y.ravel(), *(c.ravel() for c in chroma)]).reshape(-1, w)
