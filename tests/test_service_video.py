"""Videos through the HTTP service: upload, a job's marking then copies, one recipient's copy,
tracing a leaked clip, and every kind of bad video answered 4xx in one line.

The clip is the repository's 4-s 320×240 sample without sound (a clip under a minute is marked
per recipient, so its copies name their recipient at once); a job on it takes a few seconds,
and so does a trace.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import leaktrace as lt
from leaktrace.service import create_app
from leaktrace.service import jobs as service_jobs
from leaktrace.workflow import make_copies

from .images import encode
from .test_service import table_counts, upload, wait_for

MEDIA = Path(__file__).resolve().parents[1] / "examples" / "media"
CLIP = MEDIA / "clip_bbb_320x240_noaudio.mp4"  # 4 s, 25 fps, no sound
SOUND = MEDIA / "clip_flower_30fps.mp4"  # 4 s with an AAC track
PEOPLE = ["ann", "bob", "cy"]


@pytest.fixture(scope="module")
def served_video(tmp_path_factory):
    """Three recipients and the clip's copies for all of them, behind a running app."""
    home = tmp_path_factory.mktemp("video")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    app = create_app(home, max_upload=4 * 1024 * 1024, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for h in PEOPLE:
            assert client.post("/api/recipients", json={"handle": h}).status_code == 201
        started = time.monotonic()
        # Sent without a suffix: its bytes say it is an MP4.
        media = upload(client, "/api/media", "bunny", CLIP.read_bytes())
        assert media.status_code == 201, media.text
        uploaded = time.monotonic() - started
        job = client.post(f"/api/media/{media.json()['id']}/copies", json={"recipients": "all"})
        assert job.status_code == 202, job.text
        done = wait_for(client, job.json()["id"])
        yield client, ws, media.json(), done, uploaded


def test_a_video_uploads_at_once_and_its_first_job_marks_it(served_video):
    client, ws, media, job, uploaded = served_video
    assert media["name"] == "bunny.mp4"
    assert (media["kind"], media["width"], media["height"]) == ("video", 320, 240)
    assert media["duration"] is None  # not marked yet: the upload only checked and kept it
    assert uploaded < 10  # no encode in the upload (the copies take longer)
    assert (job["status"], job["done"], job["total"], job["errors"]) == ("done", 3, 3, [])
    assert (job["phase"], job["frames"], job["frames_total"]) == (None, None, None)
    marked = client.get(f"/api/media/{media['id']}").json()
    assert (marked["duration"], marked["copies"]) == (4.0, 3)
    photos = [m for m in client.get("/api/media").json() if m["kind"] == "image"]
    assert photos == []


def test_each_recipients_copy_downloads_alone_and_names_them(served_video):
    client, ws, media, job, _ = served_video
    copies = client.get(f"/api/media/{media['id']}/copies").json()
    assert sorted(c["file"] for c in copies) == [f"{h}/bunny.mp4" for h in PEOPLE]
    bob = next(c for c in copies if c["handle"] == "bob")
    assert bob["download_url"] == f"/api/media/{media['id']}/copies/bob/download"
    r = client.get(bob["download_url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "video/mp4"
    assert 'filename="bunny.mp4"' in r.headers["content-disposition"]
    assert hashlib.sha256(r.content).hexdigest() == bob["sha256"]

    # Found online without its suffix: traced as a video all the same.
    traced = upload(client, "/api/trace", "found online", r.content)
    assert traced.status_code == 200, traced.text
    result = traced.json()
    assert (result["verdict"], result["recipient"]) == ("match", "bob")
    assert result["p_value"] <= 1e-9
    assert result["leak"]["name"] == "found online.mp4"
    assert result["media"]["kind"] == "video" and result["media"]["id"] == media["id"]
    video = result["video"]
    assert (video["start"], video["end"], video["segments_present"]) == (0.0, 4.0, 8)
    scores = {c["handle"]: c["score"] for c in result["candidates"]}
    assert scores["bob"] > 10 > max(scores["ann"], scores["cy"])

    report = client.get(result["report_url"])
    assert report.status_code == 200
    text = report.text
    assert "Matched time range" in text and "0:00.0–0:04.0 of bunny.mp4" in text
    assert "Evidence over time" in text and text.count('role="img"') == 2
    assert "Original at 0:02.0" in text
    assert "<th>Segment length</th><td>0.5 s</td>" in text
    assert '{"code"' not in text  # the settings are a table, not JSON


def test_the_unmarked_original_is_not_accused(served_video):
    client, *_ = served_video
    r = upload(client, "/api/trace", CLIP.name, CLIP.read_bytes())
    assert r.status_code == 200
    assert (r.json()["verdict"], r.json()["recipient"]) == ("original", None)
    assert r.json()["media"]["kind"] == "video"
    assert client.get(r.json()["report_url"]).status_code == 200


def test_copy_downloads_refused_saying_why(served_video, tmp_path):
    client, ws, media, *_ = served_video
    route = f"/api/media/{media['id']}/copies"
    assert client.get(f"{route}/dave/download").status_code == 404
    assert client.get("/api/media/999/copies/bob/download").status_code == 404
    assert client.get(f"{route}/BOB/download").status_code == 200  # handles ignore case

    # A copy made elsewhere (by the CLI) is listed but not served.
    ws.add_recipient("dave")
    source = ws.original_path(ws.media_by_id(media["id"]))
    list(make_copies(ws, [source], ["dave"], tmp_path / "out", names=[media["name"]]))
    listed = {c["handle"]: c for c in client.get(route).json()}
    assert listed["dave"]["download_url"] is None
    refused = client.get(f"{route}/dave/download")
    assert refused.status_code == 404
    assert refused.json()["detail"] == "no copy of bunny.mp4 made by the service for dave"


def _audio_only(dest: Path) -> Path:
    """An MP4 holding only SOUND's audio track."""
    with av.open(str(SOUND)) as src, av.open(str(dest), "w") as out:
        stream = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(audio=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return dest


def test_bad_videos_are_answered_4xx_in_one_line_changing_nothing(served_video, tmp_path):
    client, ws, media, *_ = served_video
    copy = client.get(f"/api/media/{media['id']}/copies/ann/download").content
    assert copy[4:8] == b"ftyp" and copy.find(b"moov") < copy.find(b"mdat")  # faststart
    whole = CLIP.read_bytes()  # its index (moov) comes last
    bad = {
        "cut-copy.mp4": copy[: len(copy) // 2],  # index first: the video stops half way
        "cut-original.mp4": whole[: len(whole) * 3 // 4],  # no index at all
        "header-only.mp4": whole[:64],
        "sound.mp4": _audio_only(tmp_path / "sound.mp4").read_bytes(),
        "notes.mp4": b"not a video at all " * 50,
        "garbage.mkv": b"\x1a\x45\xdf\xa3" + bytes(2000),
        "riff.avi": b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(500),
        "empty.mov": b"",
    }
    before = table_counts(ws.home)
    answers = {}
    for name, data in bad.items():
        for route in ("/api/media", "/api/trace"):
            r = upload(client, route, name, data)
            assert 400 <= r.status_code < 500, (route, name, r.status_code, r.text)
            detail = r.json()["detail"]
            assert detail.startswith(name) and "\n" not in detail, (route, detail)
            answers[route, name] = detail
    assert "truncated" in answers["/api/trace", "cut-copy.mp4"]
    assert "truncated" in answers["/api/media", "cut-copy.mp4"]
    assert "no video stream (only audio)" in answers["/api/trace", "sound.mp4"]
    assert "no video stream (only audio)" in answers["/api/media", "sound.mp4"]
    assert answers["/api/trace", "empty.mov"] == "empty.mov is empty"
    assert table_counts(ws.home) == before


def test_a_picture_named_like_a_video_is_read_as_a_picture(served_video):
    client, *_ = served_video
    buf = io.BytesIO()
    Image.open(MEDIA / "kodim20.png").convert("RGB").save(buf, "JPEG", quality=90)
    traced = upload(client, "/api/trace", "still.mp4", buf.getvalue())
    assert traced.status_code == 200, traced.text
    assert traced.json()["leak"]["name"] == "still.mp4.jpg"
    assert traced.json()["verdict"] == "no_match"


def test_videos_have_their_own_upload_limit(tmp_path):
    home = tmp_path / "ws"
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    mb = 1024 * 1024
    app = create_app(home, max_upload=1 * mb, max_video_upload=3 * mb, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        before = table_counts(home)
        junk = b"\0" * (2 * mb)
        # A video's name lets 2 MB through to be judged (not a video: 4xx, not 413).
        for route in ("/api/media", "/api/trace"):
            r = upload(client, route, "clip.mp4", junk)
            assert r.status_code in (415, 422), r.text
            big = upload(client, route, "photo.png", junk)
            assert big.status_code == 413
            assert big.json()["detail"] == (
                "upload larger than the 1 MB limit (a video may have up to 3 MB)"
            )
            huge = upload(client, route, "clip.mp4", b"\0" * (4 * mb))
            assert huge.status_code == 413
            assert huge.json()["detail"] == "upload larger than the 3 MB limit for a video"
        # Other routes keep the general limit, whatever the file is called.
        csv = upload(client, "/api/recipients/import", "people.mp4", junk)
        assert (csv.status_code, csv.json()["detail"]) == (413, "upload larger than the 1 MB limit")

        def chunks(name: str, size: int):  # no Content-Length: counted as it arrives
            yield (
                f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            for _ in range(size):
                yield b"\0" * mb
            yield b"\r\n--b--\r\n"

        multipart = {"content-type": "multipart/form-data; boundary=b"}

        def sent(name: str, size: int) -> int:
            return client.post(
                "/api/trace", content=chunks(name, size), headers=multipart
            ).status_code

        assert sent("a.png", 2) == 413
        assert sent("a.webm", 2) in (415, 422)  # judged: not a video
        assert sent("a.webm", 4) == 413
        assert table_counts(home) == before


def test_a_running_video_job_reports_marking_then_copies(tmp_path, monkeypatch):
    """The phase a job is in, as a client polls it (the batch is held at each step)."""
    home = tmp_path / "ws"
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    step, go = threading.Event(), threading.Event()

    def held(*args, on_variants, on_total, **kw):
        for frames in (8, 56):
            on_variants("clip.mp4", frames, 100)
            step.set()
            go.wait(10)
            go.clear()
        on_total(2)
        step.set()
        go.wait(10)
        yield from ()

    monkeypatch.setattr(service_jobs, "make_copies", held)
    app = create_app(home, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for h in ("ann", "bob"):
            client.post("/api/recipients", json={"handle": h})
        media = upload(client, "/api/media", CLIP.name, CLIP.read_bytes()).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"}).json()
        seen = []
        for _ in range(3):
            assert step.wait(10)
            step.clear()
            now = client.get(f"/api/jobs/{job['id']}").json()
            seen.append((now["status"], now["phase"], now["frames"], now["frames_total"]))
            go.set()
        ended = wait_for(client, job["id"])
    assert seen == [
        ("running", "marking", 8, 100),
        ("running", "marking", 56, 100),
        ("running", "copies", None, None),
    ]
    assert (ended["phase"], ended["frames"]) == (None, None)


def test_copies_of_a_video_with_sound_keep_it(tmp_path):
    """A clip with an AAC track: its copies are MP4 with the same sound, bit for bit."""
    home = tmp_path / "ws"
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    app = create_app(home, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        client.post("/api/recipients", json={"handle": "ann"})
        media = upload(client, "/api/media", "flower.mov", SOUND.read_bytes()).json()
        assert (media["name"], media["kind"]) == ("flower.mp4", "video")
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["ann"]})
        assert wait_for(client, job.json()["id"])["status"] == "done"
        data = client.get(f"/api/media/{media['id']}/copies/ann/download").content

    def sound(source) -> list[bytes]:
        with av.open(source) as c:
            return [bytes(p) for p in c.demux(audio=0) if p.size]

    assert sound(io.BytesIO(data)) == sound(str(SOUND))
    with av.open(io.BytesIO(data)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (480, 270)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_pictures_are_not_taken_for_videos(served_video, fmt):
    """They start with an MP4 box too: their brand says they are pictures."""
    client, *_ = served_video
    pixels = np.asarray(Image.open(MEDIA / "kodim20.png").convert("RGB"))
    data = encode(pixels, fmt, quality=90)
    assert data[4:8] == b"ftyp"
    name = f"still.{fmt.lower()}"
    traced = upload(client, "/api/trace", name, data)
    assert traced.status_code == 200, traced.text
    assert (traced.json()["leak"]["name"], traced.json()["verdict"]) == (name, "no_match")
    refused = upload(client, "/api/media", name, data)
    assert refused.status_code == 415
    assert "read for tracing only" in refused.json()["detail"]
