"""The evidence report: what a reader needs is on the page, in words, for photos and videos."""

from __future__ import annotations

import re

import numpy as np
import pytest

from leaktrace.report import clock, html_report

FRAME = (np.arange(144 * 256) % 251).astype(np.uint8).reshape(144, 256)


def _photo_result(**changes):
    result = {
        "verdict": "match",
        "recipient": "bob",
        "p_value": 3e-21,
        "log10_p_value": -20.5,
        "mode": "informed",
        "media": {"id": 1, "name": "kodim05.png", "sha256": "a" * 64},
        "candidates": [{"handle": "bob", "score": 12.0}, {"handle": "ann", "score": 0.3}],
        "match_score": 7.4,
        "message": "leaked by bob (media: kodim05.png, false-accusation probability 3e-21)",
        "leak": {"name": "leak.jpg", "sha256": "b" * 64, "width": 768, "height": 512},
        "threshold": 1e-9,
        "settings": {
            "code_length": 512,
            "format_version": 1,
            "wavelet": "db4",
            "marked_levels": [2, 3],
            "working_side": 512,
            "null_model": "Hoeffding bound exp(-z^2/2)",
        },
        "version": "0.1.0",
        "time": "2026-01-01T00:00:00+00:00",
    }
    result.update(changes)
    return result


def _video_result(soft=None, **video):
    segments = list(range(24, 36))
    block = {
        "start": 12.0,
        "end": 18.0,
        "offset": 12.0,
        "frames_read": 48,
        "segments_present": len(segments),
        "segments_total": 240,
        "segment_seconds": 0.5,
        "segments": segments,
        "soft_symbols": [] if soft is None else soft,
        **video,
    }
    mode = "variants" if soft else "recipient"
    return _photo_result(
        media={"id": 2, "name": "clip.mp4", "sha256": "c" * 64, "kind": "video"},
        match_score=None,
        message="leaked by bob (0:12.0–0:18.0 of clip.mp4, false-accusation probability 2e-10)",
        p_value=2e-10,
        log10_p_value=-9.7,
        leak={
            "name": "cut.mp4",
            "sha256": "d" * 64,
            "width": 256,
            "height": 144,
            "duration": 6.0,
            "fps": 25.0,
        },
        video=block,
        settings={
            "code": "random-v1",
            "segment_seconds": 0.5,
            "mode": mode,
            "variants": 2 if soft else 0,
            "encoder": "libx264 crf 20 preset veryfast",
            "strength": 1.0,
            "null_model": "Chernoff bound",
        },
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00.0"), (4, "0:04.0"), (59.96, "1:00.0"), (72.04, "1:12.0")]
)
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_a_photos_settings_are_a_table_in_words():
    page = html_report(_photo_result(), FRAME, FRAME)
    assert "<th>Code length (symbols)</th><td>512</td>" in page
    assert "<th>Marked wavelet levels</th><td>2, 3</td>" in page
    assert "{&quot;" not in page and '{"' not in page  # no raw JSON
    assert "3e-21 (log10 = -20.5)" in page
    assert "Evidence over time" not in page and "Matched time range" not in page


def test_a_videos_report_gives_the_range_the_frames_and_each_segment():
    soft = [1.0, -1.0, 0.4, -0.2, 1.0, 1.0, -1.0, 0.9, 0.0, -0.5, 1.0, 0.7]
    page = html_report(_video_result(soft), FRAME, FRAME)
    assert "<th>Matched time range</th>" in page
    assert "0:12.0–0:18.0 of clip.mp4 (the leak's 0:00.0 is the original's 0:12.0)" in page
    assert "cut.mp4 (256×144, 6 s at 25 fps)" in page
    assert "Leaked file at 0:03.0" in page and "Original at 0:15.0" in page
    chart = page[page.index("<h2>Evidence over time</h2>") :]
    chart = chart[: chart.index("</svg>")]
    bars = re.findall(r"<title>segment (\d+) \(([\d:.]+)–[\d:.]+\): ([+-][\d.]+)</title>", chart)
    assert [int(s) for s, _, _ in bars] == list(range(24, 36))
    assert bars[0][1:] == ("0:12.0", "+1.00") and bars[3][1:] == ("0:13.5", "-0.20")
    assert "12 of 240 segments of\n0.5 s were read, from\n48 frames" in page
    assert "<th>Marking</th><td>variants: two marked encodes" in page
    assert page.count("data:image/jpeg;base64,") == 2


