"""One person's evidence over several leaks, as one false-accusation probability.

A case holds the leaks that name the same person. What the case states is the probability
that an innocent recipient would show evidence this strong in these files, computed as:

1. **Per leak, the person's own tail.** A trace's probability for a candidate is ``q·P·T``:
   ``q`` the Chernoff bound on an innocent's score reaching the candidate's
   (:meth:`leaktrace.codes.Code.tail_log10`), ``P`` the (candidate, code) pairs tested and
   ``T`` the originals and readings tried (``multiplicity`` in a verdict). For ONE fixed person
   only the tries made on their own behalf count: ``T`` times the codes they could be tested
   under, so their per-leak value is ``r = q·T·codes``; and ``P(r ≤ t) ≤ t`` when they are
   innocent, whatever the leak is (their codeword is keyed and independent of it).
2. **Per media item, the best leak, paid for.** Every leak of one media item (re-shares,
   other attacks on the same copy) reads the SAME codeword: they are not independent evidence
   and are never multiplied together. The item's value is ``p_i = min(1, m_i · min_j r_ij)``
   over its ``m_i`` files — the smallest of ``m_i`` values each with ``P(r ≤ t) ≤ t`` obeys
   ``P(min ≤ t) ≤ m_i·t`` whatever their dependence (Bonferroni), so ``p_i`` is a valid
   p-value for that person.
3. **Across media items, independent.** The codewords of different media items come from
   different keyed streams (HMAC of the key, the media id and the recipient), so for an
   innocent the ``p_i`` are independent and each at least uniform. Their product ``x = Π p_i``
   then obeys the exact product tail of ``k`` independent uniforms
   ``P(Π U_i ≤ x) = x · Σ_{j<k} (−ln x)^j / j!`` (:func:`product_tail_log10`; equivalent
   to Fisher's method, ``−2 ln x`` being χ² with ``2k`` degrees of freedom), and ``≤`` that for
   variables that are at least uniform.
4. **Any innocent.** Steps 1–3 hold for a person chosen in advance. A case is about whoever
   the evidence named, so the result is multiplied by ``n``, the number of recipients who
   received every media item of the case (only they could show evidence in all of them):
   the probability that ANY of them would. With one leak this is exactly the trace's own
   probability (``n = P`` when each holds one code).

The null hypothesis throughout is "this person leaked none of these files" (their codewords
are independent of every leak); nothing is assumed about the pictures, the attacks or what
other recipients did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Evidence", "combined_log10_p", "product_tail_log10"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class Evidence:
    """One leak's evidence against one person: which media item it shows, ``log10_tail``
    (log10 of the person's own, uncorrected tail bound ``q``) and ``tests`` (the tries made on
    the person's behalf in that trace: originals or readings tried, times their codes)."""

    media: str
    log10_tail: float
    tests: int = 1


def product_tail_log10(log10_x: float, k: int) -> float:
    """log10 of ``P(U_1·…·U_k ≤ x)`` for ``k`` independent uniforms on (0, 1).

    ``x · Σ_{j<k} (−ln x)^j / j!``, computed in logarithms so that ``x`` far below what a
    float holds (10^-2000) is exact too.

    >>> round(10 ** product_tail_log10(math.log10(0.05), 1), 6)
    0.05
    >>> round(10 ** product_tail_log10(math.log10(0.01), 2), 4)  # 0.01·(1 + ln 100)
    0.0561
    """
    if k < 1:
        raise ValueError("k is a number of media items, at least 1")
    if log10_x >= 0:
        return 0.0
    ln_x = log10_x * _LN10
    big_l = -ln_x
    terms = [j * math.log(big_l) - math.lgamma(j + 1) for j in range(k)]
    top = max(terms)
    ln_sum = top + math.log(sum(math.exp(t - top) for t in terms))
    return min(0.0, (ln_x + ln_sum) / _LN10)


def combined_log10_p(evidence: Sequence[Evidence], *, people: int) -> float:
    """log10 of the probability that any innocent of ``people`` recipients would show
    evidence as strong as ``evidence`` (one person's, over one or more media items).

    See the module docstring for what is combined and why it holds. ``people``: the number of
    recipients who received every media item in ``evidence``.

    >>> one = [Evidence("a", -12.0)]
    >>> combined_log10_p(one, people=1000)  # one leak: the trace's own probability
    -9.0
    >>> same = [Evidence("a", -12.0), Evidence("a", -12.0)]
    >>> round(combined_log10_p(same, people=1000), 3)  # a re-share adds nothing (it costs ×2)
    -8.699
    >>> two = [Evidence("a", -12.0), Evidence("b", -12.0)]
    >>> combined_log10_p(two, people=1000) < -19
    True
    """
    if not evidence:
        raise ValueError("no evidence to combine")
    if people < 1:
        raise ValueError("people is a number of recipients, at least 1")
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    for e in evidence:
        if e.tests < 1:
            raise ValueError("tests is a number of tries, at least 1")
        r = e.log10_tail + math.log10(e.tests)
        best[e.media] = min(best.get(e.media, 0.0), r)
        count[e.media] = count.get(e.media, 0) + 1
    per_media = [min(0.0, best[m] + math.log10(count[m])) for m in best]
    joint = product_tail_log10(float(np.sum(per_media)), len(per_media))
    return min(0.0, joint + math.log10(people))
