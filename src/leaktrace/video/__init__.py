"""Video: segments and variants, remux, temporal alignment and detection.

A video is marked once per symbol, not once per recipient (:mod:`.variants`); a recipient's
copy is the variants their codeword picks, remuxed without decoding (:mod:`.remux`); a leak is
placed in time and space and read segment by segment (:mod:`.detect`). Files are read through
:mod:`.io`; :mod:`.attacks` simulates what leakers do to videos, for benchmarks and tests.
"""

from .detect import VideoDetection, detect_video, leak_timeline, locate
from .io import SUFFIXES, VideoInfo, inspect_video, is_video
from .remux import copy_suffix, remux
from .variants import FORMAT, SEGMENT_SECONDS, VARIANTS, Plan, Settings, make_variants

__all__ = [
    "FORMAT",
    "SEGMENT_SECONDS",
    "SUFFIXES",
    "VARIANTS",
    "Plan",
    "Settings",
    "VideoDetection",
    "VideoInfo",
    "copy_suffix",
    "detect_video",
    "inspect_video",
    "is_video",
    "leak_timeline",
    "locate",
    "make_variants",
    "remux",
]
