"""Batches on a Dask cluster: a LocalCluster of worker processes makes the same copies, byte
for byte, and the same records as a run on this machine; failures leave nothing half-made."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

import leaktrace as lt
from leaktrace import workflow
from leaktrace.cli import app
from leaktrace.cluster import _locked
from leaktrace.registry import Workspace, file_sha256, part_path
from leaktrace.service import create_app
from leaktrace.workflow import make_copies, register_original

from .conftest import KODAK, SAMPLES, registry

distributed = pytest.importorskip(
    "distributed", reason="the cluster tests need Dask distributed: pip install -e '.[cluster]'"
)
dask = pytest.importorskip("dask")

runner = CliRunner()
HANDLES = ["ada", "bo", "cy"]
SECRET = bytes(range(32))


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(home, *args):
    return runner.invoke(app, ["--home", str(home), *map(str, args)])


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, on this machine: the files they write are
    on a folder every worker reaches, as on a cluster's shared mount. (Its HTTP server on a
    free port: on a taken 8787 Dask would warn, an error here.)"""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two small photos (a PNG, a JPEG) in a folder of their own."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(KODAK / "kodim05.png", folder)
    lt.write_image(folder / "kodim07.jpg", lt.read_image(KODAK / "kodim07.png"), quality=90)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4-second clip: marked per recipient, each copy an encode with the key."""
    folder = tmp_path_factory.mktemp("clip")
    return Path(shutil.copy(SAMPLES / "clip_bbb_320x240_noaudio.mp4", folder))


def batch(home, out, photos, clip, *options):
    """The photos to everyone, the clip to one recipient (an encode: the slowest copy)."""
    stills = run(home, "embed", *photos, "--all", "-o", out, *options)
    assert stills.exit_code == 0, stills.output
    video = run(home, "embed", clip, "--to", HANDLES[0], "-o", out, *options)
    assert video.exit_code == 0, video.output
    return stills.output + video.output


def workspace(home: Path) -> Path:
    """A workspace with the tests' fixed key and three recipients."""
    with mock.patch.object(lt.Key, "generate", return_value=lt.Key(SECRET)):
        assert run(home, "init").exit_code == 0
    for handle in HANDLES:
        assert run(home, "recipients", "add", handle).exit_code == 0
    return home


def files(out: Path) -> dict[str, bytes]:
    return {os.fspath(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def records(home: Path, out: Path) -> list[tuple]:
    """The registry's media and copies, without ids, times and batch names (paths relative
    to the output folder)."""
    with registry(home) as conn:
        media = conn.execute(
            text("SELECT sha256, kind, name, size, width, height, fingerprint, features FROM media")
        ).all()
        copies = conn.execute(
            text(
                "SELECT m.sha256, r.handle, c.path, c.sha256, c.strength, c.format_version, "
                "c.state, c.job_id FROM copies c JOIN media m ON m.id = c.media_id "
                "JOIN recipients r ON r.id = c.recipient_id ORDER BY c.id"
            )
        ).all()
    return sorted(map(tuple, media)) + [
        (*row[:2], os.path.relpath(row[2], out), *row[3:]) for row in copies
    ]


def _cached() -> int:
    """How many originals a worker keeps decoded."""
    return len(workflow._worker_cache)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, photos, clip):
    """The reference: the same batches in this process."""
    root = tmp_path_factory.mktemp("local")
    home, out = workspace(root / "ws"), root / "out"
    batch(home, out, photos, clip, "--workers", "1")
    return files(out), records(home, out)


def test_a_cluster_makes_the_same_copies_and_records(tmp_path, cluster, photos, clip, local_run):
    home, out = workspace(tmp_path / "ws"), tmp_path / "out"
    output = batch(home, out, photos, clip, "--cluster", cluster.scheduler_address)
    assert "6 copies written" in output and "1 copies written" in output
    made, recorded = local_run
    assert sorted(files(out)) == sorted(made) and len(made) == 7
    assert files(out) == made  # byte for byte
    assert records(home, out) == recorded
    assert not list(Path(home, "locks").glob("*"))  # the batch ended and left no lock
    # The key went to the workers as a task argument: no log line shows it.
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        logs = str(client.get_worker_logs()) + str(client.get_scheduler_logs())
    assert SECRET.hex() not in logs
    # Nor does it stay in their memory: the original they kept, with its plan, is dropped.
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        assert set(client.run(_cached).values()) == {0}
    again = run(home, "embed", *photos, "--all", "-o", out, "--cluster", cluster.scheduler_address)
    assert again.exit_code == 0, again.output
    assert "0 copies written, 6 already there" in again.output


def test_a_worker_killed_mid_batch_changes_nothing(tmp_path, cluster, photos, local_run):
    """Dask runs the dead worker's copies again elsewhere; every copy lands once, recorded."""
    home, out = workspace(tmp_path / "ws"), tmp_path / "out"
    ws = Workspace.open(home)
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        killed = next(iter(client.run(os.getpid).values()))
    landed = []
    try:
        for done in make_copies(ws, photos[:1], None, out, cluster=cluster.scheduler_address):
            if not landed:  # the others are in flight
                os.kill(killed, signal.SIGKILL)
            landed.append(done)
    finally:
        ws.close()
    assert len(landed) == 3 and not any(d.skipped for d in landed)
    made, recorded = local_run
    photo = file_sha256(photos[0])
    assert files(out) == {
        name: data for name, data in made.items() if name.endswith(photos[0].name)
    }
    assert records(home, out) == [r for r in recorded if r[0] == photo]
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)  # its nanny started a new one
        assert killed not in client.run(os.getpid).values()


