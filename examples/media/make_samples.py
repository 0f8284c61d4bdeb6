"""Regenerate the sample photos in this folder from the shared media corpus.

    python examples/media/make_samples.py [--corpus DIR] [--out DIR]

``--corpus`` defaults to ``$LEAKTRACE_CORPUS``, else ``../shared/corpus`` beside the checkout;
``--out`` to this folder. The five Kodak photos are copied byte for byte and checked against
the corpus's ``SHA256SUMS``. The two JPEGs are made with Pillow (README.md says how): a crop of
the walrus photo at its full resolution and the mountain photo scaled down to 1920×1280, both
baseline JPEG, quality 85, 4:2:0, Huffman tables optimised, the source's ICC profile kept (the
mountain photo has none), no other metadata. JPEG bytes depend on Pillow's libjpeg: another
Pillow may write other bytes for the same picture (these were made with Pillow 13.0.0).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = Path(os.environ.get("LEAKTRACE_CORPUS", HERE.parents[2] / "shared" / "corpus"))

KODAK = (5, 7, 15, 19, 20)
"""The Kodak photos among the samples (``kodak/kodimNN.png`` in the corpus)."""

WALRUS = "walruses_jay-ruzesky_crop.jpg"
WALRUS_SOURCE = "highres/walruses_jay-ruzesky.jpg"
WALRUS_BOX = (1500, 1000, 3300, 2200)  # left, top, right, bottom: 1800×1200 at full resolution

MOUNTAINS = "mountains_ryan-schroeder_1920.jpg"
MOUNTAINS_SOURCE = "highres/mountains_ryan-schroeder.jpg"
MOUNTAINS_SIZE = (1920, 1280)  # from 4442×2961, Lanczos

JPEG_OPTIONS = {"quality": 85, "subsampling": 2, "optimize": True}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_jpeg(image: Image.Image, source: Image.Image, path: Path) -> None:
    icc = source.info.get("icc_profile")
    image.save(path, "JPEG", **JPEG_OPTIONS, **({"icc_profile": icc} if icc else {}))


def make(corpus: Path, out: Path) -> list[Path]:
    """Write every sample into ``out``; return their paths."""
    sums = {}  # corpus-relative name -> sha256, from lines "<digest>  <name>"
    for line in (corpus / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name] = digest
    written = []
    for n in KODAK:
        name = f"kodak/kodim{n:02d}.png"
        source = corpus / name
        if _sha256(source) != sums[name]:
            raise SystemExit(f"{source} does not match the corpus's SHA256SUMS")
        written.append(Path(shutil.copyfile(source, out / source.name)))
    with Image.open(corpus / WALRUS_SOURCE) as src:
        _save_jpeg(src.crop(WALRUS_BOX), src, out / WALRUS)
        written.append(out / WALRUS)
    with Image.open(corpus / MOUNTAINS_SOURCE) as src:
        _save_jpeg(src.resize(MOUNTAINS_SIZE, Image.Resampling.LANCZOS), src, out / MOUNTAINS)
        written.append(out / MOUNTAINS)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if not (args.corpus / "SHA256SUMS").is_file():
        sys.exit(
            f"the shared media corpus is not at {args.corpus} "
            "(set LEAKTRACE_CORPUS=/path/to/corpus or pass --corpus)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in make(args.corpus, args.out):
        size = path.stat().st_size
        total += size
        with Image.open(path) as im:
            print(f"{path.name:36} {im.width}×{im.height}  {size:>9,} bytes  {_sha256(path)}")
    print(f"{'total':36} {'':9}  {total:>9,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
