"""Shared helpers for the benchmark scripts (corpus paths, quality metrics, tables)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("LEAKTRACE_CORPUS", ROOT.parent / "shared" / "corpus"))
KODAK = sorted((CORPUS / "kodak").glob("kodim*.png"))
HIGHRES = sorted((CORPUS / "highres").glob("*.jpg"))


def require_corpus() -> None:
    """Exit with a one-line message when the shared corpus is not where it is expected."""
    if not KODAK or not HIGHRES:
        raise SystemExit(
            f"no media corpus at {CORPUS}: the benchmarks read the shared corpus "
            "(default ../shared/corpus beside this checkout, or LEAKTRACE_CORPUS=/path/to/corpus)"
        )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
