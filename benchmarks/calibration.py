"""Does the stated false-accusation probability hold? Innocent scores against the null model.

    python benchmarks/calibration.py [--outsiders 2] [--candidates 1000] [--photos 24]
        [--suite standard|softening|blind] [--informed-only]

Every trial is a leak that NO candidate made: either the unmarked photo or a copy marked
for an outsider who is not among the candidates, after one of the standard attacks (or the
softening ones of issue 11: ``--suite softening``), traced informed (with the original) and,
unless ``--informed-only``, blind — blind twice: as the whole picture, and given the
original's size, which makes it also search crop placements with the sync template (hundreds
of readings; the best is reported and paid for in the p-value). The trial passes when the
verdict is ``no_match``. The innocent scores z of the informed and plain blind trials are
pooled and compared with the null model behind the p-value: Hoeffding's bound
P(z ≥ t) ≤ exp(-t²/2) (and the standard normal it is close to).

``--suite blind`` runs issue 11's blind rows (``leaktrace.attacks.BLIND``) blind only, given
the original's size: each trial is the best of every reading blind detection tries (whole,
mirrored, turned back, screenshot, turned crops, crop placements), so its z is no sample of
the null; what is checked is the reported p-value: the share of trials at or under p must
stay under p. Reading a leak is what costs time, scoring it is cheap, so each leak is judged
against ``--sets`` disjoint sets of ``--candidates`` innocent recipients: each set is one
trial (its codewords are independent of the leak and of the other sets').
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from _common import KODAK, require_corpus, table

import leaktrace as lt
from leaktrace import attacks
from leaktrace.detect import Detection, Scorer, _blind_hypotheses, _blind_judgement

ATTACKS = [
    "none",
    "jpeg90",
    "jpeg50",
    "jpeg30",
    "webp50",
    "scale0.5",
    "blur1",
    "noise8",
    "gamma0.7",
    "grayscale",
    "chain",
    "crop25",
    "rot+7-cropped",
    "scale0.25",
    "screenshot-jpeg85",
]
ALL_ATTACKS = {**attacks.STANDARD, **attacks.GEOMETRIC, **attacks.SOFTENING}
ALL_ATTACKS.update({f"blind:{k}": v for k, v in attacks.BLIND.items()})
SUITES = {
    "standard": ATTACKS,
    "softening": list(attacks.SOFTENING),
    "blind": [f"blind:{k}" for k in attacks.BLIND],
}


def _blind_sets(
    leak: np.ndarray, key: lt.Key, media_id: str, shape: tuple[int, ...], sets: list[list[str]]
) -> list[tuple[str, float]]:
    """``lt.detect(leak, ..., shape=shape)`` against each candidate set, the leak read once."""
    readings = _blind_hypotheses(leak, key, media_id, shape)
    out = []
    for names in sets:
        scorer = Scorer(key, media_id, names)
        _, _, judged = _blind_judgement(
            scorer, readings, key, media_id, threshold=lt.DEFAULT_THRESHOLD, hypotheses=1
        )
        found = Detection.of(judged, threshold=lt.DEFAULT_THRESHOLD, mode="blind")
        out.append((found.verdict, found.p_value))
    return out


def run_photo(
    path: str,
    *,
    secret: bytes,
    candidates: int,
    outsiders: int,
    suite: str,
    informed_only: bool,
    sets: int = 1,
    rows: list[str] | None = None,
) -> dict:
    key = lt.Key(secret)
    media_id = path.rsplit("/", 1)[-1]
    names = [f"recipient-{i:04d}" for i in range(candidates)]
    original = lt.read_image(path)
    sources = {"unmarked": original}
    for j in range(outsiders):
        sources[f"outsider-{j}"] = lt.embed(original, key, media_id, f"outsider-{j}")
    scores, best_p, verdicts, searched = [], [], [], []
    for source in sources.values():
        for name in rows or SUITES[suite]:
            leak = ALL_ATTACKS[name](source)
            if suite == "blind":
                groups = [[f"set{k}-{n}" for n in names] for k in range(sets)]
                searched += _blind_sets(leak, key, media_id, original.shape, groups)
                continue
            for ref in (original,) if informed_only else (original, None):
                found = lt.detect(leak, key, media_id, names, original=ref)
                scores.append(np.fromiter(found.scores.values(), float))
                best_p.append(found.p_value)
                verdicts.append(found.verdict)
            if informed_only:
                continue
            # The best of many readings: its scores are not a sample of the null, its p is.
            found = lt.detect(leak, key, media_id, names, shape=original.shape)
            searched.append((found.verdict, found.p_value))
    return {
        "scores": np.concatenate(scores) if scores else np.zeros(0),
        "p": best_p,
        "verdicts": verdicts,
        "searched": searched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--outsiders", type=int, default=2)
    parser.add_argument("--photos", type=int, default=len(KODAK))
    parser.add_argument("--suite", choices=list(SUITES), default="standard")
    parser.add_argument("--informed-only", action="store_true")
    parser.add_argument("--sets", type=int, default=1, help="blind suite: candidate sets per leak")
    parser.add_argument("--rows", default="", help="comma-separated attacks of the suite to run")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    require_corpus()
    job = partial(
        run_photo,
        secret=lt.Key.generate()._secret,
        candidates=args.candidates,
        outsiders=args.outsiders,
        suite=args.suite,
        informed_only=args.informed_only,
        sets=args.sets,
        rows=[r for r in args.rows.split(",") if r] or None,
    )
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(job, [str(p) for p in KODAK[: args.photos]]))
    z = np.concatenate([r["scores"] for r in results])
    verdicts = [v for r in results for v in r["verdicts"]]
    searched = [t for r in results for t in r["searched"]]
    trials = len(verdicts) + len(searched)
    print(f"## Calibration: {trials} trials × {args.candidates} candidates, none of them guilty\n")
    if verdicts:
        p = np.array([q for r in results for q in r["p"]])
        print(
            f"- trials answered `no_match`: {verdicts.count('no_match')}/{len(verdicts)} "
            f"(false accusations: {verdicts.count('match')})"
        )
        print(f"- smallest reported p-value: {p.min():.3g} (threshold {lt.DEFAULT_THRESHOLD:g})")
    if searched:
        print(
            f"- blind given the original's size (every reading searched): "
            f"{sum(v == 'no_match' for v, _ in searched)}/{len(searched)} `no_match`, "
            f"smallest p-value {min(q for _, q in searched):.3g}"
        )
        ps = np.array([q for _, q in searched])
        print(
            "- share of blind trials with p ≤ α (must stay ≤ α): "
            + ", ".join(f"α={a:g}: {np.mean(ps <= a):.3g}" for a in (0.5, 0.1, 0.01, 0.001))
        )
    if not z.size:
        return
    print(
        f"- innocent scores: n = {z.size:,}, mean {z.mean():+.4f}, std {z.std():.4f}, "
        f"max {z.max():.2f}\n"
    )
    rows = []
    for t in (1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5):
        observed = float(np.mean(z >= t))
        gauss = 0.5 * math.erfc(t / math.sqrt(2))
        rows.append(
            [
                f"{t:.1f}",
                f"{observed:.3g}",
                f"{gauss:.3g}",
                f"{math.exp(-t * t / 2):.3g}",
                "yes" if observed <= math.exp(-t * t / 2) else "NO",
            ]
        )
    print(
        table(
            ["t", "observed P(z ≥ t)", "normal tail", "Hoeffding bound (used)", "within bound"],
            rows,
        )
    )
    qs = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999]
    print(
        "\nquantiles of innocent z vs standard normal: "
        + ", ".join(f"{q}: {np.quantile(z, q):+.2f} ({_norm_ppf(q):+.2f})" for q in qs)
    )


def _norm_ppf(q: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * math.erfc(-mid / math.sqrt(2)) < q else (lo, mid)
    return lo


if __name__ == "__main__":
    main()
