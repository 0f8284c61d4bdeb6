"""Identification of a leaked video among 10⁴ registered videos: the keyframes' index
(:mod:`leaktrace.registry.keyframes`) against placing the leak in every video.

    python benchmarks/index_video.py [--videos 10000] [--leaks 60] [--exact-leaks 10]

**The videos.** What the index and ``locate`` see of a video is its per-frame 16×16
thumbnails, so only those are made: each video is 60 s at 5 frames a second (the index takes
one keyframe a second and one per shot, as at 25 fps) of 3–8 shots, a shot being a slow pan
and zoom (up to 30 % of the window, zoom 0.8–1.25) over a window of 20–60 % of one of the 30
corpus photos (grey, at most 320 px), squeezed to 16×16 as the workflow's thumbnails are.
Video ``i`` is a pure function of ``i``; the thumbnails are cached (uint8) under
``/work/bench-data/index_video`` (``$LEAKTRACE_BENCH_DATA``). With 30 photos under 10⁴ videos
many shots pan over the same places of the same photo: harder than 10⁴ distinct videos.

**The leaks.** An excerpt of 3–10 s of a random video, its frames taken a tenth of a second
off the original's (the path is continuous), then a tone change (gain 0.8–1.2, offset ±15)
and noise (σ = 4 grey levels) before the thumbnails are normalised.

**What is measured.** As :func:`leaktrace.videos.trace_video` does: the index's vote over
:data:`~leaktrace.video.detect.PROBES` leak thumbnails, then ``locate`` in the
:data:`~leaktrace.registry.keyframes.VIDEO_CANDIDATES` videos named, keeping those at
:data:`~leaktrace.video.detect.MATCH_SIMILARITY` or more, best three first; the exact path runs
``locate`` in every video (placing one costs about 20 ms, so it is timed over the first
``--exact-videos`` and the leak's own, scaled to all of them; its recall is over those).
Recall@shortlist: the leak's video is among those three. Time per leak: the median
(thumbnails already in memory for both; a real trace also reads the named videos'
``thumbs.npz``). FAISS runs on one thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from _common import HIGHRES, KODAK, require_corpus, table

import leaktrace as lt
from leaktrace.registry.keyframes import (
    VIDEO_CANDIDATES,
    build_keyframes,
    keyframe_vectors,
    nearest_videos,
)
from leaktrace.video.detect import MATCH_SIMILARITY, Timeline, locate, probe_thumbs, thumb_vectors

DATA = Path(os.environ.get("LEAKTRACE_BENCH_DATA", "/work/bench-data")) / "index_video"
SEED = 20240615
FPS = 5.0
SECONDS = 60
FRAMES = int(SECONDS * FPS)
SHORTLIST = 3

_sources: list[np.ndarray] = []


def _load_sources() -> list[np.ndarray]:
    if not _sources:
        for path in [*KODAK, *HIGHRES]:
            grey = cv2.cvtColor(
                np.ascontiguousarray(lt.read_image(path)[..., :3]), cv2.COLOR_RGB2GRAY
            )
            h, w = grey.shape
            s = min(1.0, 320 / max(h, w))
            _sources.append(
                cv2.resize(grey, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            )
    return _sources


def _shots(i: int) -> list[tuple[float, float, int, np.ndarray, np.ndarray]]:
    """Video ``i``'s shots: (start, end, source, window at start, window at end) with a window
    (x, y, w, h) in source pixels."""
    sources = _load_sources()
    rng = np.random.default_rng([SEED, i])
    cuts = np.sort(rng.uniform(0, SECONDS, int(rng.integers(2, 8))))
    bounds = [0.0, *cuts.tolist(), float(SECONDS)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        k = int(rng.integers(len(sources)))
        sh, sw = sources[k].shape
        h0 = rng.uniform(0.2, 0.6) * min(sh, sw / 1.6)
        w0 = 1.6 * h0
        zoom = rng.uniform(0.8, 1.25)
        h1, w1 = h0 * zoom, w0 * zoom
        x0, y0 = rng.uniform(0, sw - max(w0, w1)), rng.uniform(0, sh - max(h0, h1))
        x1 = float(np.clip(x0 + rng.uniform(-0.3, 0.3) * w0, 0, sw - w1))
        y1 = float(np.clip(y0 + rng.uniform(-0.3, 0.3) * h0, 0, sh - h1))
        out.append((a, b, k, np.array([x0, y0, w0, h0]), np.array([x1, y1, w1, h1])))
    return out


def render(i: int, times: np.ndarray) -> np.ndarray:
    """Video ``i``'s 16×16 thumbnails at ``times`` (uint8)."""
    sources = _load_sources()
    thumbs = np.empty((len(times), 16, 16), np.uint8)
    for a, b, k, w0, w1 in _shots(i):
        rows = np.flatnonzero((times >= a) & ((times < b) | (b >= SECONDS)))
        u = np.clip((times[rows] - a) / max(b - a, 1e-6), 0, 1)[:, None]
        for n, (x, y, w, h) in zip(rows, ((1 - u) * w0 + u * w1).astype(int), strict=True):
            crop = sources[k][y : y + h, x : x + w]
            thumbs[n] = cv2.resize(crop, (16, 16), interpolation=cv2.INTER_AREA)
    return thumbs