def test_a_clip_marked_per_recipient_shows_the_segments_read():
    page = html_report(_video_result(), FRAME, FRAME)
    assert "marked per recipient" in page
    assert page.count(") read</title>") == 12
    assert "<th>Variants</th><td>none (each copy is encoded on its own)</td>" in page


def test_agreement_colours_each_segment_when_given():
    agreement = [1.0] * 10 + [-0.5, 0.3]
    page = html_report(_video_result([0.5] * 12, agreement=agreement), FRAME, FRAME)
    assert page.count('fill="#c0392b"><title>segment') == 1
    assert page.count('fill="#1d4fa8"><title>segment') == 11


def test_a_video_that_matches_nothing_and_a_tiny_p_value():
    nothing = _video_result()
    nothing.update(media=None, verdict="no_match", candidates=[], message="no confident match")
    nothing.pop("video")
    page = html_report(nothing, FRAME, None)
    assert "Leaked file, first frame" in page and "Evidence over time" not in page
    tiny = html_report(_photo_result(p_value=0.0, log10_p_value=-400.0), FRAME, FRAME)
    assert "10<sup>-400.0</sup>" in tiny


def _rows(page):
    """The score chart's rows: (label, score) each, top to bottom."""
    return re.findall(
        r'<span class="name" title="[^"]*">([^<]*)</span>.*?<span class="value">([-\d.]+)</span>',
        page,
    )


def test_a_match_names_the_person_and_the_chart_labels_each_bar():
    person = {"handle": "bob", "name": "Bob Brown", "email": "bob@example.com"}
    many = [{"handle": "bob", "score": 12.0}] + [
        {"handle": f"r{i:03d}", "score": round(1.5 - i / 50, 2)} for i in range(99)
    ]
    page = html_report(_photo_result(person=person, candidates=many), FRAME, FRAME)
    assert '<p class="verdict-title">Leaked by bob</p>' in page
    assert "Bob Brown, bob@example.com; false-accusation probability" in page
    assert "<th>Accused recipient</th><td>bob — Bob Brown &lt;bob@example.com&gt;</td>" in page
    assert "<th>Detection mode</th><td>informed: the leak registered onto its original" in page
    rows = _rows(page)
    assert len(rows) == 30 and rows[0] == ("bob", "12.00") and rows[1] == ("r000", "1.50")
    assert "…and 70 more, scoring -0.46 to 0.92." in page
    assert "match threshold z = 7.40" in page and '<div class="row top match">' in page


def test_a_no_match_names_nobody_and_shows_no_empty_mode():
    anonymous = [{"score": 2.1}, {"score": 0.4}, {"score": -0.3}]
    result = _photo_result(
        verdict="no_match",
        recipient=None,
        person=None,
        p_value=1.0,
        log10_p_value=0.0,
        candidates=anonymous,
        message="no confident match (media: kodim05.png): nobody is named",
    )
    page = html_report(result, FRAME, FRAME)
    assert '<p class="verdict-title">No confident match</p>' in page
    assert [label for label, _ in _rows(page)] == ["#1", "#2", "#3"]
    assert "Accused recipient" not in page and "bob" not in page
    nothing = html_report({**result, "mode": None, "candidates": []}, FRAME, None)
    assert "Detection mode" not in nothing and "None" not in nothing


def test_an_unmarked_original_is_said_so_and_nothing_is_scored():
    result = _photo_result(
        verdict="original",
        recipient=None,
        mode=None,
        candidates=[],
        match_score=None,
        message="this is your unmarked original kodim05.png (registered 2026-01-01; the same "
        "bytes): it carries no mark and names nobody",
    )
    page = html_report(result, FRAME, FRAME)
    assert '<p class="verdict-title">Your unmarked original</p>' in page
    assert "This is your unmarked original kodim05.png" in page
    assert "Candidate scores" not in page and "False-accusation probability" not in page
