"""The JSON of a trace's verdict, the parts photos and videos share (``trace_file`` adds what
is particular to each).

A verdict names a person only when it is a match: ``person`` (handle, name, email, as the
recipients table holds them) and the message line say who. A no-match names nobody: neither
its message nor its candidates (their scores are kept, without handles). A leak that is a
registered original itself is answered as such (``verdict: "original"``), not traced.
"""

from __future__ import annotations

from typing import Any

from .detect import Detection
from .errors import UnknownRecipientError
from .register import Geometry
from .registry import Media, Workspace

__all__ = [
    "matched",
    "message",
    "no_match",
    "original",
    "p_text",
    "person",
    "registration",
    "who",
]


def p_text(found: Detection) -> str:
    """The false-accusation probability as printed (a power of ten when it underflows)."""
    if found.p_value > 0:
        return f"{found.p_value:.2g}"
    return f"1e{found.log10_p_value:.0f}"


def no_match(name: str, reason: str) -> dict[str, Any]:
    """A verdict that names nobody because no registered original could be tested."""
    return {
        "verdict": "no_match",
        "recipient": None,
        "person": None,
        "p_value": 1.0,
        "log10_p_value": 0.0,
        "mode": None,
        "media": None,
        "candidates": [],
        "message": f"no confident match: {name} {reason}",
    }


def person(ws: Workspace, handle: str | None) -> dict[str, str] | None:
    """The person behind ``handle``: handle, name and email from the recipients table (None
    for no handle)."""
    if handle is None:
        return None
    try:
        (r,) = ws.recipients([handle])
    except UnknownRecipientError:  # removed since (only possible without copies on record)
        return {"handle": handle, "name": "", "email": ""}
    return {"handle": r.handle, "name": r.name, "email": r.email}


def who(named: dict[str, str]) -> str:
    """A person in one line: ``bob — Bob Brown <bob@example.com>`` (what the record holds)."""
    about = " ".join(
        part for part in (named.get("name"), named.get("email") and f"<{named['email']}>") if part
    )
    return f"{named['handle']} — {about}" if about else named["handle"]


def message(found: Detection, named: dict[str, str] | None, where: str) -> str:
    """The verdict's line; ``where`` says in what the leak was found (``media: x.jpg``)."""
    if found.verdict == "match" and named is not None:
        return f"leaked by {who(named)} ({where}, false-accusation probability {p_text(found)})"
    return (
        f"no confident match ({where}): nobody is named, no recipient's score reaches the "
        f"match threshold (the highest has p={p_text(found)})"
    )


def original(name: str, media: Media, how: str) -> dict[str, Any]:
    """The answer for a leak that is the registered original ``media`` itself (``how``: what
    is identical): it carries no mark, so it names nobody and nothing is tested."""
    return {
        **no_match(name, ""),
        "verdict": "original",
        "media": {
            "id": media.id,
            "name": media.name,
            "sha256": media.sha256,
            "kind": media.kind,
            "identical": how,
        },
        "message": f"this is your unmarked original {media.name} (registered "
        f"{media.created:%Y-%m-%d}; {how}): it carries no mark and names nobody",
    }


def matched(
    found: Detection,
    media: Media,
    *,
    similarity: float,
    tried: int,
    named: dict[str, str] | None = None,
    **about: Any,
) -> dict[str, Any]:
    """The verdict of a detection run on ``media`` (``about``: more fields of its ``media``
    block), every candidate's score included; ``named``: the person a match names."""
    accused = found.verdict == "match"
    return {
        "verdict": found.verdict,
        "recipient": found.recipient,
        "person": named if accused else None,
        "p_value": found.p_value,
        "log10_p_value": found.log10_p_value,
        "mode": found.mode,
        "media": {
            "id": media.id,
            "name": media.name,
            "sha256": media.sha256,
            **about,
            "similarity": round(similarity, 4),
            "originals_tried": tried,
        },
        # A no-match keeps the scores (how far below the threshold) but not whose they are.
        "candidates": [
            {"handle": h, "score": round(z, 4)} if accused else {"score": round(z, 4)}
            for h, z in found.scores.items()
        ],
    }


def registration(geometry: Geometry | None) -> dict[str, Any] | None:
    """Where registration placed the leak on its original, or None (only rescaled)."""
    if geometry is None:
        return None
    return {
        "frame_coverage": round(geometry.coverage, 4),
        "flipped": geometry.flipped,
        "inliers": geometry.inliers,
        "matrix": [[round(v, 6) for v in row] for row in geometry.matrix.tolist()],
    }
