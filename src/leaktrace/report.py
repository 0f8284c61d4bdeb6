"""Evidence reports: the JSON result of a trace, and a self-contained HTML page to forward.

The page holds everything inline (no scripts, no external files): the leak's hash, the matched
original, the verdict and p-value, an SVG chart of every candidate's score against the match
threshold, the leak beside the original, the settings (as a table), the software version and
the time. For a video it also gives the part of the original the leak shows, a frame of the
leak beside the original's frame at that time, and the evidence segment by segment over time.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .register import Geometry
from .transform import working_shape
from .verdicts import who

__all__ = [
    "CSS",
    "chart",
    "clock",
    "html_report",
    "json_report",
    "registration_overlay",
    "settings_table",
]


def json_report(result: dict[str, Any]) -> str:
    """The trace result as indented JSON."""
    return json.dumps(result, indent=2, sort_keys=False)


def _thumbnail(pixels: np.ndarray | None, side: int = 560) -> str:
    if pixels is None:
        return '<div class="missing">not available</div>'
    img = Image.fromarray(_rgb8(pixels))
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/jpeg;base64,{data}">'


#: Candidates drawn one bar each in a report's chart (the best first); the rest are summed up.
CHART_ROWS = 30


def chart(
    candidates: list[dict[str, Any]],
    threshold_z: float | None,
    matched: bool,
    *,
    threshold_label: str = "match threshold z",
    note: str | None = None,
    beyond: bool = False,
    tested: int | None = None,
) -> str:
    """The web page's horizontal score chart in HTML and CSS (readable at any width, no
    script): one row per candidate, best first — its name, its bar from zero, its score —
    the match threshold dashed across, the zone beyond it tinted. In a no-match the rows are
    ranked, not named. ``tested``: how many were tested, when ``candidates`` lists only the
    most suspect of them."""
    if not candidates:
        return "<p>No candidates were tested.</p>"
    scores = [float(c["score"]) for c in candidates]
    lo = min(0.0, *scores)
    hi = max(1.0, *scores, threshold_z or 0.0)
    pad = (hi - lo) * 0.06
    lo, hi = (lo - pad if lo < 0 else lo), hi + pad

    def at(v: float) -> str:  # a score's place across the track, in percent
        return f"{(v - lo) / (hi - lo) * 100:.2f}%"

    zone = f"--zone:{at(threshold_z) if threshold_z is not None else '100%'};--zero:{at(0.0)}"
    rows = []
    if threshold_z is not None:
        rows.append(
            f'<div class="row head"><span></span><span class="track"><span class="thr-label'
            f'{" end" if (threshold_z - lo) / (hi - lo) > 0.7 else ""}" style="left:'
            f'{at(threshold_z)}">{html.escape(threshold_label)} = {threshold_z:.2f}</span>'
            "</span><span></span></div>"
        )
    for i, c in enumerate(candidates[:CHART_ROWS]):
        v = float(c["score"])
        name = c.get("handle")
        label = html.escape(name) if name else f"#{i + 1}"
        kind = ("top match" if matched else "top") if i == 0 else ""
        if beyond and threshold_z is not None and v >= threshold_z:  # every row that names
            kind = "top match"
        left, right = at(min(0.0, v)), at(max(0.0, v))
        rows.append(
            f'<div class="row {kind}"><span class="name" title="{label}">{label}</span>'
            f'<span class="track"><span class="bar" style="left:{left};'
            f'width:calc({right} - {left})"></span></span>'
            f'<span class="value">{v:.2f}</span></div>'
        )
    tested = max(tested or 0, len(candidates))
    more, others = tested - CHART_ROWS, scores[CHART_ROWS:]
    rest = ""
    if more > 0 and others:
        # When only the most suspect were listed, the best of the rest is all that is known.
        low = f"{min(others):.2f} to" if tested == len(candidates) else "at most"
        rest = f'<p class="chart-note">…and {more} more, scoring {low} {max(others):.2f}.</p>'
    who = "candidate" if tested == 1 else "candidates"
    named = "" if candidates[0].get("handle") else " Nobody is named, so the bars are not either."
    lined = " has-threshold" if threshold_z is not None else ""
    said = (
        note
        if note is not None
        else "Score z of every candidate, best first. Innocent recipients score around 0; a "
        f"name is given only beyond the dashed threshold.{named}"
    )
    return (
        f'<figure class="scores{lined}" style="{zone}" role="img" aria-label="Score z of '
        f'{tested} {who}">{"".join(rows)}</figure>{rest}<p class="chart-note">'
        f"{html.escape(said)}</p>"
    )


#: How the settings of a verdict are named in a report (others: their key, in words).
_SETTING_LABELS = {
    "code": "Code",
    "code_length": "Code length (symbols)",
    "format_version": "Mark format version",
    "video_format": "Video format version",
    "mode": "Marking",
    "wavelet": "Wavelet",
    "marked_levels": "Marked wavelet levels",
    "working_side": "Working grid, shorter side (pixels)",
    "segment_seconds": "Segment length",
    "variants": "Variants",
    "encoder": "Encoder",
    "strength": "Strength",
    "null_model": "Null model",
}
_DETECTION = {
    "informed": "informed: the leak registered onto its original, the original subtracted",
    "blind": "blind: without the original (weaker)",
}
_MODES = {
    "recipient": "per recipient: every frame carries the recipient's whole codeword "
    "(clips under a minute)",
    "variants": "variants: two marked encodes, each copy takes one per segment",
}


def _setting(key: str, value: Any) -> str:
    if key == "variants" and value == 0:
        return "none (each copy is encoded on its own)"
    if key == "segment_seconds" and isinstance(value, int | float):
        return f"{value:g} s"
    if key == "mode" and value in _MODES:
        return _MODES[value]
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def settings_table(settings: dict[str, Any]) -> str:
    """The settings a verdict depends on, one row each, in words."""
    rows = "".join(
        f"<tr><th>{html.escape(_SETTING_LABELS.get(k, k.replace('_', ' ').capitalize()))}</th>"
        f"<td>{html.escape(_setting(k, v))}</td></tr>"
        for k, v in settings.items()
    )
    return f'<table class="settings">{rows}</table>'


def clock(seconds: float) -> str:
    """A time in a video as ``m:ss.s`` (``1:12.0``)."""
    m, s = divmod(max(0.0, float(seconds)), 60)
    if round(s, 1) >= 60:
        m, s = m + 1, 0.0
    return f"{int(m)}:{s:04.1f}"


def _p_text(result: dict[str, Any]) -> str:
    """The p-value, with its log10; as a power of ten alone when it is below what a float
    holds well."""
    p, log10 = result.get("p_value"), result.get("log10_p_value")
    if not isinstance(log10, int | float):
        return f"{p:.3g}" if isinstance(p, int | float) else "unknown"
    if isinstance(p, int | float) and p > 1e-300:
        return f"{p:.3g} (log10 = {log10:.1f})"
    return f"10<sup>{log10:.1f}</sup>"


def _frame_times(result: dict[str, Any]) -> tuple[float, float] | None:
    """The times (in the leak, in the original) of the frames a video's report shows: the
    middle of the matched range, as the trace picked them (a picture: its one frame)."""
    video = result.get("video")
    if not video:
        return None
    if "duration" not in result.get("leak", {}):  # a screenshot of one frame
        return 0.0, video["offset"]
    mid = (video["start"] + video["end"]) / 2
    leak_time = max(0.0, mid - video["offset"])
    return leak_time, leak_time + video["offset"]


def _evidence_chart(video: dict[str, Any], duration: float) -> str:
    """SVG: the soft value of every segment read, against the original's time, the matched
    range shaded; for a clip marked per recipient (no per-segment values), the segments read.
    """
    segs: list[int] = video.get("segments") or []
    seg = float(video.get("segment_seconds") or 0.5)
    soft: list[float] = video.get("soft_symbols") or []
    agree: list[float] = video.get("agreement") or []
    total = max(duration, (max(segs) + 1) * seg if segs else 0.0, seg)
    values = agree if len(agree) == len(segs) else soft if len(soft) == len(segs) else []
    width, left, right, top, bottom = 900, 48, 28, 24, 26
    height = 230 if values else 110
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + t / total * plot_w

    def y(v: float) -> float:
        return top + (1 - v) / 2 * plot_h

    label = (
        "agreement of each segment with the named recipient"
        if values is agree and agree
        else "soft value of each segment (sign: the variant it shows)"
        if values
        else "segments read"
    )
    label = label[0].upper() + label[1:]
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{label} over time">',
        f'<rect x="{x(video["start"]):.1f}" y="{top}" width="'
        f'{max(x(video["end"]) - x(video["start"]), 1):.1f}" height="{plot_h}" fill="#e8eef9"/>',
    ]
    ticks = _time_ticks(total)
    for t in ticks:
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="#e3e6ea"/><text x="{x(t):.1f}" y="{height - 8}" font-size="11" '
            f'text-anchor="middle" fill="#555">{clock(t)}</text>'
        )
    bar = max(plot_w * seg / total - 1, 1)
    if values:
        for v_y, v_label in ((1, "+1"), (0, "0"), (-1, "−1")):
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y(v_y):.1f}" y2="{y(v_y):.1f}" '
                f'stroke="{"#888" if v_y == 0 else "#e3e6ea"}"/><text x="{left - 6}" '
                f'y="{y(v_y) + 4:.1f}" font-size="11" text-anchor="end" fill="#555">'
                f"{v_label}</text>"
            )
        for s, v in zip(segs, values, strict=True):
            if values is agree:
                colour = "#1d4fa8" if v > 0 else "#c0392b"
            else:
                colour = "#5b7fa6"
            t0 = s * seg
            parts.append(
                f'<rect x="{x(t0):.1f}" y="{min(y(v), y(0)):.1f}" width="{bar:.1f}" '
                f'height="{max(abs(y(v) - y(0)), 0.5):.1f}" fill="{colour}"><title>'
                f"segment {s} ({clock(t0)}–{clock(t0 + seg)}): {v:+.2f}</title></rect>"
            )
    else:
        for s in segs:
            t0 = s * seg
            parts.append(
                f'<rect x="{x(t0):.1f}" y="{y(0.5):.1f}" width="{bar:.1f}" '
                f'height="{y(-0.5) - y(0.5):.1f}" fill="#5b7fa6"><title>segment {s} '
                f"({clock(t0)}–{clock(t0 + seg)}) read</title></rect>"
            )
    parts.append(
        f'<text x="{left}" y="{top - 8}" font-size="11" fill="#555">{label}, against time '
        "in the original (shaded: the part the leak shows)</text></svg>"
    )
    return "".join(parts)


def _time_ticks(total: float) -> list[float]:
    step = next(
        (s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800) if total / s <= 10),
        3600,
    )
    return [i * step for i in range(int(total / step + 1e-9) + 1)]


def _frames_read(n: int) -> str:
    return "1 frame" if n == 1 else f"{n:,} frames"


def _video_section(
    result: dict[str, Any], leak: np.ndarray | None, original: np.ndarray | None
) -> str:
    """The video part of a report: frames side by side, evidence over time."""
    video = result["video"]
    times = _frame_times(result) or (0.0, 0.0)
    segs = video.get("segments") or []
    soft = video.get("soft_symbols") or []
    agree = video.get("agreement") or []
    per_recipient = (result.get("settings") or {}).get("mode") == "recipient"
    if agree:
        how = (
            "Each bar is one segment of the original the leak shows: above the line where it "
            "carries the named recipient's symbol, below where it does not; its height is "
            "how sure the reading is (±1: certain)."
        )
    elif soft:
        how = (
            "Each bar is one segment of the original the leak shows: its soft value, from −1 "
            "(certainly the first variant) to +1 (certainly the second). A recipient's score "
            "is the agreement of these values with the variants their copy took; a leak "
            "shows a recipient's pattern, an innocent's agrees by chance only."
        )
    elif per_recipient:
        how = (
            "This clip was marked per recipient: every frame of a copy carries the "
            "recipient's whole codeword, so the evidence of all the frames read is pooled "
            "(as for a photo) rather than read segment by segment. The bars show the "
            "segments read."
        )
    else:
        how = "The bars show the segments read."
    length = float(video.get("segments_total") or 0) * float(video.get("segment_seconds") or 0)
    return f"""<h2>Evidence over time</h2>
{_evidence_chart(video, max(length, float(video["end"])))}
<p>{html.escape(how)} {len(segs)} of {video.get("segments_total", len(segs))} segments of
{float(video.get("segment_seconds") or 0):g} s were read, from
{_frames_read(int(video.get("frames_read") or 0))} of the leak.</p>
<h2>Leak and original</h2>
<div class="pair frames"><figure>{_thumbnail(leak)}<figcaption>Leaked file at {clock(times[0])}
</figcaption></figure>
<figure>{_thumbnail(original)}<figcaption>Original at {clock(times[1])} (the frame the leak
shows)</figcaption></figure></div>
"""


def registration_overlay(leak: np.ndarray, original: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The original, dimmed, with the leak warped onto it and the region it covers outlined."""
    rgb = _rgb8(original)
    h, w = rgb.shape[:2]
    wh, ww = working_shape(original.shape)
    # original pixel centres → working-grid pixel centres (as cv2.resize samples them)
    sx, sy = ww / w, wh / h
    to_grid = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    to_leak = geometry.matrix @ to_grid
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(_rgb8(leak), to_leak, (w, h), flags=flags)
    inside = (
        cv2.warpPerspective(np.full(leak.shape[:2], 255, np.uint8), to_leak, (w, h), flags=flags)
        > 127
    )
    out = (rgb.astype(np.float32) * 0.35).astype(np.uint8)
    out[inside] = warped[inside]
    lh, lw = leak.shape[:2]
    corners = np.array([[0, 0, 1], [lw, 0, 1], [lw, lh, 1], [0, lh, 1]], np.float64).T
    back = np.linalg.inv(to_leak) @ corners
    quad = np.round((back[:2] / back[2]).T).astype(np.int32)
    cv2.polylines(out, [quad], True, (230, 40, 40), max(2, round(max(w, h) / 300)), cv2.LINE_AA)
    return out


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if pixels.shape[2] == 2:
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(pixels[..., :3])


