"""Scoring many candidates: the packed-bit path, cold (codewords derived from the key and
stored in a codebook) and warm (read back), against the plain path it replaced.

    python benchmarks/scoring.py [--sizes 1000 10000 100000 1000000] [--repeat 5]

For each code and number of candidates N (length 1024, soft values of a leak by one of them):
- *cold*: a :class:`~leaktrace.detect.Scorer` with a new :class:`~leaktrace.registry.Codebook`
  on an empty folder (every codeword derived from the key, packed and written) and one
  ``judge`` — what the first trace of a media item costs;
- *warm, new process*: a Scorer with a new Codebook on that folder (the CLI: read from disk)
  and one ``judge``;
- *warm, in memory*: a Scorer with the same Codebook (the service, which keeps it) and
  one ``judge`` — the "10⁶ candidates in under 1 s" figure;
- *judge only*: scoring on the Scorer already built (one more reading of the same leak);
- *plain*: the path before packed bits (a float codeword per candidate derived one at a
  time, then a matrix product), measured up to 10⁵ candidates and extrapolated beyond.
Times are medians of ``--repeat`` runs (cold: fresh folders); the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import table

import leaktrace as lt
from leaktrace.codes import CODES, code
from leaktrace.detect import Scorer
from leaktrace.registry import Codebook

KEY = lt.Key(bytes(range(32)))
LENGTH = 1024


def median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def plain(name: str, names: list[str], soft: np.ndarray) -> np.ndarray:
    c = code(KEY, "bench", name, length=LENGTH)
    return c.totals(soft, np.stack([c.codeword(h) for h in names]))


def measure(name: str, n: int, folder: Path, repeat: int) -> list[str]:
    """One row of the table: ``n`` candidates under the code ``name``."""
    names = [f"recipient-{i:07d}" for i in range(n)]
    c = code(KEY, "bench", name, length=LENGTH)
    rng = np.random.default_rng(n)
    soft = c.codeword(names[n // 2]) * 0.5 + rng.normal(0, 1, LENGTH)
    groups = {name: names}
    fresh = iter(range(10**6))
    cold = median(
        lambda: Scorer(KEY, "bench", groups, codebook=Codebook(folder / str(next(fresh)))).judge(
            soft
        ),
        repeat,
    )
    stored = folder / "0"
    new = median(
        lambda: Scorer(KEY, "bench", groups, codebook=Codebook(stored)).judge(soft), repeat
    )
    book = Codebook(stored)
    Scorer(KEY, "bench", groups, codebook=book)
    warm = median(lambda: Scorer(KEY, "bench", groups, codebook=book).judge(soft), repeat)
    scorer = Scorer(KEY, "bench", groups, codebook=book)
    found = scorer.judge(soft)
    judge = median(lambda: scorer.judge(soft), repeat)
    if found.accused != (names[n // 2],):
        raise SystemExit(f"{name}, {n}: accused {found.accused[:3]}, not {names[n // 2]}")
    if n <= 10**5:
        old = f"{median(lambda: plain(name, names, soft), min(repeat, 3)):.3f}"
    else:
        part = median(lambda: plain(name, names[: 10**5], soft), 1)
        old = f"≈{part * n / 10**5:.1f} (extrapolated)"
    shutil.rmtree(folder)
    return [name, f"{n:,}", f"{cold:.3f}", f"{new:.3f}", f"{warm:.3f}", f"{judge:.3f}", old]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            measure(name, n, Path(tmp) / f"{name}-{n}", args.repeat)
            for name in CODES
            for n in args.sizes
        ]
    header = [
        "code",
        "candidates",
        "cold s",
        "warm, new process s",
        "warm, in memory s",
        "judge only s",
        "plain s",
    ]
    print(table(header, rows))
    print(
        f"\nlength {LENGTH}, median of {args.repeat}; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
