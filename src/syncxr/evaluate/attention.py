"""Where a zero-shot finding prompt points in an image: global-space similarity maps and the share
of their hottest pixels that falls in a region (issue 7, "what the model attends to").

A map is the cosine-space similarity of every patch (projected into the GLOBAL embedding space, as
`grounding` with space=global does) with a text direction, upsampled to the original pixels:
- "pos": the finding's positive prompt set (the grounding map);
- "diff": pos - neg, the direction the pairwise zero-shot score rises along
  (score = softmax([cos(img, pos), cos(img, neg)] / T)[0] grows with img . (pos - neg));
- "contrib": the UN-normalised patch embedding . (pos - neg). When the image's global embedding is
  the mean of its patch embeddings before normalisation (the conv encoders' global projection,
  `project_patches_global`), these values sum to the score's logit difference times a positive
  per-image constant: the map is an exact decomposition of the score over patches, where "diff"
  (cosines) weighs every patch alike whatever its norm.

`top_share(map, region)` is the statistic: of the map's top `frac` pixels (ties at the cut all
kept, so a flat map selects every pixel), the share inside the region. Its chance level is the
region's area share (`area_share`): a map that ignores the region hits it at that rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from syncxr.evaluate.embed import encode_prompt_sets, iter_batches, pick_device
from syncxr.evaluate.geometry import grid_to_original, resize_mode
from syncxr.evaluate.grounding import _global_patches
from syncxr.evaluate.metrics import pointing_game

MAP_KINDS = ("pos", "diff", "contrib")


def top_pixels(saliency: np.ndarray, valid: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """(H, W) bool: the valid pixels at or above the map's (1 - frac) quantile over valid pixels."""
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    vals = saliency[valid]
    cut = np.quantile(vals, 1.0 - frac)
    return valid & (saliency >= cut)


def top_share(saliency: np.ndarray, region: np.ndarray, valid: np.ndarray | None = None, frac: float = 0.1) -> float:
    """Share of the map's top-`frac` valid pixels that lie inside `region` (0..1)."""
    valid = np.ones(saliency.shape, bool) if valid is None else valid
    top = top_pixels(saliency, valid, frac)
    return float((top & region).sum() / top.sum())


def area_share(region: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Chance level of `top_share` and of the pointing game: the region's share of the valid pixels."""
    valid = np.ones(region.shape, bool) if valid is None else valid
    return float((region & valid).sum() / valid.sum())


def pointing_hit(saliency: np.ndarray, region: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Pointing game over the valid pixels: 1 when the map's maximum lies in the region (credit
    shared over tied maxima, so a flat map scores its area share)."""
    valid = np.ones(saliency.shape, bool) if valid is None else valid
    return pointing_game(saliency[valid], region[valid])


def region_stats(saliency: np.ndarray, region: np.ndarray | None, valid: np.ndarray, frac: float) -> dict[str, float]:
    """share / chance / hit of one map against one region; NaN when the region is absent or unseen."""
    if region is None or not (region & valid).any():
        return {"share": np.nan, "chance": np.nan, "hit": np.nan}
    return {"share": top_share(saliency, region, valid, frac), "chance": area_share(region, valid),
            "hit": pointing_hit(saliency, region, valid)}


@torch.inference_mode()
def iter_maps(pretrained: Any, dataset: Any, directions: torch.Tensor, raw_directions: torch.Tensor | None = None,
              indices: list[int] | None = None, device: str = "cpu", batch_size: int = 64) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: (dataset row, maps (K + R, H, W) upsampled to the original pixels, valid (H, W)
    bool, global embedding (D,)). directions: (K, D) in the global text space, mapped against the
    L2-normalised patches; raw_directions (R, D): against the un-normalised patches ("contrib").

    A patch's map value is cos(patch, direction_unit) * |direction|: for a unit prompt embedding
    it is the plain cosine, for pos - neg it is cos(patch, pos) - cos(patch, neg)."""
    dev = pick_device(device)
    model = pretrained.model.to(dev).eval()
    geometry = resize_mode(pretrained.preprocess)
    ckpt = getattr(pretrained, "checkpoint_id", "?")
    for x, idx, shapes in iter_batches(pretrained, dataset, indices, batch_size):
        x = x.to(dev)
        out = _global_patches(model, x, ckpt)
        h, w = out.grid
        raw = out.local.float().cpu()  # (B, L, D)
        sims = F.normalize(raw, dim=-1) @ directions.T  # (B, L, K)
        if raw_directions is not None:
            sims = torch.cat([sims, raw @ raw_directions.T], dim=-1)
        sims = sims.transpose(1, 2).reshape(len(idx), -1, h, w)  # (B, K + R, h, w)
        glob = F.normalize(model.encode_image(x).global_emb.float(), dim=-1).cpu()
        for b, (i, (hh, ww)) in enumerate(zip(idx, shapes)):
            maps, valid = [], None
            for k in range(sims.shape[1]):
                full, valid = grid_to_original(sims[b, k], int(hh), int(ww), geometry)
                maps.append(full)
            yield i, np.stack(maps), valid, glob[b].numpy()


def prompt_directions(pretrained: Any, positive: list[list[str]], negative: list[list[str]], device: str = "cpu") -> dict[str, torch.Tensor]:
    """{"pos": (K, D) positive prompt-set embeddings, "neg": (K, D), "diff": pos - neg}."""
    pos = encode_prompt_sets(pretrained, positive, device)
    neg = encode_prompt_sets(pretrained, negative, device)
    return {"pos": pos, "neg": neg, "diff": pos - neg}
