"""Packed-bit scoring (:meth:`Code.packed`, :meth:`Code.packed_totals`, :class:`Scorer`) gives
the scores, probabilities, verdicts and threshold of the plain path it replaced, and the
codebook beside the registry gives the key's own codewords."""

import math

import numpy as np
import pytest

import leaktrace as lt
from leaktrace.codes import CODES, code
from leaktrace.detect import Scorer
from leaktrace.registry import Codebook

KEY = lt.Key(bytes(range(32)))
NAMES = [f"recipient-{i:05d}" for i in range(2500)]


def _tail_log10(c, soft, totals):
    """The Chernoff bound as first written: the minimum over every λ at every total."""
    from leaktrace.codes import _LAMBDAS, _LOG10_E

    p, y = c.bias, np.asarray(soft, np.float64)
    t = np.atleast_1d(np.asarray(totals, np.float64))
    scale = float(np.abs(y).max())
    out = np.zeros(t.shape)
    y, t = y / scale, t / scale
    up, down = np.sqrt((1 - p) / p), -np.sqrt(p / (1 - p))
    lam = _LAMBDAS[:, None]
    log_mgf = np.logaddexp(np.log(p) + lam * y * up, np.log1p(-p) + lam * y * down).sum(1)
    range2 = float(np.sum((y * (up - down)) ** 2))
    tp = t[t > 0]
    chernoff = np.min(log_mgf[:, None] - _LAMBDAS[:, None] * tp[None, :], axis=0)
    out[t > 0] = np.minimum(np.minimum(chernoff, -2 * tp * tp / range2), 0.0) * _LOG10_E
    return out


def _plain_judge(groups, soft, *, length, positions=None, threshold=1e-9, tests=1):
    """Scorer.judge as it was before packed bits: a float codeword per candidate derived
    one at a time, a matrix product, the bound at every λ, a dict per candidate."""
    soft = np.asarray(soft, np.float64)
    correction = math.log10(sum(len(h) for h in groups.values()) * tests)
    z, log10_p, codes, scored = {}, {}, {}, {}
    for name, handles in groups.items():
        mine: dict[str, tuple[float, float, int]] = {}  # its weighting of least tail
        full = code(KEY, "m", name, length=length)
        matrix = np.stack([full.codeword(h) for h in handles])
        part = full if positions is None else full.restricted(positions)
        weighed = [(soft, 1.0)]
        if name == "tardos-v2":  # also centred on the biases' prediction, a quarter of the budget
            mean = 2 * part.bias - 1
            weighed = [(soft, 0.75), (soft - (soft @ mean) / (mean @ mean) * mean, 0.25)]
        for k, (w, share) in enumerate(weighed):
            norm = float(np.linalg.norm(w))
            totals = part.totals(w, matrix if positions is None else matrix[:, positions])
            tails = _tail_log10(part, w, totals) + correction - math.log10(share)
            for h, t, lp in zip(handles, totals, tails, strict=True):
                if h not in mine or lp < mine[h][1]:
                    mine[h] = float(t) / norm, float(lp), k
        for h, (zh, lp, k) in mine.items():
            if h not in log10_p or min(lp, 0.0) < log10_p[h]:
                z[h], log10_p[h], codes[h] = zh, min(lp, 0.0), name
                scored[h] = weighed[k]
    order = sorted(z, key=lambda h: (log10_p[h], -z[h]))
    return order, z, log10_p, codes, scored


def _same(found, plain):
    order, z, log10_p, codes, _ = plain
    assert list(found.scores) == order
    new_z = np.array([found.scores[h] for h in order])
    old_z = np.array([z[h] for h in order])
    assert np.all(np.abs(new_z - old_z) <= 1e-9 * np.maximum(np.abs(old_z), 1.0))
    new_p = np.array([found.log10_p[h] for h in order])
    old_p = np.array([log10_p[h] for h in order])
    assert np.all(np.abs(new_p - old_p) <= 1e-9 * np.maximum(np.abs(old_p), 1.0))
    assert found.codes == codes
    assert found.accused == tuple(h for h in order if log10_p[h] <= -9)


@pytest.mark.parametrize("length", [1, 13, 100, 1024, 1027])
@pytest.mark.parametrize("name", CODES)
def test_packed_codewords_are_the_codewords(name, length):
    c = code(KEY, "m", name, length=length)
    words = np.stack([c.codeword(h) for h in NAMES[:600]])
    packed = c.packed(NAMES[:600])
    assert packed.shape == (c.nbytes, 600)
    assert (np.packbits(words > 0, axis=1).T == packed).all()  # spare bits 0
    assert (c.codewords(NAMES[:600]) == words).all()


