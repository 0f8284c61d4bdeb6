"""Synchronisation: how blind detection finds where a leak sits on its working grid.

Every copy of a media item carries, besides its recipient's codeword, the same faint keyed
*template*: a :data:`PERIOD` × :data:`PERIOD` tile of band-limited noise (periods of 8 to 32
working-grid pixels, the marked bands' range) repeated over the working grid and shaped by the
perceptual mask. It is common to all recipients, so it reveals nothing about who received a
copy; only the recipient codeword layout, which is never periodic, says that. The tile is
keyed on the working grid's shape too.

The template is faint (a tenth of the mark's energy): its correlation with a whitened leak at
the right geometry stands 3 to 10 standard deviations above noise on a Kodak photo, enough to
choose among a few dozen geometries but not to find a rotation, scale and shift from nothing
(its autocorrelation lattice is lost in the host's on most photos). So geometry comes first
from the picture itself and the template settles what is left:

- :func:`frame` — a picture rotated on a grown canvas: its outer edge against the empty corners;
- :func:`picture` — a screenshot: the picture's edges against the flat bars and margins;
- :func:`angles` — a picture turned about its centre and cropped about it (the leak's centre is
  the picture's): the template turned by every angle, the best kept;
- :func:`residues` — an unscaled crop: the leak folded modulo the period and correlated with
  the tile gives its translation modulo the period (the multiple of the period is left to
  the detector, which tests each with the codewords and pays for it).

Nothing here depends on the recipients' codewords, so choosing a geometry from the template
or from the picture's outline is no search over codeword hypotheses.
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt

from .keys import Key, keyed_bytes
from .mask import perceptual_mask
from .transform import MARKED_LEVELS, WAVELET, analyse, synthesise

__all__ = [
    "ANGLES",
    "FLOOR",
    "PEAKS",
    "PERIOD",
    "SHARE",
    "angles",
    "centred",
    "frame",
    "picture",
    "residues",
    "template",
    "tile",
    "unpredicted",
]

#: Period of the template on the working grid (pixels); a multiple of 16, so that a shift by
#: whole periods moves the marked wavelet bands by whole coefficients.
PERIOD = 64
#: Share of the mark's energy (before rounding) that goes to the template. A quarter placed
#: 23 of 24 blind Kodak crops but cost informed 0.25× downscales 15 % of their z (min 8.4
#: against a threshold of 7.4); a tenth places 22 of 24 and, with the total energy raised
#: to 48 dB, leaves the codeword the energy it had before the template.
SHARE = 0.10
#: Spatial frequencies of the tile, in cycles per period (periods of 8 to 32 pixels).
_BAND = (PERIOD / 32, PERIOD / 8)


def tile(key: Key, media_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The keyed PERIOD × PERIOD tile (float32, unit RMS) of a working grid of ``shape``."""
    ctx = f"leaktrace/v2/sync\x00{media_id}\x00{shape[0]}x{shape[1]}"
    raw = keyed_bytes(key, ctx, PERIOD * PERIOD).astype(np.float64).reshape(PERIOD, PERIOD)
    spectrum = np.fft.fft2(raw - raw.mean())
    f = np.fft.fftfreq(PERIOD) * PERIOD
    radius = np.hypot(f[:, None], f[None, :])
    spectrum[(radius < _BAND[0]) | (radius > _BAND[1])] = 0
    out = np.fft.ifft2(spectrum).real
    return (out / np.sqrt(np.mean(out * out))).astype(np.float32)


