"""What a single screenshot of one video frame says about who leaked it.

    python benchmarks/video_screenshot.py [--video VIDEO] [--work DIR] [--candidates 1000]
        [--shots 5]

Two kinds of copies, ``--shots`` frames each, spread over the copy: one recipient's copy of a
video marked with variants (``--video``, a minute or more, e.g. from ``make_long_video.py``;
its variants are made once into ``--work``), and one recipient's copy of the repository's 8-s
sample clip, which is under a minute and so marked per recipient (every frame carries the
recipient's whole photo codeword). Each frame is taken as an RGB screenshot, saved as PNG,
read back and written as a one-frame lossless video, then traced with ``detect_video`` among
``--candidates`` candidates (the true one among them). Prints a markdown table: the verdict,
whether the most suspect candidate is the true recipient, the most suspect's log10 p (after
correction for the candidates), the true recipient's z and the best innocent's z.
Each screenshot is traced twice: as that one-frame video, and as the picture itself (its
luma, as ``leaktrace trace shot.png`` reads it).

``--innocent N``: the false-accusation check of single frames. N frames, spread over each
source — the *unmarked* sample clip, a copy of it for an outsider who is not a candidate, and
the other sample videos (``clip_flower_30fps.mp4``, ``clip_bbb_320x240_noaudio.mp4``; placed
in the sample clip by force, whether or not their thumbnails would have been) — are each
traced as a picture against ``--candidates`` fresh innocent candidates: every frame is one
trial. Prints how many were named, the smallest p, and the innocent scores' tail against
Hoeffding's bound exp(-t²/2).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import av
import cv2
import numpy as np
from _common import ROOT

from leaktrace.codes import VARIANT_CODE, code
from leaktrace.keys import Key
from leaktrace.transform import luma
from leaktrace.video import Settings, detect_video, make_variants, remux
from leaktrace.video.detect import MATCH_SIMILARITY, place_in, still_timeline
from leaktrace.video.variants import Plan, encode_copy

KEY = Key(bytes(range(32)))
SAMPLE = ROOT / "examples" / "media" / "clip_640x360_25fps.mp4"
OTHERS = [
    ROOT / "examples" / "media" / n
    for n in ("clip_flower_30fps.mp4", "clip_bbb_320x240_noaudio.mp4")
]


def _rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _one_frame_video(png: Path, dest: Path) -> Path:
    """The screenshot ``png`` as a one-frame video (x264 lossless, 4:4:4: nothing lost)."""
    rgb = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = w & ~1, h & ~1
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0", "x264-params": "threads=1"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: h & ~1, : w & ~1]), "rgb24")
        for packet in stream.encode(frame.reformat(format="yuv444p")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dest


def _shots(copy: Path, work: Path, tag: str, shots: int) -> list[tuple[int, Path]]:
    frames = _rgb_frames(copy)
    picks = np.linspace(0, len(frames) - 1, shots + 2)[1:-1].round().astype(int)
    out = []
    for i in picks.tolist():
        png = work / f"{tag}-{i}.png"
        cv2.imwrite(str(png), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
        out.append((i, _one_frame_video(png, work / f"{tag}-{i}.mp4")))
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """A picture's luma as ``leaktrace trace`` reads a screenshot (BT.601, rounded)."""
    return np.asarray(np.clip(luma(rgb) + 0.5, 0, 255), np.uint8)


