"""`leaktrace scan` and `leaktrace cases`: a small folder of leaks, re-shares, unrelated
photos and junk; cases, the combined probability, bundles and their verification."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leaktrace.cases import case_views
from leaktrace.cli import app
from leaktrace.combine import Evidence, combined_log10_p
from leaktrace.registry import Workspace
from leaktrace.scan import scan
from leaktrace.workflow import Stopped

from .scanfolder import SAMPLES, build_folder, make_workspace

runner = CliRunner()
HANDLES = ["alice", "bob", "carol", "dave"]
ORIGINALS = ["kodim05.png", "kodim07.png", "kodim15.png"]
PLAN = [
    ("alice", "kodim05.png", "jpeg75", 2),  # + the same bytes elsewhere, + a re-save
    ("alice", "kodim07.png", "scale0.6", 0),
    ("bob", "kodim15.png", "crop70", 1),
]


def run(home, *args):
    return runner.invoke(app, ["--home", str(home), *map(str, args)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace (copies for everyone, nothing scanned yet) and the folder to scan."""
    base = tmp_path_factory.mktemp("scan")
    ws = make_workspace(base / "ws", [SAMPLES / n for n in ORIGINALS], HANDLES, base / "copies")
    ws.set_setting("creator.name", "Jane Creator")
    ws.set_setting("creator.email", "jane@example.com")
    ws.close()
    expected = build_folder(
        base / "leaks",
        base / "copies",
        PLAN,
        unrelated=[SAMPLES / "kodim19.png"],
        originals=[SAMPLES / "kodim20.png"][:0],
        junk=2,
        collusions=[("carol", "dave", "kodim07.png")],
    )
    return base, expected


@pytest.fixture(scope="module")
def scanned(world, tmp_path_factory):
    """The workspace after `leaktrace scan --json` of the folder (2 processes)."""
    base, expected = world
    home = tmp_path_factory.mktemp("scanned") / "ws"
    shutil.copytree(base / "ws", home)
    result = run(home, "scan", base / "leaks", "--json", "--workers", "2")
    assert result.exit_code == 0, result.output
    return home, json.loads(result.stdout), expected


def fresh(world, tmp_path) -> Path:
    home = tmp_path / "ws"
    shutil.copytree(world[0] / "ws", home)
    return home


def test_every_leak_is_in_the_right_case_and_no_innocent_in_any(scanned):
    home, out, expected = scanned
    files = {f["path"]: f for f in out["files"]}
    assert set(files) == set(expected)
    cases = {c["id"]: c for c in out["cases"]}
    leakers = {cid: frozenset(p["handle"] for p in c["leakers"]) for cid, c in cases.items()}
    for path, (status, who, _media) in expected.items():
        got = files[path]
        assert got["status"] == status, (path, got)
        if status == "match":
            assert leakers[got["case"]] == who, path
        else:
            assert got["case"] is None and got["reason"], path
    # one case per leaker set: alice (2 media), bob (1), carol+dave together (1)
    assert sorted(sorted(v) for v in leakers.values()) == [["alice"], ["bob"], ["carol", "dave"]]
    alice = next(c for cid, c in cases.items() if leakers[cid] == {"alice"})
    assert {m["name"] for m in alice["media"]} == {"kodim05.png", "kodim07.png"}
    assert alice["files"] == 4 and alice["leaks"] == 2  # the re-shares are one leak


def test_the_summary_lists_unrelated_and_unreadable_files_with_reasons(scanned, world):
    home, _, _ = scanned
    result = run(home, "scan", world[0] / "leaks")  # everything judged before: nothing traced
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "0 traced now" in text
    assert "not one of your media (1):" in text and "matches no registered media" in text
    assert "not a picture or video leaktrace reads (2):" in text
    assert "notes0.txt: not an image" in text
    listed = run(home, "cases", "list").stdout.splitlines()
    assert len(listed) == 3 and all("combined p=" in line for line in listed)


