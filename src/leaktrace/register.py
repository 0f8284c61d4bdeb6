"""Registration: put a leak back onto its original's working grid, whatever was done to it.

SIFT features of the leak (and of its mirror image, for flipped leaks) are matched to those of
the original; a MAGSAC homography maps one onto the other; ECC refines it to a fraction of a
pixel. When features are few (smooth, foggy, motion-blurred pictures) a dense registration
(phase correlation, then ECC) is tried too, and the placement that agrees better is kept. The
leak is then resampled onto the working grid, and only the part it really covers is kept
(``valid``), so that crops, screenshots with UI around them and collages contribute
evidence only from their own pixels — a tiny crop gives little evidence, never invented
evidence.

Nothing here depends on the key or the codewords, so choosing a registration does not count
as a search over hypotheses in the p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .transform import resize

__all__ = ["Geometry", "align", "register", "sift_features", "warp"]

_MIN_INLIERS = 12
_RATIO = 0.8
_FEATURES = 2500
_CONFIDENT = 50  # inliers beyond which the upright match is taken without trying a mirror
_CONTRAST = 0.015  # SIFT contrast threshold; a faint leak (sky, water, fog) is searched at
_FAINT = 0.004  # this one, and so is its original, when it shows fewer than _FEW features
_FEW = 300
#: Least detail agreement for a dense placement to count: an unrelated photo placed densely on
#: another agreed at most 0.017 (41 Kodak pairs), a foggy copy moved and re-saved 0.072.
_DENSE_AGREEMENT = 0.04


@dataclass(frozen=True)
class Geometry:
    """Where a leak sits on its original's working grid.

    ``matrix`` maps working-grid coordinates (x, y, 1) to coordinates in the leak *as given*
    (before any mirroring); ``flipped`` says the leak is mirrored; ``coverage`` is the share
    of the working grid the leak covers; ``inliers`` counts the matched features that agree.
    """

    matrix: np.ndarray
    flipped: bool
    inliers: int
    coverage: float


def _uint8(plane: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def sift_features(
    plane: np.ndarray,
    *,
    most: int | None = None,
    contrast: float = _CONTRAST,
    features: int = _FEATURES,
) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints (in ``plane``'s pixel coordinates) and descriptors.

    A plane of more than ``most`` pixels is searched at a reduced size, which finds the same
    structures far faster. ``contrast`` is SIFT's contrast threshold; ``features`` caps the
    number kept (0: all).
    """
    factor = 1.0
    if most is not None and plane.size > most:
        factor = float(np.sqrt(most / plane.size))
        h, w = plane.shape
        plane = cv2.resize(
            plane, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA
        )
    sift = cv2.SIFT.create(nfeatures=features, contrastThreshold=contrast)
    keypoints, descriptors = sift.detectAndCompute(_uint8(plane), None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return (points + 0.5) / factor - 0.5, descriptors


def _plausible(matrix: np.ndarray, shape: tuple[int, ...]) -> bool:
    """A picture's geometry, not a degenerate fit: the grid's corners stay a convex,
    non-mirrored quadrilateral, at a scale between 1/50 and 50."""
    h, w = shape[:2]
    corners = matrix @ np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
    if np.any(corners[2] <= 1e-9):
        return False
    quad = (corners[:2] / corners[2]).T
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    if not np.all(edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0] > 0):
        return False
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return bool((1 / 50) ** 2 < area / (w * h) < 50**2)


def _homography(
    leak_pts: np.ndarray,
    leak_desc: np.ndarray | None,
    base_pts: np.ndarray,
    base_desc: np.ndarray | None,
    base_shape: tuple[int, ...],
    *,
    ratio: float = _RATIO,
    least: int = _MIN_INLIERS,
) -> tuple[np.ndarray, int] | None:
    """Homography mapping base (working-grid) points onto leak points, with its inlier count.

    Matches are one-to-one (a leak feature keeps only its closest base feature, so a repeated
    texture cannot pile up into a degenerate fit). A similarity transform — rescaled, rotated,
    cropped, nothing more: most leaks — is taken when it explains nearly as many matches as the
    full homography, or when the homography is implausible.
    """
    if leak_desc is None or base_desc is None or len(leak_desc) < 2 or len(base_desc) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(base_desc, leak_desc, k=2)
    closest: dict[int, cv2.DMatch] = {}
    for m, n in (p for p in pairs if len(p) == 2):
        if m.distance < ratio * n.distance and (
            m.trainIdx not in closest or m.distance < closest[m.trainIdx].distance
        ):
            closest[m.trainIdx] = m
    good = sorted(closest.values(), key=lambda m: m.trainIdx)
    if len(good) < least:
        return None
    src = base_pts[[m.queryIdx for m in good]]
    dst = leak_pts[[m.trainIdx for m in good]]
    matrix, inliers = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0)
    count = 0
    if matrix is not None and inliers is not None and _plausible(matrix, base_shape):
        count = int(inliers.sum())
    simple, simple_inliers = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=3.0,
        maxIters=4000,
        confidence=0.999,
        refineIters=20,
    )
    if simple is not None and int(simple_inliers.sum()) >= max(least, 0.95 * count):
        similar = np.vstack([simple, [0.0, 0.0, 1.0]])
        if _plausible(similar, base_shape):
            return similar, int(simple_inliers.sum())
    if count < least:
        return None
    return matrix, count