def template(key: Key, media_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The tile repeated over a working grid of ``shape`` (float32, unit RMS)."""
    t = tile(key, media_id, shape)
    reps = (-(-shape[0] // PERIOD), -(-shape[1] // PERIOD))
    return np.ascontiguousarray(np.tile(t, reps)[: shape[0], : shape[1]])


#: Translations modulo the period kept from the template correlation, best first.
PEAKS = 4
#: Luma (0..255) below which a pixel can be a rotation's empty corner.
_DARK = 8.0


#: Floor on a band's local energy in blind whitening (squared coefficient units, about the
#: mark's own amplitude): where JPEG flattened a band, a near-zero coefficient is no evidence.
FLOOR = 16.0
#: Weight of the wavelet whitening against the band-pass one in :func:`_whiten` (each at unit
#: RMS). Measured on the 24 Kodak photos (key fixed, JPEG 75): the true translation among the
#: :data:`PEAKS` best of a 50 % corner crop on 18 photos with the band-pass alone, 18 with the
#: wavelet alone, 22 with both (1.5) and 21 with both (1); the true angle of a 20° turned crop
#: (±20°) among the :data:`ANGLES` best on 39 of 48 with the band-pass alone, 43 with both.
_WAVELET_WEIGHT = 1.5


def unpredicted(band: np.ndarray) -> np.ndarray:
    """``band`` less what its eight neighbours predict of each coefficient (least squares over
    the band, 8 weights). A texture's coefficients (gravel, leaves, grass) are correlated
    with their neighbours; the mark's keyed chips are not, so this removes host and keeps
    the mark (8 weights fitted over thousands of coefficients learn a negligible part of
    it). Blind mode's host estimate, as the original is informed mode's."""
    shifts = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
    near = np.stack([np.roll(band, s_, axis=(0, 1)).ravel() for s_ in shifts], axis=1)
    near = near.astype(np.float64)
    target = band.ravel().astype(np.float64)
    gram = near.T @ near + 1e-9 * np.eye(len(shifts))
    weights = np.linalg.solve(gram, near.T @ target)
    return (target - near @ weights).reshape(band.shape).astype(np.float32)


def _unit(plane: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(plane * plane)))
    return plane / np.float32(rms) if rms > 0 else plane


def _whiten(plane: np.ndarray) -> np.ndarray:
    """The luma with the host competing with the template pushed down, in two ways that fail
    on different photos, added at unit RMS: band-passed to the template's band; and whitened
    in the marked wavelet bands as blind detection whitens them for the codeword
    (:func:`unpredicted`, over the local energy) and brought back to pixels. Each weights a
    pixel by how much template it can carry (perceptual mask) over how much host detail
    competes with it there."""
    mask = perceptual_mask(plane)
    band = cv2.GaussianBlur(plane, (0, 0), 1.0) - cv2.GaussianBlur(plane, (0, 0), 5.0)
    local = cv2.GaussianBlur(band * band, (0, 0), 2.0) + np.float32(0.25)
    # The wavelet bands of the plane mirrored up to whole coefficients of the coarsest band,
    # and to the size the transform needs for them (a thumbnail's crop may be a few pixels).
    h, w = plane.shape
    step = 2 ** max(MARKED_LEVELS)
    least = step * (pywt.Wavelet(WAVELET).dec_len - 1)
    rows, cols = max(-(-h // step) * step, least), max(-(-w // step) * step, least)
    padded = cv2.copyMakeBorder(plane, 0, rows - h, 0, cols - w, cv2.BORDER_REFLECT_101)
    weight = cv2.copyMakeBorder(mask, 0, rows - h, 0, cols - w, cv2.BORDER_REFLECT_101)
    white = []
    for coefficients in analyse(padded):
        u = unpredicted(coefficients)
        energy = cv2.GaussianBlur(u * u, (0, 0), 1.0) + np.float32(FLOOR)
        size = (u.shape[1], u.shape[0])
        white.append(u * cv2.resize(weight, size, interpolation=cv2.INTER_AREA) / energy)
    wavelet = synthesise(white, (rows, cols))[:h, :w]
    return _unit(band * mask / local) + np.float32(_WAVELET_WEIGHT) * _unit(wavelet)


def residues(
    plane: np.ndarray, valid: np.ndarray, key: Key, media_id: str, shape: tuple[int, int]
) -> list[tuple[int, int]]:
    """Where the working grid's template tiles start in ``plane`` (a leak already at the grid's
    scale and orientation): the :data:`PEAKS` best translations (dy, dx) modulo the period,
    each followed by its eight neighbours.

    ``plane`` pixel (y, x) is grid pixel (y + dy + k·PERIOD, x + dx + l·PERIOD) for some k, l.
    """
    white = _whiten(plane) * valid
    h, w = white.shape
    pad = np.zeros((-(-h // PERIOD) * PERIOD, -(-w // PERIOD) * PERIOD), np.float32)
    pad[:h, :w] = white
    folded = pad.reshape(pad.shape[0] // PERIOD, PERIOD, pad.shape[1] // PERIOD, PERIOD).sum(
        axis=(0, 2)
    )
    # Matched filter: the tile as the whitening band-pass sees it, against the fold's
    # spectrum flattened (the host behind the template is far from white).
    t = tile(key, media_id, shape)
    f = np.fft.fftfreq(PERIOD)
    r2 = f[:, None] ** 2 + f[None, :] ** 2
    bandpass = np.exp(-2 * np.pi**2 * r2) - np.exp(-2 * np.pi**2 * 25 * r2)
    ff = np.fft.fft2(folded)
    ff /= np.sqrt(np.abs(ff) + 1e-9 * np.abs(ff).max() + np.finfo(np.float64).tiny)  # 0: flat
    ft = np.fft.fft2(t) * bandpass
    corr = np.fft.ifft2(ft * np.conj(ff)).real.astype(np.float32)
    # Local maxima on the torus, best first.
    wrapped = np.pad(corr, 2, mode="wrap")
    top = cv2.dilate(wrapped, np.ones((5, 5), np.uint8))[2:-2, 2:-2]
    ys, xs = np.nonzero(corr >= top)
    order = np.argsort(-corr[ys, xs], kind="stable")[:PEAKS]
    # A peak is a few pixels wide and noise moves its top by a pixel: keep its neighbours.
    return [
        ((int(ys[i]) + a) % PERIOD, (int(xs[i]) + b) % PERIOD)
        for i in order
        for a in (0, -1, 1)
        for b in (0, -1, 1)
    ]


def _edge(plane: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Points (x, y) where the picture's light falls to half its level across the side from
    ``a`` to ``b`` (picture on its right-hand side, clockwise): its outer edge, to a fraction
    of a pixel. Where the picture is too dark there to see its edge, no point."""
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([d[1], -d[0]])  # outward
    steps = np.arange(-6.0, 4.01, 0.25)
    length = float(np.linalg.norm(b - a))
    along = np.arange(0.1 * length, 0.9 * length, 2.0)
    pts = a + along[:, None] * d
    grid = pts[:, None, :] + steps[None, :, None] * n
    prof = cv2.remap(
        plane, grid[..., 0].astype(np.float32), grid[..., 1].astype(np.float32), cv2.INTER_LINEAR
    )
    inner = np.median(prof[:, steps <= -3], axis=1)
    out = []
    for p, v, level in zip(pts, prof, inner, strict=True):
        above = np.flatnonzero(v >= level / 2)
        if level < 4 * _DARK or above.size == 0 or above[-1] + 1 >= steps.size:
            continue
        i = above[-1]  # outermost sample still at half the level
        frac = (v[i] - level / 2) / max(float(v[i] - v[i + 1]), 1e-6)
        out.append(p + (steps[i] + min(max(frac, 0.0), 1.0) * 0.25) * n)
    return np.array(out).reshape(-1, 2)


