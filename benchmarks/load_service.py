"""Load test of the service as a team would run it: the registry on PostgreSQL, several server
processes, concurrent copies on demand and traces, for a bounded time.

    python benchmarks/load_service.py [--processes 2] [--clients 8] [--duration 60]
        [--repeats 3] [--recipients 400] [--photos 4] [--trace-share 0.2]

A throwaway PostgreSQL server (tests/postgres.py: Debian's initdb and pg_ctl) holds the
registry of a fresh workspace with ``--recipients`` recipients and ``--photos`` Kodak photos
(768×512, registered through the service); ``leaktrace serve --processes N`` runs as real
uvicorn worker processes on loopback. For ``--duration`` seconds per repeat, ``--clients``
threads each send, one after another, either (``--trace-share`` of the time) a leak to
``POST /api/trace`` — a recipient's copy re-encoded as JPEG 75, which must name them — or a
``GET /api/media/{id}/copies/{handle}`` for a (photo, recipient) pair not asked for before
(made, recorded and sent; pairs are drawn so that every process meets every photo). Printed
per repeat: requests and throughput, p50/p95 latency by kind, errors (any non-200 answer or
a trace naming the wrong recipient); the server processes' total resident memory every 10 s;
and at the end the registry's check that no copy was made twice.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
from _common import KODAK, ROOT, require_corpus, table
from _served import percentile, rss_mb, serving
from PIL import Image
from sqlalchemy import create_engine, text

import leaktrace as lt

sys.path.insert(0, str(ROOT))
from tests import postgres as pg  # noqa: E402 - the tests' throwaway PostgreSQL server


def jpeg75(data: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=75)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=400)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--trace-share", type=float, default=0.2)
    args = parser.parse_args()
    require_corpus()
    bin_dir = pg.binaries()
    if bin_dir is None:
        raise SystemExit(
            "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
        )

    database = pg.start(bin_dir)
    try:
        url = database.database()
        os.environ["LEAKTRACE_DB_URL"] = url
        run(args, url)
    finally:
        database.stop()


def run(args: argparse.Namespace, url: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="leaktrace-load-"))
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("load")
    handles = [f"r{i:05d}" for i in range(args.recipients)]
    ws.add_recipients([(h, "", "") for h in handles])
    ws.close()
    memory: list[tuple[float, float]] = []
    with serving(home, processes=args.processes, env={"LEAKTRACE_DB_URL": url}) as (base, server):
        auth = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=4 * args.clients)
        with httpx.Client(base_url=base, headers=auth, timeout=600, limits=limits) as client:
            ids = []
            for path in KODAK[: args.photos]:
                r = client.post("/api/media", files={"file": (path.name, path.read_bytes())})
                r.raise_for_status()
                ids.append(r.json()["id"])
            # The leaks: a few recipients' copies (made on demand here), re-shared.
            leaks = []
            for media_id in ids:
                for h in handles[:3]:
                    r = client.get(f"/api/media/{media_id}/copies/{h}")
                    r.raise_for_status()
                    leaks.append((h, jpeg75(r.content)))
            fresh: Iterator[tuple[int, str]] = (
                (media_id, h) for h in handles[3:] for media_id in ids
            )
            fresh_lock = threading.Lock()
            stop = threading.Event()
            started = time.monotonic()

            def sample() -> None:
                while not stop.wait(1.0):
                    memory.append((time.monotonic() - started, rss_mb(server.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results = []
            for rep in range(args.repeats):
                deadline = time.monotonic() + args.duration

                def client_loop(
                    seed: int, deadline: float = deadline
                ) -> list[tuple[str, float, bool]]:
                    rng = random.Random(seed)
                    done = []
                    while time.monotonic() < deadline:
                        if rng.random() < args.trace_share:
                            handle, data = rng.choice(leaks)
                            t0 = time.perf_counter()
                            r = client.post("/api/trace", files={"file": ("leak.jpg", data)})
                            ok = r.status_code == 200 and r.json().get("recipient") == handle
                            done.append(("trace", time.perf_counter() - t0, ok))
                        else:
                            with fresh_lock:
                                pair = next(fresh, None)
                            if pair is None:
                                raise SystemExit("ran out of new copies: raise --recipients")
                            t0 = time.perf_counter()
                            r = client.get(f"/api/media/{pair[0]}/copies/{pair[1]}")
                            ok = r.status_code == 200 and r.headers.get("x-copy-made") == "true"
                            done.append(("copy", time.perf_counter() - t0, ok))
                    return done

                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    seeds = [rep * 1000 + i for i in range(args.clients)]
                    answers = list(itertools.chain.from_iterable(pool.map(client_loop, seeds)))
                results.append((answers, time.perf_counter() - t0))
            stop.set()
    twice = _made_twice(url)
    _report(args, results, memory, twice)


def _made_twice(url: str) -> int:
    """Copies recorded more than once for one (media, recipient) pair."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "select count(*) from (select media_id, recipient_id from copies "
                        "where state = 'done' group by media_id, recipient_id "
                        "having count(*) > 1) as twice"
                    )
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


def _report(
    args: argparse.Namespace,
    results: list[tuple[list[tuple[str, float, bool]], float]],
    memory: list[tuple[float, float]],
    twice: int,
) -> None:
    print(
        f"PostgreSQL registry, {args.processes} server processes, {args.clients} clients, "
        f"{args.duration:g} s per repeat, {args.photos} Kodak photos × {args.recipients} "
        f"recipients, {args.trace_share:.0%} traces, {os.cpu_count()} cores\n"
    )
    rows, per = [], {"copy": [], "trace": [], "all": []}
    for rep, (answers, wall) in enumerate(results, 1):
        for kind in ("copy", "trace", "all"):
            mine = [a for a in answers if kind in ("all", a[0])]
            if not mine:
                continue
            times = [t for _, t, _ in mine]
            row = [
                len(mine) / wall,
                statistics.median(times),
                percentile(times, 0.95),
                sum(not ok for *_, ok in mine),
            ]
            per[kind].append(row)
            rows.append([rep, kind, len(mine), *row])
    for kind, values in per.items():
        if values:
            med = [statistics.median(v[i] for v in values) for i in range(3)]
            rows.append(["median", kind, "", *med, sum(v[3] for v in values)])
    header = ["repeat", "requests", "count", "per s", "p50 s", "p95 s", "errors"]
    print(table(header, rows))
    print("\nServer processes' resident memory (MB, all processes together):\n")
    marks = [m for m in memory if m[0] // 10 != (m[0] - 1) // 10] or memory
    print(table(["t s", "RSS MB"], [[f"{t:.0f}", f"{mb:.0f}"] for t, mb in marks]))
    if memory:
        values = [mb for _, mb in memory]
        print(f"\nRSS min {min(values):.0f} MB, max {max(values):.0f} MB, last {values[-1]:.0f} MB")
    print(f"copies recorded twice for one (media, recipient): {twice}")


if __name__ == "__main__":
    main()
