"""Embedding: add a recipient's codeword, spread and masked, to the luma of an image.

The work that depends only on the media (working-grid luma, perceptual mask, keyed layout)
is done once by :func:`prepare`; each recipient then costs a codeword, an inverse wavelet
transform on the small working grid, one resize of the change to full resolution and a
saturating add. :func:`embed` is the one-shot form of the same two steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from . import codes
from .codes import PHOTO_CODE, Code, Layout, layout
from .errors import ImageArrayError
from .keys import Key
from .mask import perceptual_mask
from .sync import SHARE, template
from .transform import (
    analyse,
    band_gains,
    check_image,
    synthesise_flat,
    to_working,
    working_shape,
)

__all__ = ["DEFAULT_PSNR", "EmbedPlan", "apply", "embed", "prepare"]

#: Target PSNR (dB) of a copy at ``strength=1``: the codeword and the sync template together,
#: as written (8-bit copies: after rounding to whole levels, see :func:`prepare`).
DEFAULT_PSNR = 48.0
#: The recipient whose change measures what rounding costs a photo (:func:`prepare`).
_PROBE = "leaktrace:psnr-probe"


@dataclass(frozen=True)
class EmbedPlan:
    """Everything about one media item that every recipient's copy shares."""

    key: Key
    media_id: str
    code: Code
    shape: tuple[int, ...]
    dtype: np.dtype
    mask: np.ndarray
    layout: Layout
    gains: np.ndarray
    rms: float
    sync: np.ndarray
    #: The most RMS change (levels) a copy may carry once rounded to whole levels, 0: no limit.
    limit: float = 0.0

    def __repr__(self) -> str:
        return f"EmbedPlan(media_id={self.media_id!r}, shape={self.shape}, rms={self.rms:.3f})"


def prepare(
    image: np.ndarray, key: Key, media_id: str, *, strength: float = 1.0, code: str = PHOTO_CODE
) -> EmbedPlan:
    """Do the per-media work of embedding once, for any number of recipients.

    ``strength`` scales the change linearly: 1 aims at :data:`DEFAULT_PSNR`, 0 changes nothing.
    ``code`` names the code the recipients' codewords come from (:data:`~leaktrace.codes.CODES`).
    """
    check_image(image)
    if not np.isfinite(strength) or strength < 0:
        raise ValueError("strength must be a finite number ≥ 0")
    plane = to_working(image)
    bands = analyse(plane)
    count = sum(b.size for b in bands)
    peak = 65535.0 if image.dtype == np.uint16 else 255.0
    rms = strength * peak / 10 ** (DEFAULT_PSNR / 20)
    mask = perceptual_mask(plane)
    # The sync template, common to every recipient's copy, takes SHARE of the energy budget.
    sync = template(key, media_id, plane.shape) * mask
    energy = float(np.sqrt(np.mean(sync * sync)))
    sync *= np.float32(rms * SHARE**0.5 / energy) if energy > 0 else np.float32(0)
    plan = EmbedPlan(
        key=key,
        media_id=media_id,
        code=codes.code(key, media_id, code),
        shape=image.shape,
        dtype=image.dtype,
        mask=mask,
        layout=layout(key, media_id, working_shape(image.shape), count),
        gains=band_gains(bands),
        rms=rms * (1 - SHARE) ** 0.5,
        sync=sync,
    )
    if image.dtype != np.uint8 or rms == 0:
        return plan  # 16-bit levels are 257 times finer than the change: rounding costs nothing
    # Rounding to whole levels adds energy (about 0.25 dB at 48 dB): aim the scale at the
    # rounded change, measured on one probe recipient's, a little under the limit so that
    # other recipients' (the same energy before rounding, ±0.01 dB after it on a Kodak
    # photo) seldom need apply's correction.
    # Never above the scale aimed before rounding: a faint mark (low strength) that rounding
    # mostly erases is not made stronger.
    plan, nominal = replace(plan, limit=rms), plan.rms
    for _ in range(2):  # rounding is not linear: the second step is a few hundredths of a dB
        found = _rounded_rms(_rounded(_change(plan, _PROBE)))
        if found > 0:
            factor = min(rms * _PROBE_AIM / found, nominal / plan.rms)
            plan = replace(plan, rms=plan.rms * factor, sync=plan.sync * np.float32(factor))
    return plan


