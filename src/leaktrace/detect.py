"""Detection: soft values from a leak, candidate scores, and the false-accusation probability.

The null model needs nothing about the picture. An innocent candidate's codeword is keyed and
independent of the leak, so its score on the soft values ``y`` (normalised: ``z = S / ||y||``)
is a sum of independent terms of known law whatever ``y`` is (host content, compression,
attacks and collusion included), and :meth:`leaktrace.codes.Code.tail_log10` bounds its tail
(Chernoff, never above Hoeffding's ``exp(-z²/2)``). Multiplying by the number of candidates
(Bonferroni; and, for a video's ``tardos-v2``, judged under two scores, by the inverse of
each score's share of the budget) gives each candidate's probability that *any* innocent
scores as high as it: every candidate at or under ``threshold`` (default 1e-9) is accused
(:class:`Scorer`), and the most suspect one's is the ``p_value`` reported.

Blind detection reads a leak in several ways and multiplies the p-value by the number of
readings it tried, like by the number of candidates (each reading is one more chance for an
innocent to score high). What it tries, and what each costs in readings:

- the whole picture, rescaled or stretched onto the original's grid, and its mirror image:
  2 (6 when the original's size is not known: the leak's own grid and its two neighbours);
- a picture rotated on a grown canvas, its outer edge found (:func:`sync.frame`): 1;
- a screenshot, the picture's edges found on the flat canvas around it (:func:`sync.picture`):
  1 (3 without the size);
- given the original's size, a picture turned about its centre and cropped about it: the
  template chooses the angle without looking at any codeword, and the 4 best angles are read
  with their neighbours 0.1° apart, and the crop not turned at all: 13;
- given the original's size, an unscaled crop placed by the template modulo its period: 36
  residues × every whole-period placement (a few hundred for a 50 % crop).

Choosing among geometries by the template, the picture's outline or the frame is free: none of
them depends on a candidate's codeword, so an innocent's score on the reading chosen keeps the
null law. Only readings scored with the codewords are paid for, by weighted Bonferroni: the
whole-picture readings, the other outline readings and the crop placements each have a third
of the false-accusation budget, shared evenly inside (:func:`_blind_judgement`). So a
whole-picture reading costs 3 × 2 = 6 tests, an outline reading 3 × (13 to 16), a crop
placement 3 × (the number of placements: about 330 for a 50 % crop of a Kodak photo).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Self, TypeVar, cast

import cv2
import numpy as np

from . import sync
from .codes import CODE_LENGTH, PHOTO_CODE, Code, Codebook, Layout, code, layout
from .errors import DetectionInputError, ImageArrayError
from .keys import Key
from .mask import perceptual_mask
from .register import Geometry, align
from .transform import (
    MARKED_LEVELS,
    MIN_LEAK_SIDE,
    analyse,
    band_gains,
    check_image,
    check_shape,
    luma,
    resize,
    to_working,
    working_shape,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "Candidates",
    "Detection",
    "Judgement",
    "Ranking",
    "Scorer",
    "detect",
    "extract",
    "informed_values",
    "score",
]

DEFAULT_THRESHOLD = 1e-9


_V = TypeVar("_V")


class _Index:
    """Handle -> position of a scorer's handles, made on the first look-up that needs it."""

    def __init__(self, handles: Sequence[str]) -> None:
        self.handles = handles
        self._where: dict[str, int] | None = None

    def __getitem__(self, handle: str) -> int:
        if self._where is None:
            self._where = {h: i for i, h in enumerate(self.handles)}
        return self._where[handle]


class Ranking(Mapping[str, _V]):
    """Candidates' values (scores, probabilities, codes), most suspect first, read from the
    scorer's arrays when asked: a million candidates cost no million-entry dict unless someone
    looks them all up. ``value(i)`` is the value of the ``i``-th handle of ``index``;
    ``order`` lists the positions most suspect first."""

    def __init__(self, index: _Index, order: np.ndarray, value: Callable[[int], _V]) -> None:
        self._index, self._order, self._value = index, order, value

    def __len__(self) -> int:
        return int(self._order.size)

    def __iter__(self) -> Iterator[str]:
        handles = self._index.handles
        return (handles[i] for i in self._order)

    def items(self) -> ItemsView[str, _V]:
        return _Items(self)

    def __getitem__(self, handle: str) -> _V:
        handles = self._index.handles
        for i in self._order[:64].tolist():  # the accused and the best are at the top
            if handles[i] == handle:
                return self._value(i)
        return self._value(self._index[handle])

    def __repr__(self) -> str:
        top = ", ".join(f"{h!r}: {v!r}" for h, v in itertools.islice(self.items(), 3))
        return f"Ranking({{{top}{', ...' if len(self) > 3 else ''}}}, {len(self)} candidates)"


class _Items(ItemsView[str, _V]):
    _mapping: Ranking[_V]

    def __iter__(self) -> Iterator[tuple[str, _V]]:
        ranking = self._mapping
        handles, value = ranking._index.handles, ranking._value
        return ((handles[i], value(i)) for i in ranking._order.tolist())


@dataclass(frozen=True)
class Judgement:
    """Every candidate's score z (best first) and corrected log10 false-accusation probability,
    and who is accused: every candidate whose own probability is at most the threshold. Under a
    code judged with several scores (``tardos-v2``), a candidate's z is that of the score that
    gave its probability, and ``needed`` is under the most suspect candidate's."""

    scores: Mapping[str, float]
    log10_p: Mapping[str, float]
    accused: tuple[str, ...]
    codes: Mapping[str, str]
    needed: float | None
    #: What the probabilities were multiplied by: (candidate, code) pairs, and tests (originals,
    #: readings or geometries tried); and the number of codes a handle may be tested under.
    pairs: int = 1
    tests: int = 1
    groups: int = 1


