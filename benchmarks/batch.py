"""Batch speed: N marked copies of one large JPEG vs N plain decode + re-encodes of it.

    python benchmarks/batch.py [--copies 100] [--files brown-architecture.jpg ...]

Marking goes through the real workflow (``leaktrace.workflow.make_copies``: a workspace,
registration, a process pool over all cores, temporary files renamed into place, a registry
record per copy). The baseline decodes and re-encodes the same file N times with the same JPEG
tables, once in one process and once spread over the same number of processes. Both ratios
are printed; the issue's limit is 1.5.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import HIGHRES, require_corpus, table

import leaktrace as lt
from leaktrace.registry import Workspace
from leaktrace.workflow import make_copies


def plain(args: tuple[str, str]) -> None:
    source, target = args
    lt.write_image(target, lt.read_image(source), like=source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument(
        "--files", nargs="*", default=["brown-architecture.jpg", "earth-at-night_nasa.jpg"]
    )
    args = parser.parse_args()
    require_corpus()
    cores = os.cpu_count() or 1
    rows = []
    for name in args.files:
        source = next(p for p in HIGHRES if p.name == name)
        mp = lt.read_image(source).shape
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            jobs = [(str(source), str(root / f"plain{i}.jpg")) for i in range(args.copies)]
            t = time.perf_counter()
            for job in jobs:
                plain(job)
            sequential = time.perf_counter() - t
            with ProcessPoolExecutor(cores) as pool:
                list(pool.map(plain, jobs[:cores]))  # warm the workers up
                t = time.perf_counter()
                list(pool.map(plain, jobs))
                parallel = time.perf_counter() - t
            ws = Workspace.create(root / "ws")
            handles = [f"r{i:03d}" for i in range(args.copies)]
            ws.add_recipients([(h, "", "") for h in handles])
            t = time.perf_counter()
            made = list(make_copies(ws, [source], handles, root / "out"))
            marked = time.perf_counter() - t
            assert len(made) == args.copies and not any(d.skipped for d in made)
        rows.append(
            [
                name,
                f"{mp[0] * mp[1] / 1e6:.1f}",
                args.copies,
                f"{sequential:.1f}",
                f"{parallel:.1f}",
                f"{marked:.1f}",
                f"{marked / sequential:.2f}",
                f"{marked / parallel:.2f}",
            ]
        )
    print(f"## Batch ({cores} cores)\n")
    print(
        table(
            [
                "file",
                "MP",
                "copies",
                "plain decode+encode, 1 process (s)",
                f"plain, {cores} processes (s)",
                "leaktrace embed, all cores (s)",
                "÷ plain 1 process",
                f"÷ plain {cores} processes",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
