"""Copies on demand: latency of ``GET /api/media/{id}/copies/{handle}`` for new copies of a
12 MP JPEG, against a plain decode + encode of the same JPEG, measured in the same run.

    python benchmarks/ondemand.py [--recipients 48] [--clients 8] [--repeats 3]

A fresh workspace registers the corpus's 12 MP photo (earth-at-night_nasa.jpg, 4256×2832)
and ``--recipients`` × ``--repeats`` recipients; ``leaktrace serve`` runs as a real uvicorn
process on loopback. One request makes the first copy (the original decoded and prepared:
reported apart). Then, per repeat, ``--clients`` threads fetch ``--recipients`` new copies
(each made, recorded and sent: ``X-Copy-Made: true``), and ``--clients`` threads run as many
plain decode + encode passes of the same JPEG (Pillow, its own quantisation tables: the
encoder settings of a copy) in this process. Printed per repeat: p50 and p95 of both, their
ratios, and the server's resident memory; then the medians over repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
from _common import HIGHRES, require_corpus, table
from _served import percentile, rss_mb, serving

import leaktrace as lt
from leaktrace.media import encode_image, read_image

PHOTO = "earth-at-night_nasa.jpg"  # 12.05 MP


def plain(path: Path) -> float:
    """One decode + encode of ``path`` (as a copy is encoded), in seconds."""
    start = time.perf_counter()
    encode_image(read_image(path), path.name, like=path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=48, help="new copies per repeat")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_corpus()
    photo = next(p for p in HIGHRES if p.name == PHOTO)

    home = Path(tempfile.mkdtemp(prefix="leaktrace-ondemand-"))
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("bench")
    total = args.recipients * args.repeats + 1
    handles = [f"r{i:05d}" for i in range(total)]
    ws.add_recipients([(h, "", "") for h in handles])
    ws.close()
    rows, summary = [], []
    with serving(home) as (base, server):
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth, timeout=600) as client:
            media = client.post("/api/media", files={"file": (photo.name, photo.read_bytes())})
            media.raise_for_status()
            url = f"/api/media/{media.json()['id']}/copies/"
            start = time.perf_counter()
            first = client.get(url + handles[0])
            cold = time.perf_counter() - start
            if first.headers.get("x-copy-made") != "true":
                raise SystemExit(f"the first copy was not made: {first.status_code} {first.text}")

            def fetch(handle: str) -> tuple[float, bool]:
                start = time.perf_counter()
                r = client.get(url + handle)
                took = time.perf_counter() - start
                made = r.headers.get("x-copy-made") == "true"
                return took, r.status_code == 200 and made and len(r.content) > 0

            for rep in range(args.repeats):
                batch = handles[1 + rep * args.recipients : 1 + (rep + 1) * args.recipients]
                with ThreadPoolExecutor(args.clients) as pool:
                    base_times = list(pool.map(lambda _: plain(photo), batch))
                start = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    answers = list(pool.map(fetch, batch))
                wall = time.perf_counter() - start
                times = [t for t, _ in answers]
                errors = sum(not ok for _, ok in answers)
                row = {
                    "p50": statistics.median(times),
                    "p95": percentile(times, 0.95),
                    "base_p50": statistics.median(base_times),
                    "base_p95": percentile(base_times, 0.95),
                    "copies_s": len(batch) / wall,
                    "rss": rss_mb(server.pid),
                    "errors": errors,
                }
                row["ratio50"] = row["p50"] / row["base_p50"]
                row["ratio95"] = row["p95"] / row["base_p95"]
                summary.append(row)
                rows.append(
                    [
                        rep + 1,
                        row["p50"],
                        row["p95"],
                        row["base_p50"],
                        row["base_p95"],
                        row["ratio50"],
                        row["ratio95"],
                        row["copies_s"],
                        f"{row['rss']:.0f}",
                        errors,
                    ]
                )
    alone = statistics.median(plain(photo) for _ in range(3))
    print(
        f"{photo.name} ({lt.inspect_image(photo).width}×{lt.inspect_image(photo).height}), "
        f"{args.recipients} new copies per repeat, {args.clients} concurrent clients on "
        f"loopback, {os.cpu_count()} cores; the first copy (decode + prepare + copy): "
        f"{cold:.2f} s; one plain decode + encode alone: {alone:.2f} s\n"
    )
    header = ["repeat", "copy p50 s", "copy p95 s", "plain p50 s", "plain p95 s"]
    header += ["p50 ÷ plain", "p95 ÷ plain", "copies/s", "server RSS MB", "errors"]
    med = {k: statistics.median(r[k] for r in summary) for k in summary[0]}
    rows.append(
        [
            "median",
            med["p50"],
            med["p95"],
            med["base_p50"],
            med["base_p95"],
            med["ratio50"],
            med["ratio95"],
            med["copies_s"],
            f"{med['rss']:.0f}",
            sum(r["errors"] for r in summary),
        ]
    )
    print(table(header, rows))


if __name__ == "__main__":
    main()