@dataclass(frozen=True)
class Detection:
    """The answer to "who leaked this?".

    ``scores`` maps every candidate to its normalised score z, most suspect first.
    ``p_value`` is the probability that an innocent candidate would score as high as the most
    suspect one, corrected for the number of candidates; ``log10_p_value`` keeps it when it
    underflows a float. ``accused`` names every candidate whose own probability passes the
    threshold, most suspect first, each with its log10 probability; ``recipient`` is the first.
    ``code`` names the code the most suspect candidate's copy was made with, ``needed`` the
    score z a candidate under it needs to be accused (None: no score could be).
    ``geometry`` tells where the leak was found on the original's working grid (registered
    in informed mode, the reading reported in blind mode; None when it was only resized);
    ``coverage`` is the share of the original whose pixels the leak really shows and that
    counted as evidence (informed mode); ``soft`` holds the soft value of every code position
    that the scores were computed from.
    """

    verdict: Literal["match", "no_match"]
    recipient: str | None
    p_value: float
    log10_p_value: float
    threshold: float
    mode: Literal["informed", "blind"]
    scores: Mapping[str, float] = field(repr=False)
    geometry: Geometry | None = field(default=None, repr=False)
    coverage: float | None = None
    soft: np.ndarray | None = field(default=None, repr=False)
    accused: tuple[tuple[str, float], ...] = ()
    code: str = ""
    needed: float | None = None
    pairs: int = 1
    tests: int = 1
    groups: int = 1

    @classmethod
    def of(cls, found: Judgement, *, threshold: float, **about: Any) -> Self:
        """The detection whose candidates were judged ``found`` (``about``: the other fields)."""
        best = next(iter(found.log10_p))
        log10_p = found.log10_p[best]
        return cls(
            verdict="match" if found.accused else "no_match",
            recipient=found.accused[0] if found.accused else None,
            p_value=10.0**log10_p,
            log10_p_value=log10_p,
            threshold=threshold,
            scores=found.scores,
            accused=tuple((h, found.log10_p[h]) for h in found.accused),
            code=found.codes[best],
            needed=found.needed,
            pairs=found.pairs,
            tests=found.tests,
            groups=found.groups,
            **about,
        )

    @property
    def best(self) -> str:
        """The highest-scoring candidate, whether or not it is a confident match."""
        return next(iter(self.scores))


def _tone_matched_residual(
    leak: np.ndarray, original: np.ndarray, valid: np.ndarray, *, step: int = 1
) -> np.ndarray:
    """Leak minus the original passed through the leak's tone curve (fitted per grey level on
    the pixels the leak covers, every ``step``-th row and column); zero where it covers
    nothing."""
    x = np.clip(original, 0, 255)
    whole = x.astype(np.intp)
    levels = whole[::step, ::step].ravel()
    weights = valid[::step, ::step].ravel().astype(np.float64)
    counts = np.bincount(levels, weights=weights, minlength=256)
    sums = np.bincount(levels, weights=leak[::step, ::step].ravel() * weights, minlength=256)
    seen = np.flatnonzero(counts > 0)
    if seen.size == 0:
        return np.zeros_like(leak)
    curve = np.interp(np.arange(257), seen, sums[seen] / counts[seen]).astype(np.float32)
    # The curve at the original's (fractional) levels: linear between whole levels.
    base, slope = curve[whole], np.diff(curve)[np.minimum(whole, 255)]
    predicted = base + (x - whole) * slope
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


