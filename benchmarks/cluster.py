"""Batch throughput on a Dask cluster vs this machine's process pool vs one process.

    python benchmarks/cluster.py [--file brown-architecture.jpg] [--copies 16]
                                 [--workers 1 2 4] [--repeat 3]

One photo of the corpus × N recipients through the real workflow (``make_copies``: a
workspace, the re-share probe, temporary files linked into place, a registry record per copy),
run by: one process (``workers=1``), the local process pool over all cores, and a Dask
``LocalCluster`` of 1, 2, 4 worker processes (one thread each) reached through its scheduler's
TCP address, as a real cluster is. Each repetition runs every set-up once, in turn (so the
machine's load drifts over all of them alike), into a new output folder; the Dask workers
drop the decoded original when a batch ends, so every batch decodes it anew, as the pool's new
processes do. Prints the medians of the wall time, of the steady rate (copies
per second after the first copy landed: the fixed part — reading the photo and the re-share
probe in the parent, starting the processes or reaching the scheduler — left out) and both as
ratios to one process, and the CPU seconds per copy of every process involved (the parent,
the pool's or the cluster's workers: what a copy costs whatever else the machine runs); then
the CPU cost of one more copy in a worker (and of what a worker does once per batch), Dask's
own cost per task (empty tasks through the same scheduler) and the registry's per copy (its
records written by the parent).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import psutil
from _common import HIGHRES, KODAK, require_corpus, table
from distributed import Client, LocalCluster

import leaktrace as lt
from leaktrace import workflow
from leaktrace.media import encode_image
from leaktrace.registry import Workspace


def _noop(i: int) -> int:
    return i


def _cpu() -> float:
    """CPU seconds this process has used."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _local_cpu() -> float:
    """CPU seconds of this process and of its ended children (a batch's pool processes)."""
    own, ended = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _copy_cost(source: Path, repeat: int = 5) -> tuple[float, float, float, int]:
    """CPU seconds of one process on one OpenCV thread, as a worker runs: decoding the
    original, preparing its plan (both once per worker and batch), then one more copy (the
    median of ``repeat``); and the copy's size in bytes."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    key = lt.Key(bytes(32))
    start = time.process_time()
    pixels = lt.read_image(source)
    decode = time.process_time() - start
    start = time.process_time()
    plan = lt.prepare(pixels, key, "benchmark")
    prepare = time.process_time() - start
    costs, data = [], b""
    for i in range(repeat):
        start = time.process_time()
        data = encode_image(lt.apply(plan, pixels, f"r{i}"), source, like=source)
        costs.append(time.process_time() - start)
    cv2.setNumThreads(threads)
    return decode, prepare, statistics.median(costs), len(data)


def _registry_cost(ws: Workspace, source: Path, out: Path, n: int) -> float:
    """Seconds per copy the parent spends on records: pending, then done one at a time (as
    copies land), then the batch settled."""
    media = ws.media_by_sha256(lt.registry.file_sha256(source))
    if media is None:
        raise SystemExit("the benchmark's original was not registered")
    handles = [r.handle for r in ws.recipients(None)]
    planned = [(media, handles[i % len(handles)], out / f"{i}.jpg") for i in range(n)]
    start = time.perf_counter()
    batch, ids = ws.begin_batch(planned, strength=1.0)
    for copy_id in ids:
        ws.finish_copies([(copy_id, "0" * 64)])
    ws.end_batch(batch)
    return (time.perf_counter() - start) / n


@dataclass(frozen=True)
class Setup:
    batch: Callable[[Path], Iterator[workflow.CopyDone]]
    cpu: Callable[[], float]  # CPU seconds used so far by every process of the set-up


def timed(setup: Setup, out: Path) -> tuple[float, float, float]:
    """The batch's wall time, its steady rate (copies per second after the first) and its CPU
    seconds per copy (all processes: the parent, and the pool's or cluster's workers)."""
    cpu = setup.cpu()
    start = time.perf_counter()
    first = None
    n = 0
    for _ in setup.batch(out):
        n += 1
        first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    if first is None or n < 2:
        raise SystemExit("a batch made fewer than 2 copies")
    return end - start, (n - 1) / (end - first), (setup.cpu() - cpu) / n


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
    decode, prepare, per_copy, size = _copy_cost(source)
    cores = os.cpu_count() or 1
    handles = [f"r{i:03d}" for i in range(args.copies)]
    clusters = {
        n: LocalCluster(
            n_workers=n, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        )
        for n in args.workers
    }
    clients = {n: Client(c.scheduler_address, set_as_default=False) for n, c in clusters.items()}
    times: dict[str, list[tuple[float, float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            ws = Workspace.create(root / "ws")
            ws.add_recipients([(h, "", "") for h in handles])
            setups = {
                "one process": Setup(
                    lambda out: workflow.make_copies(ws, [source], None, out, workers=1),
                    _local_cpu,
                ),
                f"process pool ({cores})": Setup(
                    lambda out: workflow.make_copies(ws, [source], None, out, workers=cores),
                    _local_cpu,
                ),
            }
            for n, cluster in clusters.items():
                client = clients[n]

                def on_cluster(
                    out: Path, client: Client = client, address: str = cluster.scheduler_address
                ):
                    return workflow.make_copies(ws, [source], None, out, cluster=address)

                def cluster_cpu(client: Client = client) -> float:
                    return _local_cpu() + sum(client.run(_cpu).values())

                setups[f"Dask, {n} worker{'s' if n > 1 else ''}"] = Setup(on_cluster, cluster_cpu)
            runs = 0
            for _ in range(args.repeat):
                for name, setup in setups.items():
                    runs += 1
                    wall, rate, cpu = timed(setup, root / f"out{runs}")
                    times.setdefault(name, []).append((wall, rate, cpu))
                    print(
                        f"{name}: {wall:.2f} s, {rate:.2f} copies/s, {cpu:.2f} CPU s/copy",
                        flush=True,
                    )
            registry = _registry_cost(ws, source, root / "records", args.empty)
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
    base_wall = statistics.median(r[0] for r in times["one process"])
    base_rate = statistics.median(r[1] for r in times["one process"])
    rows = []
    for name, runs_of in times.items():
        wall = statistics.median(r[0] for r in runs_of)
        rate = statistics.median(r[1] for r in runs_of)
        cpu = statistics.median(r[2] for r in runs_of)
        rows.append(
            [
                name,
                f"{wall:.2f}",
                f"{base_wall / wall:.2f}",
                f"{rate:.2f}",
                f"{rate / base_rate:.2f}",
                f"{cpu:.2f}",
            ]
        )
    print(
        f"\n## {source.name} ({shape[1]}×{shape[0]}, {shape[0] * shape[1] / 1e6:.1f} MP) × "
        f"{args.copies} recipients, {cores} cores, load average {os.getloadavg()[0]:.1f}, "
        f"medians of {args.repeat}\n"
    )
    print(
        table(
            [
                "set-up",
                "batch (s)",
                "speed-up",
                "steady copies/s",
                "steady speed-up",
                "CPU s per copy",
            ],
            rows,
        )
    )
    print(
        f"\nOne copy, as a worker makes it (one OpenCV thread): {per_copy:.3f} CPU s, "
        f"{size / 1e6:.2f} MB; once per worker and batch: decode {decode:.2f} CPU s, "
        f"plan {prepare:.2f} CPU s."
    )
    print(
        f"Dask's own cost per task ({args.empty} empty tasks on {n} workers): "
        f"{per_task * 1e3:.2f} ms; the registry's per copy ({args.empty} records, "
        f"{os.environ.get('LEAKTRACE_DB_URL', 'sqlite').split(':')[0]}): {registry * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
