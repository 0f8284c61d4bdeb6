"""The CLI workflow end to end, through Typer's CliRunner (and one real subprocess)."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import leaktrace as lt
from leaktrace import attacks
from leaktrace.cli import app
from leaktrace.registry import Workspace, file_sha256

from .conftest import KODAK, WALRUS

runner = CliRunner()
HANDLES = [f"patron{i:02d}" for i in range(50)]


def run(home, *args):
    return runner.invoke(app, ["--home", str(home), *map(str, args)])


def social(path, out):
    """A social-media pipeline: longest side 1080, JPEG 72 with 4:2:0, metadata stripped."""
    img = lt.read_image(path)
    small = attacks.rescale(img, 1080 / max(img.shape[:2]))
    from PIL import Image

    Image.fromarray(small).save(out, "JPEG", quality=72, subsampling=2)
    return out


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """A workspace with 50 recipients and 3 photos (2 Kodak, one 1800×1200 JPEG), all marked."""
    root = tmp_path_factory.mktemp("cli")
    home, shoot_dir, out = root / "ws", root / "shoot", root / "out"
    shoot_dir.mkdir()
    for n in (7, 15):
        (shoot_dir / f"kodim{n:02d}.png").write_bytes((KODAK / f"kodim{n:02d}.png").read_bytes())
    big = lt.read_image(WALRUS)  # already cropped: 1800×1200 at full resolution
    lt.write_image(shoot_dir / "walrus.jpg", np.ascontiguousarray(big), quality=90)
    assert run(home, "init").exit_code == 0
    csv = root / "patrons.csv"
    csv.write_text(
        "handle,name,email\n" + "".join(f"{h},Patron {h},{h}@example.com\n" for h in HANDLES)
    )
    assert run(home, "recipients", "import", csv).exit_code == 0
    photos = sorted(shoot_dir.iterdir())
    result = run(home, "embed", *photos, "--all", "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "150 copies written" in result.output
    return home, photos, out


def test_init_and_recipients(tmp_path):
    home = tmp_path / "ws"
    result = run(home, "init")
    assert result.exit_code == 0 and "workspace created" in result.output
    secret = (home / "leaktrace.key").read_text().split()[-1]
    assert secret not in result.output
    again = run(home, "init")
    assert again.exit_code == 2 and "already exists" in again.output
    assert (
        run(
            home, "recipients", "add", "alice", "--name", "Alice A.", "--email", "a@x.org"
        ).exit_code
        == 0
    )
    dup = run(home, "recipients", "add", "alice")
    assert dup.exit_code == 2 and "already exists" in dup.output and "Traceback" not in dup.output
    listed = run(home, "recipients", "list", "--json")
    assert json.loads(listed.output) == [
        {"handle": "alice", "name": "Alice A.", "email": "a@x.org"}
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("handle,name,email\nbob,Bob,b@x.org\nbad handle,X,\n")
    result = run(home, "recipients", "import", bad)
    assert result.exit_code == 2 and "line 3" in result.output


def test_remove_recipient_only_without_copies(shoot, tmp_path):
    home, _, _ = shoot
    assert run(home, "recipients", "add", "newcomer").exit_code == 0
    assert run(home, "recipients", "remove", "newcomer").exit_code == 0
    kept = run(home, "recipients", "remove", "patron01")
    assert kept.exit_code == 2 and "received copies" in kept.output
    assert "patron01" in run(home, "recipients", "list").output


def test_tokens_are_printed_once_listed_by_hint_and_revoked(tmp_path):
    home = tmp_path / "ws"
    run(home, "init")
    made = run(home, "token", "create", "--name", "shop")
    assert made.exit_code == 0
    token = made.stdout.strip()
    assert token.startswith("lt_") and len(token) > 40 and "\n" not in token
    ws = Workspace.open(home)
    assert ws.token_valid(token)
    listed = run(home, "token", "list")
    assert "shop" in listed.output and token[:7] in listed.output and token not in listed.output
    run(home, "token", "create", "--name", "shop")
    twice = run(home, "token", "revoke", "shop")
    assert twice.exit_code == 2 and "by its id" in twice.output
    assert run(home, "token", "revoke", "1").exit_code == 0
    assert not ws.token_valid(token)
    assert "shop" in run(home, "token", "list").output  # the second one still works
    gone = run(home, "token", "revoke", "1")
    assert gone.exit_code == 2 and "no working token" in gone.output


def test_serve_refuses_without_a_workspace(tmp_path):
    result = run(tmp_path / "none", "serve", "--port", "0")
    assert result.exit_code == 2 and "no workspace" in result.output


def test_serve_keeps_reports_as_long_as_told(tmp_path, monkeypatch):
    import uvicorn

    import leaktrace.service

    Workspace.create(tmp_path).close()
    made = []
    real = leaktrace.service.create_app
    monkeypatch.setattr(
        leaktrace.service, "create_app", lambda *a, **kw: made.append(kw) or real(*a, **kw)
    )
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    assert run(tmp_path, "serve").exit_code == 0
    assert run(tmp_path, "serve", "--keep-reports", "0").exit_code == 0
    assert [kw["keep_reports"] for kw in made] == [90, 0]
    refused = run(tmp_path, "serve", "--keep-reports", "-1")
    assert refused.exit_code == 2 and "--keep-reports" in refused.output


def test_commands_without_a_workspace_explain(tmp_path):
    result = run(tmp_path / "none", "recipients", "list")
    assert result.exit_code == 2 and "no workspace" in result.output


def test_embed_writes_named_copies_and_records_them(shoot):
    home, photos, out = shoot
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(files) == 150 and "patron07/walrus.jpg" in files and "patron49/kodim07.png" in files
    ws = Workspace.open(home)
    records = ws.copies()
    assert len(records) == 150
    assert all(file_sha256(r.path) == r.sha256 for r in records)
    # Originals are kept in the workspace, content-addressed.
    for m in ws.media():
        assert file_sha256(ws.original_path(m)) == m.sha256
    # Running again skips what exists.
    again = run(home, "embed", *photos, "--all", "-o", out, "--workers", "1")
    assert again.exit_code == 0 and "0 copies written, 150 already there" in again.output


def test_a_verdict_lists_only_the_most_suspect_and_counts_the_rest(shoot, tmp_path, monkeypatch):
    """Among 10⁶ recipients a verdict would list 10⁶ scores: it keeps the most suspect
    (leaktrace.verdicts.LISTED, 1,000; 40 here) and counts the rest."""
    monkeypatch.setattr("leaktrace.verdicts.LISTED", 40)
    home, _, out = shoot
    leak = social(out / "patron13" / "walrus.jpg", tmp_path / "leak.jpg")
    report = tmp_path / "evidence.html"
    data = json.loads(run(home, "trace", leak, "--json", "--report", report).output)
    assert (data["recipient"], data["candidates_tested"]) == ("patron13", 50)
    scores = [c["score"] for c in data["candidates"]]
    assert len(scores) == 40 and data["candidates"][0]["handle"] == "patron13"
    assert scores == sorted(scores, reverse=True)
    page = report.read_text()
    assert 'aria-label="Score z of 50 candidates"' in page
    assert re.search(r"…and 20 more, scoring at most -?\d+\.\d\d\.", page)


def test_social_media_leak_is_traced_with_exit_0(shoot, tmp_path):
    home, _, out = shoot
    leak = social(out / "patron13" / "walrus.jpg", tmp_path / "leak.jpg")
    report = tmp_path / "evidence.html"
    result = run(home, "trace", leak, "--json", "--report", report)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"] == "match" and data["recipient"] == "patron13"
    assert data["p_value"] <= 1e-9 and data["media"]["name"] == "walrus.jpg"
    assert len(data["candidates"]) == 50 and data["candidates"][0]["handle"] == "patron13"
    page = report.read_text()
    assert file_sha256(leak) in page and 'class="scores' in page and "patron13" in page
    plain = run(home, "trace", leak)
    # The verdict names the person, as the recipients table holds them.
    assert data["person"] == {
        "handle": "patron13",
        "name": "Patron patron13",
        "email": "patron13@example.com",
    }
    assert plain.exit_code == 0 and plain.output.startswith(
        "leaked by patron13 — Patron patron13 <patron13@example.com> (media: walrus.jpg"
    )


def test_every_copy_of_a_photo_names_its_recipient(shoot):
    home, _, out = shoot
    ws = Workspace.open(home)
    media = next(m for m in ws.media() if m.name == "kodim15.png")
    original = lt.read_image(ws.original_path(media))
    for h in HANDLES:
        leak = attacks.jpeg(lt.read_image(out / h / "kodim15.png"), 75)
        found = lt.detect(leak, ws.key, media.mark_id, HANDLES, original=original)
        assert found.recipient == h


def test_undistributed_photo_and_bad_files(shoot, tmp_path):
    home, _, _ = shoot
    never = run(home, "trace", KODAK / "kodim20.png")
    assert never.exit_code == 1 and "matches no registered media" in never.output
    unmarked = run(home, "trace", KODAK / "kodim07.png")  # registered, but not a copy
    assert unmarked.exit_code == 1 and "your unmarked original kodim07.png" in unmarked.output
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    for path in (junk, tmp_path / "missing.jpg"):
        result = run(home, "trace", path)
        assert result.exit_code == 2 and "error:" in result.output
        assert "Traceback" not in result.output
    traces = Workspace.open(home).traces()
    assert {t.name for t in traces} >= {"kodim20.png", "kodim07.png"}


def test_a_no_match_names_nobody_and_an_original_is_recognised(shoot, tmp_path):
    home, _, _ = shoot
    # The registered original itself, as a file and as the same pixels in another file.
    pixels = tmp_path / "same-pixels.png"
    lt.write_image(pixels, lt.read_image(KODAK / "kodim15.png"))
    for path, how in ((KODAK / "kodim15.png", "the same bytes"), (pixels, "the same pixels")):
        result = run(home, "trace", path, "--json")
        data = json.loads(result.output)
        assert result.exit_code == 1 and data["verdict"] == "original"
        assert data["media"]["name"] == "kodim15.png" and data["media"]["identical"] == how
        assert data["candidates"] == [] and data["person"] is None
        assert data["message"].startswith("this is your unmarked original kodim15.png")
    # The original re-encoded (not a copy): tested against every recipient, nobody named,
    # neither in the line, nor in the JSON, nor in the evidence report.
    reencoded = tmp_path / "reencoded.jpg"
    lt.write_image(reencoded, lt.read_image(KODAK / "kodim15.png"), quality=90)
    report = tmp_path / "report.html"
    result = run(home, "trace", reencoded, "--json", "--report", report)
    data = json.loads(result.output)
    assert result.exit_code == 1 and data["verdict"] == "no_match"
    assert data["recipient"] is None and data["person"] is None
    assert len(data["candidates"]) == 50 and all(c.keys() == {"score"} for c in data["candidates"])
    line = run(home, "trace", reencoded).output
    assert line.startswith("no confident match (media: kodim15.png): nobody is named")
    for text in (result.output, line, report.read_text()):
        assert "patron" not in text.lower()


def test_the_registrys_history(shoot, tmp_path):
    home, _, out = shoot
    run(home, "trace", social(out / "patron07" / "kodim07.png", tmp_path / "leak.jpg"))
    media = json.loads(run(home, "media", "list", "--json").output)
    assert [m["name"] for m in media] == ["kodim07.png", "kodim15.png", "walrus.jpg"]
    assert all(m["recipients"] == 50 and len(m["sha256"]) == 64 for m in media)
    sent = json.loads(run(home, "copies", "list", "--to", "PATRON07", "--json").output)
    assert sorted(c["media"] for c in sent) == ["kodim07.png", "kodim15.png", "walrus.jpg"]
    assert {c["handle"] for c in sent} == {"patron07"}
    assert all(c["path"].startswith(str(out / "patron07")) for c in sent)
    assert len(json.loads(run(home, "copies", "list", "--json").output)) == 150
    table = run(home, "copies", "list", "--to", "patron07").output
    assert table.count("patron07") >= 3 and "kodim07.png" in table
    unknown = run(home, "copies", "list", "--to", "nobody")
    assert unknown.exit_code == 2 and unknown.output == "error: unknown recipient 'nobody'\n"
    traces = json.loads(run(home, "traces", "list", "--json").output)
    last = traces[-1]
    assert (last["leak"], last["verdict"], last["recipient"]) == ("leak.jpg", "match", "patron07")
    assert last["person"]["email"] == "patron07@example.com"
    wide = {"COLUMNS": "200"}
    listed = runner.invoke(app, ["--home", str(home), "traces", "list"], env=wide).output
    assert "patron07 — Patron patron07 <patron07@example.com>" in listed and "leak.jpg" in listed


def test_import_skips_who_is_registered_and_reads_a_patreon_export(tmp_path):
    home = tmp_path / "ws"
    assert run(home, "init").exit_code == 0
    export = tmp_path / "members.csv"
    export.write_text(
        "Name,Email,Tier,Pledge Amount,Patron Status\n"
        "Chloé Martin,chloe@example.com,Gold,10,Active patron\n"
        "Ann Lee,ann@example.com,Silver,5,Active patron\n"
        "Ann Lee,ann.lee@example.org,Silver,5,Former patron\n"
        ",anon+42@example.com,Gold,3,Active patron\n",
        encoding="utf-8",
    )
    result = run(home, "recipients", "import", export)
    assert result.exit_code == 0 and result.output == "imported 4 recipients\n"
    people = json.loads(run(home, "recipients", "list", "--json").output)
    assert people == [
        {"handle": "ann-lee", "name": "Ann Lee", "email": "ann@example.com"},
        {"handle": "ann-lee-2", "name": "Ann Lee", "email": "ann.lee@example.org"},
        {"handle": "anon-42", "name": "", "email": "anon+42@example.com"},
        {"handle": "chloe-martin", "name": "Chloé Martin", "email": "chloe@example.com"},
    ]
    # The list grows: importing it again is refused on the first row already there, unless
    # told to skip those; a newcomer whose name is taken gets the next free handle.
    with export.open("a", encoding="utf-8") as fh:
        fh.write("Ann Lee,third.ann@example.net,Gold,10,Active patron\n")
    again = run(home, "recipients", "import", export)
    assert (
        again.exit_code == 2 and "line 2: chloe@example.com is already registered" in again.output
    )
    grown = run(home, "recipients", "import", export, "--skip-existing")
    assert grown.output == "imported 1 recipients, skipped 4 already registered\n"
    assert "ann-lee-3" in run(home, "recipients", "list").output
    # Its own format too: handles as given.
    own = tmp_path / "own.csv"
    own.write_text("handle,name,email\nann-lee,,\nzed,Zed,\n")
    assert run(home, "recipients", "import", own, "--skip-existing").output == (
        "imported 1 recipients, skipped 1 already registered\n"
    )
    # Not UTF-8 (Excel's "CSV" in Western Europe): one line saying how to save it.
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("Name,Email\nZoë,zoe@example.com\n".encode("latin-1"))
    bad = run(home, "recipients", "import", latin)
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    assert "is not UTF-8 text" in bad.output and "CSV UTF-8" in bad.output


def test_every_options_help_is_shown_whole():
    """Rich reads "[...]" in a help text as markup and drops it ("Processes ."): every
    option's help must reach --help as written."""
    import click
    import typer.main

    def commands(group, path):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from commands(cmd, [*path, name])
            else:
                yield [*path, name], cmd

    root = typer.main.get_command(app)
    for path, cmd in commands(root, []):
        shown = " ".join(
            runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output.split()
        )
        for param in cmd.params:
            helped = getattr(param, "help", None)
            if helped:
                assert " ".join(helped.split()) in shown, (path, helped)


