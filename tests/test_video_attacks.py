"""The video attacks: each one writes a file that decodes cleanly and is what it says it is.

Inputs are the sample clips of examples/media and a tiny synthetic clip whose frame *i* is a flat
grey of level 16 + 4*i, so that the frame an output shows can be read back from its brightness.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from leaktrace.errors import MediaError
from leaktrace.video import attacks

from .conftest import SAMPLES

SINTEL = SAMPLES / "clip_640x360_25fps.mp4"  # 640×360, 25 fps, 8 s, AAC stereo
FLOWER = SAMPLES / "clip_flower_30fps.mp4"  # 480×270, 30000/1001 fps, 4.004 s, silent AAC
BUNNY = SAMPLES / "clip_bbb_320x240_noaudio.mp4"  # 320×240, 25 fps, 4 s, no audio


@dataclass
class Probe:
    """What a full decode of a file finds."""

    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    rate: Fraction
    frames: int
    audio_seconds: float
    monotonic: bool
    metadata: dict[str, str]
    languages: list[str]
    planes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)

    @property
    def seconds(self) -> float:
        return float(self.frames / self.rate)

    @property
    def levels(self) -> list[int]:
        """For the numbered clip: the source frame index each frame shows."""
        h, w = self.height // 2, self.width // 2
        return [
            round((float(y[h - 4 : h + 4, w - 4 : w + 4].mean()) - 16) / 4)
            for y, _, _ in self.planes
        ]


def probe(path: Path) -> Probe:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        planes, last, monotonic, samples = [], -1, True, 0
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                monotonic &= frame.pts is not None and frame.pts > last
                last = frame.pts if frame.pts is not None else last
                w, h = frame.width, frame.height
                flat = frame.to_ndarray().reshape(-1)
                q = w * h // 4
                planes.append(
                    (
                        flat[: w * h].reshape(h, w),
                        flat[w * h : w * h + q].reshape(h // 2, w // 2),
                        flat[w * h + q :].reshape(h // 2, w // 2),
                    )
                )
            else:
                samples += frame.samples
        return Probe(
            video_codec=v.codec_context.name,
            audio_codec=a.codec_context.name if a else None,
            width=v.codec_context.width,
            height=v.codec_context.height,
            rate=Fraction(v.average_rate),
            frames=len(planes),
            audio_seconds=samples / a.codec_context.sample_rate if a else 0.0,
            monotonic=monotonic,
            metadata=dict(c.metadata),
            languages=[s.metadata.get("language", "") for s in c.streams],
            planes=planes,
        )


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> Path:
    """50 frames at 25 fps, 160×96, frame i flat grey 16 + 4*i, a keyframe every 10 frames,
    2 s of a 440 Hz stereo tone."""
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        v.codec_context.width, v.codec_context.height, v.codec_context.pix_fmt = 160, 96, "yuv420p"
        v.codec_context.gop_size = 10
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(50):
            i420 = np.full((144, 160), 128, np.uint8)
            i420[:96] = 16 + 4 * i
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        t = np.arange(96000) / 48000
        tone = np.tile(0.2 * np.sin(2 * np.pi * 440 * t).astype(np.float32), (2, 1))
        for at in range(0, 96000, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, at : at + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48000, at
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path


def ffmpeg_fps(n_in: int, rate_in: Fraction, rate_out: Fraction) -> list[int]:
    """The source frame each output frame shows under FFmpeg's ``fps`` filter (round=near)."""
    slots = [math.floor(i * rate_out / rate_in + Fraction(1, 2)) for i in range(n_in)]
    end = math.floor(n_in * rate_out / rate_in + Fraction(1, 2))
    return [max(i for i in range(n_in) if slots[i] <= k) for k in range(end)]


def test_the_standard_list_is_the_issues_attack_list():
    assert list(attacks.STANDARD) == [
        "x264-crf23",
        "x264-crf30",
        "x264-crf35",
        "x265-crf30",
        "vp9-crf35",
        "480p",
        "360p",
        "fps30",
        "fps24",
        "crop10",
        "letterbox1080",
        "tone",
        "grayscale",
        "screen-record",
        "trim",
        "trim+480p+crf32",
    ]