def _whitened(
    bands: list[np.ndarray],
    plane: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Blind mode: weight every coefficient by how much mark it can carry (the perceptual
    mask, estimated on the leak, or ``weight`` when the caller has it) over the host detail
    competing with it (its band's local energy) — the matched filter for a mark shaped by
    the mask in host noise. Coefficients outside ``valid`` (pixels the leak does not show)
    get zero weight."""
    weight = perceptual_mask(plane) if weight is None else weight
    if valid is not None:
        weight = weight * valid
    out = []
    for band in (sync.unpredicted(b) for b in bands):
        local = cv2.GaussianBlur(band * band, (0, 0), 1.0) + np.float32(sync.FLOOR)
        size = (band.shape[1], band.shape[0])
        mask = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        if valid is not None:
            mask *= cv2.resize(valid, size, interpolation=cv2.INTER_AREA) > 0.99
        out.append((band * mask / local).ravel())
    values = np.concatenate(out)
    scale = float(np.median(np.abs(values[values != 0]))) if values.any() else 1.0
    return values / np.float32(scale)


def _informed(
    plane: np.ndarray,
    reference: np.ndarray,
    valid: np.ndarray,
    mask: np.ndarray,
    *,
    foreign: bool = True,
) -> tuple[np.ndarray, float]:
    if foreign:
        residual, coverage = _informed_residual(plane, reference, valid)
    else:
        residual, coverage = _tone_matched_residual(plane, reference, valid, step=2), 1.0
    bands = analyse(residual * mask)
    return np.concatenate([b.ravel() for b in bands]) * band_gains(bands), coverage


def informed_values(
    plane: np.ndarray,
    reference: np.ndarray,
    valid: np.ndarray,
    mask: np.ndarray,
    *,
    foreign: bool = True,
) -> np.ndarray:
    """Informed mode's evidence from one picture: the marked wavelet coefficients (in
    :func:`~leaktrace.transform.analyse` order, gains applied) of the leak ``plane`` minus the
    tone-matched ``reference``, on the ``valid`` pixels that really show the original,
    weighted by the perceptual ``mask``. All four are on the original's working grid.

    ``foreign=False`` skips looking for pixels that are not the original's inside ``valid``
    (text or pictures pasted over it) and fits the tone curve on a quarter of the pixels: about
    five times faster, for the many frames of a video."""
    return _informed(plane, reference, valid, mask, foreign=foreign)[0]


# The original as a softened leak shows it. A same-size leak that lost detail (blurred,
# median-filtered, downscaled and brought back up, strongly compressed) is compared with the
# original softened the same way, else the detail it lost stays in the residual and drowns
# the mark. The softening is estimated from the leak and the original alone: the candidate
# references are ranked by the energy of the residual in the marked bands, which does not look
# at any codeword, so choosing among them is no search over hypotheses in the p-value. A
# filter of a few dozen coefficients fitted over the whole picture learns a negligible part of
# a mark spread over tens of thousands of coefficients: an untouched copy keeps its score.

#: Radius of the fitted filter: a (2r+1)² kernel symmetric in x and y, (r+1)² coefficients.
_FILTER_RADIUS = 6
#: A leak keeping this share of the reference's finest detail (energy) was not softened.
_SHARP = 0.9


def _mirror_sums(plane: np.ndarray, radius: int, axis: int) -> list[np.ndarray]:
    """``plane`` and, for a = 1..radius, its shifts by +a and -a along ``axis`` added
    (mirrored at the edges, as cv2.BORDER_REFLECT)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(plane, pad, mode="symmetric")
    n = plane.shape[axis]

    def shifted(by: int) -> np.ndarray:
        return np.take(padded, range(radius + by, radius + by + n), axis=axis)

    return [plane] + [shifted(a) + shifted(-a) for a in range(1, radius + 1)]


def _fitted(
    plane: np.ndarray, reference: np.ndarray, valid: np.ndarray, *, step: int = 3
) -> np.ndarray:
    """``reference`` through the mirror-symmetric linear filter (plus an offset) that maps it
    best onto ``plane``: least squares on every ``step``-th row and column of ``valid``."""
    r = _FILTER_RADIUS
    chosen = valid[::step, ::step] > 0
    if chosen.sum() < 20 * (r + 1) ** 2:
        return reference
    columns = [
        across[::step, ::step][chosen]
        for down in _mirror_sums(reference, r, 0)
        for across in _mirror_sums(down, r, 1)
    ]
    design = np.stack([*columns, np.ones_like(columns[0])], axis=1).astype(np.float64)
    # Normal equations: a few dozen unknowns over tens of thousands of pixels.
    coef = np.linalg.lstsq(design.T @ design, design.T @ plane[::step, ::step][chosen], rcond=None)[
        0
    ]
    quarter = coef[:-1].reshape(r + 1, r + 1)
    half = np.concatenate([quarter[:0:-1], quarter])
    kernel = np.concatenate([half[:, :0:-1], half], axis=1).astype(np.float32)
    filtered = cv2.filter2D(reference, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return filtered + np.float32(coef[-1])


def _median(plane: np.ndarray, size: int) -> np.ndarray:
    return cv2.medianBlur(np.clip(np.rint(plane), 0, 255).astype(np.uint8), size).astype(np.float32)


def _resampled(plane: np.ndarray, factor: float, interpolation: int) -> np.ndarray:
    h, w = plane.shape
    small = resize(plane, (max(1, round(h * factor)), max(1, round(w * factor))))
    return cv2.resize(small, (w, h), interpolation=interpolation)


#: Softenings no linear filter reproduces: nonlinear ones, and a downscale brought back up
#: (its blur depends on where a pixel falls between the small picture's pixels).
_SOFTENINGS = (
    *(partial(_median, size=k) for k in (3, 5, 7)),
    *(
        partial(_resampled, factor=f, interpolation=i)
        for f in (0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)
        for i in (cv2.INTER_LINEAR, cv2.INTER_CUBIC)
    ),
)


def _fine_energy(plane: np.ndarray, valid: np.ndarray) -> float:
    detail = plane - cv2.GaussianBlur(plane, (0, 0), 1.0)
    return float(np.sum(detail * detail * valid))


def _as_seen(
    plane: np.ndarray, reference: np.ndarray, valid: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``reference`` softened as the leak ``plane`` was, when it was: the best-explaining of
    the fixed softenings, the fitted filter, and the fitted filter after that softening."""
    if _fine_energy(plane, valid) >= _SHARP * _fine_energy(reference, valid):
        return reference

    def noise(candidate: np.ndarray) -> float:
        values = _informed(plane, candidate, valid, mask, foreign=False)[0]
        return float(values @ values)

    softened = min((reference, *(f(reference) for f in _SOFTENINGS)), key=noise)
    tries = [softened, _fitted(plane, reference, valid)]
    if softened is not reference:
        tries.append(_fitted(plane, softened, valid))
    return min(tries, key=noise)


@dataclass(frozen=True)
class _Hypothesis:
    """One blind reading of a leak: the grid it is placed on, the whitened values of the
    grid's coefficients it shows (``index`` into the grid's :func:`analyse` order, all of
    them when None), where it sits (None: the leak is the whole grid), and the family of
    readings whose share of the false-accusation budget it draws on."""

    shape: tuple[int, int]
    values: np.ndarray
    index: np.ndarray | None
    geometry: Geometry | None
    family: Literal["whole", "outline", "placement"] = "outline"


def _grid_hypothesis(
    plane: np.ndarray,
    valid: np.ndarray | None,
    geometry: Geometry | None,
    family: Literal["whole", "outline"] = "outline",
) -> _Hypothesis:
    bands = analyse(plane)
    values = _whitened(bands, plane, valid) * band_gains(bands)
    return _Hypothesis((plane.shape[0], plane.shape[1]), values, None, geometry, family)


def _valid(
    shape: tuple[int, int], matrix: np.ndarray | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """1 on the grid pixels a leak shows (a little inside its edges), 0 elsewhere."""
    if matrix is None:
        return np.ones(shape, np.float32)
    ones = np.ones(size if size is not None else shape, np.uint8)
    seen = cv2.warpAffine(
        ones, matrix, (shape[1], shape[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    )
    return cv2.erode(seen, np.ones((9, 9), np.uint8)).astype(np.float32)


def _mapped(plane: np.ndarray, matrix: np.ndarray, grid: tuple[int, int]) -> _Hypothesis:
    """The leak ``plane`` read on ``grid`` through ``matrix`` (3×3, grid pixel → leak pixel)."""
    factor = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))  # leak pixels per grid pixel
    full = matrix
    if factor > 1.5:  # average down first, as to_working does
        size = (max(1, round(plane.shape[0] / factor)), max(1, round(plane.shape[1] / factor)))
        down = np.diag([size[1] / plane.shape[1], size[0] / plane.shape[0], 1.0])
        down[:2, 2] = 0.5 * np.diag(down)[:2] - 0.5  # pixel centres stay pixel centres
        plane, matrix = resize(plane, size), down @ matrix
    # Beyond the leak's edges, its mirror image rather than black: a step there would flood
    # the coefficients near the edge with host energy, the whitening's weight of those inside
    # with it (they are judged by their band's local energy). Only ``valid`` ones count.
    warped = cv2.warpAffine(
        plane,
        matrix[:2],
        (grid[1], grid[0]),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    valid = _valid(grid, matrix[:2], plane.shape)
    return _grid_hypothesis(warped, valid, Geometry(full, False, 0, float(valid.mean())))


def _edges(
    grid: tuple[int, int], top: float, left: float, bottom: float, right: float
) -> np.ndarray:
    """The map (3×3) from a grid to the leak that shows it between these pixel edges."""
    sx, sy = (right - left) / grid[1], (bottom - top) / grid[0]
    return np.array([[sx, 0, left + 0.5 * sx], [0, sy, top + 0.5 * sy], [0, 0, 1]])


def _grids(shape: tuple[int, ...] | None, height: float, width: float) -> list[tuple[int, int]]:
    """The working grids a whole picture of ``height`` × ``width`` may have been marked on:
    the original's when its shape is known, else its own and the two whose long side is one
    step (16 pixels) away, which a rescale's rounding may have moved it from."""
    if shape is not None:
        return [working_shape(shape)]
    own = working_shape((max(1, round(height)), max(1, round(width))))
    steps = [(0, 16), (0, -16)] if own[1] > own[0] else [(16, 0), (-16, 0)]
    if own[0] == own[1]:
        steps = [(16, 0), (0, 16)]
    return [own, *((own[0] + a, own[1] + b) for a, b in steps)]


def _whole(plane: np.ndarray, shape: tuple[int, ...] | None) -> list[_Hypothesis]:
    """The leak as the whole picture, rescaled or stretched at most, and as its mirror image:
    two readings per candidate grid (one grid when the original's shape is known, three
    otherwise, see :func:`_grids`)."""
    h, w = plane.shape
    mirror = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])
    out = []
    for grid in _grids(shape, h, w):
        upright = resize(plane, grid)
        matrix = _edges(grid, -0.5, -0.5, h - 0.5, w - 0.5)
        mirrored = np.ascontiguousarray(upright[:, ::-1])
        out.append(_grid_hypothesis(upright, None, None, "whole"))  # only resized: no geometry
        flipped = Geometry(mirror @ matrix, True, 0, 1.0)
        out.append(_grid_hypothesis(mirrored, None, flipped, "whole"))
    return out


