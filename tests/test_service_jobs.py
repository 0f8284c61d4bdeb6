"""The service's batches of copies: kept in the registry, fixed when accepted, cancellable,
resumed and downloadable after a restart (also after the server was killed)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

import leaktrace as lt
from leaktrace.registry import file_sha256
from leaktrace.service import create_app
from leaktrace.workflow import make_copies, register_original

from .conftest import KODAK

PHOTO = KODAK / "kodim05.png"


def upload(client, name, data):
    return client.post("/api/media", files={"file": (name, data)})


def wait_for(client, job_id, until=("done", "failed", "cancelled"), timeout=120, done=0):
    """The job once its status is one of ``until`` and it made ``done`` copies; a job that
    made copies is waited for until it offers its zip too, as the page waits: the registry
    can say "done" a moment before the worker lets go of the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        finishing = job["status"] == "done" and job["done"] and not job["download_url"]
        if job["status"] in until and job["done"] >= done and not finishing:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {until}: {job}")


def workspace(tmp_path, handles):
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token("tests")
    ws.add_recipients([(h, "", "") for h in handles])
    return ws, {"Authorization": f"Bearer {token}"}


def assert_records_match_files(ws, folder):
    """Every copy file in the folder is recorded, every record's file is there with its hash,
    and no temporary file is left."""
    records = {Path(c.path): c.sha256 for c in ws.copies()}
    files = {p.absolute() for p in folder.rglob("*") if p.is_file()}
    assert not [p for p in files if p.name.endswith(".part")], files
    assert files == set(records)
    for path, sha in records.items():
        assert file_sha256(path) == sha, path


def zipped(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()}


def test_a_job_for_all_keeps_the_recipients_it_was_accepted_with(tmp_path):
    ws, auth = workspace(tmp_path, ["ann", "bob", "cy"])
    app = create_app(tmp_path, workers=1)
    client = TestClient(app, headers=auth)
    # Before the server runs jobs (no lifespan yet): the job is accepted and stored, queued.
    media = upload(client, PHOTO.name, PHOTO.read_bytes()).json()
    accepted = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
    assert accepted.status_code == 202
    job = accepted.json()
    assert (job["status"], job["done"], job["total"]) == ("queued", 0, 3)
    assert ws.job(job["id"]).handles == ["ann", "bob", "cy"]
    # A large import before it runs does not grow it.
    csv = "handle\n" + "".join(f"new{i}\n" for i in range(50))
    r = client.post("/api/recipients/import", files={"file": ("more.csv", csv.encode())})
    assert r.status_code == 201
    with client:  # the server starts running jobs
        done = wait_for(client, job["id"])
        assert (done["status"], done["done"], done["total"]) == ("done", 3, 3)
        assert sorted(zipped(client, done["download_url"])) == [
            f"{h}/{PHOTO.name}" for h in ("ann", "bob", "cy")
        ]
        assert {c.handle for c in ws.copies()} == {"ann", "bob", "cy"}
        listed = client.get("/api/jobs").json()
        assert [j["id"] for j in listed] == [job["id"]]
        assert listed[0]["media_name"] == PHOTO.name and listed[0]["finished"] is not None


def test_cancel_a_running_job_keeps_the_copies_made(tmp_path):
    handles = [f"r{i:02d}" for i in range(40)]
    ws, auth = workspace(tmp_path, handles)
    with TestClient(create_app(tmp_path, workers=1), headers=auth) as client:
        media = upload(client, PHOTO.name, PHOTO.read_bytes()).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"}).json()
        running = wait_for(client, job["id"], until=("running",), done=2)
        assert running["download_url"] is None
        assert client.get(f"/api/jobs/{job['id']}/download").status_code == 409

        r = client.post(f"/api/jobs/{job['id']}/cancel")
        assert r.status_code == 200, r.text
        cancelled = r.json()
        assert cancelled["status"] == "cancelled"
        assert 2 <= cancelled["done"] < cancelled["total"] == 40
        assert cancelled["finished"] is not None
        time.sleep(0.5)  # nothing more happens after the answer
        again = client.get(f"/api/jobs/{job['id']}").json()
        assert (again["status"], again["done"]) == ("cancelled", cancelled["done"])

        made = ws.copies(job_id=job["id"])
        assert len(made) == cancelled["done"]
        assert_records_match_files(ws, tmp_path / "copies")
        files = zipped(client, again["download_url"])
        assert files == {f"{c.handle}/{PHOTO.name}": c.sha256 for c in made}

        ended = client.post(f"/api/jobs/{job['id']}/cancel")
        assert ended.status_code == 409
        assert "cancelled" in ended.json()["detail"]
        assert client.post("/api/jobs/nope/cancel").status_code == 404


