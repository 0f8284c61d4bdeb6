"""The JSON of a trace's verdict, the parts photos and videos share (``trace_file`` adds what
is particular to each)."""

from __future__ import annotations

from typing import Any

from .detect import Detection
from .register import Geometry
from .registry import Media

__all__ = ["NULL_MODEL", "leakers", "matched", "no_match", "p_text", "registration"]

#: How the false-accusation probability is computed, as the verdict's settings say it.
NULL_MODEL = (
    "Chernoff bound with the exact moment generating function of an innocent's score under "
    "the copy's code, Bonferroni over candidates and originals tried"
)


def _p(log10_p: float) -> str:
    return f"{10.0**log10_p:.2g}" if log10_p > -300 else f"1e{log10_p:.0f}"


def p_text(found: Detection) -> str:
    """The false-accusation probability as printed (a power of ten when it underflows)."""
    return _p(found.log10_p_value)


def leakers(found: Detection, where: str) -> str:
    """The verdict line naming every accused recipient (``where``: what the leak shows)."""
    if len(found.accused) == 1:
        return (
            f"leaked by {found.recipient} ({where}, false-accusation probability {p_text(found)})"
        )
    each = ", ".join(f"{h} (p={_p(lp)})" for h, lp in found.accused)
    return (
        f"leaked by {len(found.accused)} recipients together ({where}; false-accusation "
        f"probability of each): {each}"
    )


def no_match(name: str, reason: str) -> dict[str, Any]:
    """A verdict that names nobody because no registered original could be tested."""
    return {
        "verdict": "no_match",
        "recipient": None,
        "p_value": 1.0,
        "log10_p_value": 0.0,
        "mode": None,
        "media": None,
        "accused": [],
        "candidates": [],
        "message": f"no confident match: {name} {reason}",
    }


def matched(
    found: Detection, media: Media, *, similarity: float, tried: int, **about: Any
) -> dict[str, Any]:
    """The verdict of a detection run on ``media`` (``about``: more fields of its ``media``
    block), every candidate's score included."""
    return {
        "verdict": found.verdict,
        "recipient": found.recipient,
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
            {"handle": h, "p_value": 10.0**lp, "log10_p_value": lp, "score": found.scores[h]}
            for h, lp in found.accused
        ],
        "candidates": [{"handle": h, "score": round(z, 4)} for h, z in found.scores.items()],
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