def test_embed_refuses_unknown_recipients_and_bad_sources(shoot, tmp_path):
    home, photos, _ = shoot
    result = run(home, "embed", photos[0], "--to", "nobody", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "unknown recipient 'nobody'" in result.output
    result = run(home, "embed", photos[0], "-o", tmp_path / "o")
    assert result.exit_code == 2 and "--all" in result.output
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    result = run(home, "embed", junk, "--to", "patron01", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "junk.png" in result.output


@pytest.mark.parametrize("attack", ["crop10-corner", "rot+7-cropped", "screenshot-jpeg85"])
def test_cropped_and_screenshotted_leaks_are_traced(shoot, tmp_path, attack):
    home, _, out = shoot
    leak = tmp_path / "leak.png"
    lt.write_image(leak, attacks.GEOMETRIC[attack](lt.read_image(out / "patron21" / "kodim07.png")))
    report = tmp_path / "evidence.html"
    result = run(home, "trace", leak, "--json", "--report", report)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recipient"] == "patron21" and data["media"]["name"] == "kodim07.png"
    assert data["registration"] is not None and 0 < data["evidence_coverage"] <= 1
    assert "<h2>Registration</h2>" in report.read_text()  # the leak warped onto the original


def test_colluders_averaging_their_copies_are_all_named(shoot, tmp_path):
    home, _, out = shoot
    guilty = ["patron03", "patron21", "patron40"]
    copies = [lt.read_image(out / h / "kodim07.png") for h in guilty]
    leak = tmp_path / "pooled.jpg"
    lt.write_image(leak, np.mean(copies, axis=0).round().astype(np.uint8), quality=80)
    result = run(home, "trace", leak, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {a["handle"] for a in data["accused"]} == set(guilty)
    assert all(a["p_value"] <= 1e-9 for a in data["accused"])
    assert data["recipient"] == data["accused"][0]["handle"]
    plain = run(home, "trace", leak)
    assert plain.output.startswith("leaked by 3 recipients together (media: kodim07.png")
    assert all(h in plain.output for h in guilty)
