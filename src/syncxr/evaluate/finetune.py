"""Fine-tuned classification at 1% / 10% / 100% of the training labels.

- linear_probe: frozen encoder; global image features are computed once for every image the
  splits use, then one logistic regression per finding (multinomial for multi-class datasets).
- full: encoder + linear head trained together with AdamW for a few epochs; the epoch with the
  best validation score is kept.
Splits are fixed, seeded and saved (splits.py); the metric is macro AUC over findings
(multi-label) or accuracy (multi-class, e.g. covidx).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import DataLoader

from syncxr.errors import UserError
from syncxr.evaluate.embed import (
    PreprocessedImages,
    encode_images,
    has_backbone_features,
    image_vectors,
    iter_batches,
    pick_device,
)
from syncxr.evaluate.metrics import multiclass_metrics, multilabel_metrics, tune_thresholds
from syncxr.evaluate.splits import load_or_make_splits, threshold_split, train_indices
from syncxr.evaluate.zeroshot import RunOptions, TaskOutput, id_frame, is_multiclass, select_findings

log = logging.getLogger(__name__)


class FinetuneOptions(RunOptions):
    method: Literal["linear_probe", "full"] = "linear_probe"
    fractions: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0], min_length=1)
    mode: Literal["auto", "multilabel", "multiclass"] = "auto"
    test_frac: float = Field(0.2, gt=0, lt=1)
    val_frac: float = Field(0.1, ge=0, lt=1)
    splits: Optional[str] = None  # split file to use/create (default: splits.json in the output folder)
    c: float = Field(1.0, gt=0)  # inverse L2 strength of the linear probe
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-4, gt=0)  # encoder learning rate (full fine-tuning)
    head_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    # What the probe/head reads: the backbone's pooled features (e.g. 2048-d for ResNet-50), as the
    # reference fine-tuners do, or the projected global embedding.
    features: Literal["backbone", "embedding"] = "backbone"
    threshold_tune_frac: float = Field(0.3, gt=0, lt=1)  # share of the test set for F1/ACC thresholds when there is no validation split


def _targets(dataset: Any, cols: list[int], multiclass: bool) -> np.ndarray:
    """(N, K) float labels with NaN unknown; multi-class rows that are not one-hot become all-NaN."""
    y = np.asarray(dataset.labels, dtype=np.float32)[:, cols].copy()
    if multiclass:
        bad = np.isnan(y).any(axis=1) | (np.nansum(y, axis=1) != 1)
        y[bad] = np.nan
    return y


def _score(y: np.ndarray, scores: np.ndarray, names: list[str], multiclass: bool, opts: FinetuneOptions,
           thresholds: Optional[np.ndarray] = None, f1_rows: Optional[np.ndarray] = None) -> dict[str, Any]:
    if multiclass:
        ok = ~np.isnan(y).any(axis=1)
        return multiclass_metrics(y[ok].argmax(1), scores[ok], names, n_boot=opts.n_boot, seed=opts.seed)
    return multilabel_metrics(y, scores, names, n_boot=opts.n_boot, seed=opts.seed, thresholds=thresholds,
                              f1_rows=f1_rows)


def _thresholds(y_val: np.ndarray, s_val: np.ndarray, y_test: np.ndarray, s_test: np.ndarray, test_meta: Any,
                names: list[str], opts: FinetuneOptions) -> tuple[np.ndarray, Optional[np.ndarray], dict[str, Any]]:
    """Max-F1 thresholds, fixed for the test set: on the validation split's predictions, or (no
    validation rows, e.g. an official train/test split) on a seeded by-patient share of the test
    set, F1/ACC then reported on the rest. Returns (thresholds (K,), test positions for F1/ACC or
    None for all, description)."""
    if len(y_val):
        thr, report = tune_thresholds(y_val, s_val), None
        info: dict[str, Any] = {"source": "validation_split", "n_tune": int(len(y_val)), "n_report": int(len(y_test))}
    else:
        tune, report, info = threshold_split(test_meta, len(y_test), opts.seed, opts.threshold_tune_frac)
        thr = tune_thresholds(y_test[tune], s_test[tune])
    info.update({"rule": "max F1 on the tuning rows, fixed for the report rows and every bootstrap resample",
                 "per_finding": {n: (None if np.isnan(t) else float(t)) for n, t in zip(names, thr)}})
    untuned = [n for n, t in zip(names, thr) if np.isnan(t)]
    if untuned:
        info["untuned"] = {n: "the tuning rows lack a positive or a negative; no F1/ACC" for n in untuned}
    return thr, report, info


def _feature_kind(model: Any, opts: FinetuneOptions) -> str:
    """The option, or "embedding" for a model that exposes no backbone features."""
    if opts.features == "backbone" and not has_backbone_features(model):
        log.warning("the model exposes no backbone features; fine-tuning on its global embedding")
        return "embedding"
    return opts.features


def _meta_rows(dataset: Any, rows: list[int]) -> Any:
    meta = getattr(dataset, "meta", None)
    return None if meta is None else meta.iloc[rows].reset_index(drop=True)


# --- linear probe ----------------------------------------------------------------------------


def _fit_probe(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, names: list[str], multiclass: bool,
               opts: FinetuneOptions) -> tuple[np.ndarray, list[str]]:
    """Scores (N_test, K) from logistic regression(s) on standardised features; notes on degenerate labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    xs, xt = scaler.transform(x), scaler.transform(x_test)
    notes: list[str] = []
    k = y.shape[1]
    if multiclass:
        ok = ~np.isnan(y).any(axis=1)
        cls = y[ok].argmax(1)
        if len(np.unique(cls)) < 2:
            notes.append(f"all {ok.sum()} training images are one class; predicting the prior")
            return np.tile(np.bincount(cls, minlength=k) / max(ok.sum(), 1), (len(xt), 1)), notes
        clf = LogisticRegression(C=opts.c, max_iter=2000, random_state=opts.seed).fit(xs[ok], cls)
        scores = np.zeros((len(xt), k))
        scores[:, clf.classes_] = clf.predict_proba(xt)
        return scores, notes
    scores = np.zeros((len(xt), k))
    for j in range(k):
        known = ~np.isnan(y[:, j])
        yj = y[known, j]
        if yj.size == 0 or yj.min() == yj.max():
            # One class only (common at 1% labels): the prior is the honest predictor (AUC 0.5).
            notes.append(f"{names[j]}: the training subset has one class only; predicting its prior")
            scores[:, j] = float(yj.mean()) if yj.size else 0.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny subsets
            clf = LogisticRegression(C=opts.c, max_iter=2000, random_state=opts.seed).fit(xs[known], yj)
        scores[:, j] = clf.predict_proba(xt)[:, 1]
    return scores, notes


