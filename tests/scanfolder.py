"""A workspace and a folder of suspected leaks to scan (for tests and ``benchmarks/scan.py``).

Deterministic: the same arguments give the same files. ``expected`` says what every file is:
``("match", frozenset(leakers), media name)``, ``("no_match"|"unrelated"|"original"|
"unreadable", None, None)``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import leaktrace as lt
from leaktrace import attacks
from leaktrace.registry import Workspace
from leaktrace.workflow import make_copies

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "media"

ATTACKS = {
    "jpeg75": lambda im: attacks.jpeg(im, 75),
    "scale0.6": lambda im: attacks.jpeg(attacks.rescale(im, 0.6), 85),
    "crop70": lambda im: attacks.jpeg(attacks.crop(im, 0.7, at=(0.4, 0.5)), 85),
    "chain": attacks.chain,
    "webp60": lambda im: attacks.webp(im, 60),
    "gamma": lambda im: attacks.jpeg(attacks.gamma(im, 0.8), 85),
    "blur": lambda im: attacks.jpeg(attacks.blur(im, 0.8), 90),
}


def make_workspace(home: Path, originals: list[Path], handles: list[str], out: Path) -> Workspace:
    """A workspace with ``handles`` registered and a copy of every original for each."""
    ws = Workspace.create(home)
    for h in handles:
        ws.add_recipient(h, name=f"{h.title()} Example", email=f"{h}@example.com")
    list(make_copies(ws, originals, handles, out, workers=1))
    return ws


def write(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    data = lt.media.encode_image(pixels, path, quality=92 if suffix in (".jpg", ".webp") else None)
    path.write_bytes(data)
    return path


def build_folder(
    folder: Path,
    copies: Path,
    plan: list[tuple[str, str, str, int]],
    *,
    unrelated: list[Path] = (),  # type: ignore[assignment]
    originals: list[Path] = (),  # type: ignore[assignment]
    junk: int = 2,
    collusions: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
) -> dict[str, tuple[str, frozenset[str] | None, str | None]]:
    """Write the leaks of ``plan`` — (handle, original's file name, attack, re-shares) — into
    ``folder``: each leak once, plus ``re-shares`` copies of it (the same bytes, and a
    re-save at JPEG 95 of the same pixels); ``unrelated`` photos as they are; ``originals``
    (registered ones) as they are; ``junk`` unreadable files; ``collusions`` (handle, handle,
    original's name): the two copies averaged. Returns what every file is."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[str, frozenset[str] | None, str | None]] = {}
    for i, (handle, name, attack, reshares) in enumerate(plan):
        copy = lt.read_image(copies / handle / name)
        leak = ATTACKS[attack](copy)
        stem = f"{i:03d}-{Path(name).stem}"
        first = write(folder / f"{stem}.jpg", leak)
        expected[str(first)] = ("match", frozenset({handle}), name)
        for r in range(reshares):
            if r % 2 == 0:
                again = folder / "reshared" / f"{stem}-copy{r}.jpg"
                again.parent.mkdir(exist_ok=True)
                shutil.copyfile(first, again)
            else:
                again = write(folder / "reshared" / f"{stem}-resaved{r}.jpg", lt.read_image(first))
            expected[str(again)] = ("match", frozenset({handle}), name)
    for j, (a, b, name) in enumerate(collusions):
        mix = (
            lt.read_image(copies / a / name).astype(np.float32)
            + lt.read_image(copies / b / name).astype(np.float32)
        ) / 2
        path = write(folder / f"mix-{j:02d}.jpg", attacks.jpeg(np.round(mix).astype(np.uint8), 85))
        expected[str(path)] = ("match", frozenset({a, b}), name)
    for k, photo in enumerate(unrelated):
        target = folder / "other" / f"u{k:02d}{photo.suffix}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(photo, target)
        expected[str(target)] = ("unrelated", None, None)
    for k, photo in enumerate(originals):
        target = folder / f"orig{k:02d}{photo.suffix}"
        shutil.copyfile(photo, target)
        expected[str(target)] = ("original", None, None)
    for k in range(junk):
        target = folder / "junk" / (f"notes{k}.txt" if k % 2 == 0 else f"broken{k}.jpg")
        target.parent.mkdir(exist_ok=True)
        if k % 2 == 0:
            target.write_text(f"not a picture {k}\n")
        else:
            target.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
        expected[str(target)] = ("unreadable", None, None)
    return expected
