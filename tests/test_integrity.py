"""A workspace never loses or mislabels a copy: real `leaktrace embed` processes killed at
random moments, run side by side, and pointed at names that are taken."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from leaktrace.cli import app
from leaktrace.registry import Workspace, file_sha256

from .conftest import KODAK, registry

runner = CliRunner()
HANDLES = [f"r{i:02d}" for i in range(12)]


def run(home, *args):
    return runner.invoke(app, ["--home", str(home), *map(str, args)])


def embed_cmd(home, photos, out, *extra):
    return [
        sys.executable,
        "-m",
        "leaktrace",
        "--home",
        str(home),
        "embed",
        *map(str, photos),
        "--all",
        "-o",
        str(out),
        *extra,
    ]


def group_alive(pgid: int) -> list[int]:
    """Processes still in the process group ``pgid`` (the CLI and its pool workers)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(entry.name))
    return alive


def audit(home: Path, outs: list[Path]) -> dict[str, list]:
    """Everything that would be wrong with the workspace after opening it (which settles what
    dead batches left)."""
    ws = Workspace.open(home)
    records = ws.copies()
    ws.close()
    recorded = {Path(r.path): r.sha256 for r in records}
    files = [p for out in outs if out.exists() for p in out.rglob("*") if p.is_file()]
    with registry(home) as db:
        pending = db.exec_driver_sql("select count(*) from copies where state != 'done'").scalar()
        sqlite = db.dialect.name == "sqlite"
        integrity = db.exec_driver_sql("PRAGMA integrity_check").scalar() if sqlite else "ok"
    return {
        "unrecorded": [p for p in files if not p.name.endswith(".part") and p not in recorded],
        "missing_or_different": [
            p for p, sha in recorded.items() if not p.is_file() or file_sha256(p) != sha
        ],
        "parts": [p for p in files if p.name.endswith(".part")],
        "pending": [pending] if pending else [],
        "integrity": [] if integrity == "ok" else [integrity],
        "duplicates": [] if len(recorded) == len(records) else [len(records) - len(recorded)],
    }


@pytest.fixture
def workspace(tmp_path):
    home = tmp_path / "ws"
    assert run(home, "init").exit_code == 0
    csv = tmp_path / "r.csv"
    csv.write_text("handle,name,email\n" + "".join(f"{h},,\n" for h in HANDLES))
    assert run(home, "recipients", "import", csv).exit_code == 0
    return home