# --- full fine-tuning ------------------------------------------------------------------------


class _Classifier(nn.Module):
    def __init__(self, model: nn.Module, dim: int, n_out: int, kind: str = "embedding") -> None:
        super().__init__()
        self.model, self.kind = model, kind
        self.head = nn.Linear(dim, n_out)
        nn.init.zeros_(self.head.weight)  # deterministic start without touching the global RNG
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) -> (B, K) logits
        return self.head(image_vectors(self.model, x, self.kind))


def _loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    if multiclass:
        return F.cross_entropy(logits, y.argmax(1))
    known = ~torch.isnan(y)  # NaN labels contribute nothing
    per = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(y), reduction="none")
    return (per * known).sum() / known.sum().clamp(min=1)


@torch.inference_mode()
def _predict(clf: _Classifier, pretrained: Any, dataset: Any, rows: list[int], multiclass: bool, opts: FinetuneOptions,
             dev: torch.device) -> tuple[np.ndarray, list[int]]:
    """Scores (N_ok, K) and the rows they belong to (images that failed to load are left out)."""
    clf.eval()
    out, done = [], []
    for x, idx, _ in iter_batches(pretrained, dataset, rows, opts.batch_size, opts.num_workers):
        out.append(clf(x.to(dev)).float())
        done.extend(idx)
    logits = torch.cat(out) if out else torch.zeros(0, clf.head.out_features)
    return (logits.softmax(-1) if multiclass else logits.sigmoid()).cpu().numpy(), done