def _framed(plane: np.ndarray, shape: tuple[int, ...] | None) -> list[_Hypothesis]:
    """The leak as a picture rotated on a grown canvas (empty corners, :func:`sync.frame`),
    turned back: one reading when it shows such a frame, none otherwise."""
    corners = sync.frame(plane)
    if corners is None:
        return []
    # The corners are those of the picture's outer edge: grid pixel edges -0.5 and size - 0.5.
    width = float(np.linalg.norm(corners[1] - corners[0]))
    height = float(np.linalg.norm(corners[3] - corners[0]))
    if shape is None:
        try:  # a sliver of a frame would make a grid too large to hold
            check_shape((round(height), round(width)))
        except ImageArrayError:
            return []
    grid = _grids(shape, height, width)[0]
    edge = [-0.5, grid[1] - 0.5, grid[0] - 0.5]
    src = np.array([[edge[0], edge[0]], [edge[1], edge[0]], [edge[1], edge[2]]], np.float32)
    matrix = cv2.getAffineTransform(src, corners[:3].astype(np.float32))
    return [_mapped(plane, np.vstack([matrix, [0, 0, 1]]), grid)]


def _shown(plane: np.ndarray, shape: tuple[int, ...] | None) -> list[_Hypothesis]:
    """The leak as a screenshot: an upright picture on a flat canvas (bars, margins, text;
    :func:`sync.picture`), read on its grid. Given the original's size, the picture must
    have its aspect (within 3 %), and each edge is also re-derived from the other three and
    that aspect (an edge where a flat sky met a flat bar is found a few pixels off, or not at
    all): up to 5 readings; without it, the edges as found on each candidate grid: 3."""
    found = sync.picture(plane)
    if shape is None:
        if any(e is None for e in found):
            return []
        top, left, bottom, right = (float(e) for e in found if e is not None)
        return [
            _mapped(plane, _edges(grid, top, left, bottom, right), grid)
            for grid in _grids(None, bottom - top, right - left)
        ]
    grid = working_shape(shape)
    aspect = shape[1] / shape[0]
    tries: list[tuple[float, float, float, float]] = []
    for missing in (None, 0, 1, 2, 3):
        edges = list(found)
        if missing is not None:
            edges[missing] = None
        rect = _completed(edges, aspect)
        if rect is None or abs(np.log((rect[3] - rect[1]) / (rect[2] - rect[0]) / aspect)) > 0.03:
            continue
        if all(max(abs(a - b) for a, b in zip(rect, o, strict=True)) > 1 for o in tries):
            tries.append(rect)
    return [_mapped(plane, _edges(grid, *rect), grid) for rect in tries]