def test_a_stopped_scan_resumes_without_tracing_a_file_twice(world, tmp_path):
    home = fresh(world, tmp_path)
    folder = tmp_path / "some"  # seven of the files: three leaks (two the same bytes), junk
    picked = sorted(world[1])[:7]
    for i, path in enumerate(picked):
        (folder / str(i)).mkdir(parents=True)
        shutil.copyfile(path, folder / str(i) / Path(path).name)
    ws = Workspace.open(home)
    stop = threading.Event()
    done = []
    with pytest.raises(Stopped):
        for item in scan(ws, folder, workers=1, stop=stop):
            done.append(item)
            if len(done) == 3:
                stop.set()  # as Ctrl-C does: the scan stops at its next safe point
    recorded = {f.sha256 for f in ws.scanned()}
    assert 0 < len(recorded) < len(picked)
    ws.close()
    result = run(home, "scan", folder, "--json", "--workers", "1")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["files"]) == len(picked)
    again = {f["path"] for f in out["files"] if f["traced_before"]}
    assert len(again) >= 3
    with sqlite3.connect(home / "leaktrace.db") as db:
        per_file = db.execute("select sha256, count(*) from traces group by sha256").fetchall()
        scanned_rows = db.execute("select count(distinct path) from scan_files").fetchone()[0]
    assert per_file and all(n == 1 for _, n in per_file)  # no file traced twice
    assert scanned_rows == len(picked)  # nothing lost


