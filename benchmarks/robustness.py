"""Attacks × Kodak → traced %, soft-value accuracy, PSNR/SSIM; prints markdown tables.

    python benchmarks/robustness.py [--photos N] [--candidates 1000] [--suite S]
        [--rows a,b] [--key HEX]

Each photo is marked for one recipient among ``--candidates`` at the default strength, put
through every attack in ``leaktrace.attacks.STANDARD`` and traced (informed: with the
original; blind: without it, given only its size). A photo counts as traced when the
verdict names the right recipient at p ≤ 1e-9; any other named recipient is a false accusation.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _common import KODAK, psnr, require_corpus, ssim, table

import leaktrace as lt
from leaktrace import attacks

#: Issue 11's blind rows (leaktrace.attacks.BLIND), traced blind only.
EXTRA = {f"blind:{name}": attack for name, attack in attacks.BLIND.items()}
BLIND = ("none", "jpeg50", "scale0.5", *EXTRA)


def suite(name: str, others: list[np.ndarray]) -> dict:
    collage = {"collage30": lambda im: attacks.jpeg(attacks.collage(im, others, share=0.3), 75)}
    parts = {
        "standard": attacks.STANDARD,
        "geometric": {**attacks.GEOMETRIC, **collage},
        "softening": attacks.SOFTENING,
        "blind": EXTRA,
    }
    if name == "all":
        return {k: v for part in parts.values() for k, v in part.items()}
    return dict(parts[name])


def run_photo(args: tuple[str, int, bytes, str, tuple[str, ...]]) -> dict:
    path, n_candidates, secret, which, only = args
    key = lt.Key(secret)
    media_id = path.rsplit("/", 1)[-1]
    candidates = [f"recipient-{i:04d}" for i in range(n_candidates)]
    guilty = candidates[len(media_id) * 37 % n_candidates]
    original = lt.read_image(path)
    marked = lt.embed(original, key, media_id, guilty)
    out: dict = {
        "name": media_id,
        "psnr": psnr(marked, original),
        "ssim": ssim(marked, original),
        "rows": {},
    }
    codeword = lt.codes.codeword(key, media_id, guilty)
    others = [lt.read_image(p) for p in KODAK[:4] if str(p) != path][:3]
    for name, attack in suite(which, others).items():
        if only and name.removeprefix("blind:") not in only:
            continue
        leak = attack(marked)
        modes = (["informed"] if not name.startswith("blind:") else []) + (
            ["blind"] if name in BLIND else []
        )
        for mode in modes:
            # Blind: no original pixels, only its size (which a registry records).
            extra = {"original": original} if mode == "informed" else {"shape": original.shape}
            found = lt.detect(leak, key, media_id, candidates, **extra)
            soft = found.soft
            out["rows"][(name, mode)] = {
                "traced": found.recipient == guilty,
                "false": found.recipient not in (None, guilty),
                "z": found.scores[guilty],
                "innocent": max(v for k, v in found.scores.items() if k != guilty),
                "acc": float(np.mean(np.sign(soft) == codeword)),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=len(KODAK))
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--key", default="", help="the key's 64 hex digits (default: a new one), for paired runs"
    )
    parser.add_argument("--rows", default="", help="comma-separated attacks of the suite to run")
    parser.add_argument(
        "--suite",
        choices=["standard", "geometric", "softening", "blind", "all"],
        default="standard",
    )
    args = parser.parse_args()
    require_corpus()
    key = lt.Key(bytes.fromhex(args.key)) if args.key else lt.Key.generate()
    rows = tuple(r for r in args.rows.split(",") if r)
    jobs = [(str(p), args.candidates, key._secret, args.suite, rows) for p in KODAK[: args.photos]]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_photo, jobs))
    n = len(results)
    ps = [r["psnr"] for r in results]
    ss = [r["ssim"] for r in results]
    print(f"## Quality ({n} Kodak photos, strength 1)\n")
    print(
        table(
            ["PSNR mean dB", "PSNR min dB", "SSIM mean", "SSIM min"],
            [[float(np.mean(ps)), float(np.min(ps)), f"{np.mean(ss):.4f}", f"{np.min(ss):.4f}"]],
        )
    )
    print(f"\n## Robustness ({n} photos, {args.candidates} candidates, threshold 1e-9)\n")
    rows = []
    for key_ in results[0]["rows"]:
        cells = [r["rows"][key_] for r in results]
        z = [c["z"] for c in cells]
        rows.append(
            [
                key_[0].removeprefix("blind:"),
                key_[1],
                f"{sum(c['traced'] for c in cells)}/{n}",
                sum(c["false"] for c in cells),
                float(np.min(z)),
                float(np.mean(z)),
                float(np.mean([c["acc"] for c in cells])),
                float(np.max([c["innocent"] for c in cells])),
                " ".join(
                    r["name"].removeprefix("kodim").removesuffix(".png")
                    for r, c in zip(results, cells, strict=True)
                    if not c["traced"]
                ),
            ]
        )
    print(
        table(
            [
                "attack",
                "mode",
                "traced",
                "false accusations",
                "z min",
                "z mean",
                "soft-value sign accuracy",
                "max innocent z",
                "missed",
            ],
            rows,
        )
    )
    print(
        f"\nmatch threshold on z with {args.candidates} candidates: "
        f"{np.sqrt(2 * np.log(args.candidates / lt.DEFAULT_THRESHOLD)):.2f}"
    )


if __name__ == "__main__":
    main()
