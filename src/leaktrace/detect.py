"""Detection: soft values from a leak, candidate scores, and the false-accusation probability.

The null model needs nothing about the picture. An innocent candidate's codeword is a keyed
random ±1 vector independent of the leak, so its normalised score
``z = <c, y> / ||y||`` obeys Hoeffding's bound ``P(z ≥ t) ≤ exp(-t²/2)`` whatever the soft
values ``y`` are (host content, compression and attacks included). Multiplying by the number
of candidates (Bonferroni) gives the probability that *any* innocent candidate scores as high
as the best one: that is the ``p_value`` reported, and a match is declared only when it is at
most ``threshold`` (default 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from .codes import codewords, layout
from .errors import DetectionInputError
from .keys import Key
from .mask import perceptual_mask
from .register import Geometry, align
from .transform import analyse, band_gains, check_image, luma, to_working, working_shape

__all__ = [
    "DEFAULT_THRESHOLD",
    "Detection",
    "detect",
    "extract",
    "false_accusation_log10",
    "score",
]

DEFAULT_THRESHOLD = 1e-9
_LOG10_E = math.log10(math.e)


@dataclass(frozen=True)
class Detection:
    """The answer to "who leaked this?".

    ``scores`` maps every candidate to its normalised score z, best first. ``p_value`` is the
    probability that an innocent candidate would score as high as the best one, corrected
    for the number of candidates; ``log10_p_value`` keeps it when it underflows a float.
    ``geometry`` tells where an informed leak was found on the original (None when it was
    only resized, or in blind mode); ``coverage`` is the share of the original whose pixels
    the leak really shows and that counted as evidence (informed mode); ``soft`` holds the
    soft value of every code position that the scores were computed from.
    """

    verdict: Literal["match", "no_match"]
    recipient: str | None
    p_value: float
    log10_p_value: float
    threshold: float
    mode: Literal["informed", "blind"]
    scores: dict[str, float] = field(repr=False)
    geometry: Geometry | None = field(default=None, repr=False)
    coverage: float | None = None
    soft: np.ndarray | None = field(default=None, repr=False)

    @property
    def best(self) -> str:
        """The highest-scoring candidate, whether or not it is a confident match."""
        return next(iter(self.scores))


def false_accusation_log10(z: float, candidates: int) -> float:
    """log10 of ``min(1, candidates * exp(-z²/2))``: the corrected Hoeffding tail at ``z``."""
    if z <= 0:
        return 0.0
    return min(0.0, math.log10(candidates) - z * z / 2 * _LOG10_E)


def _tone_matched_residual(leak: np.ndarray, original: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Leak minus the original passed through the leak's tone curve (fitted per grey level on
    the pixels the leak covers); zero where it covers nothing."""
    levels = np.clip(original, 0, 255).astype(np.intp).ravel()
    weights = valid.ravel().astype(np.float64)
    counts = np.bincount(levels, weights=weights, minlength=256)
    sums = np.bincount(levels, weights=leak.ravel() * weights, minlength=256)
    seen = np.flatnonzero(counts > 0)
    if seen.size == 0:
        return np.zeros_like(leak)
    curve = np.interp(np.arange(256), seen, sums[seen] / counts[seen])
    predicted = np.interp(original, np.arange(256), curve).astype(np.float32)
    return (leak - predicted) * valid


#: Local mean difference (grey levels) above which leak pixels are not the original's: a
#: screenshot's bars, a collage's neighbours, text pasted over it. The mark and the detail that
#: compression or downscaling loses average out to nearly nothing over a few pixels.
_FOREIGN_LEVELS = 16.0


def _consistent(residual: np.ndarray, limit: float | None = None) -> np.ndarray:
    """1 where the registered leak looks like the original, 0 where it shows something else.

    Without ``limit`` the cut adapts to how far the leak as a whole strays from the original.
    """
    local = np.abs(cv2.GaussianBlur(residual, (0, 0), 4.0))
    if limit is None:
        spread = 1.4826 * float(np.median(local[residual != 0])) if residual.any() else 0.0
        limit = max(_FOREIGN_LEVELS, 6 * spread)
    keep = (local < limit).astype(np.uint8)
    return cv2.erode(keep, np.ones((9, 9), np.uint8)).astype(np.float32)


def _informed_residual(
    plane: np.ndarray, reference: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, float]:
    """Tone-matched leak minus reference on the pixels that are really the original's.

    Foreign pixels (a screenshot's bars, a rotation's black corners) would bend the tone
    curve, so they are cut coarsely first, the curve refitted, then cut finely.
    """
    keep = valid
    for limit in (48.0, None):
        keep = keep * _consistent(_tone_matched_residual(plane, reference, keep), limit)
    return _tone_matched_residual(plane, reference, keep), float(keep.mean())