def test_sigterm_stops_a_cli_scan_with_a_line_and_the_rerun_finishes_it(world, tmp_path):
    home = fresh(world, tmp_path)
    folder = tmp_path / "leaks"
    shutil.copytree(world[0] / "leaks", folder)
    total = sum(1 for p in folder.rglob("*") if p.is_file())
    cmd = [sys.executable, "-m", "leaktrace", "--home", str(home), "scan", str(folder)]
    proc = subprocess.Popen([*cmd, "--workers", "1"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:  # until a file is recorded
        with sqlite3.connect(home / "leaktrace.db") as db:
            if db.execute("select count(*) from scan_files").fetchone()[0]:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert re.search(r"interrupted: \d+ files judged and recorded; run the same command", stderr)
    assert "Traceback" not in stderr
    with sqlite3.connect(home / "leaktrace.db") as db:
        recorded = db.execute("select count(distinct path) from scan_files").fetchone()[0]
    assert 0 < recorded < total
    rerun = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(json.loads(rerun.stdout)["files"]) == total


def test_the_combined_probability_is_the_one_of_leaktrace_combine(scanned):
    home, _, _ = scanned
    ws = Workspace.open(home)
    views = {tuple(v.handles): v for v in case_views(ws)}
    ws.close()
    bob = views[("bob",)]
    # one media item, its re-share has the same bytes: exactly the trace's own probability
    assert bob.log10_p == pytest.approx(bob.files[0].result["log10_p_value"])
    alice = views[("alice",)]
    ev = []
    for m in alice.media:
        seen = set()
        for f in m.files:
            if f.sha256 in seen:
                continue
            seen.add(f.sha256)
            many = f.result["multiplicity"]
            (entry,) = f.result["accused"]
            ev.append(
                Evidence(
                    str(m.media.id),
                    entry["log10_p_value"] - math.log10(many["pairs"] * many["tests"]),
                    many["tests"] * many["codes"],
                )
            )
    assert alice.log10_p == pytest.approx(combined_log10_p(ev, people=4))
    assert alice.log10_p < alice.strongest  # two media items: stronger than either alone
    pair = views[("carol", "dave")]
    assert pair.log10_p == max(pair.per_person.values())


def test_a_case_from_verdicts_that_list_only_the_most_suspect_counts_everyone_sent(
    world, scanned, tmp_path, monkeypatch
):
    """A verdict among many lists only the most suspect candidates (leaktrace.verdicts.LISTED):
    the case still multiplies by everyone who was sent the media, as with a full list."""
    monkeypatch.setattr("leaktrace.verdicts.LISTED", 1)
    home = fresh(world, tmp_path)
    folder = tmp_path / "bob"
    bobs = [p for p, (_, who, _) in world[1].items() if who == {"bob"}]
    for i, path in enumerate(bobs):
        (folder / str(i)).mkdir(parents=True)
        shutil.copyfile(path, folder / str(i) / Path(path).name)
    result = run(home, "scan", folder, "--json", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert all(len(r.result["candidates"]) == 1 for r in Workspace.open(home).traces())
    (short,) = case_views(Workspace.open(home))
    full = {tuple(v.handles): v for v in case_views(Workspace.open(scanned[0]))}[("bob",)]
    assert short.handles == ["bob"] and short.eligible == full.eligible == len(HANDLES)
    assert short.log10_p == pytest.approx(full.log10_p)


def test_a_bundle_holds_the_evidence_and_never_the_key(scanned, tmp_path):
    home, out, _ = scanned
    alice = next(c for c in out["cases"] if c["leakers"][0]["handle"] == "alice")
    target = tmp_path / "case.zip"
    result = run(
        home,
        "cases",
        "export",
        alice["id"],
        "-o",
        target,
        "--found-at",
        "https://forum.example/t/42",
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    assert {"index.html", "proof.json", "takedown.txt", "SHA256SUMS", "manifest.json"} <= set(
        members
    )
    manifest = json.loads(members["manifest.json"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(members[name]).hexdigest() == digest
    reports = [n for n in members if n.startswith("reports/") and n.endswith(".html")]
    assert len(reports) == 3  # one per trace: the two files with the same bytes share one
    proof = json.loads(members["proof.json"])
    assert {c["handle"] for c in proof["copies"]} == {"alice"}
    assert len(proof["copies"]) == 2 and all(len(c["sha256"]) == 64 for c in proof["copies"])
    assert all(m["registered"] for m in proof["media"]) and proof["software"]["version"]
    notice = members["takedown.txt"].decode()
    assert "Jane Creator" in notice and "jane@example.com" in notice
    assert "https://forum.example/t/42" in notice and "not legal advice" in notice
    assert proof["media"][0]["registered"][:10] in notice
    index = members["index.html"].decode()
    assert 'name="viewport"' in index and 'class="scores' in index and "settings" in index
    key = (home / Workspace.KEY_NAME).read_bytes()
    for data in members.values():
        assert key not in data and key.hex().encode() not in data
        assert key.strip() not in data


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, change.get(name, zin.read(name)))


def test_verify_tells_a_changed_file_a_changed_manifest_and_a_changed_record(
    world, scanned, tmp_path
):
    home = tmp_path / "ws"
    shutil.copytree(scanned[0], home)
    bundle = tmp_path / "case-1.zip"
    assert run(home, "cases", "export", 1, "-o", bundle).exit_code == 0
    ok = run(home, "cases", "verify", bundle)
    assert ok.exit_code == 0 and "intact" in ok.stdout, ok.output

    with zipfile.ZipFile(bundle) as zf:
        index = zf.read("index.html")
        manifest = json.loads(zf.read("manifest.json"))
        copies = json.loads(zf.read("proof.json"))["copies"]
    edited = index.replace(b"Leaked by", b"Leakd by")
    changed = tmp_path / "changed.zip"
    _rewrite(bundle, changed, {"index.html": edited})
    bad = run(home, "cases", "verify", changed)
    assert bad.exit_code == 1
    assert "changed file: index.html" in bad.stderr and "does NOT verify" in bad.stderr

    manifest["files"]["index.html"] = hashlib.sha256(edited).hexdigest()
    rehashed = tmp_path / "rehashed.zip"
    _rewrite(
        bundle, rehashed, {"index.html": edited, "manifest.json": json.dumps(manifest).encode()}
    )
    bad = run(home, "cases", "verify", rehashed)
    assert bad.exit_code == 1 and "changed manifest" in bad.stderr

    with sqlite3.connect(home / "leaktrace.db") as db:
        first, last = copies[0]["copy_id"], copies[-1]["copy_id"]
        db.execute("update copies set created = '2020-01-01 00:00:00' where id = ?", (first,))
        # A hash whose first digit is changed (each run's key gives other hashes).
        db.execute(
            "update copies set sha256 = (case when sha256 like '0%' then '1' else '0' end)"
            " || substr(sha256, 2) where id = ?",
            (last,),
        )
    bad = run(home, "cases", "verify", bundle)
    assert bad.exit_code == 1
    assert "registry changed: copy record" in bad.stderr and "sha256" in bad.stderr
    assert "sent" in bad.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "{tmp}/nowhere"], "no such folder"),
        (["scan", "{tmp}/empty"], "holds no files"),
        (["scan", "{tmp}/empty", "--threshold", "2"], "--threshold"),
        (["cases", "show", "999"], "no case with id 999"),
        (["cases", "show", "0"], "no case with id 0"),
        (["cases", "export", "999", "-o", "{tmp}/x.zip"], "no case with id 999"),
        (["cases", "verify", "{tmp}/corrupt.zip"], "not a readable zip"),
        (["cases", "verify", "{tmp}/missing.zip"], "no such file"),
        (["cases", "verify", "{tmp}/plain.zip"], "not a leaktrace case bundle"),
        (["settings", "set", "creator.shoe", "42"], "unknown setting"),
    ],
)
def test_bad_input_is_one_clear_line(world, tmp_path, args, message):
    home = fresh(world, tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not a zip at all")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as zf:
        zf.writestr("hello.txt", "hi")
    result = run(home, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_settings_are_kept_and_listed(world, tmp_path):
    home = fresh(world, tmp_path)
    assert run(home, "settings", "set", "creator.address", "1 Main St").exit_code == 0
    shown = json.loads(run(home, "settings", "list", "--json").stdout)
    assert shown["creator.address"] == "1 Main St" and shown["creator.name"] == "Jane Creator"
    assert run(home, "settings", "set", "creator.address", "").exit_code == 0
    assert "creator.address: not set" in run(home, "settings", "list").stdout


def test_the_api_scans_uploads_lists_cases_and_exports_a_bundle(scanned, tmp_path):
    import time

    from fastapi.testclient import TestClient

    from leaktrace.service import create_app

    home = tmp_path / "ws"
    shutil.copytree(scanned[0], home)
    ws = Workspace.open(home)
    token, _ = ws.create_token("tests")
    ws.close()
    leaks = Path(next(p for p, e in scanned[2].items() if e[0] == "match"))
    app = create_app(home, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        sent = [
            ("files", ("first.jpg", leaks.read_bytes())),
            ("files", ("readme.txt", b"not a picture")),
        ]
        r = client.post("/api/scan", files=sent)
        assert r.status_code == 202, r.text
        scan_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while (got := client.get(f"/api/scans/{scan_id}").json())["status"] not in (
            "done",
            "failed",
        ):
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert got["status"] == "done" and got["done"] == 2
        files = {f["name"]: f for f in got["files"]}
        assert files["first.jpg"]["status"] == "match" and files["first.jpg"]["case_id"]
        assert files["readme.txt"]["status"] == "unreadable"
        assert files["readme.txt"]["reason"].startswith("readme.txt: not an image")
        cases = client.get("/api/cases").json()
        assert len(cases) == 3 and all(c["export_url"] for c in cases)
        one = client.get(f"/api/cases/{files['first.jpg']['case_id']}").json()
        assert one["file_list"] and one["leakers"][0]["handle"] == "alice"
        bundle = client.get(one["export_url"], params={"found_at": "https://x.example/1"})
        assert bundle.status_code == 200
        assert bundle.headers["content-type"] == "application/zip"
        (tmp_path / "b.zip").write_bytes(bundle.content)
        assert client.get("/api/cases/999").status_code == 404
        assert client.get("/api/cases/999/export").status_code == 404
        assert client.get("/api/scans/nope").status_code == 404
        assert client.post("/api/scan").status_code == 422
    assert run(home, "cases", "verify", tmp_path / "b.zip").exit_code == 0