def test_batches_killed_at_random_moments_lose_and_mislabel_nothing(workspace, tmp_path):
    """SIGKILL, SIGTERM or Ctrl-C, to the whole process group or to the CLI alone, at 20
    random moments: after each, every copy file is recorded, every record names its file,
    nothing is left pending, and no process of the batch survives."""
    home = workspace
    photos = []
    for n in (5, 20):  # JPEGs: a copy costs milliseconds, so kills land in every phase
        photos.append(tmp_path / f"photo{n}.jpg")
        Image.open(KODAK / f"kodim{n:02d}.png").save(photos[-1], quality=90)
    for warmup in ("warmup", "timed"):  # the first run also registers the photos
        start = time.monotonic()
        full = subprocess.run(
            embed_cmd(home, photos, tmp_path / warmup, "--workers", "2"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert full.returncode == 0, full.stderr
    span = time.monotonic() - start
    rng = random.Random(9)
    kills = [
        ("group", signal.SIGKILL),
        ("cli", signal.SIGKILL),
        ("group", signal.SIGTERM),
        ("cli", signal.SIGTERM),
        ("group", signal.SIGINT),
    ]
    outs = [tmp_path / "warmup", tmp_path / "timed"]
    killed_midway = trial = 0
    while killed_midway < 20:
        trial += 1
        assert trial <= 40, f"only {killed_midway} of 40 runs were killed midway"
        out = tmp_path / f"out{trial // 3}"  # three runs per folder: later ones resume
        if out not in outs:
            outs.append(out)
        proc = subprocess.Popen(
            embed_cmd(home, photos, out, "--workers", "2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.0, 0.8 * span))
        who, sig = kills[trial % len(kills)]
        if proc.poll() is None:
            killed_midway += 1
            if who == "group":
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
        if b"Traceback" in stderr:  # only Python's own, for a Ctrl-C while modules load
            assert stderr.rstrip().endswith(b"KeyboardInterrupt"), stderr.decode()
            ours = re.findall(rb'leaktrace/[^"]*", line \d+, in (\S+)', stderr)
            assert all(where == b"<module>" for where in ours), stderr.decode()
        deadline = time.monotonic() + 10
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_alive(proc.pid) == [], f"trial {trial}: orphan processes after {who} {sig}"
        problems = {k: v for k, v in audit(home, outs).items() if v}
        assert problems == {}, f"trial {trial} ({who} {sig!r}): {problems}"
    # Finishing every folder leaves exactly one recorded copy per recipient and photo in each.
    for out in outs[2:]:
        done = subprocess.run(embed_cmd(home, photos, out), capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert {k: v for k, v in audit(home, outs).items() if v} == {}
    ws = Workspace.open(home)
    per_folder = {}
    for r in ws.copies():
        per_folder.setdefault(Path(r.path).parents[1], set()).add((r.media_sha256, r.handle))
    assert all(len(pairs) == 2 * len(HANDLES) for pairs in per_folder.values())
    assert len(per_folder) == len(outs)


def test_two_batches_and_a_trace_at_once(workspace, tmp_path):
    """Two `embed` runs into one folder (overlapping photos) and a `trace`, concurrently."""
    home = workspace
    out = tmp_path / "out"
    a = [KODAK / "kodim05.png", KODAK / "kodim20.png"]
    b = [KODAK / "kodim20.png", KODAK / "kodim15.png"]
    assert (
        run(home, "embed", KODAK / "kodim07.png", "--to", "r03", "-o", tmp_path / "x").exit_code
        == 0
    )
    leak = tmp_path / "x" / "r03" / "kodim07.png"
    procs = [
        subprocess.Popen(embed_cmd(home, a, out, "--workers", "2"), stderr=subprocess.PIPE),
        subprocess.Popen(embed_cmd(home, b, out, "--workers", "1"), stderr=subprocess.PIPE),
        subprocess.Popen(
            [sys.executable, "-m", "leaktrace", "--home", str(home), "trace", str(leak)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1].decode() for r in results]
    assert results[2][0].decode().startswith("leaked by r03")
    assert {k: v for k, v in audit(home, [out]).items() if v} == {}
    ws = Workspace.open(home)
    pairs = [(r.media_sha256, r.handle) for r in ws.copies() if Path(r.path).is_relative_to(out)]
    assert len(pairs) == len(set(pairs)) == 3 * len(HANDLES)


def test_names_never_collide_and_nothing_is_overwritten(workspace, tmp_path):
    home = workspace
    shoot_a, shoot_b, out = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    for folder, n in ((shoot_a, 5), (shoot_b, 7)):
        folder.mkdir()
        (folder / "IMG_0001.png").write_bytes((KODAK / f"kodim{n:02d}.png").read_bytes())
    foreign = out / "r01" / "IMG_0001.png"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"somebody else's file")
    assert (
        run(
            home, "embed", shoot_a / "IMG_0001.png", "--to", "r00", "--to", "r01", "-o", out
        ).exit_code
        == 0
    )
    assert run(home, "embed", shoot_b / "IMG_0001.png", "--to", "r00", "-o", out).exit_code == 0
    assert foreign.read_bytes() == b"somebody else's file"
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    ws = Workspace.open(home)
    sha = {m.name: m.sha256 for m in ws.media()}
    assert len(sha) == 1  # both originals are named IMG_0001.png
    media = {m.sha256: m for m in ws.media()}
    a_sha, b_sha = file_sha256(shoot_a / "IMG_0001.png"), file_sha256(shoot_b / "IMG_0001.png")
    assert set(media) == {a_sha, b_sha}
    assert (
        names
        == sorted(
            [
                "r00/IMG_0001.png",  # A's copy for r00
                f"r00/IMG_0001~{b_sha[:8]}.png",  # B's: the plain name holds A's copy
                "r01/IMG_0001.png",  # the foreign file, untouched
                f"r01/IMG_0001~{a_sha[:8]}.png",  # A's copy for r01
            ]
        )
    )
    records = {(r.media_sha256, r.handle): Path(r.path) for r in ws.copies()}
    assert records[(b_sha, "r00")].name == f"IMG_0001~{b_sha[:8]}.png"
    assert all(file_sha256(p) == r.sha256 for r in ws.copies() for p in [Path(r.path)])
    # A copy is refused as an original, naming whose copy it is.
    again = run(home, "embed", out / "r00" / "IMG_0001.png", "--all", "-o", tmp_path / "o2")
    assert again.exit_code == 2 and "r00's copy of IMG_0001.png" in again.output
    # Re-making copies elsewhere keeps the earlier records as they were.
    before = {(r.path, r.sha256) for r in ws.copies()}
    assert (
        run(home, "embed", shoot_a / "IMG_0001.png", "--to", "r00", "-o", tmp_path / "o3").exit_code
        == 0
    )
    after = {(r.path, r.sha256) for r in Workspace.open(home).copies()}
    assert before < after and len(after - before) == 1


def test_bad_batches_are_refused_before_any_work(workspace, tmp_path):
    home = workspace
    flat = tmp_path / "flat.png"
    Image.new("RGB", (400, 300), (120, 120, 120)).save(flat)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not really")
    good = KODAK / "kodim05.png"
    long = tmp_path / ("é" * 101 + ".png")  # 206 bytes: its copies' names would not fit
    long.write_bytes(good.read_bytes())
    result = run(
        home,
        "embed",
        good,
        flat,
        junk,
        tmp_path / "absent.png",
        tmp_path,
        long,
        "--all",
        "-o",
        tmp_path / "o",
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 4 and all("error: " in line for line in lines)
    assert "file name is longer than 200 bytes" in result.output
    assert "absent.png" in result.output and "is a directory" in result.output
    assert "junk.jpg" in result.output
    ws = Workspace.open(home)
    assert ws.media() == [] and not (tmp_path / "o").exists()
    # The header checks passed for the rest: now the flat picture is judged, still before work.
    result = run(home, "embed", good, flat, "--all", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "flat.png: too flat or too small" in result.output
    assert Workspace.open(home).media() == []
    for bad in ("0", "-1", "50", "nan"):
        result = run(home, "embed", good, "--all", "-o", tmp_path / "o", "--strength", bad)
        assert result.exit_code == 2 and "strength must be between" in result.output
    assert Workspace.open(home).media() == [] and not list((tmp_path / "o").rglob("*.png"))


# Two workspaces: on one PostgreSQL database the second is (rightly) refused its registry.
@pytest.mark.sqlite_only
def test_key_problems_are_named_and_never_send_the_user_to_init(workspace, tmp_path):
    home = workspace
    photo = KODAK / "kodim05.png"
    assert run(home, "embed", photo, "--to", "r00", "-o", tmp_path / "sent").exit_code == 0
    own = (home / "leaktrace.key").read_bytes()
    (home / "leaktrace.key").unlink()
    for args in (("trace", photo), ("embed", photo, "--all", "-o", tmp_path / "o"), ("init",)):
        result = run(home, *args)
        assert result.exit_code == 2, result.output
        assert (
            "restore your key backup" in result.output
            and "run `leaktrace init`" not in result.output
        )
    assert run(home, "recipients", "list").exit_code == 0  # the records are still readable
    other = tmp_path / "other"
    assert run(other, "init").exit_code == 0
    (home / "leaktrace.key").write_bytes((other / "leaktrace.key").read_bytes())
    result = run(home, "trace", photo)
    assert result.exit_code == 2 and "not this workspace's key" in result.output
    (home / "leaktrace.key").write_bytes(own)
    assert run(home, "trace", tmp_path / "sent" / "r00" / "kodim05.png").exit_code == 0


def test_a_weak_mark_is_warned_in_json_and_a_hopeless_one_refused(workspace, tmp_path):
    """Flat pictures with one small textured patch: the mark lives only there."""
    rng = np.random.default_rng(0)
    paths = {}
    for label, share in (("weak", 0.003), ("hopeless", 0.0005)):
        img = np.full((512, 768), 128, np.uint8)
        n = int(np.sqrt(share * img.size))
        img[:n, :n] = rng.integers(60, 200, (n, n))
        paths[label] = tmp_path / f"{label}.png"
        Image.fromarray(img).save(paths[label])
    result = run(workspace, "embed", paths["weak"], "--to", "r00", "-o", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["made"] == 1 and len(summary["warnings"]) == 1
    assert "weak.png: its mark is weak" in summary["warnings"][0]
    result = run(workspace, "embed", paths["hopeless"], "--to", "r00", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "hopeless.png: too flat or too small" in result.output


def test_file_names_that_are_not_utf8_are_kept_as_text(workspace, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xffphoto.png"))
    odd.write_bytes((KODAK / "kodim05.png").read_bytes())
    assert run(workspace, "embed", odd, "--to", "r01", "-o", tmp_path / "o").exit_code == 0
    (copy,) = (tmp_path / "o" / "r01").iterdir()
    assert copy.name == "\ufffdphoto.png"
    traced = run(workspace, "trace", copy)
    assert traced.exit_code == 0 and "media: \ufffdphoto.png" in traced.output
    assert run(workspace, "trace", odd).exit_code == 1
    bad_name = run(workspace, "recipients", "add", "zed", "--name", "caf\udcff")
    assert bad_name.exit_code == 2 and "Traceback" not in bad_name.output
