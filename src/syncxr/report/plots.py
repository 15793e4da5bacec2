"""Card and study plots, returned as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections import Counter
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def entity_distribution(before: dict[str, int] | None, after: dict[str, int]) -> bytes:
    """Per-entity counts, sorted by the 'before' (reference) frequency, log scale."""
    keys = sorted(set(after) | set(before or {}), key=lambda k: (-(before or after).get(k, 0), k))
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(12, 4))
    if before:
        b = np.array([before.get(k, 0) for k in keys], dtype=float)
        ax.bar(x, np.where(b > 0, b, np.nan), width=1.0, alpha=0.5, label="reference corpus (before)")
    a = np.array([after.get(k, 0) for k in keys], dtype=float)
    ax.plot(x, np.where(a > 0, a, np.nan), "o", ms=2.5, color="C3", label="synthetic (after balancing)")
    ax.set_yscale("log")
    ax.set_xlabel(f"entity (name|type), {len(keys)} in all, sorted by reference frequency")
    ax.set_ylabel("count (log)")
    ax.set_xticks([])
    ax.legend()
    ax.set_title("Entity distribution before vs after balancing")
    return _png(fig)


def label_frequencies(counts: dict[str, Counter], labels: Sequence[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(10, 4))
    y = np.arange(len(labels))
    left = np.zeros(len(labels))
    for kind, color in (("positive", "C3"), ("uncertain", "C1"), ("negative", "C0")):
        v = np.array([counts[lab][kind] for lab in labels], dtype=float)
        ax.barh(y, v, left=left, color=color, label=kind)
        left += v
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("samples")
    ax.legend()
    ax.set_title("CheXpert-14 labels")
    return _png(fig)


def cooccurrence(cooc: np.ndarray, labels: Sequence[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(np.log1p(cooc), cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    fig.colorbar(im, ax=ax, label="log(1 + co-occurring positives)")
    ax.set_title("Co-occurrence of positive labels")
    return _png(fig)


def outcomes(write_attempts: Counter, image_attempts: Counter, bank_sims: list[float], manifest: dict) -> bytes:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, c, title in ((axes[0], write_attempts, "report writes per accepted sample"),
                         (axes[1], image_attempts, "image draws per accepted sample")):
        ks = sorted(c)
        ax.bar([str(k) for k in ks], [c[k] for k in ks])
        ax.set_title(title)
    rej = manifest.get("rejects_by_reason") or {}
    if bank_sims:
        axes[2].hist(bank_sims, bins=40)
        thr = (manifest.get("config", {}).get("qc") or {}).get("threshold")
        if thr is None:  # the filter's calibrated default
            from syncxr.qc.filter import DEFAULT_THRESHOLD as thr
        if thr:
            axes[2].axvline(thr, color="C3", ls="--", label=f"threshold {thr}")
            axes[2].legend()
        axes[2].set_title("max cosine similarity to the problem bank")
    else:
        axes[2].text(0.5, 0.5, "no bank scores", ha="center")
    axes[0].set_xlabel(f"rejected samples: {sum(rej.values())} (see the table)")
    fig.tight_layout()
    return _png(fig)


def sample_grid(items: list[tuple[bytes, str, list[tuple[str, bytes]]]], cols: int = 4) -> bytes:
    """Images with their IMPRESSION (wrapped) and mask outlines in colour."""
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.4, rows * 4.1))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, (png, impression, masks) in zip(np.atleast_1d(axes).ravel(), items):
        img = np.array(Image.open(io.BytesIO(png)).convert("L"))
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        for i, (name, mpng) in enumerate(masks):
            m = np.array(Image.open(io.BytesIO(mpng))) > 0
            if m.any():
                ax.contour(m, levels=[0.5], colors=[f"C{i % 10}"], linewidths=0.8)
        ax.set_title(_wrap(impression, 44), fontsize=6.5, loc="left")
    fig.tight_layout()
    return _png(fig)


def _wrap(text: str, width: int, max_lines: int = 5) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " …"
    return "\n".join(lines)