def _whitened(bands: list[np.ndarray]) -> np.ndarray:
    """Blind mode: divide every coefficient by the local magnitude of its band."""
    out = []
    for band in bands:
        local = np.sqrt(cv2.GaussianBlur(band * band, (0, 0), 1.5)) + np.float32(1e-3)
        out.append((band / local).ravel())
    return np.concatenate(out)


def _soft_values(
    leak: np.ndarray, key: Key, media_id: str, original: np.ndarray | None
) -> tuple[np.ndarray, Geometry | None, float | None]:
    geometry, coverage = None, None
    if original is not None:
        base = to_working(original)
        native = float(np.sqrt(original.shape[0] * original.shape[1] / base.size))
        plane, reference, valid, geometry = align(luma(leak), base, native=native)
        residual, coverage = _informed_residual(plane, reference, valid)
        residual *= perceptual_mask(base)
        bands = analyse(residual)
        values = np.concatenate([b.ravel() for b in bands]) * band_gains(bands)
        shape = working_shape(original.shape)
    else:
        bands = analyse(to_working(leak))
        values = _whitened(bands) * band_gains(bands)
        shape = working_shape(leak.shape)
    return layout(key, media_id, shape, values.size).collect(values), geometry, coverage


def extract(
    leak: np.ndarray, key: Key, media_id: str, *, original: np.ndarray | None = None
) -> np.ndarray:
    """Return the soft value of every code position (length :data:`CODE_LENGTH`).

    With ``original`` (informed mode) the leak is registered onto the original (undoing
    crops, rotation, flips, rescaling, perspective, screenshots — see :mod:`leaktrace.register`),
    tone-matched to it and the original subtracted, on the pixels the leak covers only;
    without it (blind mode) the leak's own wavelet bands are whitened, which leaves the host
    picture as noise and so is weaker.
    """
    return _soft_values(leak, key, media_id, original)[0]


def score(soft: np.ndarray, key: Key, media_id: str, candidates: Sequence[str]) -> np.ndarray:
    """Normalised score z of each candidate: ``<codeword, soft> / ||soft||``."""
    norm = float(np.linalg.norm(soft))
    if norm == 0:
        return np.zeros(len(candidates))
    matrix = codewords(key, media_id, candidates, length=soft.size)
    return (matrix @ soft.astype(np.float32)).astype(np.float64) / norm


def detect(
    leak: np.ndarray,
    key: Key,
    media_id: str,
    candidates: Sequence[str],
    *,
    original: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    hypotheses: int = 1,
) -> Detection:
    """Test every candidate as the source of ``leak`` and report the best with its p-value.

    Parameters
    ----------
    leak : ndarray
        The leaked picture, any size (in informed mode it is registered onto the original).
    key, media_id
        As given to :func:`leaktrace.embed`.
    candidates : sequence of str
        Recipients who may have leaked it (duplicates are tested once).
    original : ndarray, optional
        The unmarked original; without it detection is blind and weaker.
    threshold : float
        Largest false-accusation probability that still counts as a match.
    hypotheses : int
        How many such tests the caller runs on this leak (originals tried, geometries
        searched); the p-value is multiplied by it, like by the number of candidates.

    Examples
    --------
    >>> import numpy as np, leaktrace as lt
    >>> key = lt.Key.generate()
    >>> img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    >>> copy = lt.embed(img, key, media_id="m", recipient="bob")
    >>> lt.detect(copy, key, media_id="m", candidates=["ann", "bob"], original=img).recipient
    'bob'
    """
    names = list(dict.fromkeys(candidates))
    if not names:
        raise DetectionInputError("no candidates to test")
    if not 0 < threshold < 1:
        raise DetectionInputError("threshold must be between 0 and 1")
    if hypotheses < 1:
        raise DetectionInputError("hypotheses must be at least 1")
    check_image(leak)
    if original is not None:
        check_image(original)
    soft, geometry, coverage = _soft_values(leak, key, media_id, original)
    z = score(soft, key, media_id, names)
    order = np.argsort(-z, kind="stable")
    best = int(order[0])
    log10_p = false_accusation_log10(float(z[best]), len(names) * hypotheses)
    matched = log10_p <= math.log10(threshold)
    return Detection(
        verdict="match" if matched else "no_match",
        recipient=names[best] if matched else None,
        p_value=10.0**log10_p,
        log10_p_value=log10_p,
        threshold=threshold,
        mode="blind" if original is None else "informed",
        scores={names[i]: float(z[i]) for i in order},
        geometry=geometry,
        coverage=coverage,
        soft=soft,
    )
