"""Speed of embedding and tracing, as ratios to a plain decode + re-encode of the same file.

    python benchmarks/speed.py [--repeat 3] [--files N]

For each high-resolution JPEG of the corpus, in one run:
- *unit*: read the file (decode) and write it again with its own JPEG tables (encode);
- *embed*: read, embed one recipient's mark, write — reported as ÷ unit;
- *trace*: read a marked copy, detect it against 1,000 candidates with the original in
  memory — reported as the cost beyond reading the leak, ÷ unit;
- *prepared*: the per-recipient cost once the per-media plan exists (batch case), ÷ unit;
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
from _common import HIGHRES, table

import leaktrace as lt


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=len(HIGHRES))
    args = parser.parse_args()
    key = lt.Key.generate()
    candidates = ["alice"] + [f"recipient-{i:04d}" for i in range(999)]
    other = imwatermark_encoder()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jpg"
        for path in HIGHRES[: args.files]:
            original = lt.read_image(path)
            mp = original.shape[0] * original.shape[1] / 1e6
            unit = best(lambda: lt.write_image(out, lt.read_image(path), like=path), args.repeat)
            embed = best(
                lambda: lt.write_image(
                    out, lt.embed(lt.read_image(path), key, path.name, "alice"), like=path
                ),
                args.repeat,
            )
            plan = lt.prepare(original, key, path.name)
            prepared = best(
                lambda: lt.write_image(out, lt.apply(plan, original, "bob"), like=path),
                args.repeat,
            )
            decode_only = best(lambda: lt.read_image(path), args.repeat)
            encode_only = unit - decode_only
            lt.write_image(out, lt.embed(original, key, path.name, "alice"), like=path)
            leak = lt.read_image(out)
            read_leak = best(lambda: lt.read_image(out), args.repeat)
            found = lt.detect(leak, key, path.name, candidates, original=original)
            if found.recipient != "alice":
                raise SystemExit(f"{path.name}: traced {found.recipient}, expected alice")
            trace = best(
                lambda: lt.detect(leak, key, path.name, candidates, original=original),
                args.repeat,
            )
            row: list[object] = [
                path.name, f"{mp:.1f}", f"{unit:.2f}", f"{embed / unit:.2f}",
                f"{(prepared - encode_only) / unit:.2f}", f"{trace / unit:.2f}",
                f"{mp / (embed - unit + decode_only + encode_only):.1f}", f"{read_leak:.2f}",
            ]
            if other is not None:
                theirs = best(
                    lambda: lt.write_image(out, other(lt.read_image(path)), like=path), 1
                )
                row.append(f"{theirs / unit:.2f}")
            rows.append(row)
    header = ["file", "MP", "decode+encode s", "embed ÷ unit", "per-recipient (prepared, "
              "excl. encode) ÷ unit", "trace 1,000 cand. ÷ unit", "embed MP/s", "read leak s"]
    if other is not None:
        header.append("invisible-watermark dwtDct ÷ unit")
    print(f"## Speed ({os.cpu_count()} cores, best of {args.repeat})\n")
    print(table(header, rows))
    if other is None:
        print("\n(invisible-watermark not installed: comparison column omitted)")


if __name__ == "__main__":
    main()
