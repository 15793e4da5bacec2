"""ConVIRT-style augmentation (random resized crop, affine, brightness/contrast jitter) and the
training dataset wrapper.

Randomness comes from a numpy Generator seeded by (run seed, epoch, sample index), never from the
global RNG: the same sample in the same epoch gets the same view in any process, worker count,
rank layout or resumed run. No horizontal flip: laterality words ("left", "right") must stay true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torchvision.transforms.v2 import functional as F

from syncxr.data.pairs import PairSource
from syncxr.models.pretrained import Preprocess, resize_center_crop


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)  # ConVIRT: random crop of 0.6-1.0 of the area
    degrees: float = Field(20.0, ge=0)
    translate: float = Field(0.1, ge=0, lt=1)
    scale: tuple[float, float] = (0.95, 1.05)
    brightness: float = Field(0.4, ge=0, lt=1)
    contrast: float = Field(0.4, ge=0, lt=1)


@dataclass
class Augment:
    cfg: AugmentConfig
    size: int

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """img: (1, H, W) uint8 -> (1, S, S) float in [0, 1]."""
        c = self.cfg
        top, left, h, w = self._crop_box(img.shape[-2], img.shape[-1], rng)
        x = F.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True).float() / 255.0
        angle = float(rng.uniform(-c.degrees, c.degrees))
        shift = [int(round(rng.uniform(-c.translate, c.translate) * self.size)) for _ in range(2)]
        x = F.affine(x, angle=angle, translate=shift, scale=float(rng.uniform(*c.scale)), shear=[0.0, 0.0])
        x = F.adjust_brightness(x, float(rng.uniform(1 - c.brightness, 1 + c.brightness)))
        x = F.adjust_contrast(x, float(rng.uniform(1 - c.contrast, 1 + c.contrast)))
        return x.clamp_(0.0, 1.0)

    def _crop_box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = height * width
        for _ in range(10):
            target = area * rng.uniform(*self.cfg.crop_scale)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        side = min(height, width)  # fallback: central square
        return (height - side) // 2, (width - side) // 2, side, side


class PairTensors:
    """Map-style dataset over a PairSource: key (index, epoch) or index -> ((1, S, S) float, text)."""

    def __init__(self, source: PairSource, preprocess: Preprocess, augment: Augment | None, seed: int) -> None:
        self.source, self.preprocess, self.augment, self.seed = source, preprocess, augment, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, str]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        img, text = self.source[index]
        x = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0)  # (1, H, W) uint8
        if self.augment is None:
            return self.preprocess(img), text
        rng = np.random.default_rng([self.seed, epoch, index])
        x = self.augment(x, rng)
        return (x - self.preprocess.mean) / self.preprocess.std, text


class Collate:
    """Stack images, tokenize texts: -> dict(images (B,1,S,S), input_ids, attention_mask, texts)."""

    def __init__(self, tokenize) -> None:
        self.tokenize = tokenize

    def __call__(self, batch: list[tuple[torch.Tensor, str]]) -> dict:
        images = torch.stack([b[0] for b in batch])
        texts = [b[1] for b in batch]
        return {"images": images, "texts": texts, **self.tokenize(texts)}


__all__ = ["AugmentConfig", "Augment", "PairTensors", "Collate", "resize_center_crop"]
