import os
import stat

import pytest

import leaktrace as lt
from leaktrace.keys import keyed_bytes

# keyed_bytes(Key(bytes(32)), "leaktrace", 8) as of format version 1; never regenerate it
# without a new FORMAT_VERSION.
GOLDEN = "9ce8e60766ffc3c6"


def test_save_creates_owner_only_file_and_loads_back(tmp_path):
    key = lt.Key.generate()
    path = tmp_path / "leaktrace.key"
    key.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert lt.Key.load(path) == key


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k"
    lt.Key.generate().save(path)
    before = path.read_bytes()
    with pytest.raises(lt.KeyFileError, match="refusing"):
        lt.Key.generate().save(path)
    assert path.read_bytes() == before


def test_secret_never_in_repr(tmp_path):
    key = lt.Key.generate()
    key.save(tmp_path / "k")
    secret_hex = (tmp_path / "k").read_text().split()[-1]
    assert secret_hex not in repr(key) and secret_hex not in str(key)
    assert key.fingerprint in repr(key)


@pytest.mark.parametrize(
    "text", ["", "leaktrace-key v1\nzz\n", "hello world\n", "leaktrace-key v1\nabcd\n"]
)
def test_malformed_key_files_are_refused(tmp_path, text):
    path = tmp_path / "k"
    path.write_text(text)
    with pytest.raises(lt.KeyFileError):
        lt.Key.load(path)


def test_missing_key_file(tmp_path):
    with pytest.raises(lt.KeyFileError, match="cannot read"):
        lt.Key.load(tmp_path / "absent")


def test_streams_depend_on_key_and_context():
    a, b = lt.Key(bytes(32)), lt.Key(bytes([1] * 32))
    assert (keyed_bytes(a, "x", 64) == keyed_bytes(a, "x", 64)).all()
    assert (keyed_bytes(a, "x", 64) != keyed_bytes(b, "x", 64)).any()
    assert (keyed_bytes(a, "x", 64) != keyed_bytes(a, "y", 64)).any()
    # Pinned: a changed stream would make every existing copy untraceable.
    assert keyed_bytes(a, "leaktrace", 8).tobytes().hex() == GOLDEN
