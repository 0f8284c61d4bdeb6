"""A case's evidence bundle (a zip to hand to a platform or a lawyer), and its verification.

::

    case-3.zip
      index.html          the case: who, the combined probability, a chart of every file's
                          evidence, the files, the registry's proof, the settings
      reports/trace-<id>.html, .json   each traced file's evidence report (as `trace` makes)
      proof.json          the registry's records: each original (hash, when registered), each
                          copy sent to the accused (to whom, when, its hash), each file found
                          (where, its hash, its trace), the combined probability, the version
      takedown.txt        a notice pre-filled with the facts, for the user to review
      README.txt          what this is, and how to check it
      SHA256SUMS          every file's SHA-256 (``sha256sum -c SHA256SUMS`` checks them)
      manifest.json       the same, as JSON, with the bundle's format and case

The key and anything derived from it never go in. The SHA-256 of ``manifest.json`` is recorded
in the workspace at export, so :func:`verify_bundle` tells a file changed (its hash), a
manifest rewritten to match (not the one exported) and a registry record changed since (the
proof no longer matches it).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .cases import CaseView, case_view
from .detect import DEFAULT_THRESHOLD
from .errors import BundleError, LeaktraceError, WorkspaceError
from .media import is_video, read_image
from .registry import Workspace
from .report import CSS, chart, html_report, json_report, settings_table
from .verdicts import p_words, who

__all__ = ["BUNDLE_FORMAT", "Verification", "export_case", "p_words", "verify_bundle"]

BUNDLE_FORMAT = 1
_MANIFEST = "manifest.json"
_BIGGEST = 64 * 1024 * 1024  # a member of a bundle larger than this is not one we made


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- export -----------------------------------------------------------------------------------
def _proof(ws: Workspace, view: CaseView, exported: str) -> dict[str, Any]:
    media_ids = [m.media.id for m in view.media]
    first = view.files[0].result if view.files else {}
    return {
        "bundle_format": BUNDLE_FORMAT,
        "case": {
            "id": view.id,
            "leakers": [view.people.get(h, {"handle": h}) for h in view.handles],
            "combined_log10_p": view.log10_p,
            "combined_log10_p_per_person": view.per_person,
            "recipients_who_received_every_media_item": view.eligible,
            "strongest_single_log10_p": view.strongest,
            "threshold": first.get("threshold", DEFAULT_THRESHOLD),
        },
        "media": [
            {
                "id": m.media.id,
                "name": m.media.name,
                "sha256": m.media.sha256,
                "kind": m.media.kind,
                "registered": _iso(m.media.created),
            }
            for m in view.media
        ],
        "copies": ws.copy_proof(media_ids, view.handles),
        "files": [
            {
                "name": f.name,
                "found_at": f.place,
                "sha256": f.sha256,
                "size": f.size,
                "media_id": m.media.id,
                "trace_id": f.trace_id,
                "traced": _iso(f.traced),
                "verdict": f.result["verdict"],
                "log10_p": f.log10_p,
                "leak": f.leak,
                "reshare": f.reshare,
                "report": f"reports/trace-{f.trace_id}.html",
            }
            for m in view.media
            for f in m.files
        ],
        "software": {"name": "leaktrace", "version": __version__},
        "settings": first.get("settings", {}),
        "exported": exported,
    }


def _pixels(path: str) -> np.ndarray | None:
    if is_video(Path(path)):
        return None
    try:
        return read_image(path)
    except (LeaktraceError, OSError):
        return None


def _reports(ws: Workspace, view: CaseView) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for m in view.media:
        original = None if m.media.kind != "image" else _pixels(str(ws.original_path(m.media)))
        for f in m.files:
            name = f"reports/trace-{f.trace_id}"
            if f"{name}.html" in out:
                continue
            page = html_report(f.result, _pixels(f.path), original)
            out[f"{name}.html"] = page.encode("utf-8")
            out[f"{name}.json"] = (json_report(f.result) + "\n").encode("utf-8")
    return out


def _takedown(ws: Workspace, view: CaseView, proof: dict[str, Any], found_at: str | None) -> str:
    me = ws.settings()
    name = me["creator.name"] or "[YOUR NAME]"
    lines = [
        "DRAFT TAKEDOWN NOTICE — pre-filled by leaktrace from your records.",
        "Review every line and complete what is in [BRACKETS] before sending. This draft is",
        "not legal advice; the law and each platform's form differ (a DMCA notice in the US,",
        "a notice under the Digital Services Act in the EU, ...).",
        "",
        "To: [THE PLATFORM'S COPYRIGHT / ABUSE CONTACT]",
        "Subject: Copyright infringement — unauthorised copies of my work",
        "",
        f"I am {name}, the owner of the copyright in the work(s) described below. Copies of",
        "them have been published without my permission at the location(s) listed. I ask you",
        "to remove them or disable access to them.",
        "",
    ]
    by_media: dict[int, list[dict[str, Any]]] = {}
    for f in proof["files"]:
        by_media.setdefault(f["media_id"], []).append(f)
    for i, m in enumerate(proof["media"], 1):
        lines += [
            f"Work {i}: {m['name']}",
            f"  my original, registered on {m['registered'][:10]} (SHA-256 {m['sha256']})",
            "  where it was found:",
        ]
        if found_at:
            lines.append(f"    {found_at}")
        for f in by_media.get(m["id"], []):
            lines.append(f"    {f['found_at']} (file {f['name']}, SHA-256 {f['sha256']})")
        lines.append("")
    lines += [
        "I have a good-faith belief that this use of the material is not authorised by me,",
        "my agent or the law. The information in this notice is accurate, and I am the owner",
        "of the rights said to be infringed (or authorised to act for the owner).",
        "",
        f"Name: {name}",
        f"Email: {me['creator.email'] or '[YOUR EMAIL]'}",
        f"Address: {me['creator.address'] or '[YOUR POSTAL ADDRESS, if the platform asks]'}",
    ]
    if me["creator.website"]:
        lines.append(f"Website: {me['creator.website']}")
    lines += [
        "Signature: [SIGN HERE]",
        f"Date: {proof['exported'][:10]}",
        "",
        "-- ",
        f"Prepared with leaktrace {__version__} from case {view.id}. The person the copies were",
        "sent to is named in this bundle's index.html, not in this notice; whether to name",
        "them, and to whom, is your decision. Set your details once with",
        '`leaktrace settings set creator.name "..."` (and creator.email, creator.address).',
    ]
    return "\n".join(lines) + "\n"


def _index(view: CaseView, proof: dict[str, Any], found_at: str | None) -> str:
    e = html.escape
    threshold = float(proof["case"]["threshold"])
    people = [view.people.get(h, {"handle": h}) for h in view.handles]
    title = (
        f"Leaked by {view.handles[0]}"
        if len(view.handles) == 1
        else f"Leaked by {len(view.handles)} recipients together"
    )
    n_files, n_media = len(view.files), len(view.media)
    detail = (
        f"{e('; '.join(who(p) for p in people))} — {n_files} file{'s' * (n_files != 1)}, "
        f"{view.leaks} distinct leak{'s' * (view.leaks != 1)} of {n_media} media "
        f"item{'s' * (n_media != 1)}; combined false-accusation probability "
        f"{e(p_words(view.log10_p))}"
    )
    facts = [
        ("Case", str(view.id)),
        ("Accused", "<br>".join(e(who(p)) for p in people)),
        (
            "Combined false-accusation probability",
            f"<strong>{e(p_words(view.log10_p))}</strong> (log10 = {view.log10_p:.1f}); "
            f"threshold {threshold:g}",
        ),
        ("Strongest single file", e(p_words(view.strongest))),
        (
            "Recipients who received every media item",
            f"{view.eligible} (the people the combined probability is corrected for)",
        ),
        ("Where found", e(found_at) if found_at else "the file paths below"),
        ("Software", f"leaktrace {e(__version__)}"),
        ("Exported (UTC)", e(proof["exported"])),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    rows: list[dict[str, Any]] = [
        {"handle": f.name + (" (re-share)" if f.reshare else ""), "score": -f.log10_p}
        for m in view.media
        for f in m.files
    ]
    rows.sort(key=lambda r: -float(r["score"]))
    bars = chart(
        rows,
        -math.log10(threshold),
        True,
        threshold_label="threshold −log10 p",
        note="Evidence of each file: −log10 of its own false-accusation probability (longer "
        "is stronger); a file names someone only beyond the dashed threshold. Re-shares of "
        "one leak are the same evidence and are not counted twice.",
        beyond=True,
    )
    media_parts = []
    for m in view.media:
        files = "".join(
            f"<tr><th>{e(f.name)}"
            + (f" <em>(re-share of leak {f.leak})</em>" if f.reshare else "")
            + f"</th><td>where: {e(f.place)}<br>SHA-256 <code>{f.sha256}</code><br>"
            f"traced {e(_iso(f.traced))} (trace {f.trace_id}); p = {e(p_words(f.log10_p))}; "
            f'<a href="reports/trace-{f.trace_id}.html">evidence report</a></td></tr>'
            for f in m.files
        )
        media_parts.append(
            f"<h3>{e(m.media.name)}</h3><p>Original registered {e(_iso(m.media.created))}, "
            f"SHA-256 <code>{m.media.sha256}</code>; {len(m.files)} file"
            f"{'s' * (len(m.files) != 1)}, {m.leaks} distinct leak{'s' * (m.leaks != 1)}."
            f'</p><table class="facts">{files}</table>'
        )
    copies = "".join(
        f"<tr><th>{e(c['handle'])} — {e(c['media'])}</th><td>sent {e(c['sent'])} (copy "
        f"record {c['copy_id']}); copy SHA-256 <code>{c['sha256']}</code></td></tr>"
        for c in proof["copies"]
    )
    settings = {**proof["settings"], "threshold": threshold}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leaktrace case {view.id} — {e(", ".join(view.handles))}</title>
<style>
{CSS}</style></head><body>
<h1>leaktrace case {view.id}</h1>
<div class="verdict verdict-match"><p class="verdict-title">{e(title)}</p>
<p class="verdict-detail">{detail}</p></div>
<table class="facts">{table}</table>
<h2>Evidence of each file</h2>
{bars}
<p>How the files combine: every leak of one media item carries the same codeword, so for each
item only its strongest file counts (its probability multiplied by the item's number of
distinct files). Different media items carry independent codewords, so for an innocent their
probabilities are independent; their product is judged by the exact law of a product of
independent uniform probabilities (Fisher's method), then multiplied by the
{view.eligible} recipients who received every item: the chance that any innocent of them
would show evidence this strong in these files.</p>
<h2>Files found</h2>
{"".join(media_parts)}
<h2>The registry's record</h2>
<p>What the creator's registry held when this bundle was made: when each original was
registered, and when and to whom each copy was sent, with the copy's hash.</p>
<table class="facts">{copies}</table>
<h2>Settings</h2>
{settings_table(settings)}
<h2>Checking this bundle</h2>
<p>Every file's SHA-256 is in <code>SHA256SUMS</code> (<code>sha256sum -c SHA256SUMS</code>).
The creator can check the bundle against the registry it came from with
<code>leaktrace cases verify {e(f"case-{view.id}.zip")}</code>: it tells a changed file, a
changed manifest and a registry record changed since.</p>
</body></html>
"""


