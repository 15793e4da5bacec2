"""Segmentation: a small U-Net decoder on the pretrained image encoder's feature maps.

Feature maps come from `model.image_feature_maps(x)` (a list of (B, C, h, w), any order) when the
model exposes it (every syncxr DualEncoder does: ResNet layer1..4, tiny-CNN stages, ViT blocks),
so the decoder gets skip connections; maps of the same size (a ViT's blocks) are concatenated
along channels. Otherwise the encoder's local features reshaped to their grid are the only map,
and the decoder upsamples progressively from it.
Loss is BCE + soft Dice; the score is Dice at 1% / 10% / 100% of the training masks (the same
saved splits as fine-tuning). Targets are masks when the dataset has them, else filled boxes.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from syncxr.errors import UserError
from syncxr.evaluate.geometry import mask_to_input, resize_mode
from syncxr.evaluate.grounding import region_of
from syncxr.evaluate.embed import pick_device
from syncxr.evaluate.metrics import mean_ci
from syncxr.evaluate.splits import load_or_make_splits, train_indices
from syncxr.evaluate.zeroshot import RunOptions, TaskOutput, id_frame
from syncxr.models.image import local_to_map

log = logging.getLogger(__name__)


class SegmentOptions(RunOptions):
    finding: Optional[str] = None  # which finding's masks to learn (default: the dataset's only one)
    fractions: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0], min_length=1)
    test_frac: float = Field(0.2, gt=0, lt=1)
    val_frac: float = Field(0.1, ge=0, lt=1)
    splits: Optional[str] = None
    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    freeze_encoder: bool = True
    threshold: float = Field(0.5, gt=0, lt=1)
    decoder_width: int = Field(64, ge=8)  # channels of the first decoder block (halved per step, min 16)
    mask_downscale: Literal["area", "max"] = "area"  # area: >= half covered; max: any pixel (keeps thin structures)


def feature_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Encoder feature maps, one per spatial size, finest first: [(B, C_i, h_i, w_i)]."""
    fn = getattr(model, "image_feature_maps", None)
    if callable(fn):
        maps = list(fn(x))
    else:
        out = model.encode_image(x)
        if out.local is None or out.grid is None:
            raise UserError("segmentation needs image feature maps: the checkpoint's image encoder returns neither "
                            "`image_feature_maps` nor local patch features on a grid")
        maps = [local_to_map(out)]  # (B, D, h, w)
    by_size: dict[tuple[int, int], list[torch.Tensor]] = {}
    for m in maps:  # same-size maps (several ViT blocks) become one wider map
        by_size.setdefault(tuple(m.shape[-2:]), []).append(m)
    merged = [torch.cat(group, dim=1) for group in by_size.values()]
    return sorted(merged, key=lambda m: -m.shape[-1])


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNetDecoder(nn.Module):
    """Upsample x2 from the coarsest map, concatenating any encoder map of the reached size, to S x S."""

    def __init__(self, shapes: list[tuple[int, int]], size: int, width: int = 64) -> None:
        """shapes: (channels, side) of each feature map, finest first."""
        super().__init__()
        self.size = size
        self.skip_sides = [s for _, s in shapes[:-1]]
        skip_ch = {s: c for c, s in shapes[:-1]}
        c_in, side = shapes[-1]
        self.steps = nn.ModuleList()
        self.sides: list[int] = []
        ch = c_in
        while side < size:
            side = min(side * 2, size)
            out_ch = max(width // 2 ** len(self.steps), min(width, 16))
            self.steps.append(_block(ch + skip_ch.get(side, 0), out_ch))
            self.sides.append(side)
            ch = out_ch
        self.head = nn.Conv2d(ch, 1, 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:  # -> (B, 1, S, S) logits
        by_side = {m.shape[-1]: m for m in maps[:-1]}
        x = maps[-1]
        for step, side in zip(self.steps, self.sides):
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            if side in by_side:
                x = torch.cat([x, by_side[side]], dim=1)
            x = step(x)
        if x.shape[-1] != self.size:  # a map already at full size takes no step
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.head(x)


class SegModel(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: UNetDecoder, freeze: bool) -> None:
        super().__init__()
        self.encoder, self.decoder, self.freeze = encoder, decoder, freeze
        if freeze:
            encoder.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze:
            self.encoder.eval()
            with torch.no_grad():
                maps = feature_maps(self.encoder, x)
        else:
            maps = feature_maps(self.encoder, x)
        return self.decoder(maps)


class _MaskSet(Dataset):
    """(input (1, S, S), mask (1, S, S) float, index) aligned through the checkpoint's geometry."""

    def __init__(self, dataset: Any, preprocess: Any, rows: list[int], finding: str, downscale: str = "area") -> None:
        self.dataset, self.preprocess, self.rows, self.finding = dataset, preprocess, rows, finding
        self.downscale = downscale
        self.size, self.mode = int(preprocess.image_size), resize_mode(preprocess)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = self.rows[j]
        img = self.dataset.image(i)
        gt = region_of(self.dataset, i, self.finding, img.shape[:2], "auto")
        m = mask_to_input(gt, self.size, self.mode, self.downscale) if gt is not None else np.zeros((self.size, self.size), np.float32)
        x = torch.as_tensor(self.preprocess(img), dtype=torch.float32)
        return x, torch.from_numpy(m)[None], i


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + (1 - soft Dice), Dice over each image then averaged."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    dice = (2 * (p * t).sum(1) + 1.0) / (p.sum(1) + t.sum(1) + 1.0)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - dice).mean()


def dice_scores(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-image hard Dice of (N, S, S) bool arrays; an image with both empty scores 1."""
    inter = (pred & gt).reshape(len(pred), -1).sum(1)
    total = pred.reshape(len(pred), -1).sum(1) + gt.reshape(len(gt), -1).sum(1)
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


def _pick_finding(dataset: Any, wanted: Optional[str]) -> str:
    if wanted is not None:
        if wanted not in dataset.findings:
            raise UserError(f"segment: finding {wanted!r} is not in dataset {dataset.name!r}; it has {list(dataset.findings)}")
        return wanted
    if len(dataset.findings) == 1:
        return dataset.findings[0]
    raise UserError(f"segment: dataset {dataset.name!r} has several findings {list(dataset.findings)}; "
                    f"choose one with the `finding` option")


def _train(pretrained: Any, dataset: Any, train: list[int], finding: str, opts: SegmentOptions) -> SegModel:
    dev = pick_device(opts.device)
    encoder = copy.deepcopy(pretrained.model).to(dev)
    size = int(pretrained.preprocess.image_size)
    data = _MaskSet(dataset, pretrained.preprocess, train, finding, opts.mask_downscale)
    with torch.no_grad():
        maps = feature_maps(encoder.eval(), data[0][0][None].to(dev))
    # Seeded decoder init without leaving the global RNG changed (fork_rng restores it).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts.seed)
        decoder = UNetDecoder([(m.shape[1], m.shape[-1]) for m in maps], size, opts.decoder_width)
    model = SegModel(encoder, decoder, opts.freeze_encoder).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    # Enough optimiser steps even at 1% of the masks: repeat tiny training sets within an epoch.
    reps = max(1, math.ceil(4 * opts.batch_size / len(train)))
    loader = DataLoader(data, batch_size=opts.batch_size, num_workers=opts.num_workers,
                        sampler=torch.utils.data.RandomSampler(data, replacement=False, num_samples=len(data) * reps, generator=gen)
                        if reps > 1 else None, shuffle=None if reps > 1 else True, generator=None if reps > 1 else gen)
    for epoch in range(opts.epochs):
        model.train()
        for x, m, _ in loader:
            loss = seg_loss(model(x.to(dev)), m.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info("segment %s epoch %d loss %.4f", finding, epoch, loss.item())
    return model


@torch.inference_mode()
def _evaluate(model: SegModel, pretrained: Any, dataset: Any, rows: list[int], finding: str, opts: SegmentOptions) -> tuple[np.ndarray, np.ndarray, list[int]]:
    dev = pick_device(opts.device)
    model.eval()
    loader = DataLoader(_MaskSet(dataset, pretrained.preprocess, rows, finding, opts.mask_downscale), batch_size=opts.batch_size, num_workers=opts.num_workers)
    dice, has_gt, done = [], [], []
    for x, m, idx in loader:
        pred = (model(x.to(dev)).sigmoid() >= opts.threshold).cpu().numpy()[:, 0]
        gt = m.numpy()[:, 0] >= 0.5
        dice.append(dice_scores(pred, gt))
        has_gt.append(gt.reshape(len(gt), -1).any(1))
        done.extend(idx.tolist())
    return np.concatenate(dice), np.concatenate(has_gt), done


def run_segment(pretrained: Any, dataset: Any, opts: SegmentOptions, out_dir: str | Path) -> TaskOutput:
    finding = _pick_finding(dataset, opts.finding)
    split_path = Path(opts.splits) if opts.splits else Path(out_dir) / "splits.json"
    splits = load_or_make_splits(split_path, dataset, opts.seed, opts.fractions, opts.test_frac, opts.val_frac)
    test = splits["test"]
    result: dict[str, Any] = {"finding": finding, "splits_file": str(split_path), "n_test": len(test), "fractions": {},
                              "dice_definition": "dice: mean hard Dice over test images with a non-empty mask; "
                                                 "dice_all: over all test images, empty prediction on empty mask = 1"}
    preds = []
    for f in opts.fractions:
        train = train_indices(splits, f)
        model = _train(pretrained, dataset, train, finding, opts)
        dice, has_gt, rows = _evaluate(model, pretrained, dataset, test, finding, opts)
        d_pos, ci_pos = mean_ci(np.where(has_gt, dice, np.nan), opts.n_boot, opts.seed)
        d_all, ci_all = mean_ci(dice, opts.n_boot, opts.seed)
        result["fractions"][f"{f:g}"] = {"per_finding": {finding: {"dice": d_pos, "dice_ci": ci_pos, "dice_all": d_all,
                                                                   "dice_all_ci": ci_all, "n_pos": int(has_gt.sum()), "n": len(rows)}},
                                         "n_train": len(train)}
        result[f"dice@{f:g}"] = d_pos
        preds.append(id_frame(dataset, np.asarray(rows)).assign(fraction=f, dice=dice, has_mask=has_gt))
    return TaskOutput(result=result, predictions=pd.concat(preds, ignore_index=True))