def _refine(base: np.ndarray, leak: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """ECC refinement of a homography (working grid → leak); the input if ECC fails.

    ECC runs on the part of the grid the leak covers, at the coarser of the two resolutions:
    a leak smaller than the working grid is matched against the grid shrunk to its scale.
    """
    scale = _scale(matrix)
    if scale < 0.05:
        return matrix
    # The grid region under the leak's frame, with a margin.
    lh, lw = leak.shape
    corners = np.linalg.inv(matrix) @ np.array([[0, 0, 1], [lw, 0, 1], [lw, lh, 1], [0, lh, 1]]).T
    if np.any(np.abs(corners[2]) < 1e-9):
        return matrix
    xs, ys = corners[0] / corners[2], corners[1] / corners[2]
    h, w = base.shape
    x0, x1 = int(max(0, xs.min() - 8)), int(min(w, xs.max() + 8))
    y0, y1 = int(max(0, ys.min() - 8)), int(min(h, ys.max() + 8))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return matrix
    template = base[y0:y1, x0:x1]
    to_template = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
    shrink = min(1.0, scale)
    if shrink < 0.8:
        th, tw = template.shape
        size = (max(8, round(tw * shrink)), max(8, round(th * shrink)))
        template = cv2.resize(template, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / tw, size[1] / th
        # Pixel centres, as cv2.resize samples them: t = (x + 0.5) * f - 0.5.
        to_template = (
            np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]]) @ to_template
        )
    warp = matrix @ np.linalg.inv(to_template)
    warp = (warp / warp[2, 2]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-5)
    try:
        _, warp = cv2.findTransformECC(
            np.ascontiguousarray(template),
            leak,
            warp,
            cv2.MOTION_HOMOGRAPHY,
            criteria,
            np.ones_like(leak, np.uint8),
            3,
        )
    except cv2.error:
        return matrix
    refined = warp.astype(np.float64) @ to_template
    if not np.all(np.isfinite(refined)) or _moves(matrix, refined, base.shape) > 3.0 * max(
        1, scale
    ):
        return matrix  # ECC wandered off: refinement only ever nudges the feature estimate
    return refined


