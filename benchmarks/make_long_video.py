"""Build a long H.264 test video, the same bytes on every run, from the corpus photos and clips.

    python benchmarks/make_long_video.py OUT.mp4 [--minutes 10] [--height 1080] [--fps 25]
        [--corpus DIR] [--crf 18] [--preset veryfast] [--seed 1]

The corpus clips last 5-26 s; benchmarks on long videos (segments, flicker, speed per minute)
need minutes. This script cuts a sequence of shots from the 24 Kodak photos, the 6
high-resolution photos and the 3 clips, in an order drawn from a ``numpy`` Generator seeded by
``--seed`` (no clock, no other randomness):

- *pan*: a Ken Burns move over a photo, from one 16:9 window to another (zoom 1-1.35), eased
  in and out, with sub-pixel motion (an affine warp per frame);
- *hold*: a photo window that does not move for 3-6 s (every frame the same picture: where a
  watermark must not flicker);
- *clip*: a stretch of a corpus clip scaled to fill 16:9 (Sintel's letterbox bars cropped),
  played forward, looped, backwards or forward-then-backwards;
- *pip*: a clip playing in a box in one corner of a still photo (static and moving regions
  in the same frame).

Shots change by hard cuts, or (one in five) by a cross-fade of 0.5-1 s. The soundtrack is the
Sintel trailer's and Big Buck Bunny's audio one after the other (the flower clip is silent),
looped, as AAC-LC stereo 48 kHz. The video is H.264 (libx264, ``--crf``, ``--preset``, 2 threads:
x264's output depends on the thread count), yuv420p, BT.709 limited range; the photos are
converted from RGB with the BT.709 matrix, the clips' YUV passes through. The file carries a
creation time, a title, a comment with the credits, and an ``eng`` language tag on each stream.

Output size: ``--height`` lines, 16:9 (1080 → 1920×1080, 360 → 640×360). On 2 cores the
10-minute 1080p build takes a while (it prints its time); ``--minutes 2 --height 720`` is a quick
one. Same arguments, same FFmpeg and OpenCV builds: same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from _common import CORPUS

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]  # yuv420p: Y (h×w), U, V (h/2×w/2)

ZOOM_MAX = 1.35  # a pan's window is 1/1 to 1/1.35 of the largest 16:9 window of its photo
AUDIO_RATE = 48_000
CREATION_TIME = "2024-05-01T12:00:00.000000Z"
#: The picture inside each clip's frame (x, y, width, height); Sintel's letterbox bars are cut.
ACTIVE = {
    "big-buck-bunny_720p_5s.mp4": (0, 0, 1280, 720),
    "flower_540p_5s.mp4": (0, 0, 960, 540),
    "sintel-trailer_480p_26s.mp4": (0, 62, 848, 356),
}
#: The soundtracks, in order (the flower clip's track is silent).
SOUNDTRACKS = ("sintel-trailer_480p_26s.mp4", "big-buck-bunny_720p_5s.mp4")
CREDITS = (
    "Made by leaktrace benchmarks/make_long_video.py from: Big Buck Bunny (c) 2008 Blender "
    "Foundation, www.bigbuckbunny.org, CC BY 3.0; Sintel (c) Blender Foundation, "
    "www.sintel.org, CC BY 3.0; flower clip, CC0 (MDN); Kodak Lossless True Color Image Suite "
    "(unrestricted use); photos by Nick Hillier, Paul Carmona, Jay Ruzesky, Ryan Schroeder, "
    "NASA, Alex Wing (CC0, Unsplash)."
)

KINDS = ("pan", "hold", "clip", "pip")
WEIGHTS = (0.35, 0.15, 0.35, 0.15)
SECONDS = {"pan": (4.0, 9.0), "hold": (3.0, 6.0), "clip": (4.0, 10.0), "pip": (5.0, 8.0)}
FADE_SHARE, FADE_SECONDS = 0.2, (0.5, 1.0)


# ---------------------------------------------------------------------------------------------
# Sources


def rgb_planes(rgb: np.ndarray) -> Planes:
    """RGB (even sides) → yuv420p planes, BT.709, limited range; chroma by 2×2 averaging."""
    f = rgb.astype(np.float32) * (1 / 255)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    h, w = y.shape
    u = cv2.resize((b - y) * (224 / 1.8556), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize((r - y) * (224 / 1.5748), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return (
        np.clip(np.rint(16 + 219 * y), 0, 255).astype(np.uint8),
        np.clip(np.rint(128 + u), 0, 255).astype(np.uint8),
        np.clip(np.rint(128 + v), 0, 255).astype(np.uint8),
    )


def resize_planes(planes: Planes, size: tuple[int, int]) -> Planes:
    w, h = size
    inter = cv2.INTER_AREA if w < planes[0].shape[1] else cv2.INTER_LINEAR
    y = cv2.resize(planes[0], (w, h), interpolation=inter)
    u, v = (cv2.resize(p, (w // 2, h // 2), interpolation=inter) for p in planes[1:])
    return y, u, v


def cut_planes(planes: Planes, box: tuple[int, int, int, int]) -> Planes:
    x, y, w, h = box  # even
    return (
        planes[0][y : y + h, x : x + w],
        planes[1][y // 2 : (y + h) // 2, x // 2 : (x + w) // 2],
        planes[2][y // 2 : (y + h) // 2, x // 2 : (x + w) // 2],
    )


def frame_planes(frame: av.VideoFrame) -> Planes:
    w, h = frame.width, frame.height
    flat = frame.reformat(format="yuv420p").to_ndarray().reshape(-1)
    q = w * h // 4
    return (
        flat[: w * h].reshape(h, w),
        flat[w * h : w * h + q].reshape(h // 2, w // 2),
        flat[w * h + q :].reshape(h // 2, w // 2),
    )


def cover_box(w: int, h: int, aspect: float = 16 / 9) -> tuple[int, int, int, int]:
    """The largest centred box of ``aspect`` inside w×h, even sides and offsets."""
    if w / h > aspect:
        bw, bh = 2 * round(h * aspect / 2), h
    else:
        bw, bh = w, 2 * round(w / aspect / 2)
    return (w - bw) // 4 * 2, (h - bh) // 4 * 2, bw, bh


@dataclass
class Photo:
    """A photo as yuv420p planes, scaled so that its largest 16:9 window at the deepest zoom
    maps onto the output 1:1 (never scaled up: small photos are enlarged when shown)."""

    name: str
    planes: Planes

    @classmethod
    def load(cls, path: Path, size: tuple[int, int]) -> Photo:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            raise SystemExit(f"cannot read {path}")
        h, w = bgr.shape[:2]
        _, _, bw, _ = cover_box(w, h, size[0] / size[1])
        scale = min(1.0, size[0] * ZOOM_MAX / bw)
        nw, nh = 2 * round(w * scale / 2), 2 * round(h * scale / 2)
        if (nw, nh) != (w, h):
            bgr = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        return cls(path.name, rgb_planes(np.ascontiguousarray(bgr[..., ::-1])))

    def window(self, zoom: float, size: tuple[int, int]) -> tuple[float, float]:
        """Width and height (photo pixels) of the 16:9 window at ``zoom``."""
        h, w = self.planes[0].shape
        _, _, bw, bh = cover_box(w, h, size[0] / size[1])
        return bw / zoom, bh / zoom

    def show(self, left: float, top: float, zoom: float, size: tuple[int, int]) -> Planes:
        """The window at (left, top) (photo pixels, sub-pixel) and ``zoom``, at ``size``."""
        w, h = size
        k = w / self.window(zoom, size)[0]  # output pixels per photo pixel
        # Pixel centres: luma i is at i + 0.5, chroma j at 2j + 1 (luma units), on both sides.
        m_y = np.array([[k, 0, k * (0.5 - left) - 0.5], [0, k, k * (0.5 - top) - 0.5]])
        m_c = np.array([[k, 0, (k * (1 - left) - 1) / 2], [0, k, (k * (1 - top) - 1) / 2]])
        flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
        y = cv2.warpAffine(self.planes[0], m_y, (w, h), flags=flags, borderMode=border)
        u, v = (
            cv2.warpAffine(p, m_c, (w // 2, h // 2), flags=flags, borderMode=border)
            for p in self.planes[1:]
        )
        return y, u, v


@dataclass
class Clip:
    """Every frame of a corpus clip, its active picture cut to 16:9, as yuv420p planes."""

    name: str
    frames: list[Planes]
    rate: Fraction

    @classmethod
    def load(cls, path: Path) -> Clip:
        ax, ay, aw, ah = ACTIVE[path.name]
        bx, by, bw, bh = cover_box(aw, ah)
        box = (ax + bx, ay + by, bw, bh)
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            rate = Fraction(stream.average_rate).limit_denominator(1001)
            frames = [
                tuple(np.ascontiguousarray(p) for p in cut_planes(frame_planes(f), box))
                for f in c.decode(stream)
            ]
        return cls(path.name, frames, rate)  # type: ignore[arg-type]

    @property
    def seconds(self) -> float:
        return float(len(self.frames) / self.rate)


def soundtrack(corpus: Path) -> np.ndarray:
    """The clips' audio one after the other, 48 kHz stereo float32 (2, n); each part fades in
    and out over 20 ms, so that neither the joins nor the loop click."""
    ramp = np.linspace(0, 1, AUDIO_RATE // 50, dtype=np.float32)
    parts = []
    for name in SOUNDTRACKS:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        with av.open(str(corpus / "video" / name)) as c:
            chunks = [f.to_ndarray() for fr in c.decode(audio=0) for f in resampler.resample(fr)]
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
        part = np.concatenate(chunks, axis=1)
        part[:, : len(ramp)] *= ramp
        part[:, -len(ramp) :] *= ramp[::-1]
        parts.append(part)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


# ---------------------------------------------------------------------------------------------
# Shots


@dataclass
class Pan:
    """A Ken Burns move (or, when both ends are the same, a hold) over a photo."""

    photo: Photo
    start: tuple[float, float, float]  # left, top, zoom
    end: tuple[float, float, float]
    frames: int
    size: tuple[int, int]

    def render(self, j: int) -> Planes:
        p = j / max(1, self.frames - 1)
        e = p * p * (3 - 2 * p)  # eased: starts and stops gently
        left, top, zoom = (a + (b - a) * e for a, b in zip(self.start, self.end, strict=True))
        return self.photo.show(left, top, zoom, self.size)

    @property
    def still(self) -> bool:
        return self.start == self.end


@dataclass
class Play:
    """A stretch of a clip, filling the frame (or ``box``), played in one of four ways."""

    clip: Clip
    first: int  # first frame of the stretch
    count: int  # frames in the stretch
    mode: str  # "forward", "loop", "reverse", "pingpong"
    frames: int
    size: tuple[int, int]
    fps: Fraction

    def index(self, j: int) -> int:
        n = self.count
        i = math.floor(Fraction(j) / self.fps * self.clip.rate)  # at or before, at 1× speed
        if self.mode == "forward":
            i = min(i, n - 1)
        elif self.mode == "loop":
            i %= n
        elif self.mode == "reverse":
            i = n - 1 - i % n
        else:
            i %= 2 * n - 2
            i = i if i < n else 2 * n - 2 - i
        return self.first + i

    def render(self, j: int) -> Planes:
        return resize_planes(self.clip.frames[self.index(j)], self.size)


@dataclass
class PictureInPicture:
    """A clip in a bordered box over a still photo."""

    background: Planes
    play: Play
    at: tuple[int, int]  # even x, y of the box

    def render(self, j: int) -> Planes:
        x, y = self.at
        bw, bh = self.play.size
        out = tuple(p.copy() for p in self.background)
        t = max(2, 2 * round(bh / 120))  # white border
        out[0][y - t : y + bh + t, x - t : x + bw + t] = 235
        for p in out[1:]:
            p[(y - t) // 2 : (y + bh + t) // 2, (x - t) // 2 : (x + bw + t) // 2] = 128
        inner = self.play.render(j)
        out[0][y : y + bh, x : x + bw] = inner[0]
        for p, q in zip(out[1:], inner[1:], strict=True):
            p[y // 2 : (y + bh) // 2, x // 2 : (x + bw) // 2] = q
        return out  # type: ignore[return-value]


Shot = Pan | Play | PictureInPicture


@dataclass
class Cue:
    start: int  # first output frame
    fade: int  # frames of cross-fade from the previous shot (0: a hard cut)
    kind: str
    shot: Shot
    frames: int


class Planner:
    """Draws the shots from the seeded generator; photos in shuffled rounds, clips in turn."""

    def __init__(
        self,
        rng: np.random.Generator,
        photos: list[Photo],
        clips: list[Clip],
        size: tuple[int, int],
        fps: Fraction,
    ) -> None:
        self.rng, self.photos, self.clips, self.size, self.fps = rng, photos, clips, size, fps
        self._photo_queue: list[int] = []
        self._clip_turn = 0

    def photo(self) -> Photo:
        if not self._photo_queue:
            self._photo_queue = [int(i) for i in self.rng.permutation(len(self.photos))]
        return self.photos[self._photo_queue.pop()]

    def window(self, photo: Photo, zoom: float) -> tuple[float, float, float]:
        h, w = photo.planes[0].shape
        ww, wh = photo.window(zoom, self.size)
        return float(self.rng.uniform(0, w - ww)), float(self.rng.uniform(0, h - wh)), zoom

    def play(self, frames: int, size: tuple[int, int]) -> Play:
        clip = self.clips[self._clip_turn % len(self.clips)]
        self._clip_turn += 1
        n = len(clip.frames)
        count = min(n, round(float(self.rng.uniform(2.0, 5.0)) * float(clip.rate)))
        first = int(self.rng.integers(0, n - count + 1))
        mode = str(
            self.rng.choice(["forward", "loop", "reverse", "pingpong"], p=[0.3, 0.3, 0.2, 0.2])
        )
        if mode == "forward" and frames / self.fps > count / clip.rate:
            mode = "loop"  # a forward play that would freeze on its last frame loops instead
        return Play(clip, first, count, mode, frames, size, self.fps)

    def shot(self, kind: str, frames: int) -> Shot:
        if kind in ("pan", "hold"):
            photo = self.photo()
            if kind == "hold":
                still = self.window(photo, float(self.rng.uniform(1.0, 1.2)))
                return Pan(photo, still, still, frames, self.size)
            zooms = self.rng.uniform(1.0, ZOOM_MAX, 2)
            a, b = self.window(photo, float(zooms[0])), self.window(photo, float(zooms[1]))
            return Pan(photo, a, b, frames, self.size)
        if kind == "clip":
            return self.play(frames, self.size)
        w, h = self.size
        bw = 2 * round(w * 0.4 / 2)
        bh = 2 * round(bw * 9 / 16 / 2)
        margin = 2 * round(w * 0.05 / 2)
        corner = int(self.rng.integers(0, 4))
        x = margin if corner % 2 == 0 else w - margin - bw
        y = margin if corner < 2 else h - margin - bh
        photo = self.photo()
        background = Pan(photo, *(2 * [self.window(photo, 1.0)]), frames, self.size).render(0)
        return PictureInPicture(background, self.play(frames, (bw, bh)), (x, y))

    def plan(self, total: int) -> list[Cue]:
        cues: list[Cue] = []
        t = 0
        while t < total:
            kind = str(self.rng.choice(KINDS, p=WEIGHTS))
            lo, hi = SECONDS[kind]
            frames = round(float(self.rng.uniform(lo, hi)) * float(self.fps))
            fade = 0
            if cues and self.rng.random() < FADE_SHARE:
                fade = round(float(self.rng.uniform(*FADE_SECONDS)) * float(self.fps))
                fade = min(fade, cues[-1].frames // 2, frames // 2)
            start = t - fade
            frames = min(frames, total - start)
            cues.append(Cue(start, fade, kind, self.shot(kind, frames), frames))
            t = start + frames
        return cues


# ---------------------------------------------------------------------------------------------
# Rendering and encoding


def blend(a: Planes, b: Planes, alpha: float) -> Planes:
    return tuple(cv2.addWeighted(p, 1 - alpha, q, alpha, 0) for p, q in zip(a, b, strict=True))  # type: ignore[return-value]


def frames(cues: list[Cue], total: int) -> Iterator[Planes]:
    """Every output picture in order, cross-fading where two shots overlap."""
    cache: dict[int, Planes] = {}  # a still shot is rendered once, kept while it shows
    active: list[int] = []
    nxt = 0
    for k in range(total):
        while nxt < len(cues) and cues[nxt].start <= k:
            active.append(nxt)
            nxt += 1
        active = [i for i in active if k < cues[i].start + cues[i].frames]
        cache = {i: v for i, v in cache.items() if i in active}
        pictures = []
        for i in active:
            cue = cues[i]
            if isinstance(cue.shot, Pan) and cue.shot.still:
                if i not in cache:
                    cache[i] = cue.shot.render(0)
                pictures.append(cache[i])
            else:
                pictures.append(cue.shot.render(k - cue.start))
        if len(pictures) == 1:
            yield pictures[0]
        else:  # the later shot fades in over its first ``fade`` frames
            cue = cues[active[-1]]
            yield blend(pictures[0], pictures[1], (k - cue.start + 1) / (cue.fade + 1))


def build(args: argparse.Namespace) -> dict:
    height = args.height
    size = (2 * round(height * 16 / 9 / 2), height)
    fps = Fraction(args.fps).limit_denominator(1001)
    total = round(args.minutes * 60 * fps)
    corpus = args.corpus
    photos = sorted((corpus / "kodak").glob("kodim*.png")) + sorted(
        (corpus / "highres").glob("*.jpg")
    )
    if len(photos) != 30 or not all((corpus / "video" / n).is_file() for n in ACTIVE):
        raise SystemExit(f"no media corpus at {corpus} (24 Kodak PNGs, 6 JPEGs, 3 clips expected)")
    loaded = [Photo.load(p, size) for p in photos]
    clips = [Clip.load(corpus / "video" / name) for name in sorted(ACTIVE)]
    bed = soundtrack(corpus)
    rng = np.random.default_rng(args.seed)
    cues = Planner(rng, loaded, clips, size, fps).plan(total)

    with av.open(str(args.out), "w", format="mp4") as out:
        out.metadata.update(
            {
                "creation_time": CREATION_TIME,
                "title": f"leaktrace test video, {args.minutes:g} min, {height}p, seed {args.seed}",
                "comment": CREDITS,
            }
        )
        video = out.add_stream(
            "libx264", rate=fps, options={"crf": str(args.crf), "preset": args.preset}
        )
        cc = video.codec_context
        cc.width, cc.height = size
        cc.pix_fmt = "yuv420p"
        cc.time_base = 1 / fps
        cc.thread_count = 2
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709
        video.metadata["language"] = "eng"
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout, audio.bit_rate = "stereo", 160_000
        audio.metadata["language"] = "eng"

        samples_total = math.floor(Fraction(total) / fps * AUDIO_RATE)
        fade_in, fade_out = AUDIO_RATE // 2, AUDIO_RATE
        written = 0

        def audio_until(n: int) -> None:
            """Encode the looped soundtrack up to sample ``n`` (0.5 s fade-in, 1 s fade-out)."""
            nonlocal written
            n = min(n, samples_total)
            while written < n:
                at = np.arange(written, min(n, written + 1024))
                gain = np.minimum(1.0, np.minimum(at / fade_in, (samples_total - at) / fade_out))
                chunk = bed[:, at % bed.shape[1]] * gain.astype(np.float32)
                chunk = np.ascontiguousarray(chunk)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = AUDIO_RATE, written
                frame.time_base = Fraction(1, AUDIO_RATE)
                out.mux(audio.encode(frame))
                written += len(at)

        for k, planes in enumerate(frames(cues, total)):
            i420 = np.concatenate([p.reshape(-1) for p in planes]).reshape(
                size[1] * 3 // 2, size[0]
            )
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts, frame.time_base = k, cc.time_base
            out.mux(video.encode(frame))
            audio_until(math.floor(Fraction(k + 1) / fps * AUDIO_RATE))
        out.mux(video.encode(None))
        audio_until(samples_total)
        out.mux(audio.encode(None))
    return {
        "frames": total,
        "size": size,
        "fps": fps,
        "shots": Counter(c.kind for c in cues),
        "fades": sum(1 for c in cues if c.fade),
        "still_seconds": sum(c.frames for c in cues if c.kind == "hold") / float(fps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.height < 144 or args.height % 2 or not 0 < args.minutes <= 180:
        parser.error("--height must be even and at least 144, --minutes above 0 and at most 180")
    t = time.perf_counter()
    info = build(args)
    took = time.perf_counter() - t
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    w, h = info["size"]
    shots = ", ".join(f"{n} {kind}" for kind, n in sorted(info["shots"].items()))
    print(
        f"{args.out}: {w}×{h}, {float(info['fps']):g} fps, {info['frames']} frames "
        f"({info['frames'] / float(info['fps']):.1f} s)"
    )
    print(f"shots: {shots}; {info['fades']} cross-fades; {info['still_seconds']:.0f} s of holds")
    print(f"{args.out.stat().st_size:,} bytes, sha256 {digest}")
    print(f"built in {took:.1f} s ({info['frames'] / took:.1f} frames/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