def _readme(view: CaseView) -> str:
    return (
        f"leaktrace evidence bundle — case {view.id}\n\n"
        "index.html     the case: who, the combined probability, every file, the registry's "
        "record\nreports/       each traced file's evidence report (HTML and JSON)\n"
        "proof.json     the registry's records as data\ntakedown.txt   a draft takedown "
        "notice to review and complete\nSHA256SUMS     every file's SHA-256\n"
        "manifest.json  the same, as JSON\n\n"
        "Check the files: sha256sum -c SHA256SUMS\n"
        "Check against the creator's registry: leaktrace cases verify <this zip>\n"
        "The secret key is not in this bundle, nor anything derived from it.\n"
    )


def export_case(
    ws: Workspace,
    case_id: int,
    target: str | os.PathLike[str],
    *,
    found_at: str | None = None,
) -> Path:
    """Write case ``case_id``'s evidence bundle to ``target`` (a zip; written under a
    temporary name, then renamed) and record its manifest's hash; returns its path.
    ``found_at``: where the files were found (a URL), for the notice and the index."""
    view = case_view(ws, case_id)
    out = Path(target)
    if out.is_dir():
        out = out / f"case-{case_id}.zip"
    exported = datetime.now(UTC).isoformat(timespec="seconds")
    proof = _proof(ws, view, exported)
    members: dict[str, bytes] = {
        "index.html": _index(view, proof, found_at).encode("utf-8"),
        **_reports(ws, view),
        "proof.json": (json.dumps(proof, indent=2) + "\n").encode("utf-8"),
        "takedown.txt": _takedown(ws, view, proof, found_at).encode("utf-8"),
        "README.txt": _readme(view).encode("utf-8"),
    }
    members["SHA256SUMS"] = "".join(
        f"{_sha(data)}  {name}\n" for name, data in sorted(members.items())
    ).encode("ascii")
    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "case": view.id,
        "exported": exported,
        "files": {name: _sha(data) for name, data in sorted(members.items())},
    }
    members[_MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    stamp = datetime.fromisoformat(exported).timetuple()[:6]
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, out)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WorkspaceError(f"cannot write {out}: {exc.strerror or exc}") from exc
    ws.record_export(view.id, _sha(members[_MANIFEST]))
    return out


