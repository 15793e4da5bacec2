"""Fake EvalDataset and fake Pretrained checkpoint with the agreed contracts, for evaluate tests.

Images are 72 x 64 (H x W, so the center crop matters). The model input is the central 64 x 64
square resized to S. Finding k lives in a 16 x 16 cell of that square (cells laid out 4 per row);
a positive image has that cell bright. The "oracle" model reads the cells, so zero-shot AUC is
1.0 and the similarity map peaks inside the finding's box.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from syncxr.models.base import EncoderOutput

H, W, TOP = 72, 64, 4  # original image; the model sees rows TOP..TOP+64
CELL = 16


def cell_box(k: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of finding k's cell in original pixels."""
    r, c = divmod(k, 4)
    return c * CELL, TOP + r * CELL, CELL, CELL


class FakeDataset:
    def __init__(self, name, findings, labels, seed=0, multiclass=False, image_labels=None):
        """image_labels: what the images show (default: the labels); pass shuffled rows for a
        dataset whose labels carry no information about its images."""
        self.name = name
        self.findings = list(findings)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.meta = pd.DataFrame({"image": [f"img{i:04d}.png" for i in range(len(self.labels))]})
        self._seed = seed
        self._shown = self.labels if image_labels is None else np.asarray(image_labels, dtype=np.float32)
        self.task = "multiclass" if multiclass else "multilabel"

    def __len__(self):
        return len(self.labels)

    def image(self, i):
        rng = np.random.default_rng(self._seed * 100003 + i)
        img = rng.integers(0, 40, size=(H, W)).astype(np.uint8)
        for k in np.flatnonzero(self._shown[i] == 1):
            x, y, w, h = cell_box(int(k))
            img[y : y + h, x : x + w] = rng.integers(170, 255)
        return img

    def boxes(self, i, image_shape=None):
        return [(self.findings[k], *cell_box(int(k))) for k in np.flatnonzero(self._shown[i] == 1)]

    def mask(self, i, finding):
        k = self.findings.index(finding)
        m = np.zeros((H, W), dtype=bool)
        if self._shown[i, k] == 1:
            x, y, w, h = cell_box(k)
            m[y : y + h, x : x + w] = True
        return m

    def subset(self, indices):
        sub = FakeDataset(self.name, self.findings, self.labels[indices], self._seed, self.task == "multiclass",
                          self._shown[indices])
        sub.meta = self.meta.iloc[indices].reset_index(drop=True)
        return sub


class FakePreprocess:
    """Shorter side -> S, center crop, scale to [0, 1]."""

    def __init__(self, image_size=32, mean=0.0, std=1.0):
        self.image_size, self.mean, self.std = image_size, mean, std

    def __call__(self, img):
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        h, w = x.shape
        side = min(h, w)
        x = x[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        x = F.interpolate(x[None, None], size=(self.image_size,) * 2, mode="bilinear", align_corners=False)[0]
        return (x - self.mean) / self.std  # (1, S, S)

    def to_dict(self):
        return {"image_size": self.image_size, "mean": self.mean, "std": self.std}


class OracleModel(nn.Module):
    """Patch p of the 8 x 8 grid gets feature mean_intensity(p) * e_k (k = finding whose cell holds p)."""

    def __init__(self, findings, local=True):
        super().__init__()
        self.findings = list(findings)
        self.dim = len(findings) + 1
        code = torch.zeros(self.dim, 8, 8)
        code[-1] = 0.05  # a small shared direction so all-dark images have a defined embedding
        for k in range(len(findings)):
            r, c = divmod(k, 4)
            code[k, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1.0
        self.register_buffer("code", code)
        self.scale = nn.Parameter(torch.ones(()))
        self.local = local

    def encode_image(self, x):  # x (B, 1, S, S)
        patch = F.adaptive_avg_pool2d(x, 8)  # (B, 1, 8, 8)
        feat = patch * self.code * self.scale  # (B, D, 8, 8)
        cells = feat[:, :-1].flatten(2).sum(-1) / 4.0  # (B, K) mean intensity of each cell
        glob = torch.cat([2 * cells - 0.5, feat[:, -1:].flatten(2).mean(-1)], dim=1)  # (B, D)
        local = feat.flatten(2).transpose(1, 2) if self.local else None  # (B, 64, D)
        return EncoderOutput(global_emb=glob, local=local, grid=(8, 8) if self.local else None)

    def encode_image_patches(self, x):
        """The oracle's patch features already live in its global text space."""
        return self.encode_image(x)

    def encode_text(self, input_ids, attention_mask):
        k, sign = input_ids[:, 0], input_ids[:, 1].float() * 2 - 1  # sign: +1 present, -1 absent
        emb = F.one_hot(k, self.dim).float() * sign[:, None]
        return EncoderOutput(global_emb=emb, local=emb[:, None, :], mask=torch.ones(len(emb), 1, dtype=torch.bool))


def make_pretrained(findings, dataset_name="fake", local=True, image_size=32, local_head_trained=False):
    """A Pretrained look-alike whose tokenizer knows the bundled prompts of `findings`:
    a positive prompt of finding k encodes to +e_k, a negative one to -e_k."""
    from syncxr.evaluate.prompts import load_prompt_table, prompts_for

    model = OracleModel(findings, local=local)
    table = prompts_for(list(findings), load_prompt_table(dataset_name))
    code = {}
    for k, f in enumerate(findings):
        code.update({t: (k, 1) for t in table[f].positive})
        code.update({t: (k, 0) for t in table[f].negative})

    def tokenize(texts):
        ids_t = torch.tensor([code[t] for t in texts])
        return {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t)}

    return SimpleNamespace(
        model=model,
        tokenize=tokenize,
        preprocess=FakePreprocess(image_size),
        checkpoint_id="fake-oracle",
        config={"model": "fake"},
        has_local_features=local,
        local_head_trained=local_head_trained,
    )


def random_labels(n, k, seed=0, p=0.4, nan_frac=0.0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < p).astype(np.float32)
    y[rng.random((n, k)) < nan_frac] = np.nan
    return y