def frame(plane: np.ndarray) -> np.ndarray | None:
    """Corners (top-left, top-right, bottom-right, bottom-left; x, y) of the outer edge of a
    picture that was rotated on a canvas grown to hold it, found from the empty (dark)
    corners around it; None when the leak shows no such corners."""
    content = (plane > _DARK).astype(np.uint8)
    contours, _ = cv2.findContours(content, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    box = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
    s, d = box.sum(axis=1), box[:, 1] - box[:, 0]
    corners = box[[np.argmin(s), np.argmin(d), np.argmax(s), np.argmax(d)]]
    edge = corners[1] - corners[0]
    angle = float(np.degrees(np.arctan2(edge[1], edge[0])))
    if not 0.3 <= abs(angle) <= 30:
        return None
    # The four triangles between the box and the canvas must be (nearly) empty.
    h, w = plane.shape
    outside = np.ones((h, w), np.uint8)
    cv2.fillConvexPoly(outside, np.rint(corners).astype(np.int32), 0)
    empty = cv2.erode(outside, np.ones((5, 5), np.uint8)) > 0
    if empty.sum() < 0.002 * h * w or np.mean(plane[empty] <= _DARK) < 0.97:
        return None
    # The sides to a fraction of a pixel: one common angle (a rectangle), each side's offset
    # the median of its edge points, the corners where the sides meet.
    points = [_edge(plane, corners[k], corners[(k + 1) % 4]) for k in range(4)]
    if min(len(p) for p in points) < 10:
        return corners
    turns = []
    for k, p in enumerate(points):
        centred = p - p.mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        turns.append((np.arctan2(direction[1], direction[0]) - k * np.pi / 2) % np.pi)
    base = turns[0]
    turns = [base + ((t - base + np.pi / 2) % np.pi - np.pi / 2) for t in turns]
    theta = float(np.median(turns))
    normals, offsets = [], []
    for k, p in enumerate(points):
        u = np.array([np.cos(theta + k * np.pi / 2), np.sin(theta + k * np.pi / 2)])
        n = np.array([u[1], -u[0]])
        normals.append(n)
        offsets.append(float(np.median(p @ n)))
    out = [
        np.linalg.solve(np.array([normals[k - 1], normals[k]]), [offsets[k - 1], offsets[k]])
        for k in range(4)
    ]
    return np.array(out)


#: Rotation angles (about the picture's centre) kept from the template's scan, best first.
ANGLES = 4


def centred(grid: tuple[int, int], shape: tuple[int, int], degrees: float) -> np.ndarray:
    """The 2×3 map from a working grid to a plane of ``shape`` at the grid's scale, the grid
    turned by ``degrees`` (counter-clockwise, as :func:`cv2.getRotationMatrix2D`) about its
    centre and that centre put on the plane's."""
    m = cv2.getRotationMatrix2D((0.0, 0.0), degrees, 1.0)[:, :2]
    middle = np.array([(grid[1] - 1) / 2, (grid[0] - 1) / 2])
    there = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])
    return np.hstack([m, (there - m @ middle)[:, None]])


