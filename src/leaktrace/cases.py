"""Cases: the scanned files that name the same leaker(s), by media item, with one combined
false-accusation probability (:mod:`leaktrace.combine`).

A case is keyed by the set of people a match accuses (one leaker, or several who combined
their copies): every scanned file whose trace accuses exactly that set belongs to it. Inside a
case, files are grouped by the media item they show, and inside a media item into **leaks**:
files with identical bytes (the same SHA-256) are one leak, and so are files of the same size
whose pictures are near-identical (fingerprint similarity at least :data:`RESHARE_SIMILARITY`,
what re-uploading the same file does) — re-shares of one leak. Leaks of one media item read the
same codeword, so only the best one counts towards the combined probability (paid for by the
number of distinct files); different media items are independent evidence.

Files that are not a match (nobody named, unrelated, unreadable) belong to no case; a case is
never built from a no-match, so an innocent is in a case only if a trace accused them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .combine import Evidence, combined_log10_p
from .identify import similarities
from .registry import Media, ScanFile, Workspace
from .verdicts import people

__all__ = [
    "RESHARE_SIMILARITY",
    "CaseFile",
    "CaseMedia",
    "CaseView",
    "case_dict",
    "case_view",
    "case_views",
    "found_at",
    "regroup",
]

#: Fingerprint similarity (see :func:`leaktrace.identify.similarities`) above which two files
#: of the same size showing the same media item for the same leaker are one leak re-shared.
RESHARE_SIMILARITY = 0.985


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CaseFile:
    """One file of a case: where it was found, its hash, its trace and verdict."""

    id: int
    path: str
    place: str  # where it was found, as shown: its path, or "uploaded as <name>"
    name: str
    sha256: str
    size: int
    trace_id: int
    traced: datetime
    log10_p: float
    leak: int  # the leak it belongs to (1, 2, ... within its media item)
    reshare: bool  # not the first file of its leak
    result: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CaseMedia:
    """The files of a case that show one media item."""

    media: Media
    files: list[CaseFile]

    @property
    def leaks(self) -> int:
        return max((f.leak for f in self.files), default=0)

    @property
    def log10_p(self) -> float:
        return min(f.log10_p for f in self.files)


@dataclass(frozen=True)
class CaseView:
    """A case as shown: who, the media items and files, the combined probability (of each
    person, and the case's: the largest of theirs) and the strongest single file's."""

    id: int
    handles: list[str]
    people: dict[str, dict[str, str]]
    media: list[CaseMedia]
    log10_p: float
    per_person: dict[str, float]
    eligible: int  # recipients who received every media item of the case
    created: datetime

    @property
    def files(self) -> list[CaseFile]:
        return [f for m in self.media for f in m.files]

    @property
    def strongest(self) -> float:
        return min(m.log10_p for m in self.media)

    @property
    def leaks(self) -> int:
        return sum(m.leaks for m in self.media)


def _accused(result: dict[str, Any]) -> list[str]:
    return sorted({str(a["handle"]) for a in result.get("accused") or []})


def _evidence(result: dict[str, Any], handle: str, media: str) -> Evidence:
    """One file's evidence against ``handle``: the trace's probability for them with the
    multiplicity of the whole candidate list taken off, their own tries kept."""
    entry = next(a for a in result["accused"] if a["handle"] == handle)
    log10_p = float(entry["log10_p_value"])
    many = result.get("multiplicity")
    if not many:  # an older verdict: its corrected probability, a conservative stand-in
        return Evidence(media, log10_p, 1)
    pairs, tests, codes = int(many["pairs"]), int(many["tests"]), int(many["codes"])
    return Evidence(media, log10_p - math.log10(pairs * tests), tests * codes)


def _tested(ws: Workspace, media: Media, result: dict[str, Any]) -> set[str]:
    """Who a match tested: the candidates it lists, or when it listed only the most suspect
    (``candidates_tested`` more), everyone the registry says was sent ``media``."""
    listed = result.get("candidates") or []
    if int(result.get("candidates_tested") or 0) > len(listed):
        return set(ws.media_recipients(media))
    return {str(c["handle"]) for c in listed if c.get("handle")}


def _leaks(files: list[tuple[ScanFile, dict[str, Any]]]) -> list[tuple[int, bool]]:
    """The leak of each file (1, 2, ...) and whether it is a re-share of an earlier file."""
    out: list[tuple[int, bool]] = []
    firsts: list[tuple[ScanFile, dict[str, Any], int]] = []
    for f, result in files:
        size = (result["leak"].get("width"), result["leak"].get("height"))
        same = None
        for g, g_result, leak in firsts:
            if g.sha256 == f.sha256:
                same = leak
                break
            g_size = (g_result["leak"].get("width"), g_result["leak"].get("height"))
            if (
                g_size == size
                and f.fingerprint
                and g.fingerprint
                and len(f.fingerprint) == len(g.fingerprint)
                and float(similarities(f.fingerprint, [g.fingerprint])[0]) >= RESHARE_SIMILARITY
            ):
                same = leak
                break
        if same is None:
            same = len(firsts) + 1
            firsts.append((f, result, same))
            out.append((same, False))
        else:
            out.append((same, True))
    return out


def _build(
    ws: Workspace,
    key: str,
    files: list[ScanFile],
    traces: dict[int, Any],
    case_id: int,
    created: datetime,
) -> CaseView:
    handles = key.split("+")
    by_media: dict[int, list[tuple[ScanFile, dict[str, Any]]]] = {}
    for f in files:
        if f.media_id is not None and f.trace_id is not None:
            by_media.setdefault(f.media_id, []).append((f, traces[f.trace_id].result))
    groups = []
    evidence: dict[str, list[Evidence]] = {h: [] for h in handles}
    eligible: set[str] | None = None
    for media_id in sorted(by_media):
        rows = by_media[media_id]
        leaks = _leaks(rows)
        case_files = [
            CaseFile(
                id=f.id,
                path=f.path,
                place=found_at(ws, f.path),
                name=f.name,
                sha256=f.sha256,
                size=f.size,
                trace_id=int(f.trace_id or 0),
                traced=_utc(traces[int(f.trace_id or 0)].created),
                log10_p=float(result["log10_p_value"]),
                leak=leak,
                reshare=again,
                result=result,
            )
            for (f, result), (leak, again) in zip(rows, leaks, strict=True)
        ]
        groups.append(CaseMedia(ws.media_by_id(media_id), case_files))
        seen: set[str] = set()
        tested: set[str] = set()
        for f, result in rows:
            tested |= _tested(ws, groups[-1].media, result)
            if f.sha256 in seen:  # the same bytes: the same evidence, counted once
                continue
            seen.add(f.sha256)
            for h in handles:
                evidence[h].append(_evidence(result, h, str(media_id)))
        eligible = tested if eligible is None else eligible & tested
    n = max(1, len(eligible or ()))
    per_person = {h: combined_log10_p(evidence[h], people=n) for h in handles}
    return CaseView(
        id=case_id,
        handles=handles,
        people=people(ws, handles),
        media=groups,
        log10_p=max(per_person.values()),
        per_person=per_person,
        eligible=n,
        created=created,
    )


def found_at(ws: Workspace, path: str) -> str:
    """Where a scanned file was found, as a person reads it: its path, or for a file
    uploaded to the service, the name it was uploaded as."""
    uploads = ws.home / "scans"
    return f"uploaded as {Path(path).name}" if Path(path).is_relative_to(uploads) else path


def _place(ws: Workspace, path: str) -> str:
    """Where a file was found: its path, or for a file uploaded to the service (kept in the
    workspace under the scan's id) its name — the same upload sent twice is one place."""
    uploads = ws.home / "scans"
    return Path(path).name if Path(path).is_relative_to(uploads) else path


def _matches(ws: Workspace) -> tuple[dict[str, list[ScanFile]], dict[int, Any]]:
    files = [f for f in ws.scanned() if f.status == "match" and f.trace_id is not None]
    traces = ws.traces_by_id(sorted({int(f.trace_id or 0) for f in files}))
    groups: dict[str, list[ScanFile]] = {}
    seen: set[tuple[str, str]] = set()
    for f in files:
        where = (_place(ws, f.path), f.sha256)
        if where in seen:
            continue
        seen.add(where)
        accused = _accused(traces[int(f.trace_id or 0)].result)
        if accused:
            groups.setdefault("+".join(accused), []).append(f)
    return groups, traces


def regroup(ws: Workspace) -> list[CaseView]:
    """Group every scanned match into its case, save the cases (an existing case keeps its
    id) and return them, oldest first."""
    groups, traces = _matches(ws)
    now = datetime.now(UTC)
    views = {key: _build(ws, key, files, traces, 0, now) for key, files in groups.items()}
    ws.save_cases(
        {key: (v.handles, v.log10_p, [f.id for f in groups[key]]) for key, v in views.items()}
    )
    return case_views(ws)


def case_views(ws: Workspace) -> list[CaseView]:
    """Every case as it stands in the registry, oldest first."""
    groups, traces = _matches(ws)
    out = []
    for case in ws.cases():
        files = [f for f in groups.get(case.key, []) if f.case_id == case.id]
        if files:
            out.append(_build(ws, case.key, files, traces, case.id, _utc(case.created)))
    return out


def case_view(ws: Workspace, case_id: int) -> CaseView:
    """One case (a clear error if there is no such case)."""
    case = ws.case(case_id)
    groups, traces = _matches(ws)
    files = [f for f in groups.get(case.key, []) if f.case_id == case.id]
    return _build(ws, case.key, files, traces, case.id, _utc(case.created))


def _p(log10_p: float) -> float:
    return 10.0**log10_p if log10_p > -300 else 0.0


def case_dict(view: CaseView, *, files: bool = True) -> dict[str, Any]:
    """A case as JSON (the CLI's ``--json`` and the service's answer); ``files``: with every
    file, else counts only."""
    out: dict[str, Any] = {
        "id": view.id,
        "leakers": [
            view.people.get(h, {"handle": h, "name": "", "email": ""}) for h in view.handles
        ],
        "media": [
            {
                "id": m.media.id,
                "name": m.media.name,
                "sha256": m.media.sha256,
                "registered": _utc(m.media.created),
                "files": len(m.files),
                "leaks": m.leaks,
                "log10_p": m.log10_p,
            }
            for m in view.media
        ],
        "files": len(view.files),
        "leaks": view.leaks,
        "log10_p": view.log10_p,
        "p_value": _p(view.log10_p),
        "log10_p_per_person": view.per_person,
        "strongest_log10_p": view.strongest,
        "eligible": view.eligible,
        "created": view.created,
    }
    if files:
        out["file_list"] = [
            {
                "id": f.id,
                "path": f.place,
                "name": f.name,
                "sha256": f.sha256,
                "media_id": m.media.id,
                "trace_id": f.trace_id,
                "traced": f.traced,
                "log10_p": f.log10_p,
                "leak": f.leak,
                "reshare": f.reshare,
            }
            for m in view.media
            for f in m.files
        ]
    return out
