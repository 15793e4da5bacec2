"""Zero-shot classification: image embeddings vs. positive/negative prompt ensembles.

Multi-label datasets: per finding, score = softmax([cos(img, pos), cos(img, neg)] / T)[pos].
Multi-class datasets (one label per image, e.g. chexpert5x200, covidx): softmax over the class
prompt embeddings; accuracy and macro-F1 of the argmax.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from syncxr.errors import UserError
from syncxr.evaluate.embed import encode_images, encode_prompt_sets
from syncxr.evaluate.metrics import _percentile_ci, multiclass_metrics, multilabel_metrics, roc_auc, tune_thresholds
from syncxr.evaluate.splits import threshold_split
from syncxr.evaluate.prompts import load_prompt_table, prompts_for

log = logging.getLogger(__name__)

# Datasets whose labels are one class per image.
MULTICLASS_DATASETS = frozenset({"chexpert5x200", "covidx"})


class RunOptions(BaseModel):
    """Options every task shares."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(64, ge=1)
    num_workers: int = Field(0, ge=0)
    device: str = "auto"
    seed: int = 0
    n_boot: int = Field(1000, ge=0)
    image_size: Optional[int] = None  # only checked against the checkpoint's Preprocess
    findings: Optional[list[str]] = None  # evaluate a subset of the dataset's findings


class ZeroShotOptions(RunOptions):
    temperature: float = Field(0.07, gt=0)
    # F1/ACC thresholds: chosen on the dataset's validation rows, else on this seeded share of the
    # images (split by patient); F1/ACC are reported on the other rows. AUC uses every image.
    threshold_tune_frac: float = Field(0.3, gt=0, lt=1)
    mode: Literal["auto", "multilabel", "multiclass"] = "auto"
    prompts: Optional[str] = None  # extra prompt YAML overlaid on the bundled table


@dataclass
class TaskOutput:
    result: dict[str, Any]
    predictions: Optional[pd.DataFrame] = None


def select_findings(dataset: Any, wanted: Optional[list[str]]) -> list[int]:
    """Column indices of the requested findings (all when None); unknown names are an error."""
    names = list(dataset.findings)
    if wanted is None:
        return list(range(len(names)))
    missing = [w for w in wanted if w not in names]
    if missing:
        raise UserError(f"findings {missing} are not in dataset {dataset.name!r}; it has: {names}")
    return [names.index(w) for w in wanted]