def _innocent(plan: Plan, folder: Path, work: Path, per_source: int, candidates: int) -> None:
    """Single frames that no candidate's copy shows, each judged against fresh innocents."""
    outsider = work / "copy-outsider.mp4"
    if not outsider.exists():
        encode_copy(plan, SAMPLE, KEY, "outsider-not-a-candidate", outsider)
    zs, named, worst, placed, trials = [], 0, 0.0, 0, 0
    t0 = time.perf_counter()
    for source in [SAMPLE, outsider, *OTHERS]:
        shots = _rgb_frames(source)
        picks = np.linspace(0, len(shots) - 1, per_source).round().astype(int)
        label = source.name
        for i in np.unique(picks).tolist():
            still = _luma(shots[i])
            store = np.load(folder / "thumbs.npz")
            box = tuple(store["box"].tolist())
            _, (_, sim) = place_in(
                still_timeline(still), store["times"], store["thumbs"], plan.fps, box
            )
            placed += sim >= MATCH_SIMILARITY
            fresh = [f"innocent-{trials}-{n}" for n in range(candidates)]
            found = detect_video(still, KEY, plan, folder, SAMPLE, fresh)
            zs.append(np.fromiter(found.scores.values(), float))
            named += len(found.accused)
            worst = min(worst, found.log10_p_value)
            trials += 1
        mine = np.concatenate(zs[-len(np.unique(picks)) :])
        print(
            f"  {label}: {len(np.unique(picks))} frames, {named} named so far, largest "
            f"innocent z {mine.max():.2f}, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    allz = np.concatenate(zs)
    print(
        f"\nSingle frames of the unmarked clip, of an outsider's copy and of "
        f"{len(OTHERS)} other videos, each traced as a picture against {candidates} fresh "
        f"innocent candidates: {trials} trials ({allz.size:,} scores), {placed} placed in "
        f"the clip by their thumbnails (the others forced), {named} named; smallest p "
        f"{10**worst:.2g}; {time.perf_counter() - t0:.0f} s.\n"
    )
    print("| z ≥ | innocent scores observed | Hoeffding bound |")
    print("|---|---|---|")
    for t in (2, 3, 4, 5):
        print(f"| {t} | {(allz >= t).mean():.2e} | {math.exp(-t * t / 2):.2e} |")
    print(
        f"\nlargest innocent z: {allz.max():.2f} (threshold z at 1e-9 among {candidates}: "
        f"{math.sqrt(2 * math.log(candidates / 1e-9)):.2f})"
    )


def _plan(video: Path, folder: Path, media: str, settings: Settings) -> Plan:
    if (folder / "plan.json").exists():
        return Plan.from_json(json.loads((folder / "plan.json").read_text()))
    return make_variants(video, folder, KEY, media, settings=settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="a video of a minute or more (variants)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/leaktrace-screenshot-bench"))
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--innocent", type=int, default=0, help="frames per innocent source")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    names = [f"r{i:04d}" for i in range(args.candidates)]
    who = names[len(names) // 3]
    cases = []
    if args.video is not None:
        folder = work / "variants"
        plan = _plan(args.video, folder, "bench-video", Settings(mode="variants"))
        copy = work / "copy-variants.mp4"
        c = code(KEY, plan.media_id, VARIANT_CODE, length=plan.segments).codeword(who)
        remux(plan, folder, args.video, [int(v > 0) for v in c], copy)
        cases.append((f"{args.video.name} (variants)", plan, folder, args.video, copy))
    folder = work / "sample"
    plan = _plan(SAMPLE, folder, "sample-clip", Settings(mode="recipient"))
    copy = work / "copy-recipient.mp4"
    encode_copy(plan, SAMPLE, KEY, who, copy)
    cases.append((f"{SAMPLE.name} (per recipient)", plan, folder, SAMPLE, copy))
    print(f"\n{args.candidates} candidates, threshold 1e-9; each screenshot a PNG of one frame\n")
    print(
        "| Copy | frame | traced as | verdict | most suspect is true | log10 p | z (true) "
        "| innocent z |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, plan, folder, original, copy in cases:
        tag = "v" if plan.settings.mode == "variants" else "r"
        for i, shot in _shots(copy, work, tag, args.shots):
            png = cv2.cvtColor(cv2.imread(str(shot.with_suffix(".png"))), cv2.COLOR_BGR2RGB)
            for how, leak in (("1-frame video", shot), ("picture", _luma(png))):
                found = detect_video(leak, KEY, plan, folder, original, names)
                innocent = max(z for n, z in found.scores.items() if n != who)
                print(
                    f"| {label} | {i} | {how} | {found.verdict} | "
                    f"{'yes' if found.best == who else 'no'} | {found.log10_p_value:.1f} | "
                    f"{found.scores[who]:.2f} | {innocent:.2f} |",
                    flush=True,
                )
    if args.innocent > 0:
        _innocent(cases[-1][1], cases[-1][2], work, args.innocent, args.candidates)


if __name__ == "__main__":
    main()