def _completed(
    edges: list[float | None], aspect: float
) -> tuple[float, float, float, float] | None:
    """A picture's four edges (top, left, bottom, right), one missing edge derived from the
    other three and the aspect (width over height); None when more are missing."""
    t, le, b, r = edges
    if le is not None and r is not None:
        if t is None and b is not None:
            t = b - (r - le) / aspect
        elif b is None and t is not None:
            b = t + (r - le) / aspect
    if t is not None and b is not None:
        if le is None and r is not None:
            le = r - (b - t) * aspect
        elif r is None and le is not None:
            r = le + (b - t) * aspect
    if t is None or le is None or b is None or r is None:
        return None
    return t, le, b, r


def _turned(
    plane: np.ndarray, key: Key, media_id: str, shape: tuple[int, ...] | None
) -> list[_Hypothesis]:
    """The leak as a picture turned about its centre and cropped about it (a "straighten"),
    unscaled: the template chooses the :data:`sync.ANGLES` best angles (no codeword: free),
    and each is read with its neighbours 0.1° on either side, and the crop about the centre
    not turned at all — 1 + 3 × ANGLES readings, or none when the original's shape is not
    known or the leak could not be a turned crop of it."""
    if shape is None:
        return []
    grid = working_shape(shape)
    fy, fx = grid[0] / shape[0], grid[1] / shape[1]  # grid pixels per original pixel
    small = resize(plane, (max(1, round(plane.shape[0] * fy)), max(1, round(plane.shape[1] * fx))))
    limit = _turn_limit((small.shape[0], small.shape[1]), grid)
    if limit < 0.5:
        return []
    back = np.diag([plane.shape[1] / small.shape[1], plane.shape[0] / small.shape[0], 1])
    back[:2, 2] = 0.5 * np.diag(back)[:2] - 0.5  # grid-scale pixel → leak pixel
    # Not turned at all (a crop about the centre) is always read, whatever the template says.
    out = [
        _mapped(plane, back @ np.vstack([sync.centred(grid, small.shape, 0.0), [0, 0, 1]]), grid)
    ]
    for degrees in sync.angles(small, key, media_id, grid, limit=limit):
        for near in (degrees, degrees - 0.1, degrees + 0.1):
            matrix = np.vstack([sync.centred(grid, small.shape, near), [0, 0, 1]])
            out.append(_mapped(plane, back @ matrix, grid))
    return out


#: Largest rotation (degrees) a turned crop is searched for.
_MOST_TURN = 30.0


def _turn_limit(size: tuple[int, int], grid: tuple[int, int]) -> float:
    """The largest angle (degrees, at most :data:`_MOST_TURN`) by which a picture of ``grid``
    can be turned about its centre and still hold a centred crop of ``size`` (with 2 % slack
    for rounding), 0 when none can."""
    h, w = size[0] / 2, size[1] / 2
    gh, gw = 1.02 * grid[0] / 2 + 1, 1.02 * grid[1] / 2 + 1
    for degrees in np.arange(0.0, _MOST_TURN + 1e-9, 0.1):
        a = np.deg2rad(degrees)
        c, s_ = np.cos(a), np.sin(a)
        if w * c + h * s_ > gw or w * s_ + h * c > gh:
            return float(max(degrees - 0.1, 0.0))
    return _MOST_TURN


