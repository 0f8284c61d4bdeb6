"""Collusion on real photos: c recipients combine their copies of a Kodak photo, then JPEG 75;
who is named, informed and blind, among 1,000 candidates at threshold 1e-9?

    python benchmarks/collusion_photos.py [--trials 200] [--photos 24] [--code random-v1]
        [--workers 2]

Per c = 2, 3, 4, 6, ``--trials`` trials cycle through the strategies, each photo in turn:
per-pixel average, median, minimum, maximum (alternating), interleaves of 64-px and 8-px
tiles, and a per-pixel random pick among the copies. The colluders are c of the candidates;
everyone else is innocent. A trial *catches* when at least one colluder is named, names *all*
when every colluder is, and is a *false accusation* when anyone else is named. Prints a
markdown table.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _common import KODAK, require_corpus, table

import leaktrace as lt
from leaktrace import attacks
from leaktrace.codes import CODES, PHOTO_CODE

CS = (2, 3, 4, 6)
STRATEGIES = ("average", "median", "min/max", "tiles 64", "tiles 8", "random pick")


def combine(copies: list[np.ndarray], rule: str, rng: np.random.Generator) -> np.ndarray:
    """What colluders holding ``copies`` make of them (before JPEG 75)."""
    stack = np.stack(copies).astype(np.float32)
    c, h, w = stack.shape[:3]
    if rule == "average":
        out = stack.mean(0)
    elif rule == "median":
        out = np.median(stack, 0)
    elif rule == "min/max":
        out = stack.min(0) if rng.random() < 0.5 else stack.max(0)
    elif rule.startswith("tiles"):
        size = int(rule.split()[1])
        owner = rng.integers(0, c, (-(-h // size), -(-w // size)))
        owner = np.kron(owner, np.ones((size, size), int))[:h, :w]
        out = np.take_along_axis(stack, owner[None, :, :, None].repeat(3, -1), 0)[0]
    else:  # random pick per pixel
        owner = rng.integers(0, c, (h, w))
        out = np.take_along_axis(stack, owner[None, :, :, None].repeat(3, -1), 0)[0]
    return attacks.jpeg(np.clip(out.round(), 0, 255).astype(np.uint8), 75)


def run(args: tuple[int, int, str, int, str]) -> dict:
    c, trial, path, candidates, name = args
    rng = np.random.default_rng([c, trial])
    key = lt.Key(rng.bytes(32))
    media_id = f"{path.rsplit('/', 1)[-1]}-{trial}"
    names = [f"r{i:04d}" for i in range(candidates)]
    guilty = sorted(rng.choice(candidates, c, replace=False).tolist())
    colluders = {names[i] for i in guilty}
    original = lt.read_image(path)
    rule = STRATEGIES[trial % len(STRATEGIES)]
    copies = [lt.embed(original, key, media_id, h, code=name) for h in sorted(colluders)]
    leak = combine(copies, rule, rng)
    out = {"c": c, "rule": rule}
    for mode, ref in (("informed", original), ("blind", None)):
        shape = None if ref is not None else original.shape
        found = lt.detect(leak, key, media_id, {name: names}, original=ref, shape=shape)
        named = {h for h, _ in found.accused}
        out[mode] = (bool(named & colluders), colluders <= named, len(named - colluders))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=200, help="trials per c")
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--code", default=PHOTO_CODE, choices=CODES)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    require_corpus()
    photos = [str(p) for p in KODAK[: args.photos]]
    jobs = [
        (c, t, photos[t // len(STRATEGIES) % len(photos)], args.candidates, args.code)
        for c in CS
        for t in range(args.trials)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, jobs))
    rows = []
    for c in CS:
        for mode in ("informed", "blind"):
            mine = [r[mode] for r in results if r["c"] == c]
            rows.append(
                [
                    c,
                    mode,
                    len(mine),
                    f"{100 * np.mean([m[0] for m in mine]):.1f} %",
                    f"{100 * np.mean([m[1] for m in mine]):.1f} %",
                    sum(m[2] for m in mine),
                ]
            )
    print(
        f"code {args.code}, {args.candidates} candidates, threshold 1e-9, JPEG 75 after "
        f"combining; strategies cycled: {', '.join(STRATEGIES)}"
    )
    print(
        table(["c", "mode", "trials", "≥ 1 colluder named", "all named", "innocents named"], rows)
    )
    for c in CS:
        per = []
        for rule in STRATEGIES:
            mine = [r for r in results if r["c"] == c and r["rule"] == rule]
            per.append(
                f"{rule}: {np.mean([r['informed'][1] for r in mine]) * 100:.0f}/"
                f"{np.mean([r['blind'][0] for r in mine]) * 100:.0f}"
            )
        print(f"c={c} (informed all named % / blind caught %): " + "; ".join(per))


if __name__ == "__main__":
    main()
