"""Collusion on video: c recipients combine their copies segment by segment (interleave) or
frame by frame (average), then re-encode; who is named among 1,000 candidates, and from how
many minutes?

    python benchmarks/video_collusion.py VIDEO [--work DIR] [--crf 23] [--trials 300]
        [--candidates 1000] [--real] [--codes tardos-v1 tardos-v2] [--colluders 1 2 3 4]
        [--minutes 1 2 3 5 10]

VIDEO is a long clip (``make_long_video.py``); its variants are made once into ``--work``
(the same folder and key as ``video_robustness.py``, so they are shared).

1. **Readings.** A copy made only of variant 0 and one made only of variant 1 are re-encoded
   at ``--crf`` and traced: per segment, what a leak of each variant reads (in deviations
   of its noise, before the soft values).
2. **Campaign.** Each trial draws a fresh media id (so fresh Tardos biases), c colluders'
   codewords and ``--candidates`` − c innocents, and a leak of the given length: a run of
   the video's segments from a random start (looped when longer). An *interleave* shows,
   in each segment, the variant of one colluder after another (runs of one segment); an
   *average* shows the mean of the colluders' frames, read as the mean of their variants'
   readings (the mark is linear; ``--real`` checks it on a real averaged leak); the leak's
   soft values are then made from them as the detector makes them (:func:`soft_symbols`). Every
   candidate is judged by :class:`leaktrace.detect.Scorer`; the table gives, per code of
   ``--codes`` (the same codewords, so the same leak is judged under each), the share of
   trials naming at least one colluder, all of them, the median probability of the best
   colluder, and the innocents named. ``--colluders 1`` adds a single leaker's copy.
3. ``--real``: the same for real colluded leaks of the whole video, for each c of
   ``--colluders`` above 1 (segments interleaved; frames averaged), re-encoded at ``--crf``
   and traced end to end (leaks already in ``--work`` are read again, not remade).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from leaktrace.codes import CODES, VARIANT_CODE, Code, code
from leaktrace.detect import Scorer
from leaktrace.keys import Key
from leaktrace.video import attacks, detect_video, make_variants, remux
from leaktrace.video.detect import soft_symbols
from leaktrace.video.variants import Plan, Settings

KEY = Key(bytes(range(32)))
MEDIA = "bench-video"
MINUTES = (1, 2, 3, 5, 10)


def _plan(video: Path, folder: Path) -> Plan:
    if (folder / "plan.json").exists():
        return Plan.from_json(json.loads((folder / "plan.json").read_text()))
    t = time.perf_counter()
    plan = make_variants(video, folder, KEY, MEDIA, settings=Settings(mode="variants"))
    print(f"variants made in {time.perf_counter() - t:.0f} s")
    return plan


def _symbols(plan: Plan, handle: str) -> np.ndarray:
    return code(KEY, plan.media_id, VARIANT_CODE, length=plan.segments).codeword(handle) > 0


def _readings(video: Path, plan: Plan, folder: Path, work: Path, crf: int) -> np.ndarray:
    """Per segment (rows) and variant (columns): what a re-encoded leak of that variant alone
    reads, in deviations of its noise (before :func:`soft_symbols` makes soft values)."""
    cache = work / f"collusion-deviations-crf{crf}.npy"
    if cache.exists():
        return np.load(cache)
    out = np.zeros((plan.segments, 2))
    for v in (0, 1):
        pure = work / f"pure-{v}.mp4"
        remux(plan, folder, video, [v] * plan.segments, pure)
        leak = attacks.reencode(pure, work / f"pure-{v}-crf{crf}.mp4", crf=crf)
        found = detect_video(leak, KEY, plan, folder, video, ["nobody"])
        out[found.segments, v] = found.readings
    np.save(cache, out)
    return out


class _Shared:
    """A codebook for one trial's codes: tardos-v2's codewords are tardos-v1's, derived once."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], np.ndarray] = {}

    def packed(self, code: Code, recipients: Sequence[str]) -> np.ndarray:
        stream = (code.media_id, code.length)
        if stream not in self._rows:
            self._rows[stream] = code.packed(recipients)
        return self._rows[stream]

    def forget(self, code: Code) -> None:
        self._rows.clear()