def _moves(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> float:
    """Largest distance (leak pixels) between where ``a`` and ``b`` send the grid's corners."""
    h, w = shape[:2]
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
    pa, pb = a @ corners, b @ corners
    if np.any(np.abs(pa[2]) < 1e-9) or np.any(np.abs(pb[2]) < 1e-9):
        return float("inf")
    return float(np.max(np.linalg.norm(pa[:2] / pa[2] - pb[:2] / pb[2], axis=0)))


def _sampled(leak: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-shrink a leak that is much finer than the working grid (so warping does not alias),
    adjusting the homography to the shrunk leak."""
    scale = _scale(matrix)
    if scale <= 1.5:
        return leak, matrix
    h, w = leak.shape
    size = (max(16, round(w / scale)), max(16, round(h / scale)))
    shrunk = cv2.resize(leak, size, interpolation=cv2.INTER_AREA)
    fix = np.diag([size[0] / w, size[1] / h, 1.0])
    return shrunk, fix @ matrix


def _search(
    leak: np.ndarray, base: np.ndarray, *, thorough: bool
) -> tuple[np.ndarray, int, bool] | None:
    """Best (homography, inliers, mirrored) over the upright and mirrored leak, or None.

    The thorough search — for leaks the quick one could not place: small, faint crops — keeps
    every faint feature and accepts looser matches; plausibility checks still apply.
    """
    most = base.size
    opts: dict[str, Any] = {"contrast": _FAINT, "features": 0} if thorough else {}
    match: dict[str, Any] = {"ratio": 0.9, "least": 8} if thorough else {}
    upright = sift_features(leak, most=most, **opts)
    if not thorough and len(upright[0]) < _FEW:
        opts = {"contrast": _FAINT}
        upright = sift_features(leak, most=most, **opts)
    base_pts, base_desc = sift_features(base, **opts)
    best: tuple[np.ndarray, int, bool] | None = None
    for flipped in (False, True):
        if best is not None and best[1] >= _CONFIDENT:
            break  # a clear upright match: no need to try the mirror image
        feats = sift_features(leak[:, ::-1], most=most, **opts) if flipped else upright
        found = _homography(*feats, base_pts, base_desc, base.shape, **match)
        if found is not None and (best is None or found[1] > best[1]):
            best = (found[0], found[1], flipped)
    return best


def _mirrored(leak: np.ndarray, flipped: bool) -> np.ndarray:
    return np.ascontiguousarray(leak[:, ::-1]) if flipped else leak


def _dense(leak: np.ndarray, base: np.ndarray) -> np.ndarray | None:
    """Registration without features, for a leak that is nearly the whole picture: the leak
    resized onto the grid, its shift found by phase correlation, then an affine map refined by
    ECC from coarse to fine. Returns the working → leak map, or None."""
    h, w = base.shape
    lh, lw = leak.shape
    moved = resize(leak, base.shape)
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(_detail(base), _detail(moved), window)
    warp = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 60, 1e-5)
    for factor in (0.25, 0.5):
        size = (max(16, round(w * factor)), max(16, round(h * factor)))
        scaled = warp.copy()
        scaled[:, 2] *= factor
        small = cv2.resize(moved, size, interpolation=cv2.INTER_AREA)
        try:
            _, found = cv2.findTransformECC(
                cv2.resize(base, size, interpolation=cv2.INTER_AREA),
                small,
                scaled,
                cv2.MOTION_AFFINE,
                criteria,
                np.ones_like(small, np.uint8),
                3,
            )
        except cv2.error:
            return None
        warp = np.array(found, np.float32)
        warp[:, 2] /= factor
    # Pixel centres as cv2.resize samples them: leak = (grid + 0.5) * size ratio - 0.5.
    fx, fy = lw / w, lh / h
    to_leak = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])
    matrix = to_leak @ np.vstack([warp.astype(np.float64), [0, 0, 1]])
    return matrix if _plausible(matrix, base.shape) else None


def _agreement(leak: np.ndarray, base: np.ndarray, matrix: np.ndarray) -> float:
    """How well ``leak`` placed by ``matrix`` shows ``base``: the correlation of their detail
    on the grid pixels it covers (no codeword involved)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    placed = cv2.warpPerspective(leak, matrix, (base.shape[1], base.shape[0]), flags=flags)
    valid = _coverage_mask(leak.shape, matrix, base.shape) > 0
    if valid.sum() < 256:
        return -1.0
    a, b = _detail(placed)[valid], _detail(base)[valid]
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denominator if denominator > 0 else -1.0


def register(leak: np.ndarray, base: np.ndarray) -> Geometry | None:
    """Find where the luma plane ``leak`` sits on the working-grid luma ``base``, or None.

    When features are too few to be sure (a smooth or motion-blurred picture), a dense
    registration is tried too and the placement whose detail agrees better with the
    original's is kept — if it agrees at all: a dense method places any picture somewhere.
    """
    best = _search(leak, base, thorough=False) or _search(leak, base, thorough=True)
    if best is None or best[1] < _CONFIDENT:
        dense = _dense(leak, base)
        if dense is not None:
            found = 0.0 if best is None else _agreement(_mirrored(leak, best[2]), base, best[0])
            if _agreement(leak, base, dense) > max(found, _DENSE_AGREEMENT):
                best = (dense, 0, False)
    if best is None:
        return None
    matrix, inliers, flipped = best
    plane = _mirrored(leak, flipped)
    small, small_matrix = _sampled(plane, matrix)
    refined = _refine(base, small, small_matrix)
    back = matrix @ np.linalg.inv(small_matrix)  # shrunk-leak coordinates → leak coordinates
    matrix = back @ refined
    if flipped:
        w = leak.shape[1]
        matrix = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]) @ matrix
    valid = _coverage_mask(leak.shape, matrix, base.shape)
    coverage = float(valid.mean())
    if coverage < 0.005:
        return None
    return Geometry(matrix=matrix, flipped=flipped, inliers=inliers, coverage=coverage)


