"""A recipient's copy: the variants their codeword picks, segment by segment, remuxed.

No decoding and no encoding: the chosen variant's packets of every segment are written in
order into a new file with the original's audio streams copied packet for packet (bit-exact),
its container and stream metadata (creation time, language, handler) and its rotation. The
variants share every timestamp and their segments start with IDR frames, so any sequence of
choices plays without drift; this is checked packet by packet.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import av

from ..errors import MediaError
from .variants import Plan

__all__ = ["MP4_AUDIO", "copy_suffix", "remux"]

#: Audio codecs an MP4 file can carry; others make the copy a Matroska file.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


def copy_suffix(audio: Sequence[str]) -> str:
    """File suffix of the copies of a video whose audio streams have these codecs."""
    return ".mp4" if set(audio) <= MP4_AUDIO else ".mkv"


def _packets(container: Any, stream: Any) -> Iterator[Any]:
    for packet in container.demux(stream):
        if packet.size:
            yield packet


def remux(
    plan: Plan,
    folder: str | os.PathLike[str],
    original: str | os.PathLike[str],
    symbols: Sequence[int],
    dest: str | os.PathLike[str],
) -> None:
    """Write to ``dest`` the copy whose segment ``s`` comes from variant ``symbols[s]``.

    ``folder`` holds the plan's variants, ``original`` is the unmarked source (for its audio
    and metadata). Raises :class:`MediaError` if the variants do not line up.
    """
    if len(symbols) < plan.segments:
        raise ValueError(f"{len(symbols)} symbols for {plan.segments} segments")
    folder = Path(folder)
    suffix = Path(dest).suffix.lower()
    fmt = "matroska" if suffix == ".mkv" else "mp4"
    inputs = [av.open(str(folder / name)) for name in plan.files]
    source = av.open(str(original), metadata_errors="ignore")
    out = av.open(
        str(dest), "w", format=fmt, options={"movflags": "+faststart"} if fmt == "mp4" else {}
    )
    try:
        out.metadata.update(
            {
                k: v
                for k, v in source.metadata.items()
                if k not in ("encoder", "major_brand", "minor_version", "compatible_brands")
            }
        )
        vins = [c.streams.video[0] for c in inputs]
        vout = out.add_stream_from_template(vins[0])
        src_video = source.streams.video[0]
        vout.metadata.update(src_video.metadata)
        if plan.rotation:
            vout.set_display_rotation(plan.rotation)
        audio_in = list(source.streams.audio)
        audio_out = []
        for a in audio_in:
            o = out.add_stream_from_template(a)
            o.metadata.update(a.metadata)
            audio_out.append(o)
        streams = [_packets(c, s) for c, s in zip(inputs, vins, strict=True)]
        tb = vins[0].time_base
        audio = _audio(source, audio_in, audio_out)
        pending = next(audio, None)
        seg = 0
        for slot in zip(*streams, strict=False):
            # Frames are reordered differently inside a segment (B-frames), but decoding
            # timestamps and the IDR frames that open segments are common to all variants.
            first = slot[0]
            if any(p.dts != first.dts or p.is_keyframe != first.is_keyframe for p in slot):
                raise MediaError("the variants are out of step: remake them")
            if first.is_keyframe:
                seg = max(0, bisect_right(plan.starts, first.pts) - 1)
            packet = slot[symbols[seg]]
            t = float(packet.dts * tb) if packet.dts is not None else 0.0
            while pending is not None and float(pending.dts * pending.time_base) <= t:
                out.mux(pending)
                pending = next(audio, None)
            packet.stream = vout
            out.mux(packet)
        while pending is not None:
            out.mux(pending)
            pending = next(audio, None)
    finally:
        out.close()
        source.close()
        for c in inputs:
            c.close()


def _audio(source: Any, streams: list[Any], outs: list[Any]) -> Iterator[Any]:
    """The original's audio packets in file order, each re-pointed at its output stream."""
    if not streams:
        return
    where = {s.index: o for s, o in zip(streams, outs, strict=True)}
    for packet in source.demux(streams):
        if packet.size and packet.dts is not None:
            packet.stream = where[packet.stream.index]
            yield packet
