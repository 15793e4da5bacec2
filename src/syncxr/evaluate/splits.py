"""Fixed, seeded, saved train/val/test splits with nested label fractions (1% within 10% within 100%).

The file stores the shuffled training pool; the training set of a fraction f is its first
ceil(f * len(pool)) rows, so every fraction can be rebuilt from the file and smaller fractions
are subsets of larger ones. When the dataset's meta has a `split` column with both training rows
(train / train_val) and test rows, that official split is kept and only the training pool is
shuffled; otherwise patients are split at random (seeded), whole patients to one part.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from syncxr.errors import UserError
from syncxr.evaluate.results import atomic_write_text

_TRAIN_NAMES = {"train", "train_val", "trainval"}
_VAL_NAMES = {"val", "valid", "validation", "dev", "validate"}


def _official(meta: Any) -> Optional[dict[str, np.ndarray]]:
    if meta is None or "split" not in getattr(meta, "columns", []):
        return None
    s = meta["split"].astype(str).str.lower().to_numpy()
    parts = {"train": np.flatnonzero(np.isin(s, list(_TRAIN_NAMES))), "val": np.flatnonzero(np.isin(s, list(_VAL_NAMES))),
             "test": np.flatnonzero(s == "test")}
    return parts if len(parts["train"]) and len(parts["test"]) else None


def _random_by_patient(n: int, rng: np.random.Generator, test_frac: float, val_frac: float,
                       meta: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test, val, pool): whole patients go to one part (no patient leaks across), else single images."""
    if meta is not None and "patient_id" in getattr(meta, "columns", []):
        patients = meta["patient_id"].astype(str).to_numpy()
    else:
        patients = np.arange(n).astype(str)
    uniq = rng.permutation(np.unique(patients))
    rank = {p: r for r, p in enumerate(uniq)}
    # Order images by their patient's shuffled rank (then shuffled within), and cut by image counts.
    order = np.lexsort((rng.random(n), np.array([rank[p] for p in patients])))
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    cut_patients = patients[order]
    # Move each cut forward to a patient boundary.
    def boundary(k: int) -> int:
        while 0 < k < n and cut_patients[k] == cut_patients[k - 1]:
            k += 1
        return k
    a = boundary(n_test)
    b = boundary(a + n_val) if n_val else a
    return np.sort(order[:a]), np.sort(order[a:b]), order[b:]


def make_splits(n: int, seed: int, test_frac: float = 0.2, val_frac: float = 0.1, meta: Any = None) -> dict[str, Any]:
    """A new split of n rows: official when meta has one, else a seeded random one by patient."""
    rng = np.random.default_rng(seed)
    official = _official(meta)
    if official is not None:
        pool, val, test, source = rng.permutation(official["train"]), official["val"], official["test"], "official"
    else:
        test, val, pool = _random_by_patient(n, rng, test_frac, val_frac, meta)
        source = "random_by_patient"
        if len(pool) < 1 or len(test) < 1:
            raise UserError(f"cannot split {n} images into train/val/test with test_frac={test_frac}, "
                            f"val_frac={val_frac}; lower the fractions or use more images")
    return {"n": int(n), "seed": int(seed), "source": source, "test": [int(i) for i in test],
            "val": [int(i) for i in val], "train_pool": [int(i) for i in pool]}


def train_indices(splits: dict[str, Any], fraction: float) -> list[int]:
    """The first ceil(fraction * pool) rows of the shuffled pool (at least one)."""
    if not 0 < fraction <= 1:
        raise UserError(f"training fraction must be in (0, 1], got {fraction}")
    pool = splits["train_pool"]
    return pool[: max(1, math.ceil(fraction * len(pool) - 1e-9))]


def load_or_make_splits(path: str | Path, dataset: Any, seed: int, fractions: list[float],
                        test_frac: float = 0.2, val_frac: float = 0.1) -> dict[str, Any]:
    """Re-use the split file at `path` if it exists (checking it fits the dataset), else create and save it."""
    p = Path(path)
    n = len(dataset)
    if p.is_file():
        try:
            splits = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not a valid split file ({e}); delete it to make a new split") from None
        if splits.get("dataset") != dataset.name or splits.get("n") != n:
            raise UserError(
                f"{p} was made for dataset {splits.get('dataset')!r} with {splits.get('n')} images, "
                f"but this run has {dataset.name!r} with {n}; delete the file or choose another output folder"
            )
        return splits
    splits = {"dataset": dataset.name, **make_splits(n, seed, test_frac, val_frac, getattr(dataset, "meta", None))}
    # The per-fraction lists are written for readers; train_pool is what the code uses.
    splits["train"] = {f"{f:g}": train_indices(splits, f) for f in fractions}
    atomic_write_text(p, json.dumps(splits) + "\n")
    return splits


def threshold_split(meta: Any, n: int, seed: int, tune_frac: float) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Rows (positions 0..n-1 of `meta`) to choose F1/ACC thresholds on, rows to report them on,
    and a description for results.json.

    The dataset's own validation rows (meta `split` in val/valid/validation/dev) are the tuning rows
    when there are both such rows and others; otherwise the rows are split by patient (seeded),
    `tune_frac` of the images to tuning, whole patients to one side.
    """
    if meta is not None and "split" in getattr(meta, "columns", []):
        s = meta["split"].astype(str).str.lower().to_numpy()[:n]
        val = np.isin(s, list(_VAL_NAMES))
        if val.any() and not val.all():
            tune, report = np.flatnonzero(val), np.flatnonzero(~val)
            return tune, report, {"source": "validation_split", "n_tune": int(tune.size), "n_report": int(report.size)}
    rng = np.random.default_rng(seed)
    report, _, tune = _random_by_patient(n, rng, 1.0 - tune_frac, 0.0, meta)
    tune = np.sort(tune)
    return tune, report, {"source": "patient_split", "seed": int(seed), "tune_frac": float(tune_frac),
                          "n_tune": int(tune.size), "n_report": int(report.size)}
