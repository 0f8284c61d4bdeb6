"""Regenerate the sample photos and clips in ``examples/media`` from the shared media corpus.

    python benchmarks/make_samples.py [--corpus DIR] [--out DIR]

The repository's tests and quickstart read only those samples; this script, like the
benchmarks, reads the corpus. ``--corpus`` defaults to ``$LEAKTRACE_CORPUS``, else
``../shared/corpus`` beside the checkout; ``--out`` to ``examples/media``. Every source is
checked against the corpus's ``SHA256SUMS``; ``examples/media/README.md`` says what each sample
is.

Photos: the five Kodak photos are copied byte for byte. The two JPEGs are made with Pillow: a
crop of the walrus photo at its full resolution and the mountain photo scaled down to
1920×1280, both baseline JPEG, quality 85, 4:2:0, Huffman tables optimised, the source's ICC
profile kept (the mountain photo has none), no other metadata. JPEG bytes depend on Pillow's
libjpeg (these were made with Pillow 13.0.0).

Clips: each is a window of a corpus clip, cropped and resized (OpenCV area averaging on the
yuv420p planes), encoded with PyAV's libx264 (CRF 22, preset medium, a keyframe every 2 s,
2 threads) and, when the clip keeps its sound, AAC-LC 128 kb/s stereo 48 kHz. The bytes depend
on the FFmpeg build inside PyAV (these were made with PyAV 18.1.0); the script is deterministic
for a given build.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "media"
DEFAULT_CORPUS = Path(os.environ.get("LEAKTRACE_CORPUS", ROOT.parent / "shared" / "corpus"))

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


AUDIO_RATE = 48_000
CC_BY = "CC BY 3.0 (creativecommons.org/licenses/by/3.0/)"


class Clip(NamedTuple):
    name: str
    source: str  # corpus-relative path
    start: float  # seconds after the source's first frame
    frames: int
    box: tuple[int, int, int, int] | None  # crop before resizing: x, y, width, height
    size: tuple[int, int]  # width, height
    audio: bool
    title: str
    comment: str


CLIPS = (
    Clip(
        "clip_640x360_25fps.mp4",
        "video/sintel-trailer_480p_26s.mp4",
        start=2.0,
        frames=200,  # 8 s: hard cuts at frames 26 and 71, a camera move, letterbox bars
        box=None,
        size=(640, 360),
        audio=True,
        title="Sintel (trailer), 2-10 s",
        comment=f"Sintel © Blender Foundation, www.sintel.org, {CC_BY}; leaktrace test sample",
    ),
    Clip(
        "clip_flower_30fps.mp4",
        "video/flower_540p_5s.mp4",
        start=0.0,
        frames=120,  # 4.004 s at 30000/1001 fps
        box=None,
        size=(480, 270),
        audio=True,  # the source's track is silent: kept silent
        title="Flower, 0-4 s",
        comment="CC0 (MDN cc0-videos); leaktrace test sample",
    ),
    Clip(
        "clip_bbb_320x240_noaudio.mp4",
        "video/big-buck-bunny_720p_5s.mp4",
        start=0.0,
        frames=100,  # 4 s
        box=(160, 0, 960, 720),  # the central 4:3 part of 1280×720
        size=(320, 240),
        audio=False,
        title="Big Buck Bunny, 0-4 s, 4:3",
        comment=f"Big Buck Bunny © 2008 Blender Foundation, www.bigbuckbunny.org, {CC_BY}; "
        "leaktrace test sample",
    ),
)
"""The samples, each a window of a corpus clip."""


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    w, h = frame.width, frame.height
    flat = frame.reformat(format="yuv420p").to_ndarray().reshape(-1)
    q = w * h // 4
    return [
        flat[: w * h].reshape(h, w),
        flat[w * h : w * h + q].reshape(h // 2, w // 2),
        flat[w * h + q :].reshape(h // 2, w // 2),
    ]


def _picture(frame: av.VideoFrame, clip: Clip) -> av.VideoFrame:
    planes = _planes(frame)
    if clip.box:
        x, y, w, h = clip.box
        planes = [planes[0][y : y + h, x : x + w]] + [
            p[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] for p in planes[1:]
        ]
    w, h = clip.size
    planes = [cv2.resize(planes[0], (w, h), interpolation=cv2.INTER_AREA)] + [
        cv2.resize(p, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for p in planes[1:]
    ]
    i420 = np.concatenate([p.reshape(-1) for p in planes]).reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(i420, format="yuv420p")


def _soundtrack(path: Path) -> tuple[np.ndarray, Fraction]:
    """The first audio stream as 48 kHz stereo float samples (2, n) and its start time."""
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    chunks, start = [], None
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            if start is None:
                start = Fraction(frame.pts or 0) * frame.time_base
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(chunks, axis=1), start or Fraction(0)


def make_clip(source: Path, dest: Path, clip: Clip) -> Path:
    """Write one sample clip to ``dest``."""
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        rate = Fraction(vin.average_rate).limit_denominator(1001)
        first = Fraction(vin.start_time or 0) * vin.time_base
        origin = first + Fraction(clip.start)
        created = inp.metadata.get("creation_time", "")
        if created and not created.startswith("1970-"):  # the epoch means "not set"
            out.metadata["creation_time"] = created
        out.metadata["title"] = clip.title
        out.metadata["comment"] = clip.comment
        vout = out.add_stream("libx264", rate=rate, options={"crf": "22", "preset": "medium"})
        vout.codec_context.width, vout.codec_context.height = clip.size
        vout.codec_context.pix_fmt = "yuv420p"
        vout.codec_context.time_base = 1 / rate
        vout.codec_context.gop_size = round(2 * rate)
        vout.codec_context.thread_count = 2  # fixed: x264's output depends on it
        vout.metadata["language"] = "und"
        aout = None
        if clip.audio:
            aout = out.add_stream("aac", rate=AUDIO_RATE)
            aout.layout, aout.bit_rate = "stereo", 128_000
            aout.metadata["language"] = "eng"
        written = 0
        for frame in inp.decode(vin):
            index = math.floor((Fraction(frame.pts) * frame.time_base - origin) * rate + 0.5)
            if 0 <= index < clip.frames:
                picture = _picture(frame, clip)
                picture.pts, picture.time_base = written, vout.codec_context.time_base
                out.mux(vout.encode(picture))
                written += 1
            if written == clip.frames:
                break
        out.mux(vout.encode(None))
        if written != clip.frames:
            raise SystemExit(f"{source} has only {written} frames from {clip.start} s")
        if aout is not None:
            samples, audio_start = _soundtrack(source)
            skip = math.floor((origin - audio_start) * AUDIO_RATE + 0.5)
            total = math.floor(Fraction(clip.frames) / rate * AUDIO_RATE)
            cut = samples[:, skip : skip + total]
            for at in range(0, cut.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(cut[:, at : at + 1024]), format="fltp", layout="stereo"
                )
                chunk.sample_rate, chunk.pts = AUDIO_RATE, at
                chunk.time_base = Fraction(1, AUDIO_RATE)
                out.mux(aout.encode(chunk))
            out.mux(aout.encode(None))
    return dest


def _checked(corpus: Path, names: list[str]) -> None:
    """Exit unless every corpus file ``names`` matches the corpus's ``SHA256SUMS``."""
    sums = {}  # corpus-relative name -> sha256, from lines "<digest>  <name>"
    for line in (corpus / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name] = digest
    for name in names:
        if _sha256(corpus / name) != sums[name]:
            raise SystemExit(f"{corpus / name} does not match the corpus's SHA256SUMS")