def _coverage_mask(
    leak_shape: tuple[int, ...], matrix: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    ones = np.ones(leak_shape[:2], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    valid = cv2.warpPerspective(ones, matrix, (shape[1], shape[0]), flags=flags)
    valid = (valid > 0.999).astype(np.uint8)
    return cv2.erode(valid, np.ones((7, 7), np.uint8)).astype(np.float32)


def _scale(matrix: np.ndarray) -> float:
    """Leak pixels per working-grid pixel (at the grid's origin) of a working → leak map."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:2, :2] / matrix[2, 2]))))


def _shrink(base: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``base`` area-averaged by ``factor`` and the map from its grid to the shrunk one."""
    h, w = base.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    shrunk = cv2.resize(base, size, interpolation=cv2.INTER_AREA)
    fx, fy = size[0] / w, size[1] / h
    return shrunk, np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])


def _detail(plane: np.ndarray) -> np.ndarray:
    detail = plane - cv2.GaussianBlur(plane, (0, 0), 2.0)
    return detail - detail.mean()


def _only_resized(leak: np.ndarray, base: np.ndarray, shape: tuple[int, ...]) -> bool:
    """True when the leak is the whole picture, merely rescaled and recompressed: the aspect of
    the original (of ``shape``; its working grid ``base`` rounds it), and fine detail that lines
    up with the original's without any registration."""
    aspect = shape[1] / shape[0]
    if abs(leak.shape[1] / leak.shape[0] - aspect) > 0.005 * aspect:
        return False
    # At the coarser of the two resolutions: a thumbnail has none of the original's fine detail.
    if leak.size < base.size:
        a, b = _detail(leak), _detail(resize(base, leak.shape))
    else:
        a, b = _detail(resize(leak, base.shape)), _detail(base)
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return denominator > 0 and float(np.vdot(a, b)) / denominator >= 0.9


def warp(
    leak: np.ndarray, geometry: Geometry | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample the luma plane ``leak`` onto a working grid of ``shape`` where ``geometry``
    places it (None: the leak is the whole picture, resized). Returns the plane, the mask of
    grid pixels it covers and its scale (leak pixels per grid pixel)."""
    if geometry is None:
        scale = float(np.sqrt(leak.size / (shape[0] * shape[1])))
        return resize(leak, shape), np.ones(shape, np.float32), scale
    small, matrix = _sampled(leak, geometry.matrix)
    back = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    plane = cv2.warpPerspective(small, matrix, (shape[1], shape[0]), flags=back)
    return plane, _coverage_mask(small.shape, matrix, shape), _scale(geometry.matrix)


def align(
    leak: np.ndarray, base: np.ndarray, *, shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Geometry | None]:
    """Resample the luma plane ``leak`` onto the working grid of ``base``.

    Returns the resampled leak, the *reference* — ``base`` as the leak saw it, i.e. shrunk
    to the leak's resolution and brought back the same way, so that the detail a small leak
    lost cancels out instead of drowning the mark — the mask (1 where the leak has pixels)
    and the geometry found. When registration finds nothing, the leak is simply resized to
    the grid (the right answer for a leak that was only rescaled), all of it valid.
    ``shape`` is the original's own (height, width), ``base``'s when not given: a leak is only
    "smaller" when it is smaller than the original itself, and only the whole picture when it
    has the original's aspect (which the working grid rounds).
    """
    shape = base.shape if shape is None else shape
    native = float(np.sqrt(shape[0] * shape[1] / base.size))
    limit = 0.9 * min(1.0, native)
    grid = (base.shape[1], base.shape[0])
    geometry = None if _only_resized(leak, base, shape) else register(leak, base)
    if geometry is None:
        factor = float(np.sqrt(leak.size / base.size))
        reference = resize(resize(base, leak.shape), base.shape) if factor < limit else base
        return resize(leak, base.shape), reference, np.ones(base.shape, np.float32), None
    small, matrix = _sampled(leak, geometry.matrix)
    back = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    plane = cv2.warpPerspective(small, matrix, grid, flags=back)
    reference = base
    factor = _scale(matrix)
    if factor < limit:
        shrunk, to_shrunk = _shrink(base, factor)
        seen = cv2.warpPerspective(
            shrunk,
            matrix @ np.linalg.inv(to_shrunk),
            (small.shape[1], small.shape[0]),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        reference = cv2.warpPerspective(seen, matrix, grid, flags=back)
    return plane, reference, _coverage_mask(small.shape, matrix, base.shape), geometry