def test_reencode_keeps_size_rate_length_sound_and_metadata(tmp_path):
    src = probe(FLOWER)
    out = probe(attacks.reencode(FLOWER, tmp_path / "out.mp4"))
    assert (out.video_codec, out.audio_codec) == ("h264", "aac")
    assert (out.width, out.height, out.rate, out.frames) == (480, 270, Fraction(30000, 1001), 120)
    assert out.monotonic
    assert out.audio_seconds == pytest.approx(src.seconds, abs=0.05)
    assert out.metadata["creation_time"].startswith("2018-03-07")  # copied, as ffmpeg does
    assert out.languages == ["und", "eng"]
    # The pictures are the source's, through one more lossy encode.
    mse = np.mean(
        [(a[0].astype(float) - b[0]) ** 2 for a, b in zip(src.planes, out.planes, strict=True)]
    )
    assert 10 * np.log10(255**2 / mse) > 32


def test_a_higher_crf_makes_a_smaller_file(tmp_path):
    sizes = [
        attacks.reencode(BUNNY, tmp_path / f"crf{crf}.mp4", crf=crf).stat().st_size
        for crf in (23, 30, 35)
    ]
    assert sizes[0] > sizes[1] > sizes[2]


@pytest.mark.parametrize(
    ("codec", "name", "decoded", "audio"),
    [("libx265", "out.mp4", "hevc", "aac"), ("libvpx-vp9", "out.webm", "vp9", "opus")],
)
def test_reencode_with_x265_and_vp9(tmp_path, codec, name, decoded, audio):
    out = probe(attacks.reencode(FLOWER, tmp_path / name, codec=codec, crf=30))
    assert (out.video_codec, out.audio_codec) == (decoded, audio)
    assert (out.width, out.height, out.frames) == (480, 270, 120)
    assert out.monotonic


def test_the_same_input_gives_the_same_bytes(tmp_path):
    a = attacks.screen_record(BUNNY, tmp_path / "a.mp4")
    b = attacks.screen_record(BUNNY, tmp_path / "b.mp4")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


@pytest.mark.parametrize(("height", "width"), [(480, 640), (360, 480), (120, 160)])
def test_scale_keeps_the_aspect_ratio(tmp_path, height, width):
    out = probe(attacks.scale(BUNNY, tmp_path / "out.mp4", height=height))
    assert (out.width, out.height, out.frames) == (width, height, 100)


def test_scale_rounds_the_width_to_an_even_number(tmp_path):
    out = probe(attacks.scale(FLOWER, tmp_path / "out.mp4", height=144))
    assert (out.width, out.height) == (256, 144)  # 480×270 → 256×144 (255.97)


@pytest.mark.parametrize("fps", [30, 24, 10])
def test_change_fps_repeats_and_drops_frames_as_ffmpeg_does(tmp_path, numbered, fps):
    out = probe(attacks.change_fps(numbered, tmp_path / "out.mp4", fps=fps))
    assert out.rate == fps
    assert out.levels == ffmpeg_fps(50, Fraction(25), Fraction(fps))  # no blended frames
    assert out.seconds == pytest.approx(2.0, abs=1 / fps)
    assert out.audio_seconds == pytest.approx(out.seconds, abs=0.03)


def test_change_fps_from_ntsc(tmp_path):
    out = probe(attacks.change_fps(FLOWER, tmp_path / "out.mp4", fps=24))
    assert (out.rate, out.frames) == (24, 96)  # 4.004 s
    assert out.monotonic


def test_at_its_own_rate_each_frame_maps_onto_itself(tmp_path, numbered):
    assert probe(attacks.reencode(numbered, tmp_path / "out.mp4")).levels == list(range(50))


def test_crop_keeps_the_centre(tmp_path):
    src, out = probe(BUNNY), probe(attacks.crop(BUNNY, tmp_path / "out.mp4", fraction=0.1))
    assert (out.width, out.height, out.frames) == (288, 216, 100)
    centre = src.planes[10][0][12:228, 16:304].astype(float)
    assert np.mean(np.abs(out.planes[10][0] - centre)) < 4


