"""Scan: a folder of 200 suspected leaks grouped into cases; all cores; killed and resumed; and
the combined probability of innocents.

    PYTHONPATH=src python benchmarks/scan.py [--files 200] [--recipients 40] [--innocents 2000]

1. **Folder.** Deterministic, from the shared corpus: Kodak 1–8 are the originals (copies for
   every recipient), plus a short clip (copies for four); leaks of 12 recipients through the
   attacks of ``tests/scanfolder.py`` (JPEG, resize, crop, a re-share chain, WebP, gamma,
   blur), each leak re-shared (the same bytes elsewhere, or re-saved), two pairs of colluders
   (copies averaged), the clip's leak and a re-encode of it, Kodak 9–24 and crops of them
   (unrelated), and junk files. Every file's truth is known.
2. **Grouping.** ``leaktrace scan --json`` (all cores): every traced leak in the case of its
   leaker(s), no innocent in any case, the unrelated and unreadable listed with a reason.
3. **Speed.** The same scan with ``--workers 1`` on a copy of the workspace: the ratio of the
   two wall times (the scan's throughput over tracing the files one by one).
4. **Killed and resumed.** ``leaktrace scan`` in its own process group, SIGKILLed when about
   40 % of the files are recorded, run again: every file recorded once, no file traced twice
   (the traces table has one row per file content), the same cases.
5. **Innocents.** The combined probability (:func:`leaktrace.combine.combined_log10_p`) of
   decoy recipients — handles that never received a copy, whose codewords are keyed like
   everyone's — scored on the soft values of real leaks of 2–5 different media items, as a
   case would combine them: how often it passes the 1e-9 threshold (it must never), and how
   often it falls below 0.05 and 0.01 with one person tested (at most 5 % and 1 %: the
   stated probability is valid).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import CORPUS, KODAK, ROOT, require_corpus, table

sys.path.insert(0, str(ROOT))  # the folder builder shared with the tests

import leaktrace as lt  # noqa: E402
from leaktrace import attacks  # noqa: E402
from leaktrace.codes import PHOTO_CODE, code  # noqa: E402
from leaktrace.combine import Evidence, combined_log10_p  # noqa: E402
from leaktrace.detect import Scorer, extract  # noqa: E402
from leaktrace.registry import Workspace  # noqa: E402
from leaktrace.workflow import make_copies  # noqa: E402
from tests.scanfolder import ATTACKS, build_folder, write  # noqa: E402

CLIP = ROOT / "examples" / "media" / "clip_bbb_320x240_noaudio.mp4"
THRESHOLD = 1e-9


def cli(home: Path, *args: str, workers: int | None = None) -> subprocess.CompletedProcess:
    extra = [] if workers is None else ["--workers", str(workers)]
    return subprocess.run(
        [sys.executable, "-m", "leaktrace", "--home", str(home), *args, *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def build(
    base: Path, n_files: int, n_recipients: int, n_leakers: int = 12
) -> tuple[Path, dict, int]:
    """The workspace (copies made) and the folder; returns the folder, the truth and the
    number of media items."""
    originals = KODAK[:8]
    handles = [f"r{i:02d}" for i in range(n_recipients)]
    ws = Workspace.create(base / "ws")
    for h in handles:
        ws.add_recipient(h, name=f"Recipient {h}", email=f"{h}@example.com")
    copies = base / "copies"
    list(make_copies(ws, originals, handles, copies))
    list(make_copies(ws, [CLIP], handles[:4], copies, workers=1))
    ws.close()
    leakers = handles[:n_leakers]
    names = [p.name for p in originals]
    plan = []
    kinds = list(ATTACKS)
    for i, h in enumerate(leakers):
        for j in range(5 if i < 8 else 4):
            name = names[(i * 3 + j) % len(names)]
            plan.append((h, name, kinds[(i + j) % len(kinds)], 1 + (i + j) % 2))
    a, b, c, d = handles[n_leakers : n_leakers + 4]
    collusions = [(a, b, names[0]), (c, d, names[5])]
    unrelated = sorted((CORPUS / "kodak").glob("kodim*.png"))[8:24]
    folder = base / "leaks"
    truth = build_folder(folder, copies, plan, unrelated=unrelated, junk=10, collusions=collusions)
    for k, photo in enumerate(unrelated[:14]):  # crops of unrelated photos
        path = write(folder / "other" / f"crop{k:02d}.jpg", attacks.crop(lt.read_image(photo), 0.6))
        truth[str(path)] = ("unrelated", None, None)
    clip_copy = copies / "r01" / CLIP.name
    video = folder / "video"
    video.mkdir()
    shutil.copyfile(clip_copy, video / "clip-leak.mp4")
    from leaktrace.video import attacks as vattacks

    vattacks.reencode(clip_copy, video / "clip-leak-reencoded.mp4", crf=26)
    for p in video.iterdir():
        truth[str(p)] = ("match", frozenset({"r01"}), CLIP.name)
    photos = sorted(p for p, t in truth.items() if t[0] == "match" and p.endswith(".jpg"))
    extra = 0
    while len(truth) < n_files:  # more re-shares (the same bytes), to the size asked
        again = folder / "reshared" / f"more{extra:03d}.jpg"
        shutil.copyfile(photos[extra % len(photos)], again)
        truth[str(again)] = truth[photos[extra % len(photos)]]
        extra += 1
    return folder, truth, len(originals) + 1


def check(out: dict, truth: dict) -> dict[str, object]:
    """Compare a scan's JSON with the truth."""
    files = {f["path"]: f for f in out["files"]}
    leakers = {c["id"]: frozenset(p["handle"] for p in c["leakers"]) for c in out["cases"]}
    wrong_status, wrong_case, innocents, no_reason, seen_as_ours = [], [], [], [], []
    for path, (status, who, _media) in truth.items():
        got = files.get(path)
        if got is not None and status == "unrelated" and got["status"] == "no_match":
            # registered (wrongly) onto one of our originals, but nobody named: listed apart
            seen_as_ours.append((path, got["reason"]))
            continue
        if got is None or got["status"] != status:
            wrong_status.append((path, status, got and got["status"], got and got["reason"]))
            continue
        if status == "match":
            case = leakers.get(got["case"])
            if case != who:
                wrong_case.append((path, who, case))
            if case is not None and not case <= who:
                innocents.append((path, who, case))
        elif not got["reason"]:
            no_reason.append(path)
    return {
        "files": len(truth),
        "matches": sum(t[0] == "match" for t in truth.values()),
        "cases": len(out["cases"]),
        "wrong status": wrong_status,
        "wrong case": wrong_case,
        "innocent in a case": innocents,
        "listed without a reason": no_reason,
        "unrelated, listed as one of ours naming nobody": seen_as_ours,
    }


