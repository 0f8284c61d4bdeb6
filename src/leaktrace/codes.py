"""Codewords, the codes they come from, and the keyed layout that spreads them over the marked
coefficients.

Every recipient of a media item gets a codeword of ±1 symbols (:data:`CODE_LENGTH` for a
picture, one per segment for a video's variants) derived from (key, media id, recipient)
under a named :class:`Code`:

- ``random-v1``: every symbol a fair coin. Every copy of format ≤ 2, and a picture's codeword
  (photos, videos marked per recipient) today.
- ``tardos-v1``: a video's segment symbols in format 3 (and a picture's on request: ``embed(...,
  code="tardos-v1")``). A Tardos fingerprinting code with Nuida's discrete bias law for up to
  four colluders: each position ``j`` has a keyed bias ``p_j``, ``(1 − 1/√3)/2`` or
  ``(1 + 1/√3)/2`` with even odds (:data:`BIASES`), the same for every recipient of the media
  item, and each recipient's symbol is +1 with probability ``p_j``. Colluders who combine
  copies can only choose among the symbols they hold; where they all hold the same one, it
  survives, and a rarer symbol they share points at them. Measured on the code alone
  (``benchmarks/collusion_codes.py``), this law names a colluder sooner than Tardos'
  continuous arcsine law for two to four colluders under every strategy tried, and costs a
  single leaker less of its score (``2√(p(1−p)) = 0.82`` against 0.75).
- ``tardos-v2``: a video's segment symbols from format 4. The same codewords as
  ``tardos-v1`` (the same keyed biases and symbols, so copies are made exactly as before), judged
  under two scores instead of one (see below).

A candidate is scored with the symmetric (Škorić) score ``Σ_j y_j·(c_j − μ_j)/σ_j`` over soft
values ``y`` (``μ_j = 2p_j − 1`` and ``σ_j = 2√(p_j(1 − p_j))`` the symbol's mean and spread),
which is the plain correlation ``<c, y>`` for fair coins.

Any score that adds, position by position, a function of the candidate's symbol, the leak's
value and the bias is of that form for some weights ``w_j`` in place of ``y_j`` (a function of
a two-valued symbol is affine in it), and the same bound holds for it as long as the weights do
not depend on any candidate's codeword. ``tardos-v2`` judges every candidate under two such
weightings (:meth:`Code.weighings`): the leak's values as they are (the symmetric score, the
better test of a single leaker whose readings are noisy: centring them makes an innocent's
score lopsided, and its tail heavier), and the values *centred* on what the biases predict,
``y_j − β·μ_j`` with ``β`` the least-squares fit of ``y`` on ``μ`` over the positions shown.
Colluders who interleave their copies (or pick symbols at random, or average them) show a
symbol with the odds of the bias (``β ≈ 1``), so centring weighs a rare symbol shown by
``(1−p)/p`` against a common one, which is the interleave-optimal score of Oosterwijk, Škorić and
Doumen (2013; Laarhoven's log-likelihood score against interleaving, 2014, to first order) for
certain symbols, and removes from an average the part every recipient shares. Against a
minority vote ``β ≈ 0`` and it is the symmetric score again. The false-accusation budget is
split between them before any codeword is looked at (:data:`CENTRED_SHARE`: the symmetric
score's bound is multiplied by 4/3, the centred one's by 4; a candidate's probability is the
smaller). A single leaker pays the 4/3 (an even split would cost it a factor 2; a smaller
centred share costs colluders more than it saves). Measured on real segment readings
(``benchmarks/video_collusion.py``, 1,000 candidates at 1e-9), four colluders' interleave of 10
minutes (1,200 segments) is caught in 99.4 % of 1,000 trials instead of 89.1 %, and their
average of 2 minutes in 95 % of 200 instead of none.

Whatever the colluders did, an innocent's symbols are independent of the leak given the biases,
so the score of an innocent is a sum of independent bounded terms with a known distribution,
and :meth:`Code.tail_log10` bounds its tail with Chernoff's inequality and the terms' exact
moment generating functions: a probability that holds for every collusion strategy.

Why pictures keep fair coins: a picture spreads every code position over the whole frame, so
colluders who average, take medians, interleave tiles or pick pixels from their copies mix
every position alike, and fair coins (the best bias for two colluders, and for any average)
keep every colluder's score highest. Biased symbols carry less: the Tardos code costs a single
leaker a fifth of its score (a third of the probability's exponent), which loses the faintest
leaks. A video's variants instead hand colluders one discrete symbol per
segment, which they can compare and choose: the setting Tardos codes are made for, where fair
coins fall to a minority vote of three colluders.

The layout assigns every marked coefficient to one code position (each position gets an equal
share, scattered over the whole frame so a crop keeps part of every position) and a ±1 chip.
Everything is keyed: without the key nothing can be estimated or forged. Context strings carry
the format version that introduced the stream (see :data:`FORMAT_VERSION`) so that a future
engine can keep tracing copies made by this one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .errors import DetectionInputError
from .keys import Key, keyed_bytes, keyed_rows

__all__ = [
    "BIASES",
    "CODES",
    "CENTRED_SHARE",
    "CODE_LENGTH",
    "FORMAT_VERSION",
    "PHOTO_CODE",
    "VARIANT_CODE",
    "Code",
    "Codebook",
    "Layout",
    "code",
    "code_name",
    "codeword",
    "codewords",
    "layout",
]

CODE_LENGTH = 1024
#: Version of what a copy carries. 2: the v1 codeword and layout plus the sync template
#: (:mod:`leaktrace.sync`). 3: a video's segment symbols from the Tardos code ``tardos-v1``.
#: 4: the same symbols judged as ``tardos-v2`` (two scores, :meth:`Code.weighings`).
#: Each keyed stream's context names the version that introduced it, so the layouts of older
#: copies are still those of today, and their codewords those of the code they were made with.
FORMAT_VERSION = 4
_STREAMS = 1  # version of the fair-coin codeword and of the layout streams
#: The two biases of ``tardos-v1`` (Nuida et al., "An improvement of discrete Tardos
#: fingerprinting codes", 2009: the optimal discrete law for three and four colluders),
#: rounded to the 1/65536 steps a symbol is drawn with, so that they are its exact odds.
BIASES = tuple(round(b * 65536) / 65536 for b in ((1 - 3**-0.5) / 2, (1 + 3**-0.5) / 2))
CODES = ("random-v1", "tardos-v1", "tardos-v2")
#: The code of each format version's copies (a version not listed keeps the one before it):
#: for a picture's whole codeword (photos, videos marked per recipient) and for the one symbol
#: per segment of a video's variants.
_FORMAT_CODES = {
    "spread": {1: "random-v1"},
    "variants": {1: "random-v1", 3: "tardos-v1", 4: "tardos-v2"},
}
#: Codes whose candidates are judged under both weightings of :meth:`Code.weighings`.
_CENTRED = frozenset({"tardos-v2"})
#: The share of the false-accusation budget of the centred weighting (the symmetric one has
#: the rest).
CENTRED_SHARE = 0.25


def code_name(format_version: int, *, variants: bool = False) -> str:
    """The code whose codewords copies of ``format_version`` carry (``variants``: a video's
    segment symbols)."""
    table = _FORMAT_CODES["variants" if variants else "spread"]
    return table[max(v for v in table if v <= max(1, format_version))]


#: The codes of copies made today.
PHOTO_CODE = code_name(FORMAT_VERSION)
VARIANT_CODE = code_name(FORMAT_VERSION, variants=True)


def _signs(raw: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(raw)[:n].astype(np.float32) * 2.0 - 1.0


def _uniform(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Numbers in (0, 1) from keyed bytes, one per ``dtype`` word."""
    words = raw.view(dtype).astype(np.float64)
    return (words + 0.5) / float(np.iinfo(dtype).max + 1)


