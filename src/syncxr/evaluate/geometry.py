"""Where the model's square input sits in the original image, both ways.

The checkpoint's Preprocess maps an (H, W) image to an (S, S) input. Two geometries exist:
- "center_crop" (default): resize the shorter side to S, then crop the central S x S square. The
  input covers the central min(H, W) square of the original; the rest is never seen.
- "stretch": resize (H, W) straight to (S, S); the input covers the whole image.
A Preprocess that declares `resize_mode = "stretch"` gets the second; anything else the first.

Grounding maps input-grid similarities back onto the original pixels; segmentation maps
original-pixel masks onto the input. Both go through `input_region`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def resize_mode(preprocess: Any) -> str:
    return "stretch" if getattr(preprocess, "resize_mode", "center_crop") == "stretch" else "center_crop"


def input_region(height: int, width: int, mode: str) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the original image that the model input covers."""
    if mode == "stretch":
        return 0, 0, height, width
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def grid_to_original(sim: torch.Tensor, height: int, width: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Upsample a patch-grid map onto the original image.

    sim: (h, w) similarities on the patch grid. Returns (map (H, W) float32, valid (H, W) bool);
    pixels outside the input region get the map's minimum and valid=False so metrics can
    ignore them.
    """
    top, left, rh, rw = input_region(height, width, mode)
    up = F.interpolate(sim[None, None].float(), size=(rh, rw), mode="bilinear", align_corners=False)[0, 0]
    out = np.full((height, width), float(up.min()), dtype=np.float32)
    out[top : top + rh, left : left + rw] = up.cpu().numpy()
    valid = np.zeros((height, width), dtype=bool)
    valid[top : top + rh, left : left + rw] = True
    return out, valid


def mask_to_input(mask: np.ndarray, size: int, mode: str, method: str = "area") -> np.ndarray:
    """Original-pixel bool mask (H, W) -> (size, size) float32 {0,1} aligned with the model input.

    method "area": an input pixel is in the mask when at least half of the original pixels it
    covers are (thin structures below half a pixel's width drop out, at every shift alike);
    "max": when any of them is (thin structures are kept and widened to one input pixel).
    """
    if method not in ("area", "max"):
        raise ValueError(f"mask downscaling method {method!r}: expected area or max")
    top, left, rh, rw = input_region(mask.shape[0], mask.shape[1], mode)
    crop = torch.from_numpy(np.ascontiguousarray(mask[top : top + rh, left : left + rw])).float()[None, None]
    if method == "max":
        small = F.adaptive_max_pool2d(crop, (size, size))[0, 0]  # (size, size) any-pixel
        return (small > 0).float().numpy()
    small = F.adaptive_avg_pool2d(crop, (size, size))[0, 0]  # (size, size) covered fraction
    return (small >= 0.5).float().numpy()


def boxes_to_mask(boxes: list[tuple[str, float, float, float, float]], finding: str, height: int, width: int) -> np.ndarray:
    """Union of the finding's (x, y, w, h) boxes (original pixels) as an (H, W) bool mask."""
    out = np.zeros((height, width), dtype=bool)
    for name, x, y, w, h in boxes:
        if name != finding:
            continue
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)
        out[y0:y1, x0:x1] = True
    return out