def test_crop_can_keep_a_corner(tmp_path):
    src = probe(BUNNY)
    out = probe(attacks.crop(BUNNY, tmp_path / "out.mp4", fraction=0.25, at=(0, 0)))
    assert (out.width, out.height) == (240, 180)
    assert np.mean(np.abs(out.planes[10][0] - src.planes[10][0][:180, :240].astype(float))) < 4


@pytest.mark.parametrize(
    ("source", "size", "bars"),
    [(BUNNY, (640, 360), "sides"), (FLOWER, (480, 480), "top and bottom")],
)
def test_letterbox_fits_and_centres_on_black(tmp_path, source, size, bars):
    out = probe(attacks.letterbox(source, tmp_path / "out.mp4", size=size))
    assert (out.width, out.height) == size
    y = out.planes[5][0].astype(float)
    if bars == "sides":  # 320×240 → 480×360 in the middle of 640×360
        edges, inside = np.concatenate([y[:, :76], y[:, -76:]], axis=1), y[:, 84:-84]
    else:  # 480×270 in the middle of 480×480: 104 lines above, 106 below
        edges, inside = np.concatenate([y[:100], y[-100:]]), y[108:-110]
    assert np.abs(edges - 16).max() <= 2  # video black
    assert inside.std() > 10  # the picture


def test_letterbox_to_1080p(tmp_path, numbered):
    out = attacks.chain(  # the last 10 frames only: 1080p frames are slow to encode
        numbered,
        tmp_path / "out.mp4",
        partial(attacks.trim, start=1.6, duration=0.4),
        attacks.letterbox,
    )
    info = probe(out)  # 160×96 (5:3) → 1800×1080 with bars of 60 columns left and right
    assert (info.width, info.height, info.levels) == (1920, 1080, list(range(40, 50)))
    assert np.abs(info.planes[5][0][:, :48].astype(float) - 16).max() <= 2
    assert np.abs(info.planes[5][0][:, 64:-64].astype(float) - (16 + 4 * 45)).max() <= 2


def test_tone_changes_luma_levels_only(tmp_path):
    src = probe(BUNNY)
    out = probe(attacks.tone(BUNNY, tmp_path / "out.mp4", brightness=20, contrast=0.8))
    y_in, y_out = src.planes[20][0].astype(float), out.planes[20][0].astype(float)
    assert np.mean(np.abs(y_out - ((y_in - 128) * 0.8 + 148))) < 2.5
    for i in (1, 2):
        assert np.mean(np.abs(out.planes[20][i].astype(float) - src.planes[20][i])) < 2


def test_grayscale_leaves_no_colour(tmp_path):
    src, out = probe(FLOWER), probe(attacks.grayscale(FLOWER, tmp_path / "out.mp4"))
    assert out.frames == 120
    for _, u, v in out.planes:
        assert np.abs(u.astype(int) - 128).max() <= 1
        assert np.abs(v.astype(int) - 128).max() <= 1
    assert np.mean(np.abs(out.planes[60][0].astype(float) - src.planes[60][0])) < 3


def test_screen_record_puts_the_video_in_a_window(tmp_path):
    src = probe(FLOWER)
    out = probe(attacks.screen_record(FLOWER, tmp_path / "out.mp4", scale=0.9, fps=30))
    assert (out.width, out.height, out.rate) == (480, 270, 30)
    assert out.frames == 120  # 4.004 s at 30 fps
    assert out.audio_seconds == pytest.approx(4.0, abs=0.05)
    y = out.planes[60][0].astype(float)
    assert 30 < y[:3].mean() < 70  # the dark title bar
    assert y[30:, :30].mean() > 200  # the light side panel
    # The video area, 432×244 at (42, 20), shows the source: output frame 60 (2 s) holds source
    # frame 60, whose slot at 30 fps, round(60 * 30 / 29.97), is the last <= 60.
    region = cv2.resize(y[20:264, 42:474], (480, 270), interpolation=cv2.INTER_LINEAR)
    assert np.corrcoef(region.ravel(), src.planes[60][0].ravel())[0, 1] > 0.95


def test_trim_is_frame_accurate(tmp_path, numbered):
    out = probe(attacks.trim(numbered, tmp_path / "out.mp4", start=0.6, duration=0.8))
    assert out.levels == list(range(15, 35))  # not the keyframe before, 10
    assert out.audio_seconds == pytest.approx(0.8, abs=0.03)
    assert out.monotonic


