"""Speed of embedding and tracing, as ratios to a plain decode + re-encode of the same file.

    python benchmarks/speed.py [--repeat 3] [--files N]

For each high-resolution JPEG of the corpus, in one run:
- *unit*: read the file (decode) and write it again with its own JPEG tables (encode);
- *read+embed+write*: one recipient's copy from the file, ÷ unit (the limit is 2);
- *batch copy*: a further recipient's copy once the decoded original and its plan exist
  (``apply`` + write), ÷ unit;
- *trace*: read a leak (the copy itself, and a 25 % crop of it) and ``detect`` it against
  1,000 candidates with the original in memory — registration included — ÷ unit (the limit
  is 3 with registration);
- with ``invisible-watermark`` installed (``pip install torch==2.13.0`` then
  ``pip install --no-deps invisible-watermark``), its dwtDct encoder on the same file, ÷ unit.
Times are the best of ``--repeat`` runs; the machine's core count is printed with them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import HIGHRES, require_corpus, table

import leaktrace as lt
from leaktrace import attacks


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def imwatermark_encoder() -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        from imwatermark import WatermarkEncoder  # type: ignore[import-not-found]
    except Exception:  # optional: absent, or its torch import fails
        return None
    enc = WatermarkEncoder()
    enc.set_watermark("bytes", b"lktr")

    def run(rgb: np.ndarray) -> np.ndarray:
        return enc.encode(np.ascontiguousarray(rgb[..., ::-1]), "dwtDct")[..., ::-1]

    return run


def measure(
    path: Path,
    out: Path,
    key: lt.Key,
    repeat: int,
    other: Callable[[np.ndarray], np.ndarray] | None,
) -> list[object]:
    """One table row for one file; every time is the best of ``repeat`` runs."""
    candidates = ["alice"] + [f"recipient-{i:04d}" for i in range(999)]
    original = lt.read_image(path)
    mp = original.shape[0] * original.shape[1] / 1e6
    unit = best(lambda: lt.write_image(out, lt.read_image(path), like=path), repeat)
    one = best(
        lambda: lt.write_image(
            out, lt.embed(lt.read_image(path), key, path.name, "alice"), like=path
        ),
        repeat,
    )
    plan = lt.prepare(original, key, path.name)
    per_copy = best(lambda: lt.write_image(out, lt.apply(plan, original, "bob"), like=path), repeat)
    copy = lt.apply(plan, original, "alice")
    leaks = {"copy": out, "crop": out.with_name("crop.jpg")}
    lt.write_image(leaks["copy"], copy, like=path)
    lt.write_image(leaks["crop"], attacks.crop(copy, 0.25, at=(0.3, 0.6)), like=path)
    traces = []
    for leak in leaks.values():
        found = lt.detect(lt.read_image(leak), key, path.name, candidates, original=original)
        if found.recipient != "alice":
            raise SystemExit(f"{path.name}: traced {found.recipient}, expected alice")
        traces.append(
            best(
                lambda leak=leak: lt.detect(
                    lt.read_image(leak), key, path.name, candidates, original=original
                ),
                repeat,
            )
        )
    trace, trace_crop = traces
    row: list[object] = [
        path.name,
        f"{mp:.1f}",
        f"{unit:.2f}",
        f"{one / unit:.2f}",
        f"{per_copy / unit:.2f}",
        f"{trace / unit:.2f}",
        f"{trace_crop / unit:.2f}",
        f"{mp / one:.1f}",
    ]
    if other is not None:
        theirs = best(lambda: lt.write_image(out, other(lt.read_image(path)), like=path), 1)
        row.append(f"{theirs / unit:.2f}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=len(HIGHRES))
    args = parser.parse_args()
    require_corpus()
    key = lt.Key.generate()
    other = imwatermark_encoder()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jpg"
        rows = [measure(p, out, key, args.repeat, other) for p in HIGHRES[: args.files]]
    header = [
        "file",
        "MP",
        "unit: decode+encode (s)",
        "read+embed+write ÷ unit",
        "batch copy (apply+write) ÷ unit",
        "trace, 1,000 candidates ÷ unit",
        "trace of a 25 % crop ÷ unit",
        "read+embed+write MP/s",
    ]
    if other is not None:
        header.append("invisible-watermark dwtDct read+embed+write ÷ unit")
    print(f"## Speed ({os.cpu_count()} cores, best of {args.repeat})\n")
    print(table(header, rows))
    if other is None:
        print("\n(invisible-watermark not installed: comparison column omitted)")


if __name__ == "__main__":
    main()