# -- verification ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    """What :func:`verify_bundle` found: ``problems`` (one line each; none: it holds)."""

    case: int
    files: int
    records: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read(path: Path) -> dict[str, bytes]:
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            out = {}
            for info in zf.infolist():
                if info.file_size > _BIGGEST:
                    raise BundleError(f"{path}: {info.filename} is too large for a case bundle")
                out[info.filename] = zf.read(info)
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise BundleError(f"{path}: not a readable zip (corrupt or truncated): {exc}") from exc


def verify_bundle(ws: Workspace, path: str | os.PathLike[str]) -> Verification:
    """Check a case bundle: every file against the manifest, the manifest against the one the
    workspace recorded at export, and the registry's proof against the registry now."""
    bundle = Path(path)
    members = _read(bundle)
    if _MANIFEST not in members:
        raise BundleError(f"{bundle}: not a leaktrace case bundle (no {_MANIFEST})")
    try:
        manifest = json.loads(members[_MANIFEST])
        listed: dict[str, str] = dict(manifest["files"])
        case_id = int(manifest["case"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{bundle}: its {_MANIFEST} cannot be read") from exc
    problems = []
    for name in sorted(set(listed) | set(members) - {_MANIFEST}):
        if name not in members:
            problems.append(f"missing file: {name}")
        elif name not in listed:
            problems.append(f"added file: {name} (not in the manifest)")
        elif _sha(members[name]) != listed[name]:
            problems.append(f"changed file: {name} (its SHA-256 is not the manifest's)")
    if ws.export_by_manifest(_sha(members[_MANIFEST])) is None:
        problems.append(
            f"changed manifest: {_MANIFEST} is not one this workspace exported (it was "
            "edited, or the bundle comes from another workspace)"
        )
    records = 0
    proof = None
    if "proof.json" in members:
        try:
            proof = json.loads(members["proof.json"])
        except ValueError:
            problems.append("changed file: proof.json cannot be read")
    if isinstance(proof, dict):
        records, found = _check_proof(ws, proof)
        problems += found
    return Verification(case_id, len(listed), records, problems)


def _changed(what: str, bundled: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line for each field of a record whose registry value ``now`` is not the bundle's."""
    return [
        f"registry changed: {what}: {k} is {v}, the bundle says {bundled.get(k)}"
        for k, v in now.items()
        if bundled.get(k) != v
    ]


def _check_proof(ws: Workspace, proof: dict[str, Any]) -> tuple[int, list[str]]:
    """Compare the proof's records with the registry's; returns (records checked, problems)."""
    problems: list[str] = []
    count = 0
    by_id = {m.id: m for m in ws.media()}
    for m in proof.get("media", []):
        count += 1
        now = by_id.get(m.get("id"))
        if now is None:
            problems.append(f"registry changed: original {m.get('name')} is no longer registered")
            continue
        fields = {"sha256": now.sha256, "registered": _iso(now.created)}
        problems += _changed(f"original {m.get('name')}", m, fields)
    media_ids = [m.get("id") for m in proof.get("media", [])]
    handles = [p.get("handle") for p in proof.get("case", {}).get("leakers", [])]
    current = {c["copy_id"]: c for c in ws.copy_proof(media_ids, handles)}
    for c in proof.get("copies", []):
        count += 1
        sent = current.get(c.get("copy_id"))
        if sent is None:
            problems.append(
                f"registry changed: the copy record {c.get('copy_id')} ({c.get('handle')}, "
                f"{c.get('media')}) is gone"
            )
            continue
        fields = {k: sent[k] for k in ("handle", "media_id", "sent", "sha256")}
        what = f"copy record {c.get('copy_id')} ({c.get('handle')}, {c.get('media')})"
        problems += _changed(what, c, fields)
    traces = ws.traces_by_id([f.get("trace_id") for f in proof.get("files", [])])
    for f in proof.get("files", []):
        count += 1
        t = traces.get(f.get("trace_id"))
        if t is None:
            problems.append(f"registry changed: trace {f.get('trace_id')} is gone")
            continue
        fields = {"sha256": t.sha256, "verdict": t.verdict, "traced": _iso(t.created)}
        problems += _changed(f"trace {t.id} of {f.get('name')}", f, fields)
    return count, problems
