"""Zero-shot grounding: where in the image does the finding prompt match the patch features?

For every (image, finding) with a positive label and an annotated region (mask, else boxes): a
similarity map on the patch grid, upsampled bilinearly to the original pixels (undoing the
checkpoint's resize/center-crop), min-max normalised over the pixels the model saw; then the
pointing game, recall/precision/IoU/Dice at each threshold, and CNR against the region.

The map is computed in a space a loss actually trained (`space`):
- "global": each patch's backbone features through the image's GLOBAL projection, cosine with the
  prompt's global text embedding (BioViL-style). The instance-level loss of every method trained
  this pair of projections, so it works for ConVIRT too.
- "local": GLoRIA/MGCA-style word attention: every word of the prompt (the text's local head)
  attends over the image's local patches (softmax of `local_temperature` x cosine); the map is the
  attention averaged over the prompt's words and prompts. Only for checkpoints whose objective
  trained the local heads; a ConVIRT checkpoint is refused (its local heads are random).
- "auto": "local" when the checkpoint trained its local heads, else "global".
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
from syncxr.evaluate.zeroshot import RunOptions, TaskOutput, id_frame, select_findings

log = logging.getLogger(__name__)

NO_LOCAL = (
    "grounding needs image local features (patch tokens on a grid), but checkpoint {ckpt} has none: "
    "its image encoder returns only a global embedding. Evaluate grounding with a checkpoint whose "
    "model exposes local features (a GLoRIA or MGCA objective, or an encoder that returns its last "
    "feature map), or leave grounding out of the suite for this checkpoint."
)
UNTRAINED_LOCAL = (
    "grounding with space=local needs the local (patch and word) heads trained, but checkpoint {ckpt} was "
    "trained with objective {objective!r}, which has no local term: its local projections are still their "
    "random initial weights, so a map from them measures nothing. Use space=global (patch features through "
    "the trained global projection; space=auto picks it) or a GLoRIA/MGCA checkpoint."
)
# Word-attention sharpness when the checkpoint's objective does not give one (GLoRIA's tau1).
DEFAULT_LOCAL_TEMPERATURE = 4.0


class GroundingOptions(RunOptions):
    thresholds: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    region: Literal["auto", "masks", "boxes"] = "auto"  # auto: a mask when the dataset has one, else boxes
    prompts: Optional[str] = None
    max_images: Optional[int] = Field(None, ge=1)  # cap on annotated images per run (quick checks)
    space: Literal["auto", "global", "local"] = "auto"  # see the module docstring
    local_temperature: Optional[float] = Field(None, gt=0)  # word attention sharpness (default: from the objective)

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
    pg, chance = pointing_game(m, g), float(g.mean())  # chance: a uniformly random point of the view
    out = {"pointing_game": pg, "pointing_game_chance": chance, "pointing_game_gain": pg - chance, "cnr": cnr(m, g)}
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


def _objective(pretrained: Any) -> tuple[str, dict[str, Any]]:
    cfg = getattr(pretrained, "config", None)
    obj = cfg.get("objective", {}) if isinstance(cfg, dict) else {}
    return str(obj.get("name", "?")), dict(obj.get("params", {}) or {})


def resolve_space(pretrained: Any, opts: GroundingOptions) -> tuple[str, str]:
    """(space, why) for this checkpoint; refuses local maps from heads no loss trained."""
    name, _ = _objective(pretrained)
    trained = getattr(pretrained, "local_head_trained", False)
    if trained is None:  # an older checkpoint: decide from its objective
        from syncxr.objectives.registry import local_head_trained

        trained = local_head_trained({"config": getattr(pretrained, "config", {}) or {}})
    if opts.space == "local" and not trained:
        raise UserError(UNTRAINED_LOCAL.format(ckpt=getattr(pretrained, "checkpoint_id", "?"), objective=name))
    if opts.space != "auto":
        return opts.space, "requested"
    if trained:
        return "local", f"auto: objective {name!r} trained the local heads"
    return "global", f"auto: objective {name!r} trained only the global heads"


def local_temperature(pretrained: Any, opts: GroundingOptions) -> float:
    """Word-attention sharpness: the option, else the objective's own (GLoRIA tau1, MGCA 1/local_temperature)."""
    if opts.local_temperature is not None:
        return float(opts.local_temperature)
    from syncxr.objectives.registry import OBJECTIVES

    name, params = _objective(pretrained)
    # The objective says how it trained its word attention (a plug-in without the method: the default).
    sharpness = getattr(OBJECTIVES.get(name), "word_attention_sharpness", None) if name in OBJECTIVES else None
    value = sharpness(params) if callable(sharpness) else None
    return DEFAULT_LOCAL_TEMPERATURE if value is None else float(value)


