"""Evidence reports: the JSON result of a trace, and a self-contained HTML page to forward.

The page holds everything inline (no scripts, no external files): the leak's hash, the matched
original, the verdict and p-value, an SVG chart of every candidate's score against the match
threshold, the leak beside the original, the settings, the software version and the time.
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

__all__ = ["html_report", "json_report", "registration_overlay"]


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
            parts.append(
                f'<text x="{mid:.1f}" y="{min(y(v), y(0)) - 4:.1f}" font-size="11" '
                f'text-anchor="middle">{v:.1f}</text>'
            )
            parts.append(
                f'<text x="{mid:.1f}" y="{y(0) + 14:.1f}" font-size="11" '
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
    """A self-contained HTML evidence page for one trace result."""
    e = html.escape
    media = result.get("media") or {}
    matched = result["verdict"] == "match"
    rows = [
        (
            "Leaked file",
            f"{e(result['leak']['name'])} ({result['leak']['width']}×{result['leak']['height']})",
        ),
        ("Leaked file SHA-256", f"<code>{e(result['leak']['sha256'])}</code>"),
        (
            "Matched original",
            e(media.get("name", "none"))
            + (f" — SHA-256 <code>{e(media['sha256'])}</code>" if media else ""),
        ),
        ("Verdict", f"<strong>{e(result['message'])}</strong>"),
        (
            "False-accusation probability",
            f"{result['p_value']:.3g} (log10 = {result['log10_p_value']:.1f}); "
            f"threshold {result['threshold']:g}",
        ),
        ("Detection mode", e(str(result.get("mode")))),
        ("Settings", "<code>" + e(json.dumps(result["settings"])) + "</code>"),
        ("Software", f"leaktrace {e(result['version'])}"),
        ("Time (UTC)", e(result["time"])),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    tint, edge = ("#fdecea", "#c0392b") if matched else ("#eef2f6", "#99a")
    registration = ""
    if geometry is not None and original is not None:
        evidence = result.get("evidence_coverage") or 0.0
        overlay = _thumbnail(registration_overlay(leak, original, geometry), 900)
        registration = (
            f"<h2>Registration</h2><figure>{overlay}<figcaption>The leak warped back onto the "
            f"original{' (it was mirrored)' if geometry.flipped else ''}, its frame outlined "
            f"in red, the rest of the original dimmed; {geometry.inliers} matching features. "
            f"The frame spans {geometry.coverage:.0%} of the picture; the pixels inside it that "
            f"really show the original — {evidence:.0%} of the picture, without bars, borders "
            "or neighbours — are the only evidence counted.</figcaption></figure>"
        )
    explain = (
        "The false-accusation probability is the chance that any innocent recipient — whose "
        "secret codeword is independent of this file — would score as high as the best "
        "candidate, bounded by Hoeffding's inequality and multiplied by the number of "
        "candidates and originals tried. It holds whatever the picture and whatever was done "
        "to it."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>leaktrace evidence — {e(result["leak"]["name"])}</title>
<style>
body{{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222;padding:0 1em}}
h1{{font-size:1.5em}} .verdict{{padding:.8em 1em;border-radius:6px;font-size:1.15em;
background:{tint};border:1px solid {edge}}}
table{{border-collapse:collapse;width:100%;margin:1em 0}} th,td{{text-align:left;
vertical-align:top;padding:.35em .6em;border-bottom:1px solid #ddd}} th{{width:14em;color:#555}}
code{{font-size:.85em;word-break:break-all}} .pair{{display:flex;gap:1em}}
.pair figure{{flex:1;margin:0}} .pair img{{max-width:100%;border:1px solid #ccc}}
svg{{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}}
.missing{{padding:2em;color:#888;border:1px dashed #ccc}}
</style></head><body>
<h1>leaktrace evidence report</h1>
<p class="verdict">{e(result["message"])}</p>
<table>{table}</table>
<h2>Candidate scores</h2>
{_chart(result.get("candidates", []), result.get("match_score"))}
<p>{explain}</p>
<h2>Leak and original</h2>
<div class="pair"><figure>{_thumbnail(leak)}<figcaption>Leaked file</figcaption></figure>
<figure>{_thumbnail(original)}<figcaption>Registered original</figcaption></figure></div>
{registration}
</body></html>
"""