@pytest.mark.parametrize("length", [13, 300, 1024, 1027])
@pytest.mark.parametrize("name", CODES)
def test_fast_scoring_equals_the_plain_path(name, length):
    rng = np.random.default_rng(length)
    c = code(KEY, "m", name, length=length)
    guilty = c.codewords(NAMES[7:10]).mean(0)  # three colluders average their copies
    for soft, leak in ((guilty + rng.normal(0, 0.5, length), True), (rng.normal(0, 1, length), 0)):
        found = Scorer(KEY, "m", {name: NAMES}, length=length).judge(soft)
        plain = _plain_judge({name: NAMES}, soft, length=length)
        _same(found, plain)
        # The score needed, under the weighting the most suspect candidate's z is shown in.
        w, share = plain[4][plain[0][0]]
        assert found.needed == c.needed(w, -9 - math.log10(len(NAMES)) + math.log10(share))
        if length >= 1024:  # colluders named from a leak, nobody from noise
            assert set(found.accused) <= (set(NAMES[7:10]) if leak else set())
            assert found.accused or not leak


def test_fast_scoring_of_segments_and_of_two_codes():
    """A video's segments (some positions only) and candidates holding copies under two
    codes (each judged on their lowest probability)."""
    rng = np.random.default_rng(5)
    groups = {"random-v1": NAMES[:1500], "tardos-v1": NAMES[1000:]}
    positions = np.sort(rng.choice(200, 77, replace=False))
    word = code(KEY, "m", "tardos-v1", length=200).codeword(NAMES[1200])
    soft = word[positions] + rng.normal(0, 0.7, 77)
    found = Scorer(KEY, "m", groups, length=200).judge(soft, positions=positions)
    _same(found, _plain_judge(groups, soft, length=200, positions=positions))
    soft = rng.normal(0, 1, 200)
    _same(Scorer(KEY, "m", groups, length=200).judge(soft), _plain_judge(groups, soft, length=200))
    # Old video copies (format 3) beside new ones (format 4): the same codewords, two verdicts.
    groups = {"tardos-v1": NAMES[:800], "tardos-v2": NAMES[600:]}
    x = code(KEY, "m", "tardos-v1", length=200).codewords(NAMES[700:704])
    soft = x[np.arange(200) % 4, np.arange(200)][positions] + rng.normal(0, 0.3, 77)
    found = Scorer(KEY, "m", groups, length=200).judge(soft, positions=positions)
    _same(found, _plain_judge(groups, soft, length=200, positions=positions))


def test_tail_bound_equals_the_minimum_over_every_lambda():
    rng = np.random.default_rng(1)
    for name in CODES:
        c = code(KEY, "m", name, length=500)
        soft = rng.normal(0, 1, 500) * rng.uniform(0, 2, 500)
        totals = np.linspace(-10, 120, 20_001)
        fast, plain = c.tail_log10(soft, totals), _tail_log10(c, soft, totals)
        assert np.all(np.abs(fast - plain) <= 1e-12 * np.maximum(np.abs(plain), 1.0))


@pytest.mark.parametrize("name", CODES)
def test_codebook_gives_the_keys_codewords(tmp_path, name):
    c = code(KEY, "m", name, length=1027)
    book = Codebook(tmp_path)
    first = book.packed(c, NAMES[:1000])
    assert (first == c.packed(NAMES[:1000])).all()
    # Another process (a new codebook) reads what the first stored, adds what it lacks and
    # answers in any order.
    again = Codebook(tmp_path)
    mixed = NAMES[1500:1700] + NAMES[:1000][::-1]
    assert (again.packed(c, mixed) == c.packed(mixed)).all()
    assert (book.packed(c, NAMES[1500:1600]) == c.packed(NAMES[1500:1600])).all()
    # Other media, lengths and keys have codebook entries of their own.
    other = code(lt.Key(bytes(32)), "m", name, length=1027)
    assert (book.packed(other, NAMES[:50]) == other.packed(NAMES[:50])).all()
    shorter = code(KEY, "m", name, length=64)
    assert (Codebook(tmp_path).packed(shorter, NAMES[:50]) == shorter.packed(NAMES[:50])).all()
    # The key is nowhere in it; every file is its owner's only.
    secret = bytes(range(32))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes() and secret.hex() not in path.read_text("latin1")
            assert path.stat().st_mode & 0o077 == 0


def test_a_corrupt_codebook_names_nobody_wrongly(tmp_path):
    """Rows that disagree with the key are caught before anyone is named on them."""
    c = code(KEY, "m", "random-v1", length=1024)
    book = Codebook(tmp_path)
    book.packed(c, NAMES[:300])
    (npy,) = tmp_path.rglob("*.npy")
    packed = np.load(npy)
    packed[:, 5], packed[:, 6] = c.packed([NAMES[200]])[:, 0], c.packed([NAMES[5]])[:, 0]
    np.save(npy, packed)  # recipient 5's column now holds 200's, and the reverse
    soft = c.codeword(NAMES[200]) * 0.8 + np.random.default_rng(2).normal(0, 1, 1024)
    found = Scorer(KEY, "m", NAMES[:300], default="random-v1", codebook=Codebook(tmp_path))
    assert found.judge(soft).accused == (NAMES[200],)
    assert not list(tmp_path.rglob("*.npy"))  # the entry was forgotten