@torch.inference_mode()
def encode_prompt_words(pretrained: Any, prompt_sets: list[list[str]], device: str = "auto") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per prompt set: (words (P, L, D) L2-normalised local text features, mask (P, L) bool), on CPU."""
    dev = pick_device(device)
    model = pretrained.model.to(dev).eval()
    out = []
    for prompts in prompt_sets:
        tok = pretrained.tokenize(list(prompts))
        enc = model.encode_text(tok["input_ids"].to(dev), tok["attention_mask"].to(dev))
        if enc.local is None:
            raise UserError("grounding with space=local needs the text encoder's word features; this model returns none")
        mask = enc.mask if enc.mask is not None else torch.ones(enc.local.shape[:2], dtype=torch.bool, device=enc.local.device)
        mask = torch.where(mask.any(1, keepdim=True), mask, torch.ones_like(mask))  # a prompt of specials only
        out.append((F.normalize(enc.local.float(), dim=-1).cpu(), mask.cpu()))
    return out


def word_attention_map(patches: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """patches (B, R, D), words (P, L, D), both L2-normalised; mask (P, L) -> (B, R): each word's
    softmax attention over the patches (tau x cosine), averaged over the valid words, then prompts."""
    sim = torch.einsum("brd,pld->bplr", patches, words)  # (B, P, L, R)
    attn = torch.softmax(tau * sim, dim=-1)
    m = mask.to(attn.dtype)[None, :, :, None]  # (1, P, L, 1)
    per_prompt = (attn * m).sum(2) / m.sum(2).clamp_min(1.0)  # (B, P, R)
    return per_prompt.mean(1)  # (B, R)


def _global_patches(model: Any, x: torch.Tensor, ckpt: str) -> Any:
    fn = getattr(model, "encode_image_patches", None)
    try:
        out = fn(x) if callable(fn) else None
    except NotImplementedError:
        out = None
    if out is None or out.local is None or out.grid is None:
        raise UserError(NO_LOCAL.format(ckpt=ckpt))
    return out


@torch.inference_mode()
def run_grounding(pretrained: Any, dataset: Any, opts: GroundingOptions) -> TaskOutput:
    ckpt = getattr(pretrained, "checkpoint_id", "?")
    if not getattr(pretrained, "has_local_features", True):
        raise UserError(NO_LOCAL.format(ckpt=ckpt))
    space, why = resolve_space(pretrained, opts)
    cols = select_findings(dataset, opts.findings)
    names = [dataset.findings[c] for c in cols]
    table = prompts_for(names, load_prompt_table(dataset.name, opts.prompts))
    prompt_sets = [table[n].positive for n in names]
    if space == "global":
        text = encode_prompt_sets(pretrained, prompt_sets, opts.device)  # (K, D)
    else:
        words = encode_prompt_words(pretrained, prompt_sets, opts.device)
        tau = local_temperature(pretrained, opts)
    dev = pick_device(opts.device)
    model = pretrained.model.to(dev).eval()
    geometry = resize_mode(pretrained.preprocess)
    labels = np.asarray(dataset.labels)
    rows: list[dict[str, Any]] = []
    failed: dict[int, str] = {}
    n_outside = 0
    batches = iter_batches(pretrained, dataset, _candidates(dataset, cols, opts.max_images), opts.batch_size, opts.num_workers, failed)
    for x, idx, shapes in batches:
        out = _global_patches(model, x.to(dev), ckpt) if space == "global" else model.encode_image(x.to(dev))
        if out.local is None or out.grid is None:
            raise UserError(NO_LOCAL.format(ckpt=ckpt))
        h, w = out.grid
        local = F.normalize(out.local.float(), dim=-1).cpu()  # (B, L, D)
        if space == "global":
            sims = (local @ text.T).transpose(1, 2)  # (B, K, L)
        else:
            sims = torch.stack([word_attention_map(local, wk, mk, tau) for wk, mk in words], dim=1)  # (B, K, L)
        sims = sims.reshape(len(idx), len(names), h, w)  # (B, K, h, w)
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
    result.update({"space": space, "space_reason": why, "n_regions_outside_view": n_outside,
                   "failed_images": {str(k): v for k, v in failed.items()},
                   "thresholds": list(opts.thresholds), "prompt_source": {n: table[n].source for n in names}})
    if space == "local":
        result["local_temperature"] = tau
    if not per_image.empty:
        per_image = pd.concat([id_frame(dataset, per_image.pop("row").to_numpy()), per_image], axis=1)
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
