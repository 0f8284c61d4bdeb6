"""Video robustness and false accusations: 60-second excerpts of marked copies after what
leakers do, traced among 1,000 candidates; and innocents never named.

    python benchmarks/video_robustness.py VIDEO [--work DIR] [--candidates 1000]
        [--excerpt 60] [--trials 500] [--settings crf=20,params=aq-mode=0]

VIDEO should be longer than the excerpt (made by ``make_long_video.py``). Its variants are made
once at ``--settings`` (as in ``video_psnr.py``; kept in ``--work`` for re-runs, so give
each setting its own ``--work``); for every attack, a recipient's copy is remuxed, a
seeded random ``--excerpt``-second part of it is cut and attacked, and ``detect_video`` tests
``--candidates`` candidates (the true one among them). Then the false-accusation check: the
soft symbols of excerpts of the *unmarked* video and of a copy for someone who is not a
candidate are scored against fresh sets of innocent candidates (``--trials`` sets of
``--candidates``), and every innocent score is compared with the stated bound.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from video_psnr import parse

from leaktrace.codes import VARIANT_CODE, code
from leaktrace.detect import Scorer
from leaktrace.keys import Key
from leaktrace.video import attacks, detect_video, make_variants, remux
from leaktrace.video.io import inspect_video
from leaktrace.video.variants import Plan

KEY = Key(bytes(range(32)))
MEDIA = "bench-video"

ATTACKS: dict[str, Callable[[Path, Path], Path]] = {
    "none": lambda s, d: attacks.reencode(s, d, crf=18),
    "x264 CRF 23": lambda s, d: attacks.reencode(s, d, crf=23),
    "x264 CRF 30": lambda s, d: attacks.reencode(s, d, crf=30),
    "x264 CRF 35": lambda s, d: attacks.reencode(s, d, crf=35),
    "x265 CRF 30": lambda s, d: attacks.reencode(s, d, codec="libx265", crf=30),
    "VP9 CRF 35": lambda s, d: attacks.reencode(
        s, d.with_suffix(".webm"), codec="libvpx-vp9", crf=35
    ),
    "480p": lambda s, d: attacks.scale(s, d, height=480),
    "360p": lambda s, d: attacks.scale(s, d, height=360),
    "fps 25→30": lambda s, d: attacks.change_fps(s, d, fps=30),
    "fps →24": lambda s, d: attacks.change_fps(s, d, fps=24),
    "crop 10 %": lambda s, d: attacks.crop(s, d, fraction=0.1),
    "letterbox 1920×1080": lambda s, d: attacks.letterbox(s, d, size=(1920, 1080)),
    "brightness +20 / contrast 0.8": lambda s, d: attacks.tone(s, d, brightness=20, contrast=0.8),
    "grayscale": lambda s, d: attacks.grayscale(s, d),
    "screen recording": lambda s, d: attacks.screen_record(s, d, scale=0.9, fps=30),
    "480p → CRF 32": lambda s, d: attacks.reencode(
        attacks.scale(s, d.with_name(d.stem + "-480.mp4"), height=480), d, crf=32
    ),
}


def _symbols(plan: Plan, handle: str) -> list[int]:
    c = code(KEY, plan.media_id, VARIANT_CODE, length=plan.segments).codeword(handle)
    return [int(v > 0) for v in c]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/leaktrace-video-bench"))
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--excerpt", type=float, default=60.0)
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--only", nargs="*", help="attack names to run (default: all)")
    ap.add_argument("--innocent", type=int, default=10, help="innocent excerpts to read")
    ap.add_argument("--settings", default="", help="variant encoder settings, key=value,...")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    folder = work / "variants"
    info = inspect_video(args.video)
    if (folder / "plan.json").exists():
        import json

        plan = Plan.from_json(json.loads((folder / "plan.json").read_text()))
    else:
        t = time.perf_counter()
        plan = make_variants(args.video, folder, KEY, MEDIA, settings=parse(args.settings))
        print(f"variants made in {time.perf_counter() - t:.0f} s")
    names = [f"r{i:04d}" for i in range(args.candidates)]
    rng = np.random.default_rng(7)
    span = max(0.0, info.duration - args.excerpt)
    print(
        f"\n## {args.video.name}: {info.width}×{info.height}, {info.duration:.0f} s; "
        f"{args.excerpt:.0f}-s excerpts, {args.candidates} candidates, threshold 1e-9\n"
    )
    print("| Attack | Traced | log10 p | z (true) | best innocent z | segments | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for k, (label, attack) in enumerate(ATTACKS.items()):
        if args.only is not None and label not in args.only:
            continue
        who = names[int(rng.integers(len(names)))]
        start = float(rng.uniform(0, span))
        copy = work / f"copy-{k}.mp4"
        remux(plan, folder, args.video, _symbols(plan, who), copy)
        excerpt = attacks.trim(
            copy, work / f"excerpt-{k}.mp4", start=start, duration=args.excerpt, crf=18
        )
        leak = attack(excerpt, work / f"leak-{k}.mp4")
        t = time.perf_counter()
        try:
            found = detect_video(leak, KEY, plan, folder, args.video, names)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
            print(f"| {label} | error: {exc} | | | | | |")
            continue
        spent = time.perf_counter() - t
        innocent = max(z for n, z in found.scores.items() if n != who)
        ok = "yes" if found.recipient == who else ("WRONG" if found.recipient else "no")
        segs = 0 if found.segments is None else len(found.segments)
        print(
            f"| {label} | {ok} | {found.log10_p_value:.1f} | {found.scores[who]:.2f} | "
            f"{innocent:.2f} | {segs} | {spent:.0f} |",
            flush=True,
        )
    # -- false accusations -------------------------------------------------------------
    if args.trials <= 0:
        return
    outsider = work / "outsider.mp4"
    remux(plan, folder, args.video, _symbols(plan, "outsider-not-a-candidate"), outsider)
    readings = []
    sources = [args.video, outsider] * ((args.innocent + 1) // 2)
    for i, source in enumerate(sources[: args.innocent]):
        start = float(rng.uniform(0, span))
        excerpt = attacks.trim(
            source, work / f"innocent-{i}.mp4", start=start, duration=args.excerpt, crf=23
        )
        found = detect_video(excerpt, KEY, plan, folder, args.video, names[:2])
        readings.append((found.symbols, found.segments))
    worst_p, zs, named = 0.0, [], 0
    per = max(1, args.trials // len(readings))
    for t_i, (q, segs) in enumerate(readings):
        for j in range(per):
            fresh = [f"innocent-{t_i}-{j}-{n}" for n in range(args.candidates)]
            scorer = Scorer(KEY, plan.media_id, fresh, length=plan.segments, default=VARIANT_CODE)
            found = scorer.judge(q, positions=segs)
            zs.append(np.array(list(found.scores.values())))
            worst_p = min(worst_p, next(iter(found.log10_p.values())))
            named += len(found.accused)
    allz = np.concatenate(zs)
    print(
        f"\nFalse accusations: {len(readings) * per} trials × {args.candidates} innocent "
        f"candidates ({allz.size:,} scores) on excerpts of the unmarked video and of an "
        f"outsider's copy: {named} named; smallest p {10**worst_p:.2g}.\n"
    )
    print("| z ≥ | innocent scores observed | Hoeffding bound × scores |")
    print("|---|---|---|")
    for t in (2, 3, 4, 5):
        print(f"| {t} | {(allz >= t).mean():.2e} | {math.exp(-t * t / 2):.2e} |")


if __name__ == "__main__":
    main()
