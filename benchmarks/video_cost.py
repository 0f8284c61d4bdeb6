"""Video cost and quality: variants + N remuxed copies against one plain decode + encode.

    python benchmarks/video_cost.py VIDEO [--copies 100] [--repeat 3]

Prints a markdown table (medians over ``--repeat`` runs, ratios measured within each run),
in wall-clock seconds and in this process's CPU seconds (all threads, x264's included: on a
shared machine the CPU ratio does not move with other people's load):
the plain transcode at the variants' encoder settings (same x264 options, same forced IDR
every segment, no mark), making the two variants, one remuxed copy, and the total for
``--copies`` copies as a multiple of the plain transcode; the disk the variants take; each
variant's luma PSNR against the unmarked encode (worst frame and mean); and the mark's
frame-to-frame change in static regions (pixels whose unmarked encode changes by < 1 level
between two frames), inside segments and across segment boundaries.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from video_psnr import KEY, plain_encode, psnr

from leaktrace.codes import VARIANT_CODE, code
from leaktrace.video.io import frames, inspect_video
from leaktrace.video.remux import remux
from leaktrace.video.variants import Settings, make_variants, segment_index


def _quality(
    plain: Path, variant: Path, source: Path, segment: float, fps: float
) -> dict[str, float]:
    """Luma PSNR and static-region change, frame by frame (three decoders in step)."""
    vs_unmarked, vs_plain, vs_variant, inside, across = [], [], [], [], []
    prev: tuple[np.ndarray, np.ndarray] | None = None
    for i, (fa, fb, fo) in enumerate(
        zip(frames(plain), frames(variant), frames(source), strict=False)
    ):
        x, y, o = (f.luma.astype(np.float32) for f in (fa, fb, fo))
        vs_unmarked.append(psnr(x, y))
        if i % 10 == 0:
            vs_plain.append(psnr(x, o))
            vs_variant.append(psnr(y, o))
        if prev is not None:
            still = np.abs(x - prev[0]) < 1.0
            if still.mean() > 0.05:
                added = np.abs((y - x) - (prev[1] - prev[0]))[still]
                boundary = segment_index(i / fps, segment=segment) != segment_index(
                    (i - 1) / fps, segment=segment
                )
                (across if boundary else inside).append(float(added.mean()))
        prev = (x, y)
    return {
        "source_plain": float(np.mean(vs_plain)),
        "source_variant": float(np.mean(vs_variant)),
        "psnr_min": min(vs_unmarked),
        "psnr_mean": float(np.mean(vs_unmarked)),
        "flicker_inside": float(np.mean(inside)) if inside else float("nan"),
        "flicker_boundary": float(np.mean(across)) if across else float("nan"),
    }


def _clock(since: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads), less ``since``."""
    return time.perf_counter() - since[0], time.process_time() - since[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--crf", type=int, default=Settings.crf)
    ap.add_argument("--params", default="", help="extra x264 parameters")
    ap.add_argument("--no-quality", action="store_true", help="skip the PSNR / flicker pass")
    args = ap.parse_args()
    settings = Settings(mode="variants", strength=args.strength, crf=args.crf, params=args.params)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(args.repeat):
            t = _clock()
            plain_encode(args.video, work / "plain.mp4", settings)
            plain = _clock(t)
            t = _clock()
            plan = make_variants(args.video, work / f"v{r}", KEY, "bench", settings=settings)
            variants = _clock(t)
            n = min(args.copies, 10)
            t = _clock()
            for i in range(n):
                symbols = [
                    int(v > 0)
                    for v in code(KEY, "bench", VARIANT_CODE, length=plan.segments).codeword(
                        f"r{i}"
                    )
                ]
                remux(plan, work / f"v{r}", args.video, symbols, work / f"copy{i}.mp4")
            wall, cpu = _clock(t)
            runs.append((plain, variants, (wall / n, cpu / n)))
        med = [
            tuple(statistics.median(run[k][j] for run in runs) for j in (0, 1)) for k in range(3)
        ]
        (plain, plain_cpu), (variants, variants_cpu), (copy, copy_cpu) = med
        ratios = [(v[0] + args.copies * c[0]) / p[0] for p, v, c in runs]
        cpu_ratios = [(v[1] + args.copies * c[1]) / p[1] for p, v, c in runs]
        disk = sum((work / "v0" / f).stat().st_size for f in plan.files)
        size_copy = (work / "copy0.mp4").stat().st_size
        size_variant = (work / "v0" / plan.files[0]).stat().st_size
        with av.open(str(work / "copy0.mp4")) as c:
            audio = sum(p.size for p in c.demux(audio=0)) if c.streams.audio else 0
        q = (
            []
            if args.no_quality
            else [
                _quality(
                    work / "plain.mp4", work / "v0" / f, args.video, settings.segment, plan.fps
                )
                for f in plan.files
            ]
        )
    info = inspect_video(args.video)
    print(
        f"## {args.video.name}: {info.width}×{info.height}, {info.duration:.1f} s, "
        f"{plan.segments} segments of {settings.segment} s; x264 crf {settings.crf} "
        f"preset {settings.preset}; median of {args.repeat}\n"
    )
    print("| What | Seconds | ÷ plain transcode | CPU seconds | ÷ plain (CPU) |")
    print("|---|---|---|---|---|")
    print(f"| plain decode + encode | {plain:.2f} | 1 | {plain_cpu:.2f} | 1 |")
    print(
        f"| two variants | {variants:.2f} | {variants / plain:.2f} | {variants_cpu:.2f} | "
        f"{variants_cpu / plain_cpu:.2f} |"
    )
    print(
        f"| one copy (remux) | {copy:.3f} | {copy / plain:.4f} | {copy_cpu:.3f} | "
        f"{copy_cpu / plain_cpu:.4f} |"
    )
    print(
        f"| variants + {args.copies} copies | {variants + args.copies * copy:.1f} | "
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | "
        f"{variants_cpu + args.copies * copy_cpu:.1f} | {statistics.median(cpu_ratios):.2f} "
        f"({min(cpu_ratios):.2f}–{max(cpu_ratios):.2f}) |"
    )
    print(
        f"\nVariants on disk: {disk / 1e6:.1f} MB ({disk / info.path.stat().st_size:.2f}× the "
        f"original). Copy video ÷ variant size: {(size_copy - audio) / size_variant:.4f}.\n"
    )
    if not q:
        return
    print(
        "| Variant | PSNR vs unmarked encode: min | mean | vs source: unmarked encode | "
        "variant | static-pixel change added, inside segments | at boundaries |"
    )
    print("|---|---|---|---|---|---|---|")
    for k, m in enumerate(q):
        print(
            f"| v{k} | {m['psnr_min']:.2f} | {m['psnr_mean']:.2f} | {m['source_plain']:.2f} | "
            f"{m['source_variant']:.2f} | {m['flicker_inside']:.3f} | "
            f"{m['flicker_boundary']:.3f} |"
        )


if __name__ == "__main__":
    main()
