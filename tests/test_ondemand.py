"""Copies made on demand (``GET /api/media/{id}/copies/{handle}``) and signed download links
(``POST /api/media/{id}/links``, ``GET /d/{token}``, ``leaktrace links``), through FastAPI's
TestClient on a real workspace (SQLite, or PostgreSQL with LEAKTRACE_TEST_DB=postgres)."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text
from typer.testing import CliRunner

import leaktrace as lt
from leaktrace import links
from leaktrace.cli import app as cli
from leaktrace.ondemand import CopyMaker
from leaktrace.service import create_app
from leaktrace.service.jobs import job_folder
from leaktrace.workflow import make_copies

from .conftest import KODAK, registry
from .test_service import upload, wait_for

PHOTO = KODAK / "kodim05.png"
OTHER = KODAK / "kodim20.png"
CLIP = Path(__file__).resolve().parents[1] / "examples" / "media" / "clip_bbb_320x240_noaudio.mp4"
PEOPLE = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Recipients and two registered photos, no copy made yet, behind a running app."""
    home = tmp_path_factory.mktemp("ondemand")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    app = create_app(home, max_upload=4 * 1024 * 1024, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for h in PEOPLE:
            assert client.post("/api/recipients", json={"handle": h}).status_code == 201
        photo = upload(client, "/api/media", PHOTO.name, PHOTO.read_bytes()).json()
        other = upload(client, "/api/media", OTHER.name, OTHER.read_bytes()).json()
        yield client, ws, photo, other


def copy_rows(home, media_id: int, handle: str) -> list[tuple[str, str, str]]:
    """The registry's copy records of one recipient's copy of one original."""
    query = text(
        "select c.state, c.path, c.sha256 from copies c join recipients r "
        "on r.id = c.recipient_id where c.media_id = :media and r.handle = :handle order by c.id"
    )
    with registry(home) as db:
        return [tuple(row) for row in db.execute(query, {"media": media_id, "handle": handle})]


def traced_to(client, data: bytes) -> str | None:
    """Who a re-shared (JPEG 80) copy is traced to by the service."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=80)
    r = upload(client, "/api/trace", "found.jpg", buf.getvalue())
    assert r.status_code == 200, r.text
    return r.json()["recipient"]


def test_the_first_request_makes_records_and_serves_a_copy_the_second_serves_it(served):
    client, ws, photo, _ = served
    url = f"/api/media/{photo['id']}/copies/ann"
    assert copy_rows(ws.home, photo["id"], "ann") == []
    first = client.get(url)
    assert first.status_code == 200, first.text
    assert first.headers["x-copy-made"] == "true"
    assert first.headers["content-type"] == "image/png"
    assert 'filename="kodim05.png"' in first.headers["content-disposition"]
    sha = hashlib.sha256(first.content).hexdigest()
    path = job_folder(ws, photo["id"]).absolute() / "ann" / "kodim05.png"
    assert copy_rows(ws.home, photo["id"], "ann") == [("done", str(path), sha)]
    assert path.read_bytes() == first.content
    assert traced_to(client, first.content) == "ann"
    # Listed like a batch's copy, downloadable there too.
    (listed,) = client.get(f"/api/media/{photo['id']}/copies").json()
    assert (listed["handle"], listed["sha256"]) == ("ann", sha)
    assert client.get(listed["download_url"]).content == first.content

    mtime = path.stat().st_mtime_ns
    again = client.get(f"/api/media/{photo['id']}/copies/ANN")  # handles ignore case
    assert again.status_code == 200 and again.headers["x-copy-made"] == "false"
    assert again.content == first.content
    assert path.stat().st_mtime_ns == mtime
    assert len(copy_rows(ws.home, photo["id"], "ann")) == 1


def test_the_photo_is_prepared_once_for_many_recipients(served):
    client, ws, _, other = served
    copies = client.app.state.service.copies
    before = copies.plans.prepared
    for h in ("bob", "cy"):
        r = client.get(f"/api/media/{other['id']}/copies/{h}")
        assert r.status_code == 200 and r.headers["x-copy-made"] == "true"
    assert copies.plans.prepared == before + 1


def test_an_on_demand_copy_is_the_copy_a_batch_makes(served, tmp_path):
    client, ws, photo, _ = served
    # Same key, original and recipient: the same bytes, whichever path makes them.
    (batch,) = make_copies(ws, [ws.original_path(ws.media_by_id(photo["id"]))], ["dee"], tmp_path)
    r = client.get(f"/api/media/{photo['id']}/copies/dee")
    assert r.headers["x-copy-made"] == "true"
    assert r.content == batch.path.read_bytes()


def test_concurrent_requests_for_one_new_copy_make_it_once(served):
    client, ws, photo, _ = served
    url = f"/api/media/{photo['id']}/copies/eve"
    gate = threading.Barrier(8)

    def fetch(_):
        gate.wait()
        return client.get(url)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, range(8)))
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in answers}) == 1
    assert sorted(r.headers["x-copy-made"] for r in answers) == ["false"] * 7 + ["true"]
    (row,) = copy_rows(ws.home, photo["id"], "eve")
    assert row[0] == "done" and row[2] == hashlib.sha256(answers[0].content).hexdigest()
    folder = job_folder(ws, photo["id"]) / "eve"
    assert sorted(p.name for p in folder.iterdir()) == ["kodim05.png"]  # no temporary left


def test_processes_racing_for_one_copy_make_it_once(served):
    """Two makers on two workspace handles stand for two server processes: only the
    registry's claim can keep them from both making the copy."""
    _, ws, photo, _ = served
    handles = [lt.Workspace.open(ws.home) for _ in range(2)]
    makers = [CopyMaker(), CopyMaker()]
    gate = threading.Barrier(6)

    def fetch(i):
        w = handles[i % 2]
        gate.wait()
        return makers[i % 2].copy(w, w.media_by_id(photo["id"]), "fay", job_folder(w, photo["id"]))

    try:
        with ThreadPoolExecutor(6) as pool:
            done = list(pool.map(fetch, range(6)))
    finally:
        for w in handles:
            w.close()
    assert sum(d.made for d in done) == 1
    assert len({d.copy.sha256 for d in done}) == 1 and len({d.path for d in done}) == 1
    assert [r[0] for r in copy_rows(ws.home, photo["id"], "fay")] == ["done"]
    assert sorted(p.name for p in (job_folder(ws, photo["id"]) / "fay").iterdir()) == [
        "kodim05.png"
    ]
    assert not list((ws.home / "locks").glob("*.lock"))  # every claim's lock let go


def test_unknown_media_or_recipient_is_a_404_saying_which(served):
    client, ws, photo, _ = served
    before = len(ws.copies())
    r = client.get(f"/api/media/{photo['id']}/copies/nobody")
    assert (r.status_code, r.json()) == (404, {"detail": "unknown recipient 'nobody'"})
    r = client.get("/api/media/9999/copies/ann")
    assert (r.status_code, r.json()) == (404, {"detail": "no media with id 9999"})
    assert client.get("/api/media/x/copies/ann").status_code == 422
    assert len(ws.copies()) == before


# -- signed links ------------------------------------------------------------------------------
def path_of(url: str) -> str:
    return url[url.index("/d/") :]


def test_a_link_downloads_the_copy_without_a_token_and_records_it(served):
    client, ws, _, other = served
    made = client.post(f"/api/media/{other['id']}/links", json={"recipients": ["gus", "ann"]})
    assert made.status_code == 201, made.text
    by = {x["handle"]: x for x in made.json()}
    assert set(by) == {"ann", "gus"}
    assert by["gus"]["url"].startswith("http://testserver/d/")
    expires = datetime.fromisoformat(by["gus"]["expires"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    anonymous = TestClient(client.app)
    assert copy_rows(ws.home, other["id"], "gus") == []
    r = anonymous.get(path_of(by["gus"]["url"]))
    assert r.status_code == 200, r.text
    assert r.headers["x-copy-made"] == "true"
    ((state, _, sha),) = copy_rows(ws.home, other["id"], "gus")
    assert (state, sha) == ("done", hashlib.sha256(r.content).hexdigest())
    assert traced_to(client, r.content) == "gus"
    # The same link again, and the authenticated route, serve that same copy.
    assert anonymous.get(path_of(by["gus"]["url"])).content == r.content
    assert client.get(f"/api/media/{other['id']}/copies/gus").content == r.content
    # The link's token is the credential: never the key or anything stored.
    assert ws.key._secret.hex() not in by["gus"]["url"]


def _forged(token: str, **fields) -> str:
    """The token with payload fields replaced, its signature kept."""
    head, sig = token.split(".")
    version, media, handle, expires, epoch = (
        base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode().split(":")
    )
    values = {"media": media, "handle": handle, "expires": expires, "epoch": epoch, **fields}
    payload = ":".join(
        [version, *(str(values[k]) for k in ("media", "handle", "expires", "epoch"))]
    )
    return f"{base64.urlsafe_b64encode(payload.encode()).rstrip(b'=').decode()}.{sig}"


def test_expired_tampered_and_foreign_links_are_refused_saying_why(served):
    client, ws, photo, other = served
    anonymous = TestClient(client.app)
    before = len(ws.copies())
    ((_, token),) = links.issue(ws, photo["id"], ["cy"], valid_for=timedelta(hours=1))
    ((_, old),) = links.issue(
        ws,
        photo["id"],
        ["cy"],
        valid_for=timedelta(hours=1),
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    r = anonymous.get(f"/d/{old}")
    assert r.status_code == 410 and r.json()["detail"].startswith("this link expired on ")
    refused = {"detail": "this link is not valid (damaged or altered); ask for a new one"}
    later = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    for bad in (
        _forged(token, media=other["id"]),  # the link to another original
        _forged(token, handle="bob"),  # to another recipient
        _forged(token, expires=later),  # extended
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # a damaged signature
        token.split(".")[0],  # no signature
        "garbage",
        "x" * 600,
    ):
        r = anonymous.get(f"/d/{bad}")
        assert (r.status_code, r.json()) == (403, refused), bad
    # Signed under another workspace's key.
    foreign = links.sign(
        links.Link(photo["id"], "cy", datetime.now(UTC) + timedelta(hours=1)),
        links.link_secret(lt.Key.generate(), 0),
    )
    assert anonymous.get(f"/d/{foreign}").status_code == 403
    assert len(ws.copies()) == before  # nothing made for any of them
    assert anonymous.get(f"/d/{token}").status_code == 200


def test_revoking_links_and_removing_a_recipient_end_their_links(served):
    client, ws, photo, _ = served
    anonymous = TestClient(client.app)
    client.post("/api/recipients", json={"handle": "hal"})
    made = client.post(f"/api/media/{photo['id']}/links", json={"recipients": "all"}).json()
    by = {x["handle"]: path_of(x["url"]) for x in made}
    assert set(PEOPLE) | {"hal"} <= set(by)
    assert client.delete("/api/recipients/hal").status_code in (200, 204)
    r = anonymous.get(by["hal"])
    assert r.status_code == 410 and "no longer registered" in r.json()["detail"]

    result = CliRunner().invoke(cli, ["--home", str(ws.home), "links", "revoke"])
    assert result.exit_code == 0, result.output
    r = anonymous.get(by["ann"])
    assert r.status_code == 410 and "revoked" in r.json()["detail"]
    fresh = client.post(f"/api/media/{photo['id']}/links", json={"recipients": ["ann"]}).json()
    assert anonymous.get(path_of(fresh[0]["url"])).status_code == 200


def test_bad_link_requests_get_4xx(served):
    client, ws, photo, _ = served
    route = f"/api/media/{photo['id']}/links"
    for body, status in (
        ({"recipients": ["ann"], "expires_in": "7d"}, 422),
        ({"recipients": ["ann"], "expires_in": 0}, 422),
        ({"recipients": ["ann"], "expires_in": 400 * 86400}, 422),
        ({"recipients": ["ann"], "expires_in": 1.5}, 422),
        ({"recipients": []}, 422),
        ({"recipients": ["zed"]}, 404),
    ):
        r = client.post(route, json=body)
        assert r.status_code == status, (body, r.text)
        assert "\n" not in r.json()["detail"]
    assert client.post("/api/media/9999/links", json={"recipients": "all"}).status_code == 404
    assert TestClient(client.app).post(route, json={"recipients": "all"}).status_code == 401


def test_the_cli_prints_a_link_per_recipient_that_the_service_serves(served):
    client, ws, photo, _ = served
    run = CliRunner().invoke
    home = ["--home", str(ws.home)]
    result = run(
        cli,
        [
            *home,
            "links",
            "make",
            str(photo["id"]),
            "--to",
            "bob",
            "--base-url",
            "https://x.example/",
        ],
    )
    assert result.exit_code == 0, result.output
    handle, url = result.stdout.strip().split("\t")
    assert handle == "bob" and url.startswith("https://x.example/d/")
    r = TestClient(client.app).get(path_of(url))
    assert r.status_code == 200 and traced_to(client, r.content) == "bob"

    result = run(cli, [*home, "links", "make", "kodim05.png", "--all", "--expires", "12h"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [h for h, _ in lines] == sorted(r.handle for r in ws.recipients())
    for args, says in (
        (["links", "make", "9999", "--all"], "no media with id 9999"),
        (["links", "make", "nope.png", "--all"], "no original named 'nope.png'"),
        (["links", "make", "1"], "name the recipients with --to HANDLE, or give --all"),
        (["links", "make", "1", "--to", "zed"], "unknown recipient 'zed'"),
        (["links", "make", "1", "--all", "--expires", "soon"], "not a duration"),
    ):
        result = run(cli, [*home, *args])
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and "Traceback" not in result.output


# -- videos -------------------------------------------------------------------------------------
def test_a_marked_videos_copy_is_made_on_demand_and_an_unmarked_one_is_refused(tmp_path):
    ws = lt.Workspace.create(tmp_path / "ws")
    token, _ = ws.create_token("tests")
    with TestClient(
        create_app(ws.home, workers=1), headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for h in ("ann", "bob"):
            client.post("/api/recipients", json={"handle": h})
        media = upload(client, "/api/media", CLIP.name, CLIP.read_bytes()).json()
        r = client.get(f"/api/media/{media['id']}/copies/bob")
        assert r.status_code == 409 and "not marked yet" in r.json()["detail"]
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["ann"]})
        assert wait_for(client, job.json()["id"])["status"] == "done"
        r = client.get(f"/api/media/{media['id']}/copies/bob")
        assert r.status_code == 200, r.text
        assert (r.headers["x-copy-made"], r.headers["content-type"]) == ("true", "video/mp4")
        traced = upload(client, "/api/trace", "leak.mp4", r.content).json()
        assert (traced["verdict"], traced["recipient"]) == ("match", "bob")
        assert client.get(f"/api/media/{media['id']}/copies/bob").headers["x-copy-made"] == "false"


# -- a real server with two processes --------------------------------------------------------------
def test_two_server_processes_make_one_copy_once_and_log_no_link(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx2 as httpx

    ws = lt.Workspace.create(tmp_path / "ws")
    token, _ = ws.create_token("tests")
    ws.add_recipients([("ann", "", "")])
    media = ws.register_media(
        PHOTO, sha256=lt.registry.file_sha256(PHOTO), width=768, height=512, fingerprint=b""
    )
    ((_, link),) = links.issue(ws, media.id, ["ann"])
    ws.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "leaktrace", "--home", str(ws.home), "serve"]
            + ["--port", str(port), "--processes", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        gate = threading.Barrier(8)

        def fetch(i):
            gate.wait()
            if i % 2:
                return httpx.get(f"{base}/d/{link}", timeout=60)
            auth = {"Authorization": f"Bearer {token}"}
            return httpx.get(f"{base}/api/media/{media.id}/copies/ann", headers=auth, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fetch, range(8)))
    finally:
        server.terminate()
        server.wait(30)
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in answers}) == 1
    assert [r.headers["x-copy-made"] for r in answers].count("true") == 1
    assert [row[0] for row in copy_rows(ws.home, media.id, "ann")] == ["done"]
    text = log.read_text()
    assert "GET /d/<link>" in text and link not in text and link.split(".")[1] not in text
