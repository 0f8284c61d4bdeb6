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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CODES:
            for n in args.sizes:
                names = [f"recipient-{i:07d}" for i in range(n)]
                c = code(KEY, "bench", name, length=LENGTH)
                rng = np.random.default_rng(n)
                soft = c.codeword(names[n // 2]) * 0.3 + rng.normal(0, 1, LENGTH)
                folders = iter(range(10**6))

                def cold() -> None:
                    book = Codebook(Path(tmp) / f"{name}-{n}-{next(folders)}")
                    Scorer(KEY, "bench", {name: names}, codebook=book).judge(soft)

                cold_s = median(cold, args.repeat)
                folder = Path(tmp) / f"{name}-{n}-0"
                new_s = median(
                    lambda: Scorer(  # noqa: B023 - called within this iteration
                        KEY, "bench", {name: names}, codebook=Codebook(folder)  # noqa: B023
                    ).judge(soft),  # noqa: B023
                    args.repeat,
                )
                book = Codebook(folder)
                Scorer(KEY, "bench", {name: names}, codebook=book)
                warm_s = median(
                    lambda: Scorer(  # noqa: B023
                        KEY, "bench", {name: names}, codebook=book  # noqa: B023
                    ).judge(soft),  # noqa: B023
                    args.repeat,
                )
                scorer = Scorer(KEY, "bench", {name: names}, codebook=book)
                found = scorer.judge(soft)
                judge_s = median(lambda: scorer.judge(soft), args.repeat)  # noqa: B023
                if n <= 10**5:
                    plain_s = median(lambda: plain(name, names, soft), min(args.repeat, 3))  # noqa: B023
                    plain_cell = f"{plain_s:.3f}"
                else:
                    small = names[: 10**5]
                    plain_s = median(lambda: plain(name, small, soft), 1) * n / 10**5  # noqa: B023
                    plain_cell = f"≈{plain_s:.1f} (extrapolated)"
                assert found.accused == (names[n // 2],), found.accused
                rows.append(
                    [
                        name,
                        f"{n:,}",
                        f"{cold_s:.3f}",
                        f"{new_s:.3f}",
                        f"{warm_s:.3f}",
                        f"{judge_s:.3f}",
                        plain_cell,
                    ]
                )
                for path in Path(tmp).glob(f"{name}-{n}-*"):
                    for f in path.rglob("*"):
                        f.unlink()
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