def campaign(plan: Plan, readings: np.ndarray, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    seg_s = plan.settings.segment
    names = [f"r{i:04d}" for i in range(args.candidates)]
    rows = []
    judged = wrong_trials = 0
    for c in args.colluders:
        for minutes in args.minutes:
            length = round(minutes * 60 / seg_s)
            for rule in ("single",) if c == 1 else ("interleave", "average"):
                caught = dict.fromkeys(args.codes, 0)
                every = dict.fromkeys(args.codes, 0)
                wrong = dict.fromkeys(args.codes, 0)
                best: dict[str, list[float]] = {name: [] for name in args.codes}
                for trial in range(args.trials):
                    # Fresh media ids (biases) per seed; the default seed's are the README's.
                    media = f"{'' if args.seed == 11 else f's{args.seed}-'}trial-{c}-{minutes:g}"
                    media += f"-{rule}-{trial}"
                    colluders = names[:c]
                    # Every code of --codes has the same codewords (tardos-v2 only scores
                    # tardos-v1's differently): one leak, judged under each.
                    full = code(KEY, media, args.codes[0], length=length)
                    x = (full.codewords(colluders) > 0).astype(int)  # c × length variants
                    # The segments it shows: a run of the video from a random start (looped
                    # when longer), as a real excerpt's neighbours show the same shots.
                    segs = (rng.integers(plan.segments) + np.arange(length)) % plan.segments
                    if rule == "average":  # the mark is linear: the mean of their readings
                        shown = readings[segs[None, :], x].mean(0)
                    else:  # one colluder's segment after another's (c = 1: a single copy)
                        shown = readings[segs, x[np.arange(length) % c, np.arange(length)]]
                    q = soft_symbols(shown)
                    book = _Shared()
                    for name in args.codes:
                        scorer = Scorer(KEY, media, {name: names}, length=length, codebook=book)
                        found = scorer.judge(q)
                        named = set(found.accused)
                        caught[name] += bool(named & set(colluders))
                        every[name] += set(colluders) <= named
                        wrong[name] += len(named - set(colluders))
                        wrong_trials += bool(named - set(colluders))
                        judged += 1
                        best[name].append(min(found.log10_p[h] for h in colluders))
                n = args.trials
                cells = [
                    f"{100 * caught[k] / n:.1f} % / {100 * every[k] / n:.1f} % / "
                    f"{float(np.median(best[k])):.1f} / {wrong[k]}"
                    for k in args.codes
                ]
                rows.append(f"| {c} | {minutes:g} | {rule} | " + " | ".join(cells) + " |")
                print(rows[-1], flush=True)
    print(
        f"\n{args.trials} trials per row, {args.candidates} candidates, threshold 1e-9, "
        f"x264 CRF {args.crf} after combining; readings of {plan.segments} real segments. "
        "Per code: ≥ 1 colluder named / all named / median log10 p of the best colluder / "
        f"innocents named. {judged} judgements, {wrong_trials} naming an innocent.\n"
    )
    print("| c | minutes | strategy | " + " | ".join(args.codes) + " |")
    print("|---|---|---|" + "---|" * len(args.codes))
    print("\n".join(rows))


def _frames(path: Path) -> Iterator[tuple[np.ndarray, ...]]:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield tuple(p.copy() for p in _planes(f))


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
    a = frame.to_ndarray(format="yuv420p")
    h = frame.height
    u, v = a[h:].reshape(2, h // 2, -1)  # yuv420p as one array: Y rows, then U, then V
    return a[:h], u, v


def _collude(
    video: Path,
    plan: Plan,
    folder: Path,
    work: Path,
    colluders: list[str],
    leaks: dict[str, Path],
    crf: int,
) -> None:
    """The colluders' copies, their segments interleaved and their frames averaged, each
    re-encoded at ``crf`` into ``leaks``."""
    c = len(colluders)
    x = np.stack([_symbols(plan, h) for h in colluders]).astype(int)
    copies = [work / f"col-{k}.mp4" for k in range(c)]
    for k, path in enumerate(copies):
        remux(plan, folder, video, list(x[k]), path)
    mixed = x[np.arange(plan.segments) % c, np.arange(plan.segments)]
    inter = work / f"interleave-{c}.mp4"
    remux(plan, folder, video, list(mixed), inter)
    attacks.reencode(inter, leaks["interleave"], crf=crf)
    others = [_frames(p) for p in copies[1:]]
    probed: list[bool] = []

    def average(planes: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        if not probed:  # the first call only asks for the output size
            probed.append(True)
            return planes
        rest = [next(o) for o in others]
        return tuple(
            np.mean([p, *(r[i] for r in rest)], axis=0).round().astype(np.uint8)
            for i, p in enumerate(planes)
        )

    encoding = attacks._Encoding("libx264", crf, "veryfast")
    attacks._transcode(copies[0], leaks["average"], encoding=encoding, op=average)


def real(video: Path, plan: Plan, folder: Path, work: Path, args: argparse.Namespace) -> None:
    names = [f"r{i:04d}" for i in range(args.candidates)]
    for c in [c for c in args.colluders if c > 1]:
        colluders = names[:c]
        leaks = {rule: work / f"{rule}-{c}-leak.mp4" for rule in ("interleave", "average")}
        if not all(leak.exists() for leak in leaks.values()):  # made once per --work
            _collude(video, plan, folder, work, colluders, leaks, args.crf)
        for rule, leak in leaks.items():
            found = detect_video(leak, KEY, plan, folder, video, names)
            accused = ", ".join(f"{h} (1e{lp:.1f})" for h, lp in found.accused) or "nobody"
            ok = {h for h, _ in found.accused} <= set(colluders)
            mine = ", ".join(f"{found.scores[h]:.2f}" for h in colluders)
            innocent = max(found.scores[h] for h in names[c:])
            print(
                f"real c={c} {rule}: named {accused}; {'no innocent' if ok else 'INNOCENT NAMED'}"
                f" (colluders' z {mine}; best innocent z {innocent:.2f}; z needed {found.needed})",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/leaktrace-video-bench"))
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--real", action="store_true")
    ap.add_argument(
        "--codes", nargs="+", default=[VARIANT_CODE], choices=[n for n in CODES if n != "random-v1"]
    )
    ap.add_argument("--colluders", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--minutes", type=float, nargs="+", default=list(MINUTES))
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder = args.work / "variants"
    plan = _plan(args.video, folder)
    if args.real:
        real(args.video, plan, folder, args.work, args)
    if args.trials > 0:
        campaign(plan, _readings(args.video, plan, folder, args.work, args.crf), args)


if __name__ == "__main__":
    main()