#: Where :func:`prepare` aims the probe recipient's rounded change, as a share of the limit
#: (0.02 dB under it).
_PROBE_AIM = 10 ** (-0.02 / 20)
#: Corrections :func:`apply` may make to bring a recipient's rounded change under the limit.
_CORRECTIONS = 8


def _rounded(change: np.ndarray) -> np.ndarray:
    """The change rounded to whole levels, as int16 (OpenCV: one multi-threaded pass; stubs
    lack the scalar form)."""
    return cv2.add(change, 0.0, dtype=cv2.CV_16S)  # type: ignore[call-overload]


def _rounded_rms(change: np.ndarray) -> float:
    return float(cv2.norm(change, cv2.NORM_L2)) / float(np.sqrt(change.size))


def _change(plan: EmbedPlan, recipient: str) -> np.ndarray:
    """The float32 change to add to every colour channel, at full resolution."""
    values = plan.layout.spread(plan.code.codeword(recipient)) * plan.gains
    change = synthesise_flat(values, plan.mask.shape) * plan.mask
    energy = float(np.sqrt(np.mean(change * change)))
    change *= np.float32(plan.rms / energy) if energy > 0 else np.float32(0)
    # The codeword's and the template's energies add up, give or take their correlation,
    # which differs from recipient to recipient: take it out, so that every recipient's copy
    # carries the same energy.
    total = plan.rms**2 + float(np.mean(plan.sync * plan.sync))
    change += plan.sync
    energy = float(np.sqrt(np.mean(change * change)))
    change *= np.float32(total**0.5 / energy) if energy > 0 else np.float32(0)
    h, w = plan.shape[0], plan.shape[1]
    if (h, w) == change.shape:
        return change
    # Bilinear up (the change is smooth on this scale), area-averaging down.
    inter = cv2.INTER_AREA if h * w < change.size else cv2.INTER_LINEAR
    return cv2.resize(change, (w, h), interpolation=inter)


def apply(plan: EmbedPlan, image: np.ndarray, recipient: str) -> np.ndarray:
    """Return ``recipient``'s marked copy of the image ``plan`` was prepared from.

    Colour channels all receive the same change (so chroma is untouched); alpha is copied.
    """
    if image.shape != plan.shape or image.dtype != plan.dtype:
        raise ImageArrayError("image does not match the plan it is applied with")
    if plan.rms == 0:
        return image.copy()
    change = _change(plan, recipient)
    if image.dtype == np.uint8:
        exact, change = change, _rounded(change)
        # The target PSNR holds for every copy after rounding: where this recipient's rounded
        # change carries more than the limit, scale it down (a few tenths of a percent).
        for _ in range(_CORRECTIONS):
            found = _rounded_rms(change)
            if plan.limit == 0 or found <= plan.limit:
                break
            exact = exact * np.float32(plan.limit / found * 0.999)
            change = _rounded(exact)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels > 1:
        # Same change on every colour channel (chroma untouched), none on alpha.
        keep = np.zeros_like(change)
        colour = 3 if channels >= 3 else 1
        change = cv2.merge([change] * colour + [keep] * (channels - colour))
    # Saturating add in OpenCV (multi-threaded, rounds to the image's integer type).
    depth = cv2.CV_16U if image.dtype == np.uint16 else cv2.CV_8U
    return cv2.add(image, change, dtype=depth).reshape(image.shape)


def embed(
    image: np.ndarray,
    key: Key,
    media_id: str,
    recipient: str,
    *,
    strength: float = 1.0,
    code: str = PHOTO_CODE,
) -> np.ndarray:
    """Return a copy of ``image`` carrying ``recipient``'s invisible mark.

    Parameters
    ----------
    image : ndarray
        H×W gray, H×W×3 RGB or H×W×4 RGBA (also H×W×2 gray+alpha), uint8 or uint16.
    key : Key
        The secret key; without it the mark can be neither found nor forged.
    media_id : str
        Identifies the original (the same photo sent to many recipients shares it).
    recipient : str
        Identifies who receives this copy.
    strength : float
        1 aims at :data:`DEFAULT_PSNR` dB; 0 returns the input unchanged.
    code : str
        The code of the recipients' codewords (detection must be told the same one).

    Examples
    --------
    >>> import numpy as np, leaktrace as lt
    >>> img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    >>> copy = lt.embed(img, lt.Key.generate(), media_id="set-42", recipient="alice")
    >>> copy.shape == img.shape and copy.dtype == img.dtype
    True
    """
    return apply(prepare(image, key, media_id, strength=strength, code=code), image, recipient)
