"""Identification among 10⁵ originals: the ANN index (``leaktrace[index]``) against exact search.

    python benchmarks/index.py make   [--originals 100000]   # synthetic originals, cached
    python benchmarks/index.py run    [--originals 100000] [--leaks 100]

**The originals.** Variants of the 30 corpus photos (24 Kodak, six 10–24 MP photos scaled to
1,536 px): a crop of 35–90 % of the side at a random place and aspect (0.75–1.33), a rotation
of ±8° (a quarter turn one time in four), a mirror one time in two, a gain per channel
(0.85–1.15) and a gamma (0.8–1.25). Variant ``i`` is a pure function of ``i``, so any of them
can be made again. Overlapping crops of the same photo make this set harder than 10⁵ distinct
photos would be: many originals are near-duplicates of others.

What is stored per original is what the registry stores, made cheaply for the *distractors*:
the fingerprint (:func:`leaktrace.identify.fingerprint`) of the variant at 192 px, and 128 SIFT
descriptors of that 192-px image (the SIFT of a registered original runs on its 512-px working
grid and takes 0.3 s, which for 10⁵ originals would take hours on two cores). The *targets* —
the originals whose leaks are traced — are made at 768 px and registered exactly as the
workflow does: ``fingerprint(original)`` and ``features(original)``, of which the index keeps
:data:`leaktrace.registry.index.INDEXED_FEATURES`. The cache is written under
``/work/bench-data/index`` (``$LEAKTRACE_BENCH_DATA``).

**The leaks.** For each target: resized to 0.5 and JPEG 70; a 60 % crop (of the area) at a
random place, JPEG 85; a screenshot-like copy (scaled 0.8 into a UI frame, PNG).

**What is measured.** For each leak, the identification the trace runs: the leak's fingerprint
against the index, exact similarity of the index's candidates (rows loaded by id; here from
a memory map of the fingerprints), and the feature votes (SIFT of the leak, k-NN in the index).
Recall@shortlist: the target is among the originals detection would try. Time per leak: the
median, leak decoding excluded (it is the same for both). Exact search: the fingerprint over
all 10⁵ rows (numpy) and the feature votes with the FLANN matcher over all stored descriptors
(only up to 10⁴ originals: beyond, building its tree per leak takes longer than a minute).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from _common import HIGHRES, KODAK, require_corpus

import leaktrace as lt
from leaktrace.identify import (
    features,
    fingerprint,
)
from leaktrace.register import sift_features
from leaktrace.transform import luma

DATA = Path(os.environ.get("LEAKTRACE_BENCH_DATA", "/work/bench-data")) / "index"
SEED = 20240614
SMALL, LARGE = 192, 768
PER_DISTRACTOR = 128
TARGET_EVERY = 500  # one original in 500 is a target (200 of 10⁵)

_sources: list[np.ndarray] = []


def _load_sources() -> list[np.ndarray]:
    if not _sources:
        for path in [*KODAK, *HIGHRES]:
            img = lt.read_image(path)
            h, w = img.shape[:2]
            s = min(1.0, 1536 / max(h, w))
            if s < 1:
                img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            _sources.append(np.ascontiguousarray(img[..., :3]))
    return _sources


def variant(i: int, side: int) -> np.ndarray:
    """Synthetic original ``i``, its longer side ``side`` pixels."""
    sources = _load_sources()
    rng = np.random.default_rng([SEED, i])
    src = sources[int(rng.integers(len(sources)))]
    h, w = src.shape[:2]
    share = rng.uniform(0.35, 0.9)
    aspect = rng.uniform(0.75, 1.33)
    ch = min(h, int(share * min(h, w) * np.sqrt(1 / aspect)))
    cw = min(w, int(share * min(h, w) * np.sqrt(aspect) * (w / h if w > h else 1)))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    angle = float(rng.uniform(-8, 8))
    quarter = rng.random() < 0.25
    mirror = rng.random() < 0.5
    gains = rng.uniform(0.85, 1.15, 3)
    gamma = float(rng.uniform(0.8, 1.25))
    centre = (x0 + cw / 2, y0 + ch / 2)
    m = cv2.getRotationMatrix2D(centre, angle, 1.0)
    m[:, 2] += (cw / 2 - centre[0], ch / 2 - centre[1])
    # Shrink the box so that a rotated crop has no empty corners.
    rad = abs(np.deg2rad(angle))
    keep = 1 / (np.cos(rad) + np.sin(rad) * max(cw / ch, ch / cw))
    img = cv2.warpAffine(src, m, (cw, ch), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    kh, kw = int(ch * keep), int(cw * keep)
    img = img[(ch - kh) // 2 : (ch - kh) // 2 + kh, (cw - kw) // 2 : (cw - kw) // 2 + kw]
    if quarter:
        img = np.rot90(img)
    if mirror:
        img = img[:, ::-1]
    s = side / max(img.shape[:2])
    size = (max(16, round(img.shape[1] * s)), max(16, round(img.shape[0] * s)))
    img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
    lut = np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255)
    out = np.stack([np.clip(lut[img[..., c]] * gains[c], 0, 255) for c in range(3)], axis=-1)
    return np.rint(out).astype(np.uint8)


def is_target(i: int) -> bool:
    return i % TARGET_EVERY == TARGET_EVERY // 2


def _made(i: int) -> tuple[bytes, np.ndarray]:
    """Fingerprint and descriptors (uint8, up to PER_DISTRACTOR × 128) of original ``i``."""
    from leaktrace.registry.index import INDEXED_FEATURES, indexed_descriptors

    if is_target(i):
        img = variant(i, LARGE)
        desc = indexed_descriptors(features(img))[:INDEXED_FEATURES]
        return fingerprint(img), desc
    img = variant(i, SMALL)
    _, d = sift_features(luma(img), contrast=0.01, features=PER_DISTRACTOR)
    d = np.zeros((0, 128), np.uint8) if d is None else d[:PER_DISTRACTOR]
    return fingerprint(img), np.clip(np.rint(d), 0, 255).astype(np.uint8)


def _block(start: int, stop: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    prints = np.zeros((stop - start, 4352), np.int8)
    desc = np.zeros((stop - start, PER_DISTRACTOR, 128), np.uint8)
    counts = np.zeros(stop - start, np.int16)
    for k, i in enumerate(range(start, stop)):
        p, d = _made(i)
        prints[k] = np.frombuffer(p, np.int8)
        desc[k, : len(d)] = d
        counts[k] = len(d)
    return start, prints, desc, counts


def make(n: int, workers: int) -> None:
    """Compute and cache the originals' fingerprints and descriptors (resumable by block)."""
    DATA.mkdir(parents=True, exist_ok=True)
    step = 1000
    todo = [s for s in range(0, n, step) if not (DATA / f"block-{s:07d}.npz").exists()]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_block, s, min(n, s + step)) for s in todo]
        for done, fut in enumerate(futures, 1):
            start, prints, desc, counts = fut.result()
            part = DATA / f".block-{start:07d}.npz.part"
            with open(part, "wb") as fh:
                np.savez(fh, prints=prints, desc=desc, counts=counts)
            os.replace(part, DATA / f"block-{start:07d}.npz")
            print(f"{done}/{len(todo)} blocks, {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["make", "run"])
    parser.add_argument("--originals", type=int, default=100_000)
    parser.add_argument("--leaks", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    require_corpus()
    if args.stage == "make":
        make(args.originals, args.workers)


if __name__ == "__main__":
    main()