def test_an_unreachable_scheduler_is_one_line_and_changes_nothing(tmp_path, photos):
    home, out = workspace(tmp_path / "ws"), tmp_path / "out"
    port = free_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = run(
            home, "embed", *photos, "--all", "-o", out, "--cluster", f"tcp://127.0.0.1:{port}"
        )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    )
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()
    assert records(home, out) == []
    bad = run(home, "embed", *photos, "--all", "-o", out, "--cluster", "nowhere://x")
    assert bad.exit_code == 2 and "Traceback" not in bad.output, bad.output
    assert bad.output.startswith("error: 'nowhere://x' is not a Dask scheduler's address")
    both = run(
        home, "embed", *photos, "--all", "-o", out, "--cluster", "tcp://x:1", "--workers", "2"
    )
    assert both.exit_code == 2 and "--workers" in both.output


def test_a_copy_placed_by_a_task_run_twice_is_recorded_once(tmp_path, photos, monkeypatch):
    """A worker that dies after placing a copy but before its result is back: Dask runs the
    task again, which finds the copy in place (not placed, the same bytes). It is this
    batch's copy, recorded as made, not dropped as one another batch made."""
    real = workflow._make_copy

    def twice(*args):
        real(*args)  # the lost run: the copy is in place, no result
        return real(*args)

    monkeypatch.setattr(workflow, "_make_copy", twice)
    home, out = workspace(tmp_path / "ws"), tmp_path / "out"
    result = run(home, "embed", photos[0], "--to", HANDLES[0], "-o", out, "--workers", "1")
    assert result.exit_code == 0 and "1 copies written, 0 already there" in result.output
    target = out / HANDLES[0] / photos[0].name
    with registry(home) as conn:
        rows = conn.execute(text("SELECT path, sha256, state FROM copies")).all()
    assert [tuple(r) for r in rows] == [(str(target), file_sha256(target), "done")]


def test_the_service_runs_its_jobs_on_the_cluster(tmp_path, cluster):
    ws = lt.Workspace.create(tmp_path / "ws")
    token, _ = ws.create_token("tests")
    ws.add_recipients([(h, "", "") for h in HANDLES[:2]])
    photo = KODAK / "kodim05.png"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        for address in (cluster.scheduler_address, f"tcp://127.0.0.1:{free_port()}"):
            app = create_app(tmp_path / "ws", cluster=address)
            transitions = cluster.scheduler.transition_counter
            with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
                sent = client.post("/api/media", files={"file": (photo.name, photo.read_bytes())})
                assert sent.is_success, sent.text
                media = sent.json()["id"]
                job = client.post(f"/api/media/{media}/copies", json={"recipients": "all"})
                assert job.status_code == 202, job.text
                for _ in range(1200):
                    found = client.get(f"/api/jobs/{job.json()['id']}").json()
                    if found["status"] in ("done", "failed"):
                        break
                    time.sleep(0.05)
            if address == cluster.scheduler_address:
                assert (found["status"], found["done"], found["errors"]) == ("done", 2, [])
                assert cluster.scheduler.transition_counter > transitions  # its tasks ran there
            else:
                assert found["status"] == "failed" and len(found["errors"]) == 1
                assert found["errors"][0].startswith(
                    f"cannot reach the Dask scheduler at {address}"
                )
    copies = ws.copies()
    assert len(copies) == 2
    assert all(file_sha256(c.path) == c.sha256 for c in copies)
    ws.close()


def test_a_cluster_task_holds_its_batch_lock_and_never_starts_after_the_batch(tmp_path):
    """A workspace settles a batch only once no process holds its lock: a task holds it while
    it runs, and one that starts after the batch ended (its lock file gone) writes nothing."""
    lock = tmp_path / "ws" / "locks" / "b1.lock"
    lock.parent.mkdir(parents=True)
    lock.touch()

    def settle_now() -> bool:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    assert _locked(str(lock), settle_now) is False  # held during the task
    assert settle_now()  # and released after it
    lock.unlink()
    ran = []
    with pytest.raises(lt.WorkspaceError, match="the batch ended before this copy started"):
        _locked(str(lock), ran.append, 1)
    with pytest.raises(lt.WorkspaceError, match="every worker mounts at the same path"):
        _locked(str(tmp_path / "elsewhere" / "locks" / "b1.lock"), ran.append, 1)
    assert ran == []


def test_a_batch_whose_task_still_writes_is_settled_by_a_later_open(tmp_path, photos):
    """A cluster's task may outlive its future (the scheduler lost): the batch's end leaves
    its copies pending while the task holds the lock, and the next open settles them."""
    home = workspace(tmp_path / "ws")
    ws = Workspace.open(home)
    media, _ = register_original(ws, photos[0])
    target = tmp_path / "out" / "ada.png"
    started, _ = ws.begin_batch([(media, "ada", target)], strength=1.0)
    task = os.open(started.lock, os.O_RDWR)  # a worker's task, still running
    fcntl.flock(task, fcntl.LOCK_SH)
    try:
        assert ws.end_batch(started, shared=True) == 0
        other = Workspace.open(home)
        assert other.recover() == 0  # not while the task holds the lock
        other.close()
        target.parent.mkdir()
        part = part_path(target, started.id)
        part.write_bytes(b"copy")  # the task places its copy
        os.link(part, target)
        part.unlink()
    finally:
        os.close(task)
    ws.close()
    later = Workspace.open(home)  # settles batches whose lock nobody holds
    assert [(c.path, c.sha256) for c in later.copies()] == [(str(target), file_sha256(target))]
    assert not started.lock.exists()
    later.close()
