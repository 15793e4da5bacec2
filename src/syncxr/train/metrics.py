"""Retrieval recall and the metrics log (CSV always; TensorBoard when installed)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from syncxr.fsio import atomic_path

log = logging.getLogger(__name__)

BASE_FIELDS = ("step", "epoch", "phase", "loss", "lr", "grad_norm", "samples_per_s")
VAL_FIELDS = ("val_loss", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


@torch.no_grad()
def retrieval_recall(
    img: torch.Tensor, txt: torch.Tensor, texts: Sequence[str], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """img, txt: (N, D) embeddings of N pairs. A hit is any retrieved item whose report text equals
    the query's (synthetic corpora repeat reports verbatim; exact-index recall would punish a
    model for not telling identical texts apart)."""
    sim = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).t()  # (N, N)
    ids = {t: k for k, t in enumerate(dict.fromkeys(texts))}
    tid = torch.tensor([ids[t] for t in texts])
    same = tid[:, None] == tid[None, :]  # (N, N): item j is a correct answer for query i
    out: dict[str, float] = {}
    for name, s in (("i2t", sim), ("t2i", sim.t())):
        order = s.argsort(dim=1, descending=True)  # (N, N) ranked candidates per query
        hits = torch.gather(same, 1, order)
        for k in ks:
            out[f"{name}_r{k}"] = hits[:, : min(k, len(texts))].any(dim=1).float().mean().item()
    return out


def chance_recall(texts: Sequence[str], k: int = 1) -> float:
    """Expected recall@k of a random ranking under the same text-equivalence rule."""
    from collections import Counter

    n = len(texts)
    counts = Counter(texts)
    total = 0.0
    for t in texts:
        m = counts[t]  # correct items among n; P(no correct in k random draws w/o replacement)
        miss = 1.0
        for j in range(min(k, n)):
            miss *= max(n - m - j, 0) / (n - j)
        total += 1.0 - miss
    return total / n


class MetricsLog:
    """Append rows to <out>/metrics.csv with a fixed header (+ objective keys); rank 0 only."""

    def __init__(self, path: Path, extra_fields: Sequence[str], enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *extra_fields, *VAL_FIELDS]))
        self._tb = None
        if not enabled:
            return
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(path.parent / "tb"))
        except ImportError:
            log.debug("tensorboard not installed; metrics go to %s only", path)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.exists():
            return
        rows = [r for r in read_metrics(self.path) if int(r["step"]) <= step]
        # Atomic: a resume killed while rewriting must not leave a cut log.
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in self.fields}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(clean)
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self._tb.add_scalar(f"{row.get('phase', 'train')}/{k}", v, row["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
