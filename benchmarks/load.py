"""Load check of the HTTP service: traces per second with concurrent clients, and latencies.

    python benchmarks/load.py [--clients 8] [--traces 48] [--recipients 200] [--photos 4]

A fresh workspace gets ``--recipients`` recipients and ``--photos`` Kodak originals with a copy
each, made through the service itself; then ``leaktrace serve`` runs as a real uvicorn process
on a free loopback port and ``--clients`` threads post ``--traces`` leaks in all (each a
recipient's copy re-encoded as JPEG 75) to ``POST /api/trace``. Printed: throughput, p50 and
p95 latency, the same trace's latency with one client alone (so the ratio says what queueing
costs), and how many answers named the right recipient. Loopback only, bounded in size.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
from _common import KODAK, require_corpus, table
from PIL import Image

import leaktrace as lt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--traces", type=int, default=48)
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args()
    require_corpus()

    home = Path(tempfile.mkdtemp(prefix="leaktrace-load-"))
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("load")
    ws.add_recipients([(f"r{i:04d}", "", "") for i in range(args.recipients)])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "leaktrace", "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=600) as client:
            for _ in range(100):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            leaks: list[tuple[str, bytes]] = []
            for path in KODAK[: args.photos]:
                media = client.post("/api/media", files={"file": (path.name, path.read_bytes())})
                job = client.post(
                    f"/api/media/{media.json()['id']}/copies", json={"recipients": "all"}
                ).json()
                while job["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                    job = client.get(f"/api/jobs/{job['id']}").json()
                copies = client.get(f"/api/media/{media.json()['id']}/copies").json()
                for copy in copies[:: max(1, len(copies) // 12)][:12]:
                    data = (home / "copies" / str(media.json()["id"]) / copy["file"]).read_bytes()
                    buf = io.BytesIO()
                    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=75)
                    leaks.append((copy["handle"], buf.getvalue()))

            def one(i: int) -> tuple[bool, float]:
                handle, data = leaks[i % len(leaks)]
                start = time.perf_counter()
                r = client.post("/api/trace", files={"file": (f"leak{i}.jpg", data)})
                took = time.perf_counter() - start
                return r.status_code == 200 and r.json()["recipient"] == handle, took

            alone = [one(i)[1] for i in range(3)]
            start = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                answers = list(pool.map(one, range(args.traces)))
            wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)

    took = sorted(t for _, t in answers)
    p95 = took[max(0, round(0.95 * len(took)) - 1)]
    single = statistics.median(alone)
    print(
        f"{args.traces} traces of {args.photos} Kodak photos (768×512, JPEG 75) against "
        f"{args.recipients} recipients each, {args.clients} concurrent clients, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        table(
            ["traces/s", "p50 s", "p95 s", "one client alone s", "p95 ÷ alone", "right"],
            [
                [
                    args.traces / wall,
                    statistics.median(took),
                    p95,
                    single,
                    p95 / single,
                    f"{sum(ok for ok, _ in answers)}/{len(answers)}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
