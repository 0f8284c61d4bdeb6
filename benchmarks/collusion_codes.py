"""Collusion on the code alone: how long must codewords be to name a colluder, and does the
stated false-accusation probability hold?

    python benchmarks/collusion_codes.py lengths [--trials 200] [--code tardos-v2]
        [--colluders 2 3 4] [--rules interleave average ...]
    python benchmarks/collusion_codes.py decoys [--decoys 1000000]

``lengths``: for every collusion strategy and c = 2…8 colluders, trials draw a fresh key and
media id, the colluders' codewords, and the sequence the strategy makes of them (symbols where
all colluders agree are kept: the marking assumption), optionally with symbol errors. Each
colluder's score is judged with :meth:`leaktrace.codes.Code.tail_log10` (under each of the
code's scores, paid for as :class:`leaktrace.detect.Scorer` does), corrected for ``n``
candidates; a trial catches when at least one colluder's probability is at most ε = 1e-9.
Codewords and biases are prefix-consistent, so one trial is judged at every length of the grid
at once. The table gives, per c and n, the shortest length of the grid with a catch rate of at
least 99 % under every strategy, beside Tardos' (π²/2)·c²·ln(n/ε) and the capacity-approaching
2·c²·ln(n/ε). A first table gives each strategy's catch rate among 10³ at a video's 1, 2, 3,
5 and 10 minutes of 0.5-s segments.

``decoys``: for soft values from a colluded leak, under each of the code's scores (tardos-v2:
the symmetric one and the centred one), the scores of ``--decoys`` innocent codewords drawn
from the code, the empirical tail next to the bound, and below 1e-6 an importance-sampled
estimate (exponential tilting of the symbols' law, unbiased): the bound must never be below.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
from _common import table

from leaktrace.codes import CODES, VARIANT_CODE, Code, code
from leaktrace.keys import Key

EPS = 1e-9
NS = (10**3, 10**4, 10**5, 10**6)
LENGTHS = (
    64,
    120,
    128,
    192,
    240,
    256,
    360,
    384,
    512,
    600,
    768,
    1024,
    1200,
    1536,
    2048,
    3072,
    4096,
    6144,
)
#: Lengths of the per-strategy table: a video's 1, 2, 3, 5 and 10 minutes of 0.5-s segments.
SHOWN = (120, 240, 360, 600, 1200)


def _pick(x: np.ndarray, rng: np.random.Generator, rule: str) -> np.ndarray:
    """The ±1 sequence colluders holding the rows of ``x`` output under ``rule``."""
    c, m = x.shape
    total = x.sum(0)
    differ = np.abs(total) < c
    tie = rng.choice([-1.0, 1.0], m)
    if rule == "average":
        return total / c
    if rule == "majority":
        return np.where(total != 0, np.sign(total), tie)
    if rule == "minority":
        # Where they differ, the symbol fewer of them hold (ties: a coin).
        return np.where(differ, np.where(total != 0, -np.sign(total), tie), np.sign(total))
    if rule == "random":
        return x[rng.integers(0, c, m), np.arange(m)]
    if rule == "interleave":  # runs of 8 positions from one colluder after another
        return x[(np.arange(m) // 8) % c, np.arange(m)]
    if rule == "all-ones":
        return np.where(differ, 1.0, np.sign(total))
    if rule == "all-zeros":
        return np.where(differ, -1.0, np.sign(total))
    raise ValueError(rule)


RULES = ("average", "majority", "minority", "random", "interleave", "all-ones", "all-zeros")


def _trial(c: int, rule: str, noise: float, name: str, rng: np.random.Generator) -> np.ndarray:
    """Per length of the grid: the log10 false-accusation probability (uncorrected) of the
    best colluder."""
    key, media = Key(rng.bytes(32)), rng.bytes(8).hex()
    full = code(key, media, name, length=LENGTHS[-1])
    x = full.codewords([f"colluder-{k}" for k in range(c)])
    y = _pick(x, rng, rule)
    if noise:  # symbol errors: a share of the positions read as the other symbol
        y = np.where(rng.random(y.size) < noise, -y, y)
    out = []
    for m in LENGTHS:
        part = full.restricted(np.arange(m))
        # Under each of the code's scores (two for tardos-v2), each paid for, as Scorer does.
        lp = [
            float(part.tail_log10(w, part.totals(w, x[:, :m])).min()) - math.log10(share)
            for w, share in zip(part.weighings(y[:m]), part.shares, strict=True)
        ]
        out.append(min(lp))
    return np.array(out)


def lengths(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    rows, each = [], []
    for c in args.colluders:
        need: dict[int, int | None] = dict.fromkeys(NS, 0)
        worst = {}
        for rule in args.rules:
            for noise in (0.0, args.noise):
                best = np.array(
                    [_trial(c, rule, noise, args.code, rng) for _ in range(args.trials)]
                )
                caught = (best + math.log10(NS[0]) <= math.log10(EPS)).mean(0)
                each.append(
                    [c, f"{rule}{'+noise' if noise else ''}"]
                    + [f"{100 * caught[LENGTHS.index(m)]:.0f} %" for m in SHOWN]
                )
                for n in NS:
                    caught = (best + math.log10(n) <= math.log10(EPS)).mean(0)
                    ok = np.flatnonzero(caught >= 0.99)
                    m = LENGTHS[ok[0]] if ok.size else None
                    label = f"{rule}{'+noise' if noise else ''}"
                    if m is None or (need[n] is not None and m > need[n]):
                        need[n], worst[n] = m, label
            print(f"c={c} {rule} done", file=sys.stderr, flush=True)
        for n in NS:
            log = math.log(n / EPS)
            rows.append(
                [
                    c,
                    f"1e{round(math.log10(n))}",
                    need[n] or f">{LENGTHS[-1]}",
                    worst.get(n, ""),
                    round(math.pi**2 / 2 * c * c * log),
                    round(2 * c * c * log),
                ]
            )
    print(f"code {args.code}, {args.trials} trials per strategy, symbol errors {args.noise}")
    print("\nCatch rate among 1e3 at ε = 1e-9, per strategy and length")
    print(table(["c", "strategy", *map(str, SHOWN)], each))
    print()
    print(
        table(
            [
                "c",
                "n",
                "length for 99 %",
                "hardest strategy",
                "Tardos (π²/2)c²ln(n/ε)",
                "2c²ln(n/ε)",
            ],
            rows,
        )
    )


def _tilted_tail(
    part: Code, y: np.ndarray, t: float, draws: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Importance-sampled P(innocent score ≥ t): symbols drawn from the law tilted by
    exp(θ·y_j·u_j), θ putting the tilted mean at t; returns (estimate, relative error)."""
    p = part.bias
    up, down = np.sqrt((1 - p) / p), -np.sqrt(p / (1 - p))
    lo, hi = 0.0, 50.0 / max(float(np.abs(y).max()), 1e-12)
    for _ in range(60):  # the tilted mean grows with θ: bisect for mean = t
        theta = (lo + hi) / 2
        a, b = np.log(p) + theta * y * up, np.log1p(-p) + theta * y * down
        q = np.exp(a - np.logaddexp(a, b))
        mean = float(np.sum(q * y * up + (1 - q) * y * down))
        lo, hi = (theta, hi) if mean < t else (lo, theta)
    log_m = float(np.logaddexp(a, b).sum())
    total, total2 = 0.0, 0.0
    for start in range(0, draws, 10_000):
        k = min(10_000, draws - start)
        plus = rng.random((k, y.size)) < q
        s = np.where(plus, y * up, y * down).sum(1)
        w = np.where(s >= t, np.exp(log_m - theta * s), 0.0)
        total, total2 = total + w.sum(), total2 + (w * w).sum()
    est = total / draws
    var = total2 / draws - est * est
    return est, (math.sqrt(max(var, 0) / draws) / est if est > 0 else float("inf"))


