import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import leaktrace as lt
from leaktrace.codes import CODE_LENGTH, codeword, codewords, layout

KEY = lt.Key(bytes(range(32)))


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=20), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_codewords_are_signs_and_separate_recipients(media, a, b):
    ca, cb = codeword(KEY, media, a), codeword(KEY, media, b)
    assert set(np.unique(ca)) <= {-1.0, 1.0} and ca.shape == (CODE_LENGTH,)
    assert (ca == codeword(KEY, media, a)).all()
    if a != b:
        # Independent ±1 vectors of length 1024 agree on about half their symbols.
        assert abs(float(ca @ cb)) / CODE_LENGTH < 0.2


def test_codewords_differ_per_media_and_key():
    base = codeword(KEY, "m1", "alice")
    assert abs(base @ codeword(KEY, "m2", "alice")) < 200
    assert abs(base @ codeword(lt.Key(bytes(32)), "m1", "alice")) < 200
    # No delimiter ambiguity between media id and recipient.
    assert (codeword(KEY, "a", "bc") != codeword(KEY, "ab", "c")).any()


def test_codeword_matrix_matches_single_codewords():
    names = ["a", "b", "c"]
    m = codewords(KEY, "m", names)
    assert all((m[i] == codeword(KEY, "m", n)).all() for i, n in enumerate(names))


@settings(max_examples=20, deadline=None)
@given(st.integers(1024, 40000))
def test_layout_gives_every_position_an_equal_share(count):
    lay = layout(KEY, "m", (512, 768), count)
    shares = np.bincount(lay.positions, minlength=CODE_LENGTH)
    assert shares.max() - shares.min() <= 1
    assert set(np.unique(lay.chips)) == {-1.0, 1.0}


def test_collect_inverts_spread():
    lay = layout(KEY, "m", (512, 768), 20000)
    cw = codeword(KEY, "m", "alice")
    soft = lay.collect(lay.spread(cw))
    assert (np.sign(soft) == cw).all()
