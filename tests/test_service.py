"""The HTTP service through FastAPI's TestClient: every route, its auth and its errors."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import leaktrace as lt
from leaktrace.service import create_app

from .conftest import KODAK

PHOTO = KODAK / "kodim05.png"
OTHER = KODAK / "kodim20.png"
PEOPLE = ["ann", "bob", "cy"]

# Every route but the health check, with a harmless body: all must answer 401 without a token.
GUARDED = [
    ("get", "/api/recipients"),
    ("post", "/api/recipients"),
    ("post", "/api/recipients/import"),
    ("delete", "/api/recipients/ann"),
    ("post", "/api/media"),
    ("get", "/api/media"),
    ("get", "/api/media/1"),
    ("get", "/api/media/1/copies"),
    ("post", "/api/media/1/copies"),
    ("get", "/api/jobs/x"),
    ("get", "/api/jobs/x/download"),
    ("post", "/api/trace"),
    ("get", "/api/traces"),
    ("get", "/api/traces/1"),
    ("get", "/api/traces/1/report"),
]


def jpeg(path, quality=75) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def upload(client, route, name, data, **kw):
    return client.post(route, files={"file": (name, data)}, **kw)


def wait_for(client, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A workspace with three recipients and one photo's copies, behind a running app."""
    home = tmp_path_factory.mktemp("served")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    app = create_app(home, max_upload=4 * 1024 * 1024, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for h in PEOPLE:
            assert client.post("/api/recipients", json={"handle": h}).status_code == 201
        media = upload(client, "/api/media", PHOTO.name, PHOTO.read_bytes()).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
        assert job.status_code == 202, job.text
        assert job.json()["status"] in ("queued", "running", "done")
        done = wait_for(client, job.json()["id"])
        yield client, ws, media, done


def test_health_needs_no_token_and_docs_list_the_routes(served):
    client, *_ = served
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/health").json() == {"status": "ok", "version": lt.__version__}
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/health",
        "/api/recipients",
        "/api/recipients/import",
        "/api/recipients/{handle}",
        "/api/media",
        "/api/media/{media_id}",
        "/api/media/{media_id}/copies",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/download",
        "/api/trace",
        "/api/traces",
        "/api/traces/{trace_id}",
        "/api/traces/{trace_id}/report",
    }
    assert anonymous.get("/docs").status_code == 200
    page = anonymous.get("/")  # the web page needs no token to load; its API calls do
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="app.js"' in page.text
    assert anonymous.get("/app.js").status_code == 200
    assert anonymous.get("/style.css").status_code == 200


@pytest.mark.parametrize(("method", "route"), GUARDED)
def test_every_api_route_refuses_a_missing_or_bad_token(served, method, route):
    client, *_ = served
    anonymous = TestClient(client.app)
    for headers in ({}, {"Authorization": "Bearer lt_wrong"}, {"Authorization": "Basic x"}):
        r = anonymous.request(method, route, headers=headers)
        assert r.status_code == 401, (route, headers, r.text)
        assert "token" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_the_token_is_checked_before_the_body_is_read(served):
    client, *_ = served
    anonymous = TestClient(client.app)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = anonymous.post(
            "/api/recipients",
            content=b"not json",
            headers={**headers, "content-type": "application/json"},
        )
        assert r.status_code == 401
        r = upload(anonymous, "/api/trace", "x.jpg", b"\0" * (5 * 1024 * 1024), headers=headers)
        assert r.status_code == 401  # not 413: a stranger learns nothing, not even the limit


def test_invalid_requests_get_one_line_messages(served):
    client, *_ = served
    cases = [
        (client.post("/api/recipients", json={}), "body.handle: Field required"),
        (client.post("/api/media"), "body.file: Field required"),
        (client.get("/api/media/abc"), "path.media_id: "),
        (
            client.post(
                "/api/recipients", content=b"{", headers={"content-type": "application/json"}
            ),
            "body.1: JSON decode error",
        ),
    ]
    for r, start in cases:
        assert r.status_code == 422
        assert isinstance(r.json()["detail"], str)
        assert r.json()["detail"].startswith(start), r.json()


def test_refused_requests_change_nothing_and_revoked_tokens_stop_working(served):
    client, ws, *_ = served
    anonymous = TestClient(client.app)
    r = anonymous.post("/api/recipients", json={"handle": "intruder"})
    assert r.status_code == 401
    assert "intruder" not in [p.handle for p in ws.recipients()]
    token, row = ws.create_token("temporary")
    auth = {"Authorization": f"Bearer {token}"}
    assert anonymous.get("/api/media", headers=auth).is_success
    ws.revoke_token(str(row.id))
    assert anonymous.get("/api/media", headers=auth).status_code == 401
    assert all(t.name != "temporary" for t in ws.tokens())


