"""Cheap exposure/contrast checks that run before the feature-bank comparison.

Each check is named, has one threshold and one score, and maps to a Verdict reason code.
All statistics come from one 256-bin histogram per image, so the checks cost about the
same as reading the pixels once.

Calibration (see `syncxr.qc.filter.evaluate_filter` and the QC report): the thresholds sit
outside the range of the 48 real NIH reference radiographs (256², mean 88-193, p5-p95 spread
>= 90, up to 22% of pixels in the black border at <= 2 and none saturated) and of clean phantom
renders, with margin, so both pass with a 0% false-reject rate; what they catch are blank,
badly clipped and grossly mis-exposed images. Subtler defects are left to the bank comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syncxr.errors import UserError
from syncxr.records import Verdict


@dataclass(frozen=True)
class HeuristicThresholds:
    """Reject when the score crosses the threshold in the direction named by the field."""

    blank_max_std: float = 3.0  # pixel std (0-255) at or below: blank / near-constant
    clipped_max_frac: float = 0.35  # fraction of pixels at exactly 0 or 255 above: clipped
    dark_max_mean: float = 45.0  # mean intensity below: too dark
    bright_min_mean: float = 215.0  # mean intensity above: too bright
    contrast_min_spread: float = 40.0  # p95 - p5 below: low contrast


DEFAULT_THRESHOLDS = HeuristicThresholds()

# Order matters: the first failing check names the reason (a blank image is also low-contrast).
HEURISTIC_REASONS = ("qc_blank", "qc_clipped", "qc_too_dark", "qc_too_bright", "qc_low_contrast")


def _validate(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8 or image.size == 0:
        got = f"shape {getattr(image, 'shape', None)} dtype {getattr(image, 'dtype', type(image).__name__)}"
        raise UserError(
            f"image QC expects a non-empty (H, W) uint8 grayscale array, got {got}; "
            "read files with syncxr.imread.read_gray(path)"
        )


def _percentile(cdf: np.ndarray, q: float) -> float:
    """Smallest intensity whose cumulative fraction reaches q (cdf: (256,) in [0, 1])."""
    return float(np.searchsorted(cdf, q, side="left"))


def heuristic_scores(image: np.ndarray) -> dict[str, float]:
    """The scores every check reads: std, clipped fraction, mean and p5-p95 spread (0-255 scale)."""
    _validate(image)
    hist = np.bincount(image.ravel(), minlength=256).astype(np.float64)  # (256,)
    p = hist / hist.sum()
    levels = np.arange(256, dtype=np.float64)
    mean = float((p * levels).sum())
    std = float(np.sqrt(max((p * (levels - mean) ** 2).sum(), 0.0)))
    cdf = np.cumsum(p)
    return {
        "h_std": std,
        "h_clipped_frac": float(p[0] + p[255]),
        "h_mean": mean,
        "h_contrast": _percentile(cdf, 0.95) - _percentile(cdf, 0.05),
    }


def _failures(scores: dict[str, float], t: HeuristicThresholds) -> list[tuple[str, str]]:
    """(reason, detail) of every failing check, in HEURISTIC_REASONS order."""
    checks = [
        ("qc_blank", scores["h_std"] <= t.blank_max_std, f"pixel std {scores['h_std']:.1f} <= {t.blank_max_std}"),
        (
            "qc_clipped",
            scores["h_clipped_frac"] > t.clipped_max_frac,
            f"{scores['h_clipped_frac']:.0%} of pixels at 0 or 255 > {t.clipped_max_frac:.0%}",
        ),
        ("qc_too_dark", scores["h_mean"] < t.dark_max_mean, f"mean {scores['h_mean']:.1f} < {t.dark_max_mean}"),
        (
            "qc_too_bright",
            scores["h_mean"] > t.bright_min_mean,
            f"mean {scores['h_mean']:.1f} > {t.bright_min_mean}",
        ),
        (
            "qc_low_contrast",
            scores["h_contrast"] < t.contrast_min_spread,
            f"p95-p5 spread {scores['h_contrast']:.0f} < {t.contrast_min_spread}",
        ),
    ]
    return [(reason, detail) for reason, failed, detail in checks if failed]


def check_heuristics(image: np.ndarray, thresholds: HeuristicThresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """Run every check; the first failure (in HEURISTIC_REASONS order) names the reason."""
    scores = heuristic_scores(image)
    failures = _failures(scores, thresholds)
    if not failures:
        return Verdict(True, scores=scores)
    reason, detail = failures[0]
    others = [r for r, _ in failures[1:]]
    if others:
        detail += f" (also: {', '.join(others)})"
    return Verdict(False, reason, detail, scores)
