"""Video quality: each variant's luma PSNR against an unmarked encode at the same settings.

    python benchmarks/video_psnr.py VIDEO [CONFIG ...] [--repeat 1]

A CONFIG is ``key=value`` pairs joined by commas, over :class:`Settings`' fields (``crf``,
``preset``, ``strength``, ``params`` — extra x264 parameters, ``a=1:b=2``); none gives the
defaults. For each CONFIG the video is encoded unmarked (strength 0) and as its two variants at
exactly those settings (a setting applies to all three encodes), then decoded in step with the
source, frame by frame. The table gives each variant's luma PSNR against the unmarked encode
(worst frame, 5th percentile, mean, over both variants), the mark's own PSNR against the source
(what is added before encoding: mean and worst frame), the unmarked encode's PSNR against the
source (the encoder's own noise: mean, worst frame, and on the frames where the variants are
worst), the variants' PSNR against the source (mean, worst frame) and what they lose against
the unmarked encode's (its PSNR against the source minus theirs, frame by frame: mean and
largest), where the worst frames fall (I, P or B frames of the unmarked encode), how far the
unmarked encode is from itself made with one x264 thread instead of as many as x264 picks
(the same settings otherwise: the floor any marked encode is compared against), the unmarked
encode's seconds and size, and the two variants' seconds (median over ``--repeat``) and size
against it.

``strength=0.1`` changes about twenty pixels a frame by one level (the mark at 90 dB): its row
shows how far x264 moves for next to nothing. The machine's load changes the seconds, not the
PSNR (x264's output depends on its thread count, not on time).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from leaktrace.keys import Key
from leaktrace.video.io import frames, inspect_video
from leaktrace.video.variants import Settings, _encode, _marked, _Marker, make_variants

KEY = Key(bytes(range(32)))
MEDIA = "bench"
COLUMNS = [
    "Settings",
    "variant vs unmarked: min",
    "p5",
    "mean",
    "mark vs source: mean / min",
    "unmarked vs source: mean / min / on worst 5 %",
    "variant vs source: mean / min",
    "dB lost vs source: mean / worst frame",
    "worst 5 % in",
    "unmarked on 1 thread vs unmarked: min / mean",
    "unmarked s",
    "variants ÷ unmarked time",
    "unmarked MB",
    "variant ÷ unmarked size",
]


def plain_encode(video: Path, dest: Path, settings: Settings) -> None:
    """The unmarked encode of ``video`` at ``settings`` (same options, same forced IDRs)."""
    info = inspect_video(video)
    zero = replace(settings, strength=0.0)
    _encode(info, _Marker(KEY, MEDIA, info, zero), [(dest, 1.0)], progress=None, stop=None)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def picture_types(video: Path) -> list[str]:
    """Each frame's type (I, P, B) in presentation order."""
    with av.open(str(video)) as c:
        return [PictureType(f.pict_type).name for f in c.decode(video=0)]


def per_frame(plain: Path, variant: Path, source: Path, settings: Settings) -> dict[str, list]:
    """Per-frame luma PSNR: variant vs unmarked encode, unmarked encode and variant vs
    source, and the mark as added (before encoding) vs the source."""
    info = inspect_video(source)
    marker = _Marker(KEY, MEDIA, info, settings)
    out: dict[str, list] = {"variant": [], "plain": [], "marked": [], "mark": []}
    for fa, fb, fo in zip(frames(plain), frames(variant), frames(source), strict=False):
        out["variant"].append(psnr(fa.luma, fb.luma))
        out["plain"].append(psnr(fa.luma, fo.luma))
        out["marked"].append(psnr(fb.luma, fo.luma))
        out["mark"].append(psnr(_marked(fo.luma, marker.change(fo.luma, fo.time), [1])[0], fo.luma))
    return out


def parse(config: str) -> Settings:
    """``crf=20,params=aq-mode=0:bframes=0`` as variant-mode :class:`Settings`."""
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, object] = {}
    for item in filter(None, config.split(",")):
        name, _, value = item.partition("=")
        if name not in known:
            raise SystemExit(f"unknown setting {name!r}; known: {', '.join(known)}")
        kind = {"int": int, "float": float}.get(str(known[name]), str)
        try:
            values[name] = kind(value)
        except ValueError:
            raise SystemExit(f"{name} must be a number, not {value!r}") from None
    return Settings(mode="variants", **values)  # type: ignore[arg-type]


def measure(video: Path, settings: Settings, work: Path, repeat: int) -> list[object]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        plain_encode(video, work / "plain.mp4", settings)
        p = time.perf_counter() - t
        t = time.perf_counter()
        plan = make_variants(video, work / "v", KEY, MEDIA, settings=settings)
        times.append((p, time.perf_counter() - t))
    plain_s, variants_s = (statistics.median(x) for x in zip(*times, strict=True))
    one = replace(settings, params=":".join(filter(None, [settings.params, "threads=1"])))
    plain_encode(video, work / "one.mp4", one)
    twin = [
        psnr(a.luma, b.luma)
        for a, b in zip(frames(work / "plain.mp4"), frames(work / "one.mp4"), strict=False)
    ]
    kinds = picture_types(work / "plain.mp4")
    runs = [per_frame(work / "plain.mp4", work / "v" / f, video, settings) for f in plan.files]
    var = np.concatenate([r["variant"] for r in runs])
    plain = np.concatenate([r["plain"] for r in runs])
    marked = np.concatenate([r["marked"] for r in runs])
    worst = var <= np.percentile(var, 5)
    where = Counter(kinds[i % len(kinds)] for i in np.flatnonzero(worst))
    size = (work / "plain.mp4").stat().st_size
    vsize = sum((work / "v" / f).stat().st_size for f in plan.files) / len(plan.files)
    return [
        f"{var.min():.2f}",
        f"{np.percentile(var, 5):.2f}",
        f"{var.mean():.2f}",
        f"{np.mean(runs[0]['mark']):.2f} / {np.min(runs[0]['mark']):.2f}",
        f"{plain.mean():.2f} / {plain.min():.2f} / {plain[worst].mean():.2f}",
        f"{marked.mean():.2f} / {marked.min():.2f}",
        f"{np.mean(plain - marked):.2f} / {np.max(plain - marked):.2f}",
        " ".join(f"{k}{n}" for k, n in sorted(where.items())),
        f"{min(twin):.2f} / {np.mean(twin):.2f}",
        f"{plain_s:.1f}",
        f"{variants_s / plain_s:.2f}",
        f"{size / 1e6:.2f}",
        f"{vsize / size:.3f}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("configs", nargs="*", default=[""])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    settings = [parse(c) for c in args.configs]
    info = inspect_video(args.video)
    print(
        f"## {args.video.name}: {info.width}×{info.height}, {info.frames} frames; "
        f"luma PSNR (dB), times median of {args.repeat}\n"
    )
    print("| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|")
    for config, s in zip(args.configs, settings, strict=True):
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(args.video, s, Path(tmp), args.repeat)
        print(f"| {config or 'defaults'} | " + " | ".join(map(str, row)) + " |", flush=True)


if __name__ == "__main__":
    main()