def test_tokens_are_stored_only_as_digests(served):
    _, ws, *_ = served
    token, _ = ws.create_token("secret-check")
    raw = (ws.home / lt.Workspace.DB_NAME).read_bytes()
    wal = ws.home / (lt.Workspace.DB_NAME + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw
    assert token[3:].encode() not in raw


def test_recipients_add_list_import_remove(served):
    client, *_ = served
    listed = client.get("/api/recipients").json()
    assert [r["handle"] for r in listed] == PEOPLE
    assert all(r["copies"] == 1 for r in listed)

    r = client.post("/api/recipients", json={"handle": "dee", "name": "Dee", "email": "d@x.org"})
    assert r.status_code == 201
    assert r.json() == {"handle": "dee", "name": "Dee", "email": "d@x.org", "copies": 0}
    assert client.post("/api/recipients", json={"handle": "dee"}).status_code == 409
    bad = client.post("/api/recipients", json={"handle": "no spaces"})
    assert bad.status_code == 422
    assert "bad handle" in bad.json()["detail"]
    assert client.post("/api/recipients", json={"name": "no handle"}).status_code == 422

    csv = b"handle,name,email\neve,Eve,e@x.org\nfay,Fay,\n"
    r = upload(client, "/api/recipients/import", "people.csv", csv)
    assert r.status_code == 201
    assert r.json()["imported"] == 2
    # One bad row: nothing is imported, and the line is named.
    r = upload(client, "/api/recipients/import", "more.csv", b"handle\ngus\nbad handle\n")
    assert r.status_code == 422
    assert "line 3" in r.json()["detail"]
    assert "gus" not in [p["handle"] for p in client.get("/api/recipients").json()]

    assert client.delete("/api/recipients/fay").status_code == 204
    assert client.delete("/api/recipients/fay").status_code == 404
    kept = client.delete("/api/recipients/ann")  # ann has a copy: her record stays
    assert kept.status_code == 409
    assert "copies" in kept.json()["detail"]
    for h in ("dee", "eve"):
        assert client.delete(f"/api/recipients/{h}").status_code == 204
    assert [r["handle"] for r in client.get("/api/recipients").json()] == PEOPLE


def test_media_upload_list_and_errors(served):
    client, _, media, _ = served
    assert media["name"] == PHOTO.name
    assert (media["width"], media["height"]) == (768, 512)
    again = upload(client, "/api/media", "renamed.png", PHOTO.read_bytes())
    assert again.status_code == 200
    assert again.json()["id"] == media["id"]
    assert again.json()["copies"] == len(PEOPLE)
    assert [m["id"] for m in client.get("/api/media").json()] == [media["id"]]
    assert client.get(f"/api/media/{media['id']}").json()["sha256"] == media["sha256"]
    assert client.get("/api/media/999").status_code == 404
    assert client.get("/api/media/999/copies").status_code == 404

    text = upload(client, "/api/media", "notes.png", b"just some text, not an image")
    assert text.status_code == 415
    assert text.json()["detail"] == "notes.png: not an image in a format leaktrace reads"
    truncated = upload(client, "/api/media", "cut.jpg", jpeg(OTHER)[:4000])
    assert truncated.status_code == 422
    assert truncated.json()["detail"].startswith("cut.jpg: the file is truncated")
    assert upload(client, "/api/media", "empty.png", b"").status_code == 422
    assert client.post("/api/media").status_code == 422  # no file field
    assert [m["id"] for m in client.get("/api/media").json()] == [media["id"]]


def test_uploads_over_the_limit_get_413_before_anything_is_stored(served):
    client, ws, *_ = served
    big = b"\0" * (5 * 1024 * 1024)
    r = upload(client, "/api/media", "huge.png", big)
    assert r.status_code == 413
    assert "4 MB" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(6):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    multipart = {"content-type": "multipart/form-data; boundary=b"}
    r = client.post("/api/trace", content=chunks(), headers=multipart)
    assert r.status_code == 413
    assert len(ws.media()) == 1


def test_copies_job_runs_to_completion_and_downloads_a_zip(served):
    client, _, media, job = served
    assert job["status"] == "done"
    assert (job["done"], job["total"], job["errors"]) == (3, 3, [])
    copies = client.get(f"/api/media/{media['id']}/copies").json()
    assert sorted(c["file"] for c in copies) == [f"{h}/kodim05.png" for h in PEOPLE]

    r = client.get(job["download_url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="kodim05-copies.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert sorted(zf.namelist()) == [f"{h}/kodim05.png" for h in PEOPLE]
        files = {n: zf.read(n) for n in zf.namelist()}
    by_hash = {c["sha256"]: c["file"] for c in copies}
    for name, data in files.items():
        assert by_hash[hashlib.sha256(data).hexdigest()] == name
    assert len(set(files.values())) == 3  # each recipient's copy is different

    # A second job for one recipient finds the copy already made.
    again = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["bob"]})
    assert again.status_code == 202
    finished = wait_for(client, again.json()["id"])
    assert (finished["status"], finished["done"], finished["total"]) == ("done", 1, 1)


def test_copies_job_refuses_bad_requests(served):
    client, _, media, _ = served
    route = f"/api/media/{media['id']}/copies"
    assert client.post("/api/media/999/copies", json={"recipients": "all"}).status_code == 404
    unknown = client.post(route, json={"recipients": ["ann", "zed"]})
    assert unknown.status_code == 404
    assert "zed" in unknown.json()["detail"]
    assert client.post(route, json={"recipients": []}).status_code == 422
    assert client.post(route, json={"recipients": "everyone"}).status_code == 422
    assert client.post(route, json={"recipients": "all", "strength": 0}).status_code == 422
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/download").status_code == 404


def test_a_failed_job_records_no_copies(tmp_path):
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    app = create_app(tmp_path, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        client.post("/api/recipients", json={"handle": "ann"})
        media = upload(client, "/api/media", OTHER.name, OTHER.read_bytes()).json()
        stored = ws.original_path(ws.media_by_id(media["id"]))
        stored.write_bytes(stored.read_bytes()[:3000])  # the disk lost the original
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
        failed = wait_for(client, job.json()["id"])
        assert failed["status"] == "failed"
        assert "truncated" in failed["errors"][0]
        assert failed["download_url"] is None
        assert client.get(job.json()["download_url"] or "/x").status_code in (404, 405)
        assert client.get(f"/api/jobs/{failed['id']}/download").status_code == 409
        assert client.get(f"/api/media/{media['id']}/copies").json() == []
        assert ws.copies() == []
        leftovers = list((tmp_path / "copies").rglob("*"))
        assert [p for p in leftovers if p.is_file()] == []


def test_trace_names_the_recipient_and_serves_its_report(served):
    client, *_ = served
    copies = zipfile.ZipFile(io.BytesIO(client.get(served[3]["download_url"]).content))
    leak = io.BytesIO()
    Image.open(io.BytesIO(copies.read("bob/kodim05.png"))).convert("RGB").save(
        leak, "JPEG", quality=70
    )
    r = upload(client, "/api/trace", "found-online.jpg", leak.getvalue())
    assert r.status_code == 200
    result = r.json()
    assert (result["verdict"], result["recipient"]) == ("match", "bob")
    assert result["p_value"] <= 1e-9
    assert result["leak"]["name"] == "found-online.jpg"
    scores = {c["handle"]: c["score"] for c in result["candidates"]}
    assert scores["bob"] > result["match_score"]
    assert max(scores["ann"], scores["cy"]) < result["match_score"]

    report = client.get(result["report_url"])
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "found-online.jpg" in report.text
    assert client.get(f"/api/traces/{result['trace_id']}").json()["recipient"] == "bob"
    listed = client.get("/api/traces").json()
    assert listed[0]["id"] == result["trace_id"]
    assert client.get("/api/traces/999").status_code == 404
    assert client.get("/api/traces/999/report").status_code == 404


def test_trace_of_unrelated_or_bad_files(served):
    client, *_ = served
    r = upload(client, "/api/trace", "stranger.jpg", jpeg(OTHER))
    assert r.status_code == 200
    assert (r.json()["verdict"], r.json()["recipient"]) == ("no_match", None)
    assert client.get(r.json()["report_url"]).status_code == 200
    assert upload(client, "/api/trace", "x.jpg", b"GIF89a nonsense").status_code == 415
    assert upload(client, "/api/trace", "x.jpg", jpeg(OTHER)[:2000]).status_code == 422
    bad = client.post("/api/trace", files={"file": ("a.jpg", jpeg(OTHER))}, data={"threshold": "2"})
    assert bad.status_code == 422


def test_eight_concurrent_traces_all_answer_correctly(served):
    client, *_ = served
    copies = zipfile.ZipFile(io.BytesIO(client.get(served[3]["download_url"]).content))
    leaks = {}
    for h in PEOPLE:
        buf = io.BytesIO()
        Image.open(io.BytesIO(copies.read(f"{h}/kodim05.png"))).convert("RGB").save(
            buf, "JPEG", quality=80
        )
        leaks[h] = buf.getvalue()
    jobs = [PEOPLE[i % 3] for i in range(8)]
    start = threading.Barrier(8)

    def one(handle):
        start.wait()
        return handle, upload(client, "/api/trace", f"{handle}.jpg", leaks[handle])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, jobs))
    for handle, r in answers:
        assert r.status_code == 200
        assert (r.json()["verdict"], r.json()["recipient"]) == ("match", handle)
    ids = [r.json()["trace_id"] for _, r in answers]
    assert len(set(ids)) == 8
