"""Zero-shot grounding: where in the image does the finding prompt match the patch features?

For every (image, finding) with a positive label and an annotated region (mask, else boxes):
similarity of each image patch (model local features) to the finding's prompt embedding,
upsampled bilinearly from the patch grid to the original pixels (undoing the checkpoint's
resize/center-crop), min-max normalised over the pixels the model saw; then the pointing game,
recall/precision/IoU/Dice at each threshold, and CNR against the region.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from syncxr.errors import UserError
from syncxr.evaluate.embed import encode_prompt_sets, iter_batches, pick_device
from syncxr.evaluate.geometry import boxes_to_mask, grid_to_original, resize_mode
from syncxr.evaluate.metrics import cnr, mean_ci, minmax, pointing_game, region_metrics
from syncxr.evaluate.prompts import load_prompt_table, prompts_for
from syncxr.evaluate.zeroshot import RunOptions, TaskOutput, image_ids, select_findings

log = logging.getLogger(__name__)

NO_LOCAL = (
    "grounding needs image local features (patch tokens on a grid), but checkpoint {ckpt} has none: "
    "its image encoder returns only a global embedding. Evaluate grounding with a checkpoint whose "
    "model exposes local features (a GLoRIA or MGCA objective, or an encoder that returns its last "
    "feature map), or leave grounding out of the suite for this checkpoint."
)


class GroundingOptions(RunOptions):
    thresholds: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    region: Literal["auto", "masks", "boxes"] = "auto"  # auto: a mask when the dataset has one, else boxes
    prompts: Optional[str] = None
    max_images: Optional[int] = Field(None, ge=1)  # cap on annotated images per run (quick checks)

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, v: list[float]) -> list[float]:
        """Thresholds cut the min-max normalised similarity map, so each lies strictly in (0, 1)."""
        bad = [t for t in v if not 0.0 < t < 1.0]
        if bad:
            raise ValueError(f"each threshold must lie strictly between 0 and 1 (the map is scaled to 0..1); got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"thresholds repeat a value: {v}")
        return v


def region_of(dataset: Any, i: int, finding: str, shape: tuple[int, int], mode: str) -> Optional[np.ndarray]:
    """The finding's ground-truth region in image i as (H, W) bool, or None when not annotated."""
    if mode in ("auto", "masks"):
        m = dataset.mask(i, finding)
        if m is not None and np.any(m):
            return np.asarray(m, dtype=bool)
        if mode == "masks":
            return None
    # Boxes are stored in the frame the dataset was distributed in; ask for them in this image's frame.
    r = boxes_to_mask(dataset.boxes(i, image_shape=shape), finding, *shape)
    return r if r.any() else None


def image_metrics(sim_grid: torch.Tensor, gt: np.ndarray, geometry: str, thresholds: list[float]) -> Optional[dict[str, float]]:
    """All grounding metrics of one (h, w) similarity grid against an original-pixel region."""
    full, valid = grid_to_original(sim_grid, gt.shape[0], gt.shape[1], geometry)
    g = gt[valid]
    if not g.any():
        return None  # the region lies outside what the model saw (cropped away)
    m = minmax(full[valid])
    out = {"pointing_game": pointing_game(m, g), "cnr": cnr(m, g)}
    for t in thresholds:
        for k, v in region_metrics(m, g, t).items():
            out[f"{k}@{t:g}"] = v
    return out


def _candidates(dataset: Any, cols: list[int], max_images: Optional[int]) -> list[int]:
    labels = np.asarray(dataset.labels)[:, cols]
    rows = np.flatnonzero(np.nan_to_num(labels, nan=0.0).max(axis=1) == 1).tolist()
    if not getattr(dataset, "has_masks", True):
        # Box-only datasets (CXR14: ~1k boxed images among 25k positives): skip encoding unboxed images.
        rows = [i for i in rows if dataset.boxes(i)]
    return rows[:max_images] if max_images else rows


@torch.inference_mode()
def run_grounding(pretrained: Any, dataset: Any, opts: GroundingOptions) -> TaskOutput:
    ckpt = getattr(pretrained, "checkpoint_id", "?")
    if not getattr(pretrained, "has_local_features", True):
        raise UserError(NO_LOCAL.format(ckpt=ckpt))
    cols = select_findings(dataset, opts.findings)
    names = [dataset.findings[c] for c in cols]
    table = prompts_for(names, load_prompt_table(dataset.name, opts.prompts))
    text = encode_prompt_sets(pretrained, [table[n].positive for n in names], opts.device)  # (K, D)
    dev = pick_device(opts.device)
    model = pretrained.model.to(dev).eval()
    geometry = resize_mode(pretrained.preprocess)
    labels = np.asarray(dataset.labels)
    rows: list[dict[str, Any]] = []
    failed: dict[int, str] = {}
    n_outside = 0
    batches = iter_batches(pretrained, dataset, _candidates(dataset, cols, opts.max_images), opts.batch_size, opts.num_workers, failed)
    for x, idx, shapes in batches:
        out = model.encode_image(x.to(dev))
        if out.local is None or out.grid is None:
            raise UserError(NO_LOCAL.format(ckpt=ckpt))
        h, w = out.grid
        local = F.normalize(out.local.float(), dim=-1).cpu()  # (B, L, D)
        sims = (local @ text.T).transpose(1, 2).reshape(len(idx), len(names), h, w)  # (B, K, h, w)
        for b, (i, shape) in enumerate(zip(idx, shapes)):
            for k, (c, name) in enumerate(zip(cols, names)):
                if labels[i, c] != 1:
                    continue
                gt = region_of(dataset, i, name, shape, opts.region)
                if gt is None:
                    continue
                m = image_metrics(sims[b, k], gt, geometry, opts.thresholds)
                if m is None:
                    n_outside += 1
                    continue
                rows.append({"row": i, "finding": name, **m})
    per_image = pd.DataFrame(rows)
    result = _aggregate(per_image, names, opts)
    result.update({"n_regions_outside_view": n_outside, "failed_images": {str(k): v for k, v in failed.items()},
                   "thresholds": list(opts.thresholds), "prompt_source": {n: table[n].source for n in names}})
    if not per_image.empty:
        per_image.insert(0, "image", image_ids(dataset, per_image.pop("row").to_numpy()))
    return TaskOutput(result=result, predictions=per_image)


def _aggregate(per_image: pd.DataFrame, names: list[str], opts: GroundingOptions) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    metric_cols = [c for c in per_image.columns if c not in ("row", "finding")]
    for name in names:
        sub = per_image[per_image["finding"] == name] if not per_image.empty else per_image
        if sub.empty:
            skipped[name] = "no positive image with an annotated region (box or mask) for this finding"
            continue
        entry: dict[str, Any] = {"n": int(len(sub))}
        for col in metric_cols:
            vals = sub[col].to_numpy(dtype=np.float64)
            # CNR is +inf only for a perfectly separating two-valued map (impossible after bilinear
            # upsampling of real features); such an image is left out of the CNR mean, not averaged as inf.
            entry[col], entry[f"{col}_ci"] = mean_ci(np.where(np.isinf(vals), np.nan, vals), opts.n_boot, opts.seed)
        per[name] = entry
    out: dict[str, Any] = {"per_finding": per, "skipped": skipped}
    for col in metric_cols:
        vals = [p[col] for p in per.values() if p[col] == p[col]]
        out[f"mean_{col}"] = float(np.mean(vals)) if vals else None
    return out