def _fit_full(pretrained: Any, dataset: Any, y: np.ndarray, train: list[int], val: list[int], multiclass: bool,
              opts: FinetuneOptions) -> _Classifier:
    dev = pick_device(opts.device)
    train = [i for i in train if not np.isnan(y[i]).all()]
    if not train:
        raise UserError(f"no labelled image in the training split of {dataset.name!r}")
    model = copy.deepcopy(pretrained.model).to(dev)
    with torch.inference_mode():
        probe = torch.as_tensor(pretrained.preprocess(dataset.image(train[0])), dtype=torch.float32)[None].to(dev)
        kind = _feature_kind(model, opts)
        dim = image_vectors(model, probe, kind).shape[-1]
    clf = _Classifier(model, dim, y.shape[1], kind).to(dev)
    opt = torch.optim.AdamW([{"params": clf.model.parameters(), "lr": opts.lr},
                             {"params": clf.head.parameters(), "lr": opts.head_lr}], weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    loader = DataLoader(PreprocessedImages(dataset, pretrained.preprocess, train), batch_size=opts.batch_size,
                        shuffle=True, generator=gen, num_workers=opts.num_workers)
    yt = torch.from_numpy(y)
    best, best_state = -np.inf, None
    for epoch in range(opts.epochs):
        clf.train()
        for x, idx, err, _ in loader:
            keep = torch.tensor([e == "" for e in err])
            if not keep.any():
                continue
            loss = _loss(clf(x[keep].to(dev)), yt[idx[keep]].to(dev), multiclass)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val:
            s, done = _predict(clf, pretrained, dataset, val, multiclass, opts, dev)
            r = _score(y[done], s, [str(j) for j in range(y.shape[1])], multiclass, opts.model_copy(update={"n_boot": 0}))
            score = r["accuracy"] if multiclass else (r["mean_auc"] if r["mean_auc"] is not None else -np.inf)
            log.info("epoch %d: val %s %.4f", epoch, "accuracy" if multiclass else "mean AUC", score)
            if score > best:
                best, best_state = score, copy.deepcopy(clf.state_dict())
    if best_state is not None:
        clf.load_state_dict(best_state)
    return clf


# --- task ------------------------------------------------------------------------------------


def run_finetune(pretrained: Any, dataset: Any, opts: FinetuneOptions, out_dir: str | Path) -> TaskOutput:
    cols = select_findings(dataset, opts.findings)
    names = [dataset.findings[c] for c in cols]
    multiclass = is_multiclass(dataset, opts.mode)
    y = _targets(dataset, cols, multiclass)
    split_path = Path(opts.splits) if opts.splits else Path(out_dir) / "splits.json"
    splits = load_or_make_splits(split_path, dataset, opts.seed, opts.fractions, opts.test_frac, opts.val_frac)
    test = splits["test"]
    result: dict[str, Any] = {"method": opts.method, "features": _feature_kind(pretrained.model, opts),
                              "mode": "multiclass" if multiclass else "multilabel",
                              "splits_file": str(split_path), "n_test": len(test), "fractions": {}}
    preds = []
    feats = None
    if opts.method == "linear_probe":
        rows = sorted(set(splits["train_pool"]) | set(test) | set(splits["val"]))
        feats = encode_images(pretrained, dataset, rows, opts.batch_size, opts.num_workers, opts.device,
                              kind=_feature_kind(pretrained.model, opts))
        pos = {int(r): j for j, r in enumerate(feats.index)}
        test = [i for i in test if i in pos]
        val = [i for i in splits["val"] if i in pos]
        result["failed_images"] = {str(k): v for k, v in feats.failed.items()}
    for f in opts.fractions:
        train = train_indices(splits, f)
        if feats is not None:
            train = [i for i in train if i in pos]
            scored, notes = _fit_probe(feats.emb[[pos[i] for i in train]], y[train],
                                       feats.emb[[pos[i] for i in test + val]], names, multiclass, opts)
            scores, val_scores, val_ok = scored[: len(test)], scored[len(test) :], val
        else:
            dev = pick_device(opts.device)
            clf = _fit_full(pretrained, dataset, y, train, splits["val"], multiclass, opts)
            scores, test_ok = _predict(clf, pretrained, dataset, test, multiclass, opts, dev)
            val_scores, val_ok = _predict(clf, pretrained, dataset, splits["val"], multiclass, opts, dev) \
                if splits["val"] and not multiclass else (np.zeros((0, len(names))), [])
            notes, test = [], test_ok
        thr, report, thr_info = (None, None, None) if multiclass else _thresholds(
            y[val_ok], val_scores, y[test], scores, _meta_rows(dataset, test), names, opts)
        block = _score(y[test], scores, names, multiclass, opts, thr, report)
        block.update({"n_train": len(train), "notes": notes})
        if thr_info is not None:
            block["thresholds"] = thr_info
        result["fractions"][f"{f:g}"] = block
        key = "accuracy" if multiclass else "mean_auc"
        result[f"{key}@{f:g}"] = block[key]
        frame = pd.DataFrame(scores, columns=names)
        frame.insert(0, "fraction", f)
        frame = pd.concat([id_frame(dataset, np.asarray(test)), frame], axis=1)
        preds.append(frame)
    return TaskOutput(result=result, predictions=pd.concat(preds, ignore_index=True))