def test_trim_seeks_into_a_real_file_frame_accurately(tmp_path):
    out = probe(attacks.trim(SINTEL, tmp_path / "out.mp4", start=5.0, duration=2.0))
    assert (out.frames, out.width, out.height) == (50, 640, 360)
    assert out.audio_seconds == pytest.approx(2.0, abs=0.05)
    with av.open(str(SINTEL)) as c:  # source frames 120-130: the first output frame is 125
        frames = itertools.islice(c.decode(video=0), 131)
        lumas = [f.to_ndarray()[:360].astype(float) for f in frames]
    errors = [np.mean((lumas[i] - out.planes[0][0]) ** 2) for i in range(120, 131)]
    assert 120 + int(np.argmin(errors)) == 125


def test_trim_past_the_end_of_the_source_is_shorter(tmp_path):
    out = probe(attacks.trim(FLOWER, tmp_path / "out.mp4", start=3.0, duration=10.0))
    assert (out.frames, out.width) == (30, 480)  # frames 90-119
    assert out.audio_seconds == pytest.approx(1.0, abs=0.05)


def test_the_reshare_chain(tmp_path):
    out = probe(attacks.STANDARD["trim+480p+crf32"](FLOWER, tmp_path / "leak.mp4"))
    assert (out.width, out.height, out.frames) == (854, 480, 60)  # from 2 s to the end, 4.004 s
    assert out.audio_codec == "aac"
    assert not list(tmp_path.glob(".*")), "intermediate files are removed"


def test_chain_runs_steps_in_order(tmp_path, numbered):
    out = attacks.chain(
        numbered,
        tmp_path / "out.mp4",
        partial(attacks.trim, start=1.0, duration=0.4),
        partial(attacks.change_fps, fps=50),
    )
    assert probe(out).levels == [i for i in range(25, 35) for _ in (0, 1)]


def test_keep_audio_false_and_a_source_without_audio(tmp_path):
    assert probe(attacks.reencode(FLOWER, tmp_path / "a.mp4", keep_audio=False)).audio_codec is None
    assert probe(attacks.grayscale(BUNNY, tmp_path / "b.mp4")).audio_codec is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (partial(attacks.reencode, codec="mpeg2video"), "codec must be one of"),
        (partial(attacks.reencode, crf=52), "crf for libx264 must be an integer 0–51"),
        (partial(attacks.reencode, crf=64, codec="libvpx-vp9"), "0–63"),
        (partial(attacks.reencode, preset="quick"), "preset must be one of"),
        (partial(attacks.scale, height=481), "height must be an even number"),
        (partial(attacks.change_fps, fps=0), "fps must be from 1 to 240"),
        (partial(attacks.crop, fraction=1.0), "fraction must be at least 0 and below 1"),
        (partial(attacks.crop, at=(0.5, 2)), "at must be two numbers"),
        (partial(attacks.letterbox, size=(1921, 1080)), "size must be even"),
        (partial(attacks.tone, contrast=-1), "contrast"),
        (partial(attacks.screen_record, scale=1.0), "scale must be from 0.3 to 0.95"),
        (partial(attacks.trim, start=-1, duration=2), "start must be >= 0"),
        (partial(attacks.trim, start=30, duration=2), "past the end"),
        (partial(attacks.trim, start=0, duration=0.01), "shorter than one frame"),
    ],
)
def test_bad_options_are_one_line_value_errors(tmp_path, call, message):
    with pytest.raises(ValueError, match=message) as info:
        call(BUNNY, tmp_path / "out.mp4")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir()), "no file is left behind"


def test_bad_destinations_and_sources(tmp_path):
    with pytest.raises(ValueError, match="dest must end in one of"):
        attacks.reencode(BUNNY, tmp_path / "out.avi")
    with pytest.raises(ValueError, match="cannot hold libx264"):
        attacks.reencode(BUNNY, tmp_path / "out.webm")
    with pytest.raises(MediaError, match="cannot read"):
        attacks.reencode(tmp_path / "missing.mp4", tmp_path / "out.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError):
        attacks.reencode(tmp_path / "junk.mp4", tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]
