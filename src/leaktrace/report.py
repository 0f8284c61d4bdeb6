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

__all__ = ["clock", "html_report", "json_report", "registration_overlay"]


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


def _chart(candidates: list[dict[str, Any]], threshold_z: float | None) -> str:
    """SVG: one bar per candidate (best first, at most 60 shown) and the threshold line."""
    if not candidates:
        return "<p>No candidates were tested.</p>"
    shown = candidates[:60]
    scores = [c["score"] for c in candidates]
    top = max(max(scores), threshold_z or 0, 1.0) * 1.1
    low = min(min(scores), 0.0) * 1.1
    width, height, pad = 900, 320, 40
    bar = (width - 2 * pad) / len(shown)

    def y(v: float) -> float:
        return pad + (top - v) / (top - low) * (height - 2 * pad)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="candidate scores">',
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#888"/>',
    ]
    for i, c in enumerate(shown):
        v = c["score"]
        colour = "#c0392b" if threshold_z is not None and v >= threshold_z else "#5b7fa6"
        x = pad + i * bar
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{min(y(v), y(0)):.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{abs(y(0) - y(v)):.1f}" fill="{colour}"><title>'
            f"{html.escape(c['handle'])}: z = {v:.2f}</title></rect>"
        )
        if i == 0 or len(shown) <= 24:  # name the bars when they fit
            mid = x + bar / 2
            # The value beyond the bar's end, the name on the other side of the zero line.
            value_y, name_y = (y(v) - 4, y(0) + 14) if v >= 0 else (y(v) + 14, y(0) - 4)
            parts.append(
                f'<text x="{mid:.1f}" y="{value_y:.1f}" font-size="11" '
                f'text-anchor="middle">{v:.1f}</text>'
            )
            parts.append(
                f'<text x="{mid:.1f}" y="{name_y:.1f}" font-size="11" '
                f'text-anchor="middle">{html.escape(c["handle"][:14])}</text>'
            )
    if threshold_z is not None:
        parts.append(
            f'<line x1="{pad}" x2="{width - pad}" y1="{y(threshold_z):.1f}" '
            f'y2="{y(threshold_z):.1f}" stroke="#c0392b" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{width - pad}" y="{y(threshold_z) - 6:.1f}" text-anchor="end" '
            f'fill="#c0392b">match threshold z = {threshold_z:.2f}</text>'
        )
    parts.append(
        f'<text x="{pad}" y="{height - 10}" fill="#555">{len(shown)} of '
        f"{len(candidates)} candidates, best first (score z; innocent scores are "
        "about standard normal)</text></svg>"
    )
    return "".join(parts)


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


def _settings_table(settings: dict[str, Any]) -> str:
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
    middle of the matched range, as the trace picked them."""
    video = result.get("video")
    if not video:
        return None
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


def _video_section(result: dict[str, Any], leak: np.ndarray, original: np.ndarray | None) -> str:
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
{int(video.get("frames_read") or 0)} frames of the leak.</p>
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


def html_report(
    result: dict[str, Any],
    leak: np.ndarray,
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
    rows += [
        ("Verdict", f"<strong>{e(result['message'])}</strong>"),
        (
            "False-accusation probability",
            f"{_p_text(result)}; threshold {result['threshold']:g}",
        ),
    ]
    accused = result.get("accused") or []
    if len(accused) > 1:  # the leak combines several recipients' copies
        each = "".join(f"<li>{e(a['handle'])}: {_p_text(a)}</li>" for a in accused)
        rows.append(
            (
                "Accused (each with their own probability)",
                f"The evidence points to {len(accused)} recipients: their copies were combined."
                f"<ul>{each}</ul>",
            )
        )
    rows += [
        ("Detection mode", e(str(result.get("mode")))),
        ("Software", f"leaktrace {e(result['version'])}"),
        ("Time (UTC)", e(result["time"])),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    tint, edge = ("#fdecea", "#c0392b") if matched else ("#eef2f6", "#99a")
    registration = ""
    if geometry is not None and original is not None:
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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>leaktrace evidence — {e(leak_info["name"])}</title>
<style>
body{{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222;padding:0 1em}}
h1{{font-size:1.5em}} .verdict{{padding:.8em 1em;border-radius:6px;font-size:1.15em;
background:{tint};border:1px solid {edge}}}
table{{border-collapse:collapse;width:100%;margin:1em 0}} th,td{{text-align:left;
vertical-align:top;padding:.35em .6em;border-bottom:1px solid #ddd}} th{{width:14em;color:#555}}
table.settings{{font-size:.92em}} table.settings th{{font-weight:500}}
code{{font-size:.85em;word-break:break-all}} .pair{{display:flex;gap:1em}}
.pair figure{{flex:1;margin:0}} .pair img{{max-width:100%;border:1px solid #ccc}}
.frames img{{width:100%}} .overlay{{margin:0}}
svg{{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}}
.missing{{padding:2em;color:#888;border:1px dashed #ccc}}
</style></head><body>
<h1>leaktrace evidence report</h1>
<p class="verdict">{e(result["message"])}</p>
<table>{table}</table>
<h2>Candidate scores</h2>
{_chart(result.get("candidates", []), result.get("match_score"))}
<p>{explain}</p>
{pictures}
{registration}
<h2>Settings</h2>
{_settings_table(result.get("settings") or {})}
</body></html>
"""
