"""The CLI workflow on the corpus's six 10–24 MP photos at full resolution (extended set).

The default run covers the same workflow on the samples (tests/test_cli.py, examples/); this
checks that nothing changes when the originals are the size cameras make.
"""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

import leaktrace as lt
from leaktrace import attacks
from leaktrace.cli import app

from .conftest import CORPUS

pytestmark = pytest.mark.corpus

runner = CliRunner()
PEOPLE = ["alice", "bob", "carol"]
PHOTOS = [
    "autumn-leaves_alex-wing.jpg",
    "brown-architecture.jpg",
    "earth-at-night_nasa.jpg",
    "mountains_ryan-schroeder.jpg",
    "sunset-by-the-pier.jpg",
    "walruses_jay-ruzesky.jpg",
]


def run(home, *args):
    return runner.invoke(app, ["--home", str(home), *map(str, args)])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Three recipients, each with a copy of every large photo."""
    root = tmp_path_factory.mktemp("large")
    home, out = root / "ws", root / "copies"
    assert run(home, "init").exit_code == 0
    for handle in PEOPLE:
        assert run(home, "recipients", "add", handle).exit_code == 0
    photos = [CORPUS / "highres" / name for name in PHOTOS]
    result = run(home, "embed", *photos, "--all", "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    return home, out


@pytest.mark.parametrize("name", PHOTOS)
def test_a_reshared_copy_of_a_large_photo_is_traced(workspace, tmp_path, name):
    home, out = workspace
    copy = lt.read_image(out / "bob" / name)
    original = lt.read_image(CORPUS / "highres" / name)
    assert copy.shape == original.shape and original.shape[0] * original.shape[1] > 10e6
    leak = tmp_path / "leak.jpg"  # a social network: longest side 1080, JPEG 72, 4:2:0
    small = attacks.rescale(copy, 1080 / max(copy.shape[:2]))
    Image.fromarray(small).save(leak, "JPEG", quality=72, subsampling=2)
    result = run(home, "trace", leak, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recipient"] == "bob" and data["media"]["name"] == name
    assert data["p_value"] <= 1e-9
    unmarked = run(home, "trace", CORPUS / "highres" / name)  # the original's own bytes
    assert unmarked.exit_code == 1 and f"this is your unmarked original {name}" in unmarked.output
    # The unmarked original shared the same way: tested, and nobody is named.
    mine = tmp_path / "mine.jpg"
    Image.fromarray(attacks.rescale(original, 1080 / max(original.shape[:2]))).save(
        mine, "JPEG", quality=72, subsampling=2
    )
    shared = run(home, "trace", mine)
    assert shared.exit_code == 1 and "no confident match" in shared.output
    assert "bob" not in shared.output