def decoys(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    rows = []
    # tardos-v1's only score is tardos-v2's first (the same codewords): its rows are those.
    for name in [n for n in CODES if n != "tardos-v1"]:
        for rule, c, m in (
            ("average", 3, 1024),
            ("minority", 3, 1024),
            ("interleave", 4, 600),
            ("interleave", 4, 1200),
        ):
            key, media = Key(rng.bytes(32)), rng.bytes(8).hex()
            part = code(key, media, name, length=m)
            x = part.codewords([f"colluder-{k}" for k in range(c)])
            y = _pick(x, rng, rule)
            if rule == "average":  # soft values as a photo gives them: a noisy average
                y = np.clip(y + rng.normal(0, 0.5, m), -1, 1)
            for label, w in zip(("symmetric", "centred"), part.weighings(y), strict=False):
                scores = np.empty(args.decoys)
                for start in range(0, args.decoys, 20_000):
                    k = min(20_000, args.decoys - start)
                    sym = np.where(rng.random((k, m)) < part.bias, 1.0, -1.0)
                    scores[start : start + k] = part.totals(w, sym)
                sd = float(np.linalg.norm(w))
                for z in (2.0, 3.0, 4.0, 5.0, 6.0, 7.0):
                    t = z * sd
                    bound = float(part.tail_log10(w, t)[0])
                    empirical = float((scores >= t).mean())
                    if empirical * args.decoys >= 100:
                        est, rel = empirical, 1 / math.sqrt(empirical * args.decoys)
                        how = "counted"
                    else:
                        est, rel = _tilted_tail(part, w, t, args.decoys // 10, rng)
                        how = "tilted"
                    rows.append(
                        [
                            name,
                            label,
                            f"{rule} c={c}",
                            m,
                            z,
                            f"{est:.2e} ±{100 * rel:.0f}% ({how})",
                            f"{10**bound:.2e}",
                            "yes" if 10**bound >= est * (1 - 3 * rel) else "NO",
                        ]
                    )
            print(f"{name} {rule} {m} done", file=sys.stderr, flush=True)
    print(f"{args.decoys} decoy codewords per row; importance sampling below 100 hits")
    print(
        table(
            ["code", "score", "leak", "length", "z", "innocent tail", "bound", "bound holds"], rows
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("lengths")
    a.add_argument("--trials", type=int, default=200)
    a.add_argument("--code", default=VARIANT_CODE, choices=CODES)
    a.add_argument("--noise", type=float, default=0.05, help="symbol error rate of the noisy rows")
    a.add_argument("--colluders", type=int, nargs="+", default=list(range(2, 9)))
    a.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    b = sub.add_parser("decoys")
    b.add_argument("--decoys", type=int, default=1_000_000)
    for p in (a, b):
        p.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "1")))
    args = ap.parse_args()
    (lengths if args.what == "lengths" else decoys)(args)


if __name__ == "__main__":
    main()
