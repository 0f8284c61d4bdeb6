"""Run every video attack of ``leaktrace.video.attacks.STANDARD`` on one clip; print a table.

    python benchmarks/video_attacks.py CLIP [--out DIR] [--only NAME ...]

For each attack: its wall time (and as a multiple of the clip's duration), and what it wrote
(size, picture, rate, frames, duration, audio) as read back by a full decode. A 10 s 1080p
clip to try it on: ``python benchmarks/make_long_video.py clip.mp4 --minutes 0.1667``.
The outputs go to ``--out`` (default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
from _common import table

from leaktrace.video import attacks


def describe(path: Path) -> list[object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        rate = v.average_rate
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else "-"
        return [
            f"{path.stat().st_size / 1e6:.2f} MB",
            f"{v.codec_context.width}×{v.codec_context.height}",
            v.codec_context.name,
            f"{float(rate):.3f}",
            frames,
            f"{float(frames / rate):.2f} s",
            audio,
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, choices=list(attacks.STANDARD))
    args = parser.parse_args()
    names = args.only or list(attacks.STANDARD)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        with av.open(str(args.clip)) as c:
            v = c.streams.video[0]
            seconds = float(v.frames / v.average_rate) if v.frames else float(c.duration or 0) / 1e6
        rows = [["(source)", "", "", *describe(args.clip)]]
        for name in names:
            dest = out / f"{name}{'.webm' if name.startswith('vp9') else '.mp4'}"
            t = time.perf_counter()
            attacks.STANDARD[name](args.clip, dest)
            took = time.perf_counter() - t
            rows.append([name, f"{took:.1f} s", f"{took / seconds:.2f}×", *describe(dest)])
    header = ["attack", "time", "÷ length", "size", "picture", "codec", "fps", "frames"]
    print(f"{args.clip.name}, {seconds:.2f} s; {os.cpu_count()} cores\n")
    print(table([*header, "duration", "audio"], rows))


if __name__ == "__main__":
    main()