def make(corpus: Path, out: Path) -> list[Path]:
    """Write every sample photo into ``out``; return their paths."""
    kodak = [f"kodak/kodim{n:02d}.png" for n in KODAK]
    _checked(corpus, kodak)
    written = [Path(shutil.copyfile(corpus / name, out / Path(name).name)) for name in kodak]
    with Image.open(corpus / WALRUS_SOURCE) as src:
        _save_jpeg(src.crop(WALRUS_BOX), src, out / WALRUS)
        written.append(out / WALRUS)
    with Image.open(corpus / MOUNTAINS_SOURCE) as src:
        _save_jpeg(src.resize(MOUNTAINS_SIZE, Image.Resampling.LANCZOS), src, out / MOUNTAINS)
        written.append(out / MOUNTAINS)
    return written


def make_clips(corpus: Path, out: Path) -> list[Path]:
    """Write every sample clip into ``out``; return their paths."""
    _checked(corpus, [clip.source for clip in CLIPS])
    return [make_clip(corpus / clip.source, out / clip.name, clip) for clip in CLIPS]


def _describe(path: Path) -> str:
    if path.suffix == ".mp4":
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            rate = float(v.average_rate or 0)
            what = f"{v.codec_context.width}×{v.codec_context.height} {rate:.3f} fps"
            return what + f" {v.frames} frames{' +audio' if c.streams.audio else ''}"
    with Image.open(path) as im:
        return f"{im.width}×{im.height}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=SAMPLES)
    args = parser.parse_args()
    if not (args.corpus / "SHA256SUMS").is_file():
        sys.exit(
            f"the shared media corpus is not at {args.corpus} "
            "(set LEAKTRACE_CORPUS=/path/to/corpus or pass --corpus)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in make(args.corpus, args.out) + make_clips(args.corpus, args.out):
        size = path.stat().st_size
        total += size
        print(f"{path.name:36} {_describe(path):38} {size:>9,} bytes  {_sha256(path)}")
    print(f"{'total':36} {'':38} {total:>9,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