def _turn_scores(white: np.ndarray, pattern: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Correlation of the whitened leak with the template turned by each of ``degrees``."""
    grid = (pattern.shape[0], pattern.shape[1])
    out = np.empty(degrees.size)
    for i, d in enumerate(degrees):
        seen = cv2.warpAffine(
            white,
            centred(grid, (white.shape[0], white.shape[1]), float(d)),
            (grid[1], grid[0]),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        )
        out[i] = float(np.sum(seen * pattern)) / (float(np.sqrt(np.sum(seen * seen))) + 1e-9)
    return out


def angles(
    plane: np.ndarray, key: Key, media_id: str, grid: tuple[int, int], *, limit: float
) -> list[float]:
    """The :data:`ANGLES` rotations (degrees, within ±``limit``) by which a picture of the
    working grid ``grid`` best fits ``plane``, a leak at the grid's scale whose centre is the
    picture's (a picture turned about its centre and cropped about it): the correlation of
    the leak with the turned template, scanned every 0.2° at half resolution, then refined
    every 0.05° at full resolution around the best peaks. Best first."""
    white = _whiten(plane)
    pattern = template(key, media_id, grid)
    half = (max(1, white.shape[1] // 2), max(1, white.shape[0] // 2))
    small_white = cv2.resize(white, half, interpolation=cv2.INTER_AREA)
    small_pattern = cv2.resize(pattern, (grid[1] // 2, grid[0] // 2), interpolation=cv2.INTER_AREA)
    coarse = np.arange(-limit, limit + 1e-9, 0.2)
    scores = _turn_scores(small_white, small_pattern, coarse)
    peaks = [
        i
        for i in np.argsort(-scores, kind="stable")
        if scores[i] >= scores[max(i - 1, 0)] and scores[i] >= scores[min(i + 1, scores.size - 1)]
    ][:ANGLES]
    found = []
    for i in peaks:
        fine = coarse[i] + np.arange(-0.25, 0.2501, 0.05)
        near = _turn_scores(white, pattern, fine)
        found.append((float(near.max()), round(float(fine[np.argmax(near)]), 2)))
    return [d for _, d in sorted(found, reverse=True)]


def _boundary(plane: np.ndarray, outer: int, step: int, span: slice) -> float | None:
    """The coordinate (along ``plane``'s rows; pass the transpose for columns) where a
    picture begins, walking from line ``outer`` on the canvas by ``step`` (±1): where lines
    first differ from the canvas by half as much as the picture's do, to a fraction of a
    line. None when the lines do not go from flat canvas to picture."""
    n = plane.shape[0]
    at = outer + step * np.arange(20)
    if at.min() < 0 or at.max() >= n:
        return None
    lines = plane[at][:, span]
    canvas = np.median(lines[:3], axis=0)
    if float(np.max(np.abs(lines[:3] - canvas))) > 2.0:
        return None  # not a flat canvas where the walk starts
    diff = np.mean(np.abs(lines - np.median(canvas)), axis=1)
    level = float(np.median(diff[-6:]))
    k = int(np.argmax(diff >= level / 2))
    if level < 4.0 or k == 0:
        return None
    pos = k - 1 + (level / 2 - diff[k - 1]) / max(float(diff[k] - diff[k - 1]), 1e-6)
    return float(outer + step * pos)


def picture(plane: np.ndarray) -> tuple[float | None, float | None, float | None, float | None]:
    """Edges (top, left, bottom, right; pixel-edge coordinates, a whole picture of ``plane``
    being -0.5, -0.5, h - 0.5, w - 0.5) of an upright picture pasted on a flat canvas, as a
    screenshot's bars and margins hold it. An edge is None where it could not be told from
    the canvas (a flat sky against a flat bar); all four are None when no flat canvas
    surrounds a picture."""
    none = (None, None, None, None)
    h, w = plane.shape
    mean = cv2.blur(plane, (3, 3))
    busy = (cv2.blur(plane * plane, (3, 3)) - mean * mean > 1.0).astype(np.uint8)
    # Opening drops the thin lines where two flat areas of the canvas meet.
    busy = cv2.morphologyEx(busy, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    busy = cv2.morphologyEx(busy, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=8)
    if count < 2:
        return none
    x, y, bw, bh, area = (int(v) for v in stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))])
    if bw * bh < 0.05 * h * w or area < 0.3 * bw * bh or min(bw, bh) < 32:
        return none
    rows, cols = slice(y + 4, y + bh - 4), slice(x + 4, x + bw - 4)
    walks = (
        (y <= 1, -0.5, lambda: _boundary(plane, y - 8, 1, cols)),
        (x <= 1, -0.5, lambda: _boundary(plane.T, x - 8, 1, rows)),
        (y + bh >= h - 1, h - 0.5, lambda: _boundary(plane, y + bh + 7, -1, cols)),
        (x + bw >= w - 1, w - 0.5, lambda: _boundary(plane.T, x + bw + 7, -1, rows)),
    )
    # A side the picture fills to the leak's edge has no canvas beyond it.
    top, left, bottom, right = (own if touches else walk() for touches, own, walk in walks)
    found = [e for e in (top, left, bottom, right) if e is not None]
    if len(found) < 3 or all(touches for touches, _, _ in walks):
        return none
    return top, left, bottom, right
