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
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from _common import HIGHRES, KODAK, require_corpus, table

import leaktrace as lt
from leaktrace import attacks
from leaktrace.identify import (
    features,
    fingerprint,
    print_vectors,
    probe_descriptors,
    shortlist,
)
from leaktrace.register import sift_features
from leaktrace.registry.index import (
    CANDIDATES,
    build_features,
    build_prints,
    nearest_prints,
    voted_ids,
)
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


def _load(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cached originals 0..n-1: fingerprints (int8 rows), descriptors and their owners."""
    prints, desc, owners = [], [], []
    for start in range(0, n, 1000):
        path = DATA / f"block-{start:07d}.npz"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `python benchmarks/index.py make` first")
        with np.load(path) as block:
            counts = block["counts"].astype(np.intp)
            prints.append(block["prints"])
            desc.append(np.concatenate([d[:c] for d, c in zip(block["desc"], counts, strict=True)]))
            owners.append(np.repeat(np.arange(start, start + len(counts)), counts))
    return np.concatenate(prints)[:n], np.concatenate(desc), np.concatenate(owners)


LEAKS = {
    "resize 0.5 + JPEG 70": lambda img, i: attacks.jpeg(attacks.rescale(img, 0.5), 70),
    "crop 60 % + JPEG 85": lambda img, i: attacks.jpeg(
        attacks.crop(img, 0.6, at=tuple(np.random.default_rng(i).random(2))), 85
    ),
    "screenshot 0.8": lambda img, i: attacks.screenshot(img, 0.8, seed=i),
}


def _size(index: object, path: Path) -> float:
    import faiss

    faiss.write_index(index, str(path))
    return path.stat().st_size / 1e6


def run(n: int, leaks: int, exact_features: int) -> None:
    """Build the index of n originals and identify leaks of the targets through it."""
    import faiss

    t0 = time.perf_counter()
    prints, desc, owners = _load(n)
    vectors = np.concatenate(
        [print_vectors([r.tobytes() for r in prints[s : s + 5000]]) for s in range(0, n, 5000)]
    )
    ids = np.arange(n, dtype=np.int64)
    print(f"loaded {n} originals, {len(desc)} descriptors in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    pidx = build_prints(vectors, ids)
    t_prints = time.perf_counter() - t0
    t0 = time.perf_counter()
    fidx = build_features(desc, owners)
    t_feats = time.perf_counter() - t0
    out = DATA / f"run-{n}"
    out.mkdir(exist_ok=True)
    mb = _size(pidx, out / "prints.faiss"), _size(fidx, out / "features.faiss")
    t0 = time.perf_counter()
    faiss.read_index(str(out / "prints.faiss"))
    faiss.read_index(str(out / "features.faiss"))
    t_read = time.perf_counter() - t0
    print(
        f"index of {n} originals: prints {t_prints:.0f} s, {mb[0]:.0f} MB; features "
        f"{t_feats:.0f} s, {mb[1]:.0f} MB ({len(desc)} descriptors); read back {t_read:.1f} s"
    )
    exact_bank = None
    if exact_features:
        exact_bank = faiss.IndexIDMap2(faiss.IndexFlatL2(128))
        exact_bank.add_with_ids(desc.astype(np.float32), owners.astype(np.int64))
    targets = [i for i in range(n) if is_target(i)][:leaks]
    rows = []
    for kind, attack in LEAKS.items():
        found = {"index": [], "exact": [], "prints": [], "features": [], "exact features": []}
        times = {"index": [], "search": [], "exact": []}
        for k, i in enumerate(targets):
            leak = attack(variant(i, LARGE), i)
            t0 = time.perf_counter()
            probe = fingerprint(leak)
            probe_desc = probe_descriptors(leak)
            t1 = time.perf_counter()
            near = sorted(nearest_prints(pidx, probe))
            similar = [near[j] for j in shortlist(probe, [prints[j].tobytes() for j in near])]
            votes = voted_ids(fidx, probe_desc)
            t2 = time.perf_counter()
            times["index"].append(t2 - t0)
            times["search"].append(t2 - t1)
            found["index"].append(i in similar + votes)
            found["prints"].append(i in similar)
            found["features"].append(i in votes)
            # Exact: every fingerprint scored, the same shortlist rule on the best of them.
            t0 = time.perf_counter()
            sims = vectors @ print_vectors([probe])[0]
            best = np.sort(np.argpartition(-sims, CANDIDATES)[:CANDIDATES])
            exact = [int(best[j]) for j in shortlist(probe, [prints[j].tobytes() for j in best])]
            times["exact"].append(time.perf_counter() - t0)
            found["exact"].append(i in exact)
            if exact_bank is not None and k < exact_features:
                found["exact features"].append(i in voted_ids(exact_bank, probe_desc))
        rows.append(
            [
                kind,
                len(targets),
                f"{np.mean(found['index']):.0%}",
                f"{np.mean(found['prints']):.0%}",
                f"{np.mean(found['exact']):.0%}",
                f"{np.mean(found['features']):.0%}",
                f"{np.mean(found['exact features']):.0%}" if found["exact features"] else "–",
                f"{statistics.median(times['index']):.3f}",
                f"{statistics.median(times['search']):.3f}",
                f"{statistics.median(times['exact']):.3f}",
            ]
        )
    print()
    print(f"{n} originals, {len(desc)} descriptors indexed")
    print()
    print(
        table(
            [
                "leak",
                "leaks",
                "recall@shortlist (index)",
                "fingerprint: index",
                "fingerprint: exact",
                "features: index",
                f"features: exact (first {exact_features})",
                "s / leak (index, median)",
                "of which searches",
                "s / leak exact fingerprint",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["make", "run"])
    parser.add_argument("--originals", type=int, default=100_000)
    parser.add_argument("--leaks", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--exact-features",
        type=int,
        default=0,
        help="the first N leaks also voted by brute force over every descriptor (all of them "
        "held as float32: 6 GB and minutes per leak at 10⁵ originals; for 10⁴ or fewer)",
    )
    args = parser.parse_args()
    require_corpus()
    if args.stage == "make":
        make(args.originals, args.workers)
    else:
        run(args.originals, args.leaks, args.exact_features)


if __name__ == "__main__":
    main()