#: The look of a report (and of a case bundle's index page): plain CSS, no external files.
CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;color:#1b1f27;
padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.6em}
.verdict{border-radius:8px;padding:16px 20px;border:1px solid;border-left-width:6px}
.verdict p{margin:0} .verdict-title{font-size:1.45em;font-weight:700;line-height:1.25}
.verdict-detail{margin-top:6px!important;overflow-wrap:anywhere}
.verdict-match{background:#e8eef9;border-color:#b5c6e6;border-left-color:#1d4fa8}
.verdict-match .verdict-title{color:#163d84}
.verdict-nomatch{background:#eef0f3;border-color:#d7dbe1;border-left-color:#7b8494}
table{border-collapse:collapse;width:100%;margin:1em 0} th,td{text-align:left;
vertical-align:top;padding:.35em .6em;border-bottom:1px solid #d7dbe1}
th{width:14em;color:#555d6b;font-weight:500} td{overflow-wrap:anywhere}
table.settings{font-size:.92em}
code{font-size:.85em;word-break:break-all} .pair{display:flex;flex-wrap:wrap;gap:1em}
.pair figure{flex:1 1 260px;margin:0} .pair img{max-width:100%;border:1px solid #ccc}
.frames img{width:100%} .overlay{margin:0} .overlay img{max-width:100%}
svg{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}
.missing{padding:2em;color:#888;border:1px dashed #ccc}
.scores{margin:1em 0 .4em;font-size:13px}
.scores .row{display:grid;grid-template-columns:minmax(3em,11em) 1fr 3.2em;gap:8px;
align-items:center;height:24px}
.scores .name{text-align:right;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.scores .track{position:relative;height:100%;background:linear-gradient(to right,
transparent var(--zone),rgba(164,35,27,.06) var(--zone))}
.scores .track::before{content:"";position:absolute;left:var(--zero);top:0;bottom:0;
border-left:1px solid #9aa2ae}
.has-threshold .track::after{content:"";position:absolute;left:var(--zone);top:0;bottom:0;
border-left:1.5px dashed #a4231b}
.scores .bar{position:absolute;top:5px;bottom:5px;background:#aeb7c4;border-radius:2px;
min-width:1px}
.scores .top .bar{background:#5d6675} .scores .top.match .bar{background:#1d4fa8}
.scores .top .name,.scores .top .value{font-weight:700}
.scores .value{color:#555d6b;font-variant-numeric:tabular-nums}
.scores .head{height:20px} .scores .head .track{background:none}
.scores .head .track::before,.scores .head .track::after{display:none}
.thr-label{position:absolute;bottom:3px;transform:translateX(-50%);white-space:nowrap;
color:#a4231b;font-size:11px;font-weight:600} .thr-label.end{transform:translateX(-100%)}
.chart-note{color:#555d6b;font-size:.9em;margin:.3em 0}
@media (max-width:600px){body{margin:1em auto} th{width:auto}
.facts th,.facts td{display:block;border:0;padding:.1em 0} .facts td{padding-bottom:.5em;
border-bottom:1px solid #d7dbe1} .scores .row{grid-template-columns:minmax(3em,7em) 1fr 3em}}
"""


def html_report(
    result: dict[str, Any],
    leak: np.ndarray | None,
    original: np.ndarray | None,
    geometry: Geometry | None = None,
) -> str:
    """A self-contained HTML evidence page for one trace result (a photo's or a video's:
    ``leak`` and ``original`` are then frames, the leak's and the original's it shows)."""
    e = html.escape
    media = result.get("media") or {}
    leak_info = result["leak"]
    video = result.get("video")
    matched = result["verdict"] == "match"
    size = f"{leak_info['width']}×{leak_info['height']}"
    if "duration" in leak_info:
        size += f", {leak_info['duration']:g} s at {leak_info.get('fps', 0):g} fps"
    rows = [
        ("Leaked file", f"{e(leak_info['name'])} ({size})"),
        ("Leaked file SHA-256", f"<code>{e(leak_info['sha256'])}</code>"),
        (
            "Matched original",
            e(media.get("name", "none"))
            + (f" — SHA-256 <code>{e(media['sha256'])}</code>" if media else ""),
        ),
    ]
    if video and media:
        shift = video["offset"]
        where = f"{clock(video['start'])}–{clock(video['end'])} of {e(media['name'])}" + (
            f" (the leak's 0:00.0 is the original's {clock(shift)})"
            if shift > 0
            else f" (the leak starts {clock(-shift)} before the original)"
            if shift < 0
            else ""
        )
        rows.append(("Matched time range", where))
    named = result.get("person") if matched else None
    accused = (result.get("accused") or []) if matched else []
    if named and len(accused) <= 1:
        rows.append(("Accused recipient", e(who(named))))
    own = result["verdict"] == "original"  # nothing was tested
    rows.append(("Verdict", f"<strong>{e(result['message'])}</strong>"))
    if not own:
        rows.append(
            (
                "False-accusation probability",
                f"{_p_text(result)}; threshold {result['threshold']:g}",
            )
        )
    if len(accused) > 1:  # the leak combines several recipients' copies
        each = "".join(f"<li>{e(who(a))}: {_p_text(a)}</li>" for a in accused)
        rows.append(
            (
                "Accused (each with their own probability)",
                f"The evidence points to {len(accused)} recipients: their copies were combined."
                f"<ul>{each}</ul>",
            )
        )
    if result.get("mode"):
        rows.append(("Detection mode", e(_DETECTION.get(result["mode"], result["mode"]))))
    rows += [
        ("Software", f"leaktrace {e(result['version'])}"),
        ("Time (UTC)", e(result["time"])),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    if len(accused) > 1:
        title = f"Leaked by {len(accused)} recipients together"
        detail = e("; ".join(who(a) for a in accused))
    elif matched:
        title = f"Leaked by {result.get('recipient')}"
        detail = (
            e(", ".join(filter(None, [named.get("name"), named.get("email")]))) if named else ""
        )
        detail += ("; " if detail else "") + f"false-accusation probability {_p_text(result)}"
    elif result["verdict"] == "original":
        title, detail = (
            "Your unmarked original",
            e(result["message"][:1].upper() + result["message"][1:]),
        )
    else:
        title, detail = "No confident match", "Nobody is named."
    registration = ""
    if geometry is not None and original is not None and leak is not None:
        evidence = result.get("evidence_coverage")
        counted = (
            f"the pixels inside it that really show the original — {evidence:.0%} of the "
            "picture, without bars, borders or neighbours — are the only evidence counted."
            if isinstance(evidence, int | float)
            else "only the pixels inside it are counted as evidence."
        )
        overlay = _thumbnail(registration_overlay(leak, original, geometry), 900)
        registration = (
            f'<h2>Registration</h2><figure class="overlay">{overlay}<figcaption>The leak'
            f"{'’s frame' if video else ''} warped back onto the original"
            f"{' (it was mirrored)' if geometry.flipped else ''}, its frame outlined "
            f"in red, the rest of the original dimmed; {geometry.inliers} matching features. "
            f"The frame spans {geometry.coverage:.0%} of the picture; {counted}"
            "</figcaption></figure>"
        )
    explain = (
        "Each recipient's false-accusation probability is the chance that any innocent "
        "recipient — whose secret codeword is independent of this file — would score as high: "
        "a Chernoff bound with the exact distribution of an innocent's symbols under the code "
        "their copy was made with, multiplied by the number of candidates and of originals "
        "tried. It holds whatever the picture and whatever was done to it, including when "
        "several recipients combined their copies; everyone under the threshold is named."
    )
    if video or "duration" in leak_info:
        pictures = (
            _video_section(result, leak, original)
            if media and video
            else (
                f'<h2>Leak</h2><div class="pair"><figure>{_thumbnail(leak)}<figcaption>'
                "Leaked file, first frame</figcaption></figure></div>"
            )
        )
    else:
        pictures = (
            f'<h2>Leak and original</h2><div class="pair"><figure>{_thumbnail(leak)}'
            "<figcaption>Leaked file</figcaption></figure>"
            f"<figure>{_thumbnail(original)}<figcaption>Registered original</figcaption>"
            "</figure></div>"
        )
    scores = (
        "<p>Nothing was tested: the file is the registered original itself.</p>"
        if own
        else "<h2>Candidate scores</h2>"
        + chart(
            result.get("candidates", []),
            result.get("match_score"),
            matched,
            tested=result.get("candidates_tested"),
        )
        + f"<p>{explain}</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leaktrace evidence — {e(leak_info["name"])}</title>
<style>
{CSS}</style></head><body>
<h1>leaktrace evidence report</h1>
<div class="verdict {"verdict-match" if matched else "verdict-nomatch"}">
<p class="verdict-title">{e(title)}</p><p class="verdict-detail">{detail}</p></div>
<table class="facts">{table}</table>
{scores}
{pictures}
{registration}
<h2>Settings</h2>
{settings_table(result.get("settings") or {})}
</body></html>
"""