#: λ values tried by :meth:`Code.tail_log10` (for soft values scaled to at most 1); any λ
#: gives a valid bound, the grid's best is within a few percent of the optimum exponent.
_LAMBDAS = np.geomspace(1e-3, 1e3, 241)
_LOG10_E = math.log10(math.e)
#: Recipients whose codewords are derived per block (bounds the temporary memory).
_BLOCK = 8192
#: Packed codewords scored per block (their running sums, 512 kB, stay in the cache).
_COLUMNS = 65536
#: ±1 symbol of each of a byte's 8 bits (most significant first, as ``np.packbits``), per value.
_BYTE_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1) * 2.0 - 1.0


def _envelope(intercepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lines ``intercepts[i] − _LAMBDAS[i]·t`` that form their lower envelope, in order
    of t, and the t where each hands over to the next: ``min_i`` of the lines at any t is
    the line ``hull[searchsorted(breaks, t)]`` there, one line per t instead of all of them."""
    hull: list[int] = []
    for i in range(intercepts.size):
        while hull:
            # Line i is below the last hull line from the t where they cross; the last line
            # is useless if that comes before the t where it took over from the one before.
            j = hull[-1]
            cross = (intercepts[i] - intercepts[j]) / (_LAMBDAS[i] - _LAMBDAS[j])
            if len(hull) > 1:
                k = hull[-2]
                if cross <= (intercepts[j] - intercepts[k]) / (_LAMBDAS[j] - _LAMBDAS[k]):
                    hull.pop()
                    continue
            break
        hull.append(i)
    index = np.array(hull)
    a, lam = intercepts[index], _LAMBDAS[index]
    return index, (a[1:] - a[:-1]) / (lam[1:] - lam[:-1])


class Codebook(Protocol):
    """Where the packed codewords of a media item's recipients are kept between scorings
    (:class:`leaktrace.registry.Codebook` keeps them beside the registry). The same key, media
    item, code and recipient always give the same codeword, so a codebook can only be stale by
    missing recipients, never by holding a wrong row; it holds codewords, never the key."""

    def packed(self, code: Code, recipients: Sequence[str]) -> np.ndarray:
        """``code.packed(recipients)``, from the codebook where it has them."""
        ...

    def forget(self, code: Code) -> None:
        """Drop everything held for ``code`` (its rows disagreed with the key's)."""
        ...


@dataclass(frozen=True)
class Code:
    """The named code of one media item's codewords: ``bias[j]`` is the probability that a
    recipient's symbol at position ``j`` is +1 (½ everywhere for ``random-v1``)."""

    key: Key = field(repr=False)
    media_id: str
    name: str
    bias: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        return int(self.bias.size)

    @property
    def nbytes(self) -> int:
        """Bytes of one packed codeword."""
        return (self.length + 7) // 8

    @property
    def ident(self) -> str:
        """What names this code's codewords, public (the key's fingerprint, not the key):
        ``fingerprint/name/length/media id``."""
        return f"{self.key.fingerprint}/{self.name}/{self.length}/{self.media_id}"

    def codeword(self, recipient: str) -> np.ndarray:
        """The ±1 (float32) codeword of ``recipient``."""
        n = self.length
        if self.name == "random-v1":
            ctx = f"leaktrace/v{_STREAMS}/codeword\x00{self.media_id}\x00{recipient}"
            return _signs(keyed_bytes(self.key, ctx, (n + 7) // 8), n)
        ctx = f"leaktrace/v3/tardos\x00{self.media_id}\x00{recipient}"
        u = _uniform(keyed_bytes(self.key, ctx, 2 * n), "<u2")
        return np.where(u < self.bias, np.float32(1), np.float32(-1))

    def codewords(self, recipients: Sequence[str]) -> np.ndarray:
        """Stack the codewords of ``recipients`` into an N × length float32 matrix."""
        bits = np.unpackbits(self.packed(recipients).T, axis=1, count=self.length)
        return bits.astype(np.float32) * 2.0 - 1.0

    def packed(self, recipients: Sequence[str]) -> np.ndarray:
        """The codewords of ``recipients`` as bits, one column per recipient: a
        :attr:`nbytes` × N uint8 array whose column ``i`` is ``np.packbits(codeword_i > 0)``
        (the last byte's spare bits 0). An eighth of a byte per symbol, derived many at a
        time; :meth:`packed_totals` scores them."""
        out = np.empty((self.nbytes, len(recipients)), np.uint8)
        for start in range(0, len(recipients), _BLOCK):
            part = recipients[start : start + _BLOCK]
            out[:, start : start + len(part)] = self._packed_rows(part).T
        return out

    def _packed_rows(self, recipients: Sequence[str]) -> np.ndarray:
        n = self.length
        if self.name == "random-v1":  # the keyed bytes are the bits
            ctx = f"leaktrace/v{_STREAMS}/codeword\x00{self.media_id}\x00"
            rows = keyed_rows(self.key, ctx, recipients, self.nbytes).copy()
            if n % 8:
                rows[:, -1] &= np.uint8((0xFF << (8 - n % 8)) & 0xFF)
            return rows
        # Symbol +1 where the word's uniform (w + ½)/65536 is under the bias p: w < ⌈65536p − ½⌉.
        cut = np.ceil(self.bias * 65536 - 0.5).astype(np.int32)
        ctx = f"leaktrace/v3/tardos\x00{self.media_id}\x00"
        words = keyed_rows(self.key, ctx, recipients, 2 * n).view("<u2")
        return np.packbits(words < cut, axis=1)

    def table(self, soft: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """The :attr:`nbytes` × 256 table of the scaled score ``Σ soft_j·c_j/σ_j`` over each
        byte's 8 positions for each value the byte can take, on ``soft`` given at
        ``positions`` (all of them when None): a packed codeword's score is then the sum of
        one entry per byte (minus :meth:`totals`' constant ``Σ soft_j·μ_j/σ_j``)."""
        spread = self._moments()[1]
        weights = np.zeros(8 * self.nbytes)
        if positions is None:
            weights[: self.length] = np.asarray(soft, np.float64) / spread
        else:
            np.add.at(weights, positions, np.asarray(soft, np.float64) / spread[positions])
        return weights.reshape(self.nbytes, 8) @ _BYTE_SIGNS.T

    def packed_totals(
        self, soft: np.ndarray, packed: np.ndarray, positions: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`totals` of packed codewords (columns of ``packed``, see :meth:`packed`),
        on ``soft`` given at ``positions`` (all of them when None: else the score of the
        :meth:`restricted` code). Equal to :meth:`totals` on the unpacked codewords, to float
        rounding, at the cost of one table look-up per byte and recipient."""
        table = self.table(soft, positions)
        mean, spread = self._moments()
        if positions is not None:
            mean, spread = mean[positions], spread[positions]
        offset = float(mean @ (np.asarray(soft, np.float64) / spread))
        out = np.empty(packed.shape[1])
        for start in range(0, out.size, _COLUMNS):  # a block's sums stay in the cache
            block = packed[:, start : start + _COLUMNS]
            acc = np.zeros(block.shape[1])
            for k in range(self.nbytes):
                acc += table[k].take(block[k])
            out[start : start + _COLUMNS] = acc - offset
        return out

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.bias
        return 2 * p - 1, 2 * np.sqrt(p * (1 - p))

    def totals(self, soft: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """The symmetric score ``Σ_j soft_j·(c_j − μ_j)/σ_j`` of each row of ``symbols``
        (a codeword, or a matrix of them), over this code's positions."""
        mean, spread = self._moments()
        y = np.asarray(soft, np.float64) / spread
        return np.asarray(symbols, np.float64) @ y - float(mean @ y)

    def weighings(self, soft: np.ndarray) -> tuple[np.ndarray, ...]:
        """The values each of this code's scores weighs a candidate's symbols by, on ``soft``
        (one per position of this code): ``soft`` itself (the symmetric score), and for
        ``tardos-v2`` also ``soft − β·μ``, centred on what the biases predict (``β`` the
        least-squares fit of ``soft`` on the symbols' means ``μ``). Each is a function of
        ``soft`` and the biases only, never of a codeword, so :meth:`tail_log10` bounds an
        innocent's score under each; a candidate judged under several pays, under each, the
        inverse of its share of the budget (:attr:`shares`)."""
        y = np.asarray(soft, np.float64)
        if self.name not in _CENTRED:
            return (y,)
        mean = self._moments()[0]
        power = float(mean @ mean)
        beta = float(y @ mean) / power if power > 0 else 0.0
        return y, y - beta * mean

    @property
    def shares(self) -> tuple[float, ...]:
        """The share of the false-accusation budget of each of :meth:`weighings`' values."""
        return (1 - CENTRED_SHARE, CENTRED_SHARE) if self.name in _CENTRED else (1.0,)

    def restricted(self, positions: np.ndarray) -> Code:
        """The code over ``positions`` only (the segments a video leak shows)."""
        return Code(self.key, self.media_id, self.name, self.bias[positions])

    def tail_log10(self, soft: np.ndarray, totals: np.ndarray | float) -> np.ndarray:
        """log10 of a bound on the probability that an innocent's score reaches ``totals``.

        An innocent's symbols are independent of ``soft`` and of each other (the biases fixed),
        so its score is a sum of independent terms ``y_j·u_j``, ``u_j`` taking the value
        ``√((1−p)/p)`` with probability ``p`` and ``−√(p/(1−p))`` otherwise. Chernoff:
        ``P(S ≥ t) ≤ min_λ exp(−λt) Π_j E exp(λ y_j u_j)``, with the exact expectations; capped
        by Hoeffding's ``exp(−2t²/Σ range_j²)``. Not corrected for the number of candidates.
        """
        return self._tail(soft)(totals)

    def _tail(self, soft: np.ndarray) -> Callable[[np.ndarray | float], np.ndarray]:
        """:meth:`tail_log10` on ``soft`` as a function of the totals (the moment generating
        function computed once, for several look-ups)."""
        p = self.bias
        y = np.asarray(soft, np.float64)
        scale = float(np.abs(y).max()) if y.size else 0.0
        if scale == 0:
            return lambda totals: np.zeros(np.atleast_1d(np.asarray(totals, np.float64)).shape)
        y = y / scale
        # Positions alike in (bias, value) have the same term: a video's certain symbols
        # take a handful of pairs, so the generating function is summed over those.
        (p, y), count = np.unique(np.stack([p, y]), axis=1, return_counts=True)
        up, down = np.sqrt((1 - p) / p), -np.sqrt(p / (1 - p))
        lam = _LAMBDAS[:, None]
        log_mgf = np.logaddexp(np.log(p) + lam * y * up, np.log1p(-p) + lam * y * down) @ count
        range2 = float(count @ (y * (up - down)) ** 2)
        # The Chernoff bound's minimum over λ, from the one line of the lower envelope at t.
        hull, breaks = _envelope(log_mgf)

        def bound(totals: np.ndarray | float) -> np.ndarray:
            t = np.atleast_1d(np.asarray(totals, np.float64)) / scale
            out = np.zeros(t.shape)
            positive = t > 0
            tp = t[positive]
            best = hull[np.searchsorted(breaks, tp)]
            chernoff = log_mgf[best] - _LAMBDAS[best] * tp
            hoeffding = -2 * tp * tp / range2
            out[positive] = np.minimum(np.minimum(chernoff, hoeffding), 0.0) * _LOG10_E
            return out

        return bound

    def needed(self, soft: np.ndarray, log10_p: float) -> float | None:
        """The smallest score z (over ``||soft||``) whose :meth:`tail_log10` is at most
        ``log10_p``; None when no codeword could score that high."""
        y = np.asarray(soft, np.float64)
        norm = float(np.linalg.norm(y))
        if norm == 0:
            return None
        p = self.bias
        reach = float(np.sum(np.abs(y) * np.maximum(np.sqrt((1 - p) / p), np.sqrt(p / (1 - p)))))
        lo, hi = 0.0, reach / norm
        tail = self._tail(y)
        if tail(hi * norm)[0] > log10_p:
            return None
        for _ in range(3):  # three grids, each 200 times finer
            z = np.linspace(lo, hi, 201)
            ok = np.flatnonzero(tail(z * norm) <= log10_p)[0]
            lo, hi = z[max(ok - 1, 0)], z[ok]
        return float(hi)


def code(key: Key, media_id: str, name: str = "tardos-v1", *, length: int = CODE_LENGTH) -> Code:
    """The code ``name`` (one of :data:`CODES`) of ``media_id``'s codewords under ``key``."""
    if name == "random-v1":
        return Code(key, media_id, name, np.full(length, 0.5))
    if name in ("tardos-v1", "tardos-v2"):  # the same biases: v2 only scores differently
        raw = keyed_bytes(key, f"leaktrace/v3/bias\x00{media_id}", 4 * length)
        return Code(key, media_id, name, np.where(_uniform(raw, "<u4") < 0.5, *BIASES))
    raise DetectionInputError(f"unknown code {name!r}; known: {', '.join(CODES)}")


def codeword(
    key: Key, media_id: str, recipient: str, *, length: int = CODE_LENGTH, name: str = "random-v1"
) -> np.ndarray:
    """The ±1 (float32) codeword of ``recipient`` for ``media_id`` under the code ``name``."""
    return code(key, media_id, name, length=length).codeword(recipient)


def codewords(
    key: Key,
    media_id: str,
    recipients: Sequence[str],
    *,
    length: int = CODE_LENGTH,
    name: str = "random-v1",
) -> np.ndarray:
    """Stack the codewords of ``recipients`` into an N × ``length`` float32 matrix."""
    return code(key, media_id, name, length=length).codewords(recipients)


@dataclass(frozen=True)
class Layout:
    """Which code position (``positions``) and which sign (``chips``) each coefficient carries."""

    positions: np.ndarray
    chips: np.ndarray
    length: int

    def spread(self, symbols: np.ndarray) -> np.ndarray:
        """Coefficient values ``chip * symbol[position]`` for a codeword."""
        return self.chips * symbols[self.positions]

    def collect(self, coefficients: np.ndarray) -> np.ndarray:
        """Soft value per code position: the sum of ``coefficient * chip`` over its share."""
        return np.bincount(self.positions, weights=coefficients * self.chips, minlength=self.length)


def layout(
    key: Key, media_id: str, shape: tuple[int, int], count: int, *, length: int = CODE_LENGTH
) -> Layout:
    """The keyed layout of ``count`` coefficients of a working grid of ``shape``."""
    ctx = f"leaktrace/v{_STREAMS}/layout\x00{media_id}\x00{shape[0]}x{shape[1]}"
    raw = keyed_bytes(key, ctx, 4 * count + (count + 7) // 8)
    order = np.argsort(raw[: 4 * count].view("<u4"), kind="stable")
    positions = np.empty(count, np.intp)
    positions[order] = np.arange(count) % length
    return Layout(positions, _signs(raw[4 * count :], count), length)