def pairwise_scores(img: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """img (N, D), pos/neg (K, D), all L2-normalised -> P(positive) (N, K)."""
    logits = torch.stack([img @ pos.T, img @ neg.T], dim=-1) / temperature  # (N, K, 2)
    return logits.softmax(dim=-1)[..., 0]


def class_probs(img: torch.Tensor, classes: torch.Tensor, temperature: float) -> torch.Tensor:
    """img (N, D), classes (C, D) -> softmax class probabilities (N, C)."""
    return (img @ classes.T / temperature).softmax(dim=-1)


def is_multiclass(dataset: Any, mode: str) -> bool:
    if mode != "auto":
        return mode == "multiclass"
    task = getattr(dataset, "task", None)
    if task is not None:
        return task == "multiclass"
    return dataset.name in MULTICLASS_DATASETS


# The input's own identifier columns, in this order of preference for the "image" column.
_IMAGE_COLUMNS = ("image_id", "image", "path", "id")
_ID_COLUMNS = ("patient_id", "study_id")


def image_ids(dataset: Any, rows: np.ndarray) -> list[str]:
    """The image value of each dataset row as the user's input had it (meta `image_id`: the labels
    CSV's `image` cell, CheXpert's Path, ...), so prediction files join back to the user's labels;
    else another image column, else the row number."""
    meta = getattr(dataset, "meta", None)
    for col in _IMAGE_COLUMNS:
        if meta is not None and col in meta.columns:
            return [str(v) for v in meta[col].to_numpy()[rows]]
    return [str(int(r)) for r in rows]


def id_frame(dataset: Any, rows: np.ndarray) -> pd.DataFrame:
    """Identifier columns of prediction files: `image` (see image_ids) and the input's patient_id /
    study_id when it has them (a patient_id that only repeats the image value is left out)."""
    rows = np.asarray(rows, dtype=np.int64)
    frame = pd.DataFrame({"image": image_ids(dataset, rows)})
    meta = getattr(dataset, "meta", None)
    for col in _ID_COLUMNS:
        if meta is not None and col in meta.columns:
            values = [str(v) for v in meta[col].to_numpy()[rows]]
            if values != frame["image"].tolist():
                frame[col] = values
    return frame


def run_zeroshot(pretrained: Any, dataset: Any, opts: ZeroShotOptions) -> TaskOutput:
    cols = select_findings(dataset, opts.findings)
    names = [dataset.findings[c] for c in cols]
    table = prompts_for(names, load_prompt_table(dataset.name, opts.prompts))
    images = encode_images(pretrained, dataset, None, opts.batch_size, opts.num_workers, opts.device)
    if images.emb.shape[0] == 0:
        raise UserError(f"no image of dataset {dataset.name!r} could be loaded; first error: {next(iter(images.failed.values()), '?')}")
    img = torch.from_numpy(images.emb)
    labels = np.asarray(dataset.labels, dtype=np.float32)[images.index][:, cols]  # (N_ok, K)
    multiclass = is_multiclass(dataset, opts.mode)

    pos = encode_prompt_sets(pretrained, [table[n].positive for n in names], opts.device)  # (K, D)
    if multiclass:
        scores = class_probs(img, pos, opts.temperature).numpy()
        result = _multiclass_result(labels, scores, names, opts)
    else:
        neg = encode_prompt_sets(pretrained, [table[n].negative for n in names], opts.device)
        scores = pairwise_scores(img, pos, neg, opts.temperature).numpy()
        result = _multilabel_result(dataset, images.index, labels, scores, names, opts)
    result.update(
        {
            "mode": "multiclass" if multiclass else "multilabel",
            "n_images": int(images.emb.shape[0]),
            "failed_images": {str(k): v for k, v in images.failed.items()},
            "prompt_source": {n: table[n].source for n in names},
        }
    )
    preds = id_frame(dataset, images.index)
    for k, n in enumerate(names):
        preds[n] = scores[:, k]
    return TaskOutput(result=result, predictions=preds)


def _multilabel_result(dataset: Any, rows: np.ndarray, labels: np.ndarray, scores: np.ndarray, names: list[str],
                       opts: ZeroShotOptions) -> dict[str, Any]:
    """AUC on every image; F1/ACC on the report rows at thresholds chosen on the tuning rows."""
    meta = getattr(dataset, "meta", None)
    sub = meta.iloc[rows].reset_index(drop=True) if meta is not None else None
    tune, report, info = threshold_split(sub, len(rows), opts.seed, opts.threshold_tune_frac)
    thresholds = tune_thresholds(labels[tune], scores[tune])
    out = multilabel_metrics(labels, scores, names, n_boot=opts.n_boot, seed=opts.seed, thresholds=thresholds,
                             f1_rows=report)
    out["diagnostics"] = score_diagnostics(labels, scores, names, opts.n_boot, opts.seed)
    untuned = [n for n, t in zip(names, thresholds) if np.isnan(t)]
    out["thresholds"] = {**info, "rule": "max F1 on the tuning rows, fixed for the report rows and every bootstrap "
                                         "resample", "per_finding": {n: (None if np.isnan(t) else float(t))
                                                                      for n, t in zip(names, thresholds)}}
    if untuned:
        out["thresholds"]["untuned"] = {n: "the tuning rows lack a positive or a negative; no F1/ACC" for n in untuned}
    return out


def _multiclass_result(labels: np.ndarray, scores: np.ndarray, names: list[str], opts: ZeroShotOptions) -> dict[str, Any]:
    """Rows with exactly one positive class are scored; others are counted as excluded."""
    known = ~np.isnan(labels).any(axis=1)
    one_hot = known & (np.nansum(labels, axis=1) == 1)
    if not one_hot.any():
        raise UserError(
            "multi-class zero-shot needs exactly one positive label per image, but no image has that; "
            "pass mode=multilabel if the dataset is multi-label"
        )
    y = labels[one_hot].argmax(axis=1)
    out = multiclass_metrics(y, scores[one_hot], names, n_boot=opts.n_boot, seed=opts.seed)
    out["n_excluded_not_one_hot"] = int((~one_hot).sum())
    return out


NORMAL_COLUMNS = frozenset({"no_finding", "normal"})


def score_diagnostics(labels: np.ndarray, scores: np.ndarray, names: list[str], n_boot: int = 200,
                      seed: int = 0) -> dict[str, Any]:
    """What an AUC below chance usually is (issue 7, docs/zeroshot-below-chance.md).

    - `auc_vs_normal`: per finding, its positives against the *normal* images only (no positive
      label in any finding column; the no_finding/normal column itself is not a finding here),
      with a bootstrap 95% CI. The plain AUC also counts images with other findings as negatives.
      A finding whose plain AUC is below 0.5 while this one is above 0.5 is ranked by how abnormal
      an image looks, not by the finding itself: the other findings' images outrank its positives.
    - `mean_score_correlation`: mean Pearson correlation between the findings' score columns; near
      1 means every prompt pair measures the same thing (usually "abnormal vs normal").
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    findings = [k for k, n in enumerate(names) if n not in NORMAL_COLUMNS]
    normal = np.ones(len(labels), dtype=bool)
    for k in findings:
        normal &= labels[:, k] == 0  # NaN (unknown) is not normal
    per: dict[str, Any] = {}
    rng = np.random.default_rng([seed, 7])
    for k in findings:
        pos = np.flatnonzero(labels[:, k] == 1)
        neg = np.flatnonzero(normal)
        if len(pos) == 0 or len(neg) == 0:
            continue
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        s = np.r_[scores[pos, k], scores[neg, k]]
        boots = []
        for _ in range(n_boot):  # resample positives and normals separately (both stay present)
            bp, bn = rng.integers(0, len(pos), len(pos)), rng.integers(0, len(neg), len(neg))
            boots.append(roc_auc(y, np.r_[scores[pos[bp], k], scores[neg[bn], k]]))
        per[names[k]] = {"auc": roc_auc(y, s), "auc_ci": _percentile_ci(boots), "n_pos": int(len(pos)),
                         "n_normal": int(len(neg))}
    corr = None
    if len(findings) > 1:
        c = np.corrcoef(scores[:, findings].T)
        off = c[~np.eye(len(findings), dtype=bool)]
        corr = float(np.nanmean(off)) if np.isfinite(off).any() else None
    return {"auc_vs_normal": per, "mean_score_correlation": corr,
            "note": "auc_vs_normal: positives vs images with no finding; see docs/zeroshot-below-chance.md"}