def videos(n: int) -> np.ndarray:
    """The thumbnails of videos 0..n-1 (n × FRAMES × 16 × 16, uint8; cached)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"thumbs-{n}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    times = np.arange(FRAMES) / FPS
    out = np.lib.format.open_memmap(
        path.with_suffix(".part.npy"), "w+", np.uint8, (n, FRAMES, 16, 16)
    )
    for i in range(n):
        out[i] = render(i, times)
    out.flush()
    del out
    os.replace(path.with_suffix(".part.npy"), path)
    return np.load(path, mmap_mode="r")


def leak(i: int, n: int) -> tuple[int, Timeline]:
    rng = np.random.default_rng([SEED, n, 1, i])
    target = int(rng.integers(n))
    length = rng.uniform(3, 10)
    start = rng.uniform(0, SECONDS - length)
    times = start + 0.1 + np.arange(int(length * FPS)) / FPS
    thumbs = render(target, times).astype(np.float32)
    thumbs = thumbs * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
    thumbs += rng.normal(0, 4, thumbs.shape)
    raw = np.clip(np.round(thumbs), 0, 255).astype(np.uint8)
    leak_times = times - start  # the leak starts at 0
    return target, Timeline(leak_times, (0, 0, 16, 16), thumb_vectors(raw), (16, 16))


def shortlist(timeline: Timeline, thumbs: np.ndarray, ids: list[int]) -> list[int]:
    """As :func:`leaktrace.videos.trace_video`: the videos the leak is placed in, best first."""
    times = np.arange(FRAMES) / FPS
    placed = []
    for v in ids:
        _, sim = locate(timeline, times, np.asarray(thumbs[v]), FPS)
        if sim >= MATCH_SIMILARITY:
            placed.append((sim, v))
    placed.sort(key=lambda p: -p[0])
    return [v for _, v in placed[:SHORTLIST]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10000)
    parser.add_argument("--leaks", type=int, default=60)
    parser.add_argument("--exact-leaks", type=int, default=10)
    parser.add_argument("--exact-videos", type=int, default=300)
    args = parser.parse_args()
    require_corpus()
    import faiss

    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    thumbs = videos(args.videos)
    made = time.perf_counter() - t0
    times = np.arange(FRAMES) / FPS
    t0 = time.perf_counter()
    parts = [keyframe_vectors(times, np.asarray(thumbs[i])) for i in range(args.videos)]
    owners = np.repeat(np.arange(args.videos), [len(p) for p in parts])
    vectors = np.concatenate(parts)
    index = build_keyframes(vectors, owners)
    built = time.perf_counter() - t0
    found, exact_found, spent, exact_spent = 0, 0, [], []
    for i in range(args.leaks):
        target, timeline = leak(i, args.videos)
        t0 = time.perf_counter()
        named = shortlist(timeline, thumbs, nearest_videos(index, probe_thumbs(timeline)))
        spent.append(time.perf_counter() - t0)
        found += target in named
        if i < args.exact_leaks:
            t0 = time.perf_counter()
            among = sorted({*range(min(args.exact_videos, args.videos)), target})
            exact = shortlist(timeline, thumbs, among)
            exact_spent.append((time.perf_counter() - t0) / len(among) * args.videos)
            exact_found += target in exact
    kind = "IVF-SQ8" if index.__class__.__name__.startswith("IndexIVF") else "flat"
    print(
        f"{args.videos} videos × {SECONDS} s: {len(vectors)} keyframes ({kind}, "
        f"{vectors.nbytes / len(vectors) / 4:.0f}-d), thumbnails made/loaded in {made:.0f} s, "
        f"index built in {built:.0f} s; {VIDEO_CANDIDATES} videos placed per leak\n"
    )
    rows = [
        ["index", args.leaks, f"{found / args.leaks:.1%}", f"{statistics.median(spent) * 1e3:.1f}"],
    ]
    if exact_spent:
        rows.append(
            [
                f"exact (locate in every video; timed over {min(args.exact_videos, args.videos)}, "
                f"scaled to {args.videos})",
                len(exact_spent),
                f"{exact_found / len(exact_spent):.1%}",
                f"{statistics.median(exact_spent) * 1e3:.1f}",
            ]
        )
    print(table(["search", "leaks", "recall@3", "ms per leak (median)"], rows))


if __name__ == "__main__":
    main()
