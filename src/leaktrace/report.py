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

import numpy as np
from PIL import Image

__all__ = ["html_report", "json_report"]


def json_report(result: dict[str, Any]) -> str:
    """The trace result as indented JSON."""
    return json.dumps(result, indent=2, sort_keys=False)


def _thumbnail(pixels: np.ndarray | None, side: int = 560) -> str:
    if pixels is None:
        return '<div class="missing">not available</div>'
    img = Image.fromarray(pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8))
    img = img.convert("RGB")
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


def html_report(result: dict[str, Any], leak: np.ndarray, original: np.ndarray | None) -> str:
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
</body></html>
"""
