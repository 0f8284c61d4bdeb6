"""Batch throughput on a Dask cluster vs this machine's process pool vs one process.

    python benchmarks/cluster.py [--file brown-architecture.jpg] [--copies 16]
                                 [--workers 1 2 4] [--repeat 3]

One photo of the corpus × N recipients through the real workflow (``make_copies``: a
workspace, the re-share probe, temporary files linked into place, a registry record per copy),
run by: one process (``workers=1``), the local process pool over all cores, and a Dask
``LocalCluster`` of 1, 2, 4 worker processes (one thread each) reached through its scheduler's
TCP address, as a real cluster is. Each repetition runs every set-up once, in turn (so the
machine's load drifts over all of them alike), into a new output folder; the Dask workers'
cache of the decoded original is cleared before each batch, so every batch decodes it anew, as
the pool's new processes do. Prints the medians of the wall time, of the steady rate (copies
per second after the first copy landed: the fixed part — reading the photo and the re-share
probe in the parent, starting the processes or reaching the scheduler — left out) and both as
ratios to one process; then Dask's own cost per task (empty tasks through the same
scheduler).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import HIGHRES, KODAK, require_corpus, table
from distributed import Client, LocalCluster

import leaktrace as lt
from leaktrace import workflow
from leaktrace.registry import Workspace


def _forget() -> None:
    workflow._worker_cache.clear()


def _noop(i: int) -> int:
    return i


def timed(batch: Callable[[Path], Iterator[workflow.CopyDone]], out: Path) -> tuple[float, float]:
    """The batch's wall time and its steady rate (copies per second after the first)."""
    start = time.perf_counter()
    first = None
    n = 0
    for _ in batch(out):
        n += 1
        first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    if first is None or n < 2:
        raise SystemExit("a batch made fewer than 2 copies")
    return end - start, (n - 1) / (end - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default="brown-architecture.jpg", help="highres/ or kodak/")
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--empty", type=int, default=2000, help="empty tasks timed")
    args = parser.parse_args()
    require_corpus()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # no per-worker INFO lines
    source = next(p for p in [*HIGHRES, *KODAK] if p.name == args.file)
    shape = lt.read_image(source).shape
    cores = os.cpu_count() or 1
    handles = [f"r{i:03d}" for i in range(args.copies)]
    clusters = {
        n: LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=None)
        for n in args.workers
    }
    clients = {n: Client(c.scheduler_address, set_as_default=False) for n, c in clusters.items()}
    times: dict[str, list[tuple[float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            ws = Workspace.create(root / "ws")
            ws.add_recipients([(h, "", "") for h in handles])
            setups: dict[str, Callable[[Path], Iterator[workflow.CopyDone]]] = {
                "one process": lambda out: workflow.make_copies(ws, [source], None, out, workers=1),
                f"process pool ({cores})": lambda out: workflow.make_copies(
                    ws, [source], None, out, workers=cores
                ),
            }
            for n, cluster in clusters.items():

                def on_cluster(out: Path, n: int = n, address: str = cluster.scheduler_address):
                    clients[n].run(_forget)
                    return workflow.make_copies(ws, [source], None, out, cluster=address)

                setups[f"Dask, {n} worker{'s' if n > 1 else ''}"] = on_cluster
            runs = 0
            for _ in range(args.repeat):
                for name, batch in setups.items():
                    runs += 1
                    wall, rate = timed(batch, root / f"out{runs}")
                    times.setdefault(name, []).append((wall, rate))
                    print(f"{name}: {wall:.2f} s, {rate:.2f} copies/s", flush=True)
            ws.close()
        n = max(clients)
        clients[n].gather(clients[n].map(_noop, range(4 * n), pure=False))  # warm
        start = time.perf_counter()
        clients[n].gather(clients[n].map(_noop, range(args.empty), pure=False))
        per_task = (time.perf_counter() - start) / args.empty
    finally:
        for client in clients.values():
            client.close()
        for cluster in clusters.values():
            cluster.close()
    base_wall = statistics.median(w for w, _ in times["one process"])
    base_rate = statistics.median(r for _, r in times["one process"])
    rows = []
    for name, runs_of in times.items():
        wall = statistics.median(w for w, _ in runs_of)
        rate = statistics.median(r for _, r in runs_of)
        rows.append(
            [
                name,
                f"{wall:.2f}",
                f"{base_wall / wall:.2f}",
                f"{rate:.2f}",
                f"{rate / base_rate:.2f}",
            ]
        )
    print(
        f"\n## {source.name} ({shape[1]}×{shape[0]}, {shape[0] * shape[1] / 1e6:.1f} MP) × "
        f"{args.copies} recipients, {cores} cores, medians of {args.repeat}\n"
    )
    print(
        table(
            ["set-up", "batch (s)", "speed-up", "steady copies/s", "steady speed-up"],
            rows,
        )
    )
    print(
        f"\nDask's own cost per task ({args.empty} empty tasks on {n} workers): "
        f"{per_task * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