def _band_starts(grid: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(start in the flat coefficients, height, width) of each band of a grid, in
    :func:`analyse` order."""
    out, start = [], 0
    for level in MARKED_LEVELS:
        h, w = grid[0] >> level, grid[1] >> level
        for _ in range(3):
            out.append((start, h, w))
            start += h * w
    return out


def _cropped(
    plane: np.ndarray, key: Key, media_id: str, shape: tuple[int, ...]
) -> list[_Hypothesis]:
    """The leak as an unscaled crop of an original of ``shape``: the sync template places it
    modulo its period (a few candidate residues), and every whole-period shift that keeps it
    inside the grid is one hypothesis."""
    grid = working_shape(shape)
    fy, fx = grid[0] / shape[0], grid[1] / shape[1]  # grid pixels per original pixel
    small = resize(plane, (max(1, round(plane.shape[0] * fy)), max(1, round(plane.shape[1] * fx))))
    lh, lw = small.shape
    if lh > grid[0] + 2 or lw > grid[1] + 2 or (lh >= 0.98 * grid[0] and lw >= 0.98 * grid[1]):
        return []  # not a crop of this grid (or all of it: the plain reading covers that)
    period, slack = sync.PERIOD, 4
    starts = _band_starts(grid)
    levels = [level for level in MARKED_LEVELS for _ in range(3)]
    cover = lh * lw / (grid[0] * grid[1])
    mask = perceptual_mask(small)  # once: every canvas below holds the same pixels
    out = []
    for dy, dx in sync.residues(small, np.ones_like(small), key, media_id, grid):
        # The leak on a canvas with a period of margin (its mirror image, as in _mapped);
        # canvas pixel c is then grid pixel c + (k - 1)·period, for the right whole number
        # of periods k (one per axis).
        rows = -(-(2 * period + dy + lh) // period) * period
        cols = -(-(2 * period + dx + lw) // period) * period
        top, left = period + dy, period + dx
        canvas = cv2.copyMakeBorder(
            small, top, rows - top - lh, left, cols - left - lw, cv2.BORDER_REFLECT_101
        )
        valid = np.zeros_like(canvas)
        inside = (slice(top, top + lh), slice(left, left + lw))
        weight = np.zeros_like(canvas)
        valid[inside], weight[inside] = 1, mask
        valid = cv2.erode(valid, np.ones((9, 9), np.uint8))
        bands = analyse(canvas)
        values = _whitened(bands, canvas, valid, weight=weight) * band_gains(bands)
        seen = []  # per band: canvas coefficient rows, columns and values it shows
        begin = 0
        for band in bands:
            v = values[begin : begin + band.size].reshape(band.shape)
            i, j = np.nonzero(v)
            seen.append((i, j, v[i, j]))
            begin += band.size
        for ky in range(-(-(-slack - dy) // period), (grid[0] + slack - lh - dy) // period + 1):
            for kx in range(-(-(-slack - dx) // period), (grid[1] + slack - lw - dx) // period + 1):
                index, vals = [], []
                for (i, j, v), (start, bh, bw), level in zip(seen, starts, levels, strict=True):
                    gi, gj = i + ((ky - 1) * period >> level), j + ((kx - 1) * period >> level)
                    keep = (gi >= 0) & (gi < bh) & (gj >= 0) & (gj < bw)
                    index.append(start + gi[keep] * bw + gj[keep])
                    vals.append(v[keep])
                matrix = np.array(
                    [
                        [1 / fx, 0, -(dx + kx * period) / fx],
                        [0, 1 / fy, -(dy + ky * period) / fy],
                        [0, 0, 1],
                    ]
                )
                geometry = Geometry(matrix, False, 0, cover)
                values_, index_ = np.concatenate(vals), np.concatenate(index)
                out.append(_Hypothesis(grid, values_, index_, geometry, "placement"))
    return out


def _blind_hypotheses(
    leak: np.ndarray, key: Key, media_id: str, shape: tuple[int, ...] | None
) -> list[_Hypothesis]:
    """Every way blind detection reads the leak, each one a test paid for in the p-value:
    as the whole picture and its mirror image (:func:`_whole`), as a picture rotated on a
    grown canvas (:func:`_framed`), as a screenshot (:func:`_shown`), and — when the
    original's size is known — as a turned crop (:func:`_turned`) and as a crop placed by the
    sync template (:func:`_cropped`)."""
    plane = luma(leak)
    out = _whole(plane, shape) + _framed(plane, shape) + _shown(plane, shape)
    if shape is not None:
        out += _turned(plane, key, media_id, shape)
        out += _cropped(plane, key, media_id, shape)
    return out


def _grid_layout(key: Key, media_id: str, grid: tuple[int, int]) -> Layout:
    start, h, w = _band_starts(grid)[-1]
    return layout(key, media_id, grid, start + h * w)


def _collect(hypothesis: _Hypothesis, lay: Layout) -> np.ndarray:
    if hypothesis.index is None:
        return lay.collect(hypothesis.values)
    idx = hypothesis.index
    return np.bincount(
        lay.positions[idx], weights=hypothesis.values * lay.chips[idx], minlength=lay.length
    )


def _soft_values(
    leak: np.ndarray, key: Key, media_id: str, original: np.ndarray | None
) -> tuple[np.ndarray, Geometry | None, float | None]:
    geometry, coverage = None, None
    if original is not None:
        base = to_working(original)
        plane, reference, valid, geometry = align(luma(leak), base, shape=original.shape)
        mask = perceptual_mask(base)
        reference = _as_seen(plane, reference, valid, mask)
        values, coverage = _informed(plane, reference, valid, mask)
        shape = working_shape(original.shape)
        return layout(key, media_id, shape, values.size).collect(values), geometry, coverage
    whole = _grid_hypothesis(to_working(leak), None, None)
    return _collect(whole, _grid_layout(key, media_id, whole.shape)), None, None


def extract(
    leak: np.ndarray, key: Key, media_id: str, *, original: np.ndarray | None = None
) -> np.ndarray:
    """Return the soft value of every code position (length :data:`CODE_LENGTH`).

    With ``original`` (informed mode) the leak is registered onto the original (undoing
    crops, rotation, flips, rescaling, perspective, screenshots — see :mod:`leaktrace.register`),
    tone-matched to it and the original subtracted, on the pixels the leak covers only;
    without it (blind mode) the leak's own wavelet bands are whitened, which leaves the host
    picture as noise and so is weaker. Blind, this reads the leak as the whole picture; the
    other readings (its mirror image, a rotated frame, a screenshot's picture, a turned crop,
    a crop placed by the sync template) need candidates to choose among them, so only
    :func:`detect` tries them.
    """
    return _soft_values(leak, key, media_id, original)[0]


#: Who may have leaked: handles (all holding codewords of the media's current code), or, per
#: code name, the handles holding a copy made under it (copies of older formats keep theirs).
Candidates = Sequence[str] | Mapping[str, Sequence[str]]


def _once(handles: Sequence[str]) -> list[str]:
    """``handles`` without repeats (each kept where it first appears)."""
    handles = list(handles)
    return handles if len(set(handles)) == len(handles) else list(dict.fromkeys(handles))


def _groups(candidates: Candidates, default: str) -> dict[str, list[str]]:
    given = candidates if isinstance(candidates, Mapping) else {default: candidates}
    groups = {name: _once(h) for name, h in given.items() if len(h)}
    if not groups:
        raise DetectionInputError("no candidates to test")
    return groups


class Scorer:
    """The candidates' codewords of one media item, ready to be scored on any soft values.

    ``length`` is the codes' length (one symbol per segment for a video's variants);
    ``default`` the code of a plain sequence of candidates (the current format's). The
    codewords are held as packed bits (:meth:`~leaktrace.codes.Code.packed`) and scored with
    a per-byte table, so a million candidates take a fraction of a second once their
    codewords are known; ``codebook`` keeps them between scorings (deriving a million from
    the key takes seconds). Whoever is accused (and the most suspect candidate) is checked
    against a codeword derived afresh from the key before anything is said about them.
    """

    def __init__(
        self,
        key: Key,
        media_id: str,
        candidates: Candidates,
        *,
        length: int = CODE_LENGTH,
        default: str = "",
        codebook: Codebook | None = None,
    ) -> None:
        groups = _groups(candidates, default or PHOTO_CODE)
        self._codebook = codebook
        self._groups: list[tuple[Code, list[str], np.ndarray]] = []
        for name, handles in groups.items():
            full = code(key, media_id, name, length=length)
            packed = full.packed(handles) if codebook is None else codebook.packed(full, handles)
            self._groups.append((full, handles, packed))
        self.pairs = sum(len(h) for h in groups.values())

    def top(self, soft: np.ndarray) -> float:
        """The best candidate's score z on ``soft`` (to choose among readings of a leak)."""
        norm = float(np.linalg.norm(soft))
        if norm == 0:
            return 0.0
        return max(float(full.packed_totals(soft, m).max()) for full, _, m in self._groups) / norm

    def judge(
        self,
        soft: np.ndarray,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        tests: int = 1,
        positions: np.ndarray | None = None,
    ) -> Judgement:
        """Score every candidate on ``soft`` and state each one's false-accusation probability.

        ``soft`` holds one value per code position of ``positions`` (all of them when None).
        A candidate's probability is the bound of :meth:`~leaktrace.codes.Code.tail_log10` at
        its score, multiplied by the number of (candidate, code) pairs and by ``tests``
        (originals, readings or geometries tried): the chance that any innocent would score as
        high. A code with several scores (:meth:`~leaktrace.codes.Code.weighings`) takes each
        candidate's smallest bound, each divided by its score's share of the budget. Every
        candidate at or under ``threshold`` is accused, so colluders can all be named, and an
        innocent is named with probability at most ``threshold`` whatever the colluders did.
        """
        soft = np.asarray(soft, np.float64)
        found = self._judge(soft, threshold, tests, positions, check=True)
        if found is not None:
            return found
        # The codebook disagreed with the key: forget it and score from the key alone.
        for i, (full, handles, _) in enumerate(self._groups):
            if self._codebook is not None:
                self._codebook.forget(full)
            self._groups[i] = (full, handles, full.packed(handles))
        return cast(Judgement, self._judge(soft, threshold, tests, positions, check=False))

    def _judge(
        self,
        soft: np.ndarray,
        threshold: float,
        tests: int,
        positions: np.ndarray | None,
        *,
        check: bool,
    ) -> Judgement | None:
        correction = math.log10(self.pairs * tests)
        parts, values, totals, zs, which, tails = [], [], [], [], [], []
        for full, _, packed in self._groups:
            part = full if positions is None else full.restricted(positions)
            # Under each of the code's weightings (one, or two for tardos-v2) its totals and
            # their tails, each divided by the weighting's share of the budget; a candidate
            # keeps the weighting of its smaller tail.
            weighed = part.weighings(soft)
            t = np.stack([full.packed_totals(w, packed, positions) for w in weighed])
            lp = np.stack(
                [
                    part.tail_log10(w, tw) - math.log10(share)
                    for w, tw, share in zip(weighed, t, part.shares, strict=True)
                ]
            )
            best = np.argmin(lp, axis=0)
            cols = np.arange(t.shape[1])
            norms = np.array([float(np.linalg.norm(w)) for w in weighed])
            safe = np.where(norms > 0, norms, 1.0)
            parts.append(part)
            values.append(weighed)
            totals.append(t[best, cols])
            zs.append(np.where(norms[best] > 0, t[best, cols] / safe[best], 0.0))
            which.append(best)
            tails.append(np.minimum(lp[best, cols] + correction, 0.0))
        handles, group, row, lp_all = self._merged(tails)
        z = np.concatenate(zs)[_offsets(zs)[group] + row]
        order = np.lexsort((-z, lp_all))
        cut = math.log10(threshold)
        accused = int(np.searchsorted(lp_all[order], cut, side="right"))
        # Nobody is named (nor shown first) on a stored codeword: each is checked against the
        # key's own, and a disagreement sends the whole scoring back to the key.
        for i in order[: max(accused, 1) if check else 0].tolist():
            g, r = int(group[i]), int(row[i])
            full, names, _ = self._groups[g]
            word = full.codeword(names[r])
            w = values[g][int(which[g][r])]
            fresh = parts[g].totals(w, word if positions is None else word[positions])
            if not abs(fresh - totals[g][r]) <= 1e-9 * (abs(fresh) + float(np.linalg.norm(w))):
                return None
        names_of = [full.name for full, _, _ in self._groups]
        # The score a candidate needs to be accused, under the most suspect one's code and
        # weighting (the one its z is shown in).
        g0, r0 = int(group[order[0]]), int(row[order[0]])
        k0 = int(which[g0][r0])
        need = cut - correction + math.log10(parts[g0].shares[k0])
        index = _Index(handles)
        return Judgement(
            scores=Ranking(index, order, lambda i: float(z[i])),
            log10_p=Ranking(index, order, lambda i: float(lp_all[i])),
            accused=tuple(handles[i] for i in order[:accused].tolist()),
            codes=Ranking(index, order, lambda i: names_of[group[i]]),
            needed=parts[g0].needed(values[g0][k0], need),
            pairs=self.pairs,
            tests=tests,
            groups=len(self._groups),
        )

    def _merged(
        self, tails: list[np.ndarray]
    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Every handle once (in order of first appearance), with the group and row of its
        lowest probability (the first group's on a tie) and that log10 probability."""
        if len(self._groups) == 1:
            n = tails[0].size
            return self._groups[0][1], np.zeros(n, np.intp), np.arange(n), tails[0]
        where: dict[str, tuple[int, int, float]] = {}
        for g, ((_, names, _), lp) in enumerate(zip(self._groups, tails, strict=True)):
            for r, (h, p) in enumerate(zip(names, lp.tolist(), strict=True)):
                if h not in where or p < where[h][2]:  # a handle with copies under two codes
                    where[h] = (g, r, p)
        picked = np.array(list(where.values()), np.float64).reshape(-1, 3)
        return (
            list(where),
            picked[:, 0].astype(np.intp),
            picked[:, 1].astype(np.intp),
            picked[:, 2],
        )


def _offsets(parts: list[np.ndarray]) -> np.ndarray:
    return np.cumsum([0] + [p.size for p in parts[:-1]])


def score(
    soft: np.ndarray,
    key: Key,
    media_id: str,
    candidates: Sequence[str],
    *,
    name: str = "",
) -> np.ndarray:
    """Normalised score z of each candidate (in the given order) under the code ``name``
    (the current one by default): the symmetric score over ``||soft||``, which for fair-coin
    codewords is the correlation ``<codeword, soft> / ||soft||``."""
    found = Scorer(key, media_id, {name or PHOTO_CODE: candidates}, length=soft.size)
    scores = found.judge(soft).scores
    return np.array([scores[c] for c in candidates])


def _blind_judgement(
    scorer: Scorer,
    readings: list[_Hypothesis],
    key: Key,
    media_id: str,
    *,
    threshold: float,
    hypotheses: int,
) -> tuple[np.ndarray, Geometry | None, Judgement]:
    """Judge the candidates on the best of ``readings``, every reading paid for.

    Weighted Bonferroni: each family of readings — the whole picture and its mirror image;
    the other readings found from the picture's outline or turned by the template; crop
    placements — gets an equal share of the false-accusation budget, split evenly among its
    readings, so a reading of a family of ``n`` costs ``n × families`` tests (a whole-picture
    reading 6 instead of the hundreds a 50 % crop's placements would charge it). The shares
    are fixed before any codeword is looked at, so the bound holds. In each family the
    reading where some candidate scores best is judged; the verdict with the smaller
    probability is reported."""
    families: dict[str, list[_Hypothesis]] = {}
    for reading in readings:
        families.setdefault(reading.family, []).append(reading)
    layouts: dict[tuple[int, int], Layout] = {}  # crop placements share their grid's
    judged = []
    for members in families.values():
        top, soft, geometry = -np.inf, np.zeros(CODE_LENGTH), None
        for reading in members:
            if reading.shape not in layouts:
                layouts[reading.shape] = _grid_layout(key, media_id, reading.shape)
            values = _collect(reading, layouts[reading.shape])
            if (z := scorer.top(values)) > top:
                top, soft, geometry = z, values, reading.geometry
        tests = hypotheses * len(members) * len(families)
        judged.append((soft, geometry, scorer.judge(soft, threshold=threshold, tests=tests)))
    return min(judged, key=lambda j: next(iter(j[2].log10_p.values())))


def detect(
    leak: np.ndarray,
    key: Key,
    media_id: str,
    candidates: Candidates,
    *,
    original: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    hypotheses: int = 1,
    shape: tuple[int, ...] | None = None,
    codebook: Codebook | None = None,
) -> Detection:
    """Test every candidate as the source of ``leak`` and report the best with its p-value.

    Parameters
    ----------
    leak : ndarray
        The leaked picture, any size (in informed mode it is registered onto the original).
    key, media_id
        As given to :func:`leaktrace.embed`.
    candidates : sequence of str, or mapping of code name to sequence of str
        Recipients who may have leaked it (duplicates are tested once), all holding codewords
        of the current code (:data:`~leaktrace.codes.PHOTO_CODE`), or grouped by the code their
        copy was made with.
    original : ndarray, optional
        The unmarked original; without it detection is blind and weaker.
    threshold : float
        Largest false-accusation probability that still counts as a match.
    hypotheses : int
        How many such tests the caller runs on this leak (originals tried, geometries
        searched); the p-value is multiplied by it, like by the number of candidates.
    shape : tuple of int, optional
        Blind mode only: the original's (height, width), when it is known without its pixels
        (a registry records it). It lets blind detection place a crop with the sync template;
        without it a crop cannot be traced blind.
    codebook : Codebook, optional
        Where the candidates' codewords are kept between traces
        (:class:`leaktrace.registry.Codebook`); without it they are derived from the key.

    Examples
    --------
    >>> import numpy as np, leaktrace as lt
    >>> key = lt.Key.generate()
    >>> img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    >>> copy = lt.embed(img, key, media_id="m", recipient="bob")
    >>> lt.detect(copy, key, media_id="m", candidates=["ann", "bob"], original=img).recipient
    'bob'
    """
    if not 0 < threshold < 1:
        raise DetectionInputError("threshold must be between 0 and 1")
    if hypotheses < 1:
        raise DetectionInputError("hypotheses must be at least 1")
    scorer = Scorer(key, media_id, candidates, codebook=codebook)
    check_image(leak, least=MIN_LEAK_SIDE)
    if original is None:
        if shape is not None and (len(shape) < 2 or min(shape[:2]) < 1):
            raise DetectionInputError(f"shape must be an original's (height, width), not {shape}")
        readings = _blind_hypotheses(leak, key, media_id, shape)
        soft, geometry, found = _blind_judgement(
            scorer, readings, key, media_id, threshold=threshold, hypotheses=hypotheses
        )
        return Detection.of(found, threshold=threshold, mode="blind", geometry=geometry, soft=soft)
    check_image(original)
    if shape is not None:
        raise DetectionInputError("shape is for blind detection; the original has its own")
    soft, geometry, coverage = _soft_values(leak, key, media_id, original)
    found = scorer.judge(soft, threshold=threshold, tests=hypotheses)
    return Detection.of(
        found,
        threshold=threshold,
        mode="informed",
        geometry=geometry,
        coverage=coverage,
        soft=soft,
    )