def test_a_queued_job_can_be_cancelled_before_it_starts(tmp_path):
    ws, auth = workspace(tmp_path, ["ann"])
    client = TestClient(create_app(tmp_path, workers=1), headers=auth)
    media = upload(client, PHOTO.name, PHOTO.read_bytes()).json()
    job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["ann"]}).json()
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert (cancelled["status"], cancelled["done"], cancelled["download_url"]) == (
        "cancelled",
        0,
        None,
    )
    with client:  # the runner starts, and skips it
        time.sleep(0.5)
        assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
        r = client.get(f"/api/jobs/{job['id']}/download")
        assert r.status_code == 409 and "no copies" in r.json()["detail"]
    assert ws.copies() == []


def test_a_restarted_server_shows_old_jobs_and_serves_their_downloads(tmp_path):
    ws, auth = workspace(tmp_path, ["ann", "bob"])
    with TestClient(create_app(tmp_path, workers=1), headers=auth) as client:
        media = upload(client, PHOTO.name, PHOTO.read_bytes()).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"}).json()
        done = wait_for(client, job["id"])
        before = zipped(client, done["download_url"])
    with TestClient(create_app(tmp_path, workers=1), headers=auth) as client:
        again = client.get(f"/api/jobs/{job['id']}").json()
        assert again == done
        assert zipped(client, again["download_url"]) == before
        assert [j["id"] for j in client.get("/api/jobs?status=done").json()] == [job["id"]]
        assert client.get("/api/jobs?status=running").json() == []
        # A second job for bob finds his copy made: its zip has it.
        bob = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["BOB"]})
        finished = wait_for(client, bob.json()["id"])
        assert (finished["status"], finished["done"], finished["total"]) == ("done", 1, 1)
        assert zipped(client, finished["download_url"]) == {
            f"bob/{PHOTO.name}": before[f"bob/{PHOTO.name}"]
        }
        listed = [j["id"] for j in client.get("/api/jobs").json()]
        assert listed == [bob.json()["id"], job["id"]]  # the most recent first


def test_a_job_left_running_is_resumed_without_making_a_copy_twice(tmp_path):
    """What a server killed mid-job leaves: the job running, some of its copies made."""
    ws, auth = workspace(tmp_path, ["ann", "bob", "cy", "dee"])
    media, _ = register_original(ws, PHOTO)
    job = ws.add_job(media, ["ann", "bob", "cy", "dee"], 1.0)
    out = tmp_path / "copies" / str(media.id)
    first = list(
        make_copies(ws, [ws.original_path(media)], ["bob"], out, names=[PHOTO.name], job_id=job.id)
    )
    ws.update_job(job.id, status="running", done=1)
    with TestClient(create_app(tmp_path, workers=1), headers=auth) as client:
        done = wait_for(client, job.id)
        assert (done["status"], done["done"], done["total"]) == ("done", 4, 4)
        files = zipped(client, done["download_url"])
    assert sorted(files) == [f"{h}/{PHOTO.name}" for h in ("ann", "bob", "cy", "dee")]
    assert files[f"bob/{PHOTO.name}"] == first[0].sha256
    assert len(ws.copies()) == 4  # bob's copy was not made again
    assert_records_match_files(ws, tmp_path / "copies")


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen:
    with log.open("a") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "leaktrace", "--home", str(home), "serve"]
            + ["--port", str(port), "--workers", "2"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, with its marking processes
        )


def _up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def _gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_killed_server_s_job_is_resumed_by_the_next(tmp_path, unused_port):
    handles = [f"r{i:02d}" for i in range(24)]
    ws, auth = workspace(tmp_path / "ws", handles)
    url, log = f"http://127.0.0.1:{unused_port}", tmp_path / "serve.log"
    first = _serve(ws.home, unused_port, log)
    try:
        _up(url, first, log)
        with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
            media = upload(client, PHOTO.name, PHOTO.read_bytes()).json()
            r = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
            job = r.json()
            wait_for(client, job["id"], until=("running",), done=3)
            os.killpg(first.pid, signal.SIGKILL)  # the server and its marking processes
            first.wait()
            assert _gone(first.pid), "processes of the killed server are left"
            assert ws.job(job["id"]).status == "running"
        second = _serve(ws.home, unused_port, log)
        try:
            _up(url, second, log)
            with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
                done = wait_for(client, job["id"])
                assert (done["status"], done["done"], done["total"]) == ("done", 24, 24)
                files = zipped(client, done["download_url"])
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert sorted(files) == [f"{h}/{PHOTO.name}" for h in handles]
    ws = lt.Workspace.open(ws.home)  # as the next user finds it
    assert sorted(c.handle for c in ws.copies()) == handles  # each copy made and recorded once
    assert_records_match_files(ws, ws.home / "copies")
    assert "Traceback" not in log.read_text()


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
