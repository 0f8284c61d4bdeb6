"""Test data: the repository's sample photos by default, the shared corpus on request.

The default run reads only ``examples/media`` (five Kodak photos, a crop of a 15 MP photo and a
downscaled 13 MP photo; examples/media/README.md gives their origins and licences). Tests marked
``corpus`` form the extended set: they read the shared media corpus and run only when
``LEAKTRACE_CORPUS`` names it, e.g. ``LEAKTRACE_CORPUS=../shared/corpus pytest -m corpus``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine

import leaktrace as lt

from . import postgres as pg

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "media"
KODAK = SAMPLES  # the Kodak photos among the samples, kodimNN.png as in the corpus
SAMPLE_KODAK = (5, 7, 15, 19, 20)
WALRUS = SAMPLES / "walruses_jay-ruzesky_crop.jpg"  # 1800×1200 at full resolution, sRGB ICC
MOUNTAINS = SAMPLES / "mountains_ryan-schroeder_1920.jpg"  # 1920×1280, no ICC profile

#: The registry's database in this run: SQLite (each workspace's own file), or with
#: ``LEAKTRACE_TEST_DB=postgres`` a fresh PostgreSQL database per test (CI's second pass over
#: the registry, workflow and service tests). ``LEAKTRACE_REQUIRE_POSTGRES=1`` makes a
#: missing PostgreSQL a failure instead of a skip.
TEST_DB = os.environ.get("LEAKTRACE_TEST_DB", "sqlite")
REQUIRE_POSTGRES = os.environ.get("LEAKTRACE_REQUIRE_POSTGRES") == "1"

CORPUS = Path(os.environ["LEAKTRACE_CORPUS"]) if os.environ.get("LEAKTRACE_CORPUS") else None
NO_CORPUS = "extended set: needs the shared media corpus, set LEAKTRACE_CORPUS=/path/to/corpus"


def kodak_path(n: int) -> Path:
    """Kodak photo ``n``: the repository's copy if it is a sample, else the corpus's."""
    if n in SAMPLE_KODAK:
        return KODAK / f"kodim{n:02d}.png"
    if CORPUS is None:
        raise LookupError(f"kodim{n:02d} is not a sample; a test that reads it must be 'corpus'")
    return CORPUS / "kodak" / f"kodim{n:02d}.png"


def corpus_kodak(*exclude: int) -> list:
    """Kodak numbers 1–24 but ``exclude``, as parameters of the extended set."""
    return [pytest.param(n, marks=pytest.mark.corpus) for n in range(1, 25) if n not in exclude]


@cache
def _kodak(n: int) -> np.ndarray:
    return lt.read_image(kodak_path(n))


@pytest.fixture
def kodak():
    """Load a Kodak photo by number (cached; callers get a fresh copy)."""
    return lambda n: _kodak(n).copy()


@pytest.fixture
def key() -> lt.Key:
    return lt.Key(bytes(range(32)))


@pytest.fixture
def candidates() -> list[str]:
    return [f"recipient-{i:04d}" for i in range(1000)]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session (see tests/postgres.py); skipped when the
    server's binaries or psycopg are missing, unless LEAKTRACE_REQUIRE_POSTGRES=1."""
    bin_dir = pg.binaries()
    missing = "no PostgreSQL server (initdb, pg_ctl)" if bin_dir is None else None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing = "psycopg is not installed (pip install -e '.[postgres]')"
    if missing is not None or bin_dir is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"LEAKTRACE_REQUIRE_POSTGRES=1 but {missing}")
        pytest.skip(missing or "")
    server = pg.start(bin_dir)
    yield server
    server.stop()


#: Module-scoped fixtures that make a workspace shared by their module's tests: those tests
#: keep the module's database.
MODULE_WORKSPACES = {"shoot", "served", "indexed"}


@pytest.fixture(scope="module", autouse=True)
def _module_registry_database(request):
    """With LEAKTRACE_TEST_DB=postgres, a database for each module's shared workspaces."""
    if TEST_DB == "sqlite":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAKTRACE_DB_URL", request.getfixturevalue("postgres").database())
        yield


@pytest.fixture(autouse=True)
def _registry_database(request, monkeypatch):
    """With LEAKTRACE_TEST_DB=postgres, every workspace a test makes (in this process or in
    the processes it starts) keeps its registry in a new PostgreSQL database (its module's,
    when it uses the module's workspace)."""
    if TEST_DB == "sqlite":
        return
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("tests SQLite's own file")
    if MODULE_WORKSPACES.isdisjoint(request.fixturenames):
        monkeypatch.setenv("LEAKTRACE_DB_URL", request.getfixturevalue("postgres").database())


def pytest_configure(config):
    if TEST_DB not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"LEAKTRACE_TEST_DB={TEST_DB}: sqlite or postgres")
    if CORPUS is not None and not (CORPUS / "kodak").is_dir():
        raise pytest.UsageError(f"LEAKTRACE_CORPUS={CORPUS} is not the media corpus (no kodak/)")


def pytest_collection_modifyitems(config, items):
    if CORPUS is None:
        for item in items:
            if item.get_closest_marker("corpus"):
                item.add_marker(pytest.mark.skip(reason=NO_CORPUS))


@contextmanager
def registry(home):
    """A connection (in one transaction) to the registry of the workspace in ``home``, on
    whichever database this run keeps registries in."""
    engine = create_engine(lt.Workspace._url(Path(home)))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def mark_photos(numbers, recipient, key=None):
    """{n: (Kodak photo n, its copy marked for ``recipient``)}; media id ``kodim<n>``."""
    key = key or lt.Key(bytes(range(32)))
    out = {}
    for n in numbers:
        img = lt.read_image(kodak_path(n))
        out[n] = (img, lt.embed(img, key, f"kodim{n}", recipient))
    return out
