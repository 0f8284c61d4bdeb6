"""The JSON of a trace's verdict, the parts photos and videos share (``trace_file`` adds what
is particular to each).

A verdict names people only when it is a match: ``person`` (handle, name, email, as the
recipients table holds them; the most suspect's), each ``accused`` entry and the message line
say who. A no-match names nobody: neither
its message nor its candidates (their scores are kept, without handles). A leak that is a
registered original itself is answered as such (``verdict: "original"``), not traced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

from .detect import Detection
from .errors import UnknownRecipientError
from .register import Geometry
from .registry import Media, Workspace

__all__ = [
    "NULL_MODEL",
    "leakers",
    "matched",
    "message",
    "no_match",
    "original",
    "p_text",
    "p_words",
    "people",
    "registration",
    "who",
]

#: How the false-accusation probability is computed, as the verdict's settings say it.
#: The most suspect candidates a verdict lists with their scores (the rest are only counted,
#: in ``candidates_tested``): a trace among 10⁶ recipients stays a small record.
LISTED = 1000

NULL_MODEL = (
    "Chernoff bound with the exact moment generating function of an innocent's score under "
    "the copy's code, Bonferroni over candidates, the code's scores and originals tried"
)

Person = dict[str, str]


def p_words(log10_p: float) -> str:
    """``10 ** log10_p`` as printed, also where a float would underflow.

    >>> p_words(-27.1), p_words(-307.556), p_words(-1234.96)
    ('7.9e-28', '2.8e-308', '1.1e-1235')
    """
    if log10_p > -300:
        return f"{10.0**log10_p:.2g}"
    exponent = math.floor(log10_p)
    mantissa = float(f"{10.0 ** (log10_p - exponent):.2g}")
    if mantissa >= 10:  # rounded up to the next power of ten
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def p_text(found: Detection) -> str:
    """The false-accusation probability as printed (a power of ten when it underflows)."""
    return p_words(found.log10_p_value)


def people(ws: Workspace, handles: Iterable[str]) -> dict[str, Person]:
    """The people behind ``handles``: handle, name and email from the recipients table."""
    found: dict[str, Person] = {}
    for h in handles:
        try:
            (r,) = ws.recipients([h])
        except UnknownRecipientError:  # removed since (only possible without copies on record)
            found[h] = {"handle": h, "name": "", "email": ""}
            continue
        found[h] = {"handle": r.handle, "name": r.name, "email": r.email}
    return found


def who(named: Person) -> str:
    """A person in one line: ``bob — Bob Brown <bob@example.com>`` (what the record holds)."""
    about = " ".join(
        part for part in (named.get("name"), named.get("email") and f"<{named['email']}>") if part
    )
    return f"{named['handle']} — {about}" if about else named["handle"]


def leakers(found: Detection, named: dict[str, Person], where: str) -> str:
    """The verdict line naming every accused recipient (``where``: what the leak shows)."""

    def person(h: str) -> str:
        return who(named.get(h) or {"handle": h})

    if len(found.accused) == 1:
        return (
            f"leaked by {person(found.accused[0][0])} ({where}, false-accusation probability "
            f"{p_text(found)})"
        )
    each = "; ".join(f"{person(h)} (p={p_words(lp)})" for h, lp in found.accused)
    return (
        f"leaked by {len(found.accused)} recipients together ({where}; false-accusation "
        f"probability of each): {each}"
    )


def message(found: Detection, named: dict[str, Person], where: str) -> str:
    """The verdict's line: who leaked, or that nobody is named (``where``: what the leak
    shows, ``media: x.jpg``)."""
    if found.verdict == "match" and found.accused:
        return leakers(found, named, where)
    return (
        f"no confident match ({where}): nobody is named, no recipient's score reaches the "
        f"match threshold (the highest has p={p_text(found)})"
    )


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
        "accused": [],
        "candidates": [],
        "candidates_tested": 0,
        "message": f"no confident match: {name} {reason}",
    }


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
    named: dict[str, Person] | None = None,
    **about: Any,
) -> dict[str, Any]:
    """The verdict of a detection run on ``media`` (``about``: more fields of its ``media``
    block), every candidate's score included; ``named``: the accused people, by handle."""
    accused = found.verdict == "match"
    named = named or {}
    return {
        "verdict": found.verdict,
        "recipient": found.recipient,
        "person": named.get(found.recipient) if accused and found.recipient else None,
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
        # Every recipient whose own probability passes the threshold, most suspect first.
        "accused": [
            {
                **(named.get(h) or {"handle": h}),
                "p_value": 10.0**lp,
                "log10_p_value": lp,
                "score": found.scores[h],
            }
            for h, lp in found.accused
        ],
        # What each probability was multiplied by (a case's combined probability undoes it
        # per person: see leaktrace.combine).
        "multiplicity": {"pairs": found.pairs, "tests": found.tests, "codes": found.groups},
        # A no-match keeps the scores (how far below the threshold) but not whose they are.
        "candidates": [
            {"handle": h, "score": round(z, 4)} if accused else {"score": round(z, 4)}
            for h, z in itertools.islice(found.scores.items(), LISTED)
        ],
        "candidates_tested": len(found.scores),
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