def timed_scan(home: Path, folder: Path, workers: int | None) -> tuple[float, dict]:
    took, _cpu, out = timed_scan_cpu(home, folder, workers)
    return took, out


def timed_scan_cpu(home: Path, folder: Path, workers: int | None) -> tuple[float, float, dict]:
    """Wall time, CPU time (the scan and its pool processes) and the scan's JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = cli(home, "scan", str(folder), "--json", workers=workers)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"scan failed: {done.stderr.strip()}")
    return took, cpu, json.loads(done.stdout)


def killed_and_resumed(home: Path, folder: Path, total: int) -> dict[str, object]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaktrace", "--home", str(home), "scan", str(folder), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = home / Workspace.DB_NAME
    recorded = 0
    while proc.poll() is None:
        time.sleep(0.3)
        try:
            with sqlite3.connect(db) as con:
                recorded = con.execute("select count(*) from scan_files").fetchone()[0]
        except sqlite3.Error:
            continue
        if recorded >= 0.4 * total:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    with sqlite3.connect(db) as con:
        at_kill = con.execute("select count(*) from scan_files").fetchone()[0]
    start = time.perf_counter()
    done = cli(home, "scan", str(folder), "--json")
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"resumed scan failed: {done.stderr.strip()}")
    out = json.loads(done.stdout)
    with sqlite3.connect(db) as con:
        twice = con.execute(
            "select count(*) from (select sha256 from traces group by sha256 having count(*) > 1)"
        ).fetchone()[0]
        rows = con.execute("select count(distinct path) from scan_files").fetchone()[0]
    return {
        "recorded when killed": at_kill,
        "judged before on re-run": sum(f["traced_before"] for f in out["files"]),
        "files recorded after": rows,
        "contents traced twice": twice,
        "resume took (s)": round(took, 1),
        "out": out,
    }


def innocents(home: Path, folder: Path, truth: dict, trials: int, people: int) -> dict:
    """Decoy recipients' combined probabilities over real leaks of several media items."""
    ws = Workspace.open(home)
    key = ws.key
    media = {m.name: m for m in ws.media() if m.kind == "image"}
    soft: dict[str, list[np.ndarray]] = {}
    for path, (status, _who, name) in sorted(truth.items()):
        if status != "match" or name not in media or "/reshared/" in path:
            continue
        if len(soft.get(name, [])) >= 4:
            continue
        m = media[name]
        leak = lt.read_image(path)
        y = extract(leak, key, m.mark_id, original=lt.read_image(ws.original_path(m)))
        soft.setdefault(name, []).append(y)
    ws.close()
    names = sorted(soft)
    # The null law of each leak's scores, from codewords no one holds: an exact (rank) p-value
    # per media item, to check the combination itself is calibrated, not only conservative.
    null_n = 4000
    nulls = {}
    for name in names:
        full = code(key, media[name].mark_id, PHOTO_CODE)
        mat = full.codewords([f"null-{j}" for j in range(null_n)]).astype(np.float64)
        nulls[name] = [np.sort(mat @ y / np.linalg.norm(y)) for y in soft[name]]
    rng = np.random.default_rng(2026)
    below = {0.05: 0, 0.01: 0}
    ranked = {0.05: 0, 0.01: 0}
    passed_n = 0
    smallest, smallest_one = 0.0, 0.0
    for t in range(trials):
        k = int(rng.integers(2, 6))
        chosen = rng.choice(len(names), size=k, replace=False)
        decoy = f"decoy-{t:05d}"
        ev, ev_rank = [], []
        for i in chosen:
            name = names[i]
            scorer = Scorer(key, media[name].mark_id, [decoy])
            for j in range(int(rng.integers(1, 3))):  # one or two leaks of the item
                judged = scorer.judge(soft[name][j], threshold=THRESHOLD)
                ev.append(Evidence(name, judged.log10_p[decoy]))  # pairs = tests = 1
                null = nulls[name][j]
                above = null_n - int(np.searchsorted(null, judged.scores[decoy], "left"))
                ev_rank.append(Evidence(name, math.log10((1 + above) / (1 + null_n))))
        one = combined_log10_p(ev, people=1)
        many = combined_log10_p(ev, people=people)
        rank = combined_log10_p(ev_rank, people=1)
        smallest, smallest_one = min(smallest, many), min(smallest_one, one)
        passed_n += many <= math.log10(THRESHOLD)
        for a in below:
            below[a] += one <= math.log10(a)
            ranked[a] += rank <= math.log10(a)
    return {
        "trials": trials,
        "media items with leaks": len(names),
        "leak soft vectors": sum(len(v) for v in soft.values()),
        f"passed {THRESHOLD:g} (people={people})": passed_n,
        f"smallest combined p (people={people})": f"{10**smallest:.3g}",
        "smallest combined p (people=1)": f"{10**smallest_one:.3g}",
        "share ≤ 0.05, Chernoff tails (people=1)": f"{below[0.05] / trials:.4f}",
        "share ≤ 0.01, Chernoff tails (people=1)": f"{below[0.01] / trials:.4f}",
        f"share ≤ 0.05, exact rank p among {null_n} null codewords": f"{ranked[0.05] / trials:.4f}",
        f"share ≤ 0.01, exact rank p among {null_n} null codewords": f"{ranked[0.01] / trials:.4f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=40)
    parser.add_argument("--innocents", type=int, default=2000)
    parser.add_argument("--leakers", type=int, default=12)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-grouping", action="store_true")
    parser.add_argument("--keep", type=Path, help="Build (and keep) everything here.")
    args = parser.parse_args()
    require_corpus()
    base = args.keep or Path(tempfile.mkdtemp(prefix="leaktrace-scan-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder, truth, n_media = build(base, args.files, args.recipients, args.leakers)
    print(f"built {len(truth)} files ({n_media} media items) in {time.perf_counter() - t0:.0f} s")
    pristine = base / "ws-pristine"
    shutil.copytree(base / "ws", pristine)

    cores = os.cpu_count() or 1
    if not args.skip_grouping:
        grouping(base, folder, truth, cores, args.skip_speed, pristine)
    killed = base / "ws-killed"
    shutil.copytree(pristine, killed)
    resumed = killed_and_resumed(killed, folder, len(truth))
    again = check(resumed.pop("out"), truth)
    print("\n## Killed midway (SIGKILL to the scan's process group), run again\n")
    rows = [[k, v] for k, v in resumed.items()]
    rows += [[f"after resume: {k}", v if isinstance(v, int) else len(v)] for k, v in again.items()]
    print(table(["check", "value"], rows))
    details(again)

    print("\n## Innocents: combined probability of decoys over 2–5 media items\n")
    found_i = innocents(pristine, folder, truth, args.innocents, args.recipients)
    print(table(["check", "value"], [[k, v] for k, v in found_i.items()]))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


def details(found: dict[str, object]) -> None:
    for k, v in found.items():
        if isinstance(v, list) and v:
            print(f"\n{k}:")
            for item in v[:10]:
                print(f"  {item}")


def grouping(
    base: Path, folder: Path, truth: dict, cores: int, skip_speed: bool, pristine: Path
) -> None:
    took, out = timed_scan(base / "ws", folder, None)
    found = check(out, truth)
    print(f"\n## Grouping ({len(truth)} files, all {cores} cores: {took:.1f} s)\n")
    print(
        table(
            ["check", "value"], [[k, v if isinstance(v, int) else len(v)] for k, v in found.items()]
        )
    )
    for k, v in found.items():
        if isinstance(v, list) and v:
            print(f"\n{k}:")
            for item in v[:10]:
                print(f"  {item}")
    statuses: dict[str, int] = {}
    for f in out["files"]:
        statuses[f["status"]] = statuses.get(f["status"], 0) + 1
    print("\n" + table(["status", "files"], [[k, v] for k, v in sorted(statuses.items())]))
    print(
        "\n"
        + table(
            ["case", "leakers", "media", "files", "leaks", "combined p", "strongest single p"],
            [
                [
                    c["id"],
                    "+".join(p["handle"] for p in c["leakers"]),
                    len(c["media"]),
                    c["files"],
                    c["leaks"],
                    f"1e{c['log10_p']:.0f}",
                    f"1e{c['strongest_log10_p']:.0f}",
                ]
                for c in out["cases"]
            ],
        )
    )

    if not skip_speed:
        speed(pristine, folder, len(truth))


def speed(pristine: Path, folder: Path, n: int) -> None:
    """The scan over all cores against ``--workers 1`` (tracing the files one by one), on
    copies of the untouched workspace: wall time, and CPU time over wall time (how many cores
    were kept busy; the machine may be shared)."""
    cores = os.cpu_count() or 1
    rows = []
    for workers in (None, 1):
        home = pristine.parent / f"ws-speed-{workers}"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(pristine, home)
        took, cpu, _ = timed_scan_cpu(home, folder, workers)
        rows.append(
            [
                f"{'all ' + str(cores) if workers is None else 1} process(es)",
                took,
                cpu,
                cpu / took,
                n / took,
            ]
        )
        shutil.rmtree(home)
    print(f"\n## Speed ({n} files; load average {os.getloadavg()[0]:.1f} on {cores} cores)\n")
    print(table(["scan", "wall s", "CPU s", "cores busy", "files/s"], rows))
    print(f"\nthroughput ratio (all cores / one by one): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
