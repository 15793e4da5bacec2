"""Batched image and prompt encoding shared by every evaluation task.

Images go through the checkpoint's own Preprocess inside a torch DataLoader. An image that fails
to load or preprocess is recorded with its reason and left out of the metrics (never a crash,
never a silent zero row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class PreprocessedImages(Dataset):
    """Wraps an EvalDataset: item -> (input (1, S, S), dataset index, error or "", original (H, W))."""

    def __init__(self, dataset: Any, preprocess: Any, indices: Optional[Sequence[int]] = None) -> None:
        self.dataset = dataset
        self.preprocess = preprocess
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.size = int(preprocess.image_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int, str, torch.Tensor]:
        i = self.indices[j]
        try:
            img = self.dataset.image(i)
            x = torch.as_tensor(self.preprocess(img), dtype=torch.float32)
            if x.shape != (1, self.size, self.size):
                raise ValueError(f"preprocess returned shape {tuple(x.shape)}, expected (1, {self.size}, {self.size})")
            return x, i, "", torch.tensor(img.shape[:2])
        except Exception as e:  # noqa: BLE001 - one bad image is a data problem, reported below
            return torch.zeros(1, self.size, self.size), i, f"{type(e).__name__}: {e}", torch.zeros(2, dtype=torch.long)


def iter_batches(
    pretrained: Any,
    dataset: Any,
    indices: Optional[Sequence[int]] = None,
    batch_size: int = 64,
    num_workers: int = 0,
    failed: Optional[dict[int, str]] = None,
) -> Iterator[tuple[torch.Tensor, list[int], list[tuple[int, int]]]]:
    """Yield (inputs (B, 1, S, S), dataset indices, original (H, W)s) of the images that loaded.

    Images that failed are logged and recorded in `failed` (index -> reason).
    """
    ds = PreprocessedImages(dataset, pretrained.preprocess, indices)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for x, idx, err, hw in loader:
        ok = torch.tensor([e == "" for e in err], dtype=torch.bool)
        for i, e in zip(idx.tolist(), err):
            if e:
                log.warning("image %d of %s skipped: %s", i, getattr(dataset, "name", "dataset"), e)
                if failed is not None:
                    failed[i] = e
        if ok.any():
            yield x[ok], idx[ok].tolist(), [tuple(v) for v in hw[ok].tolist()]


@dataclass
class ImageEmbeddings:
    """Per loaded image: the L2-normalised global embedding, or the backbone's pooled features."""

    emb: np.ndarray  # (N_ok, D) float32
    index: np.ndarray  # (N_ok,) dataset row of each embedding
    failed: dict[int, str] = field(default_factory=dict)
    kind: str = "embedding"  # "embedding" | "backbone"


def has_backbone_features(model: Any) -> bool:
    return callable(getattr(model, "image_features", None))


def image_vectors(model: Any, x: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, 1, S, S) -> (B, C) backbone pooled features (kind "backbone") or the projected global
    embedding (kind "embedding")."""
    if kind == "backbone":
        return model.image_features(x)
    return model.encode_image(x).global_emb


@torch.inference_mode()
def encode_images(
    pretrained: Any,
    dataset: Any,
    indices: Optional[Sequence[int]] = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    kind: str = "embedding",
) -> ImageEmbeddings:
    """kind "embedding": L2-normalised global embeddings (zero-shot); "backbone": the backbone's
    pooled features, unnormalised (linear probe)."""
    dev = pick_device(device)
    model = pretrained.model.to(dev).eval()
    failed: dict[int, str] = {}
    embs, rows = [], []
    for x, idx, _ in iter_batches(pretrained, dataset, indices, batch_size, num_workers, failed):
        v = image_vectors(model, x.to(dev), kind).float()  # (B, D)
        embs.append((F.normalize(v, dim=-1) if kind == "embedding" else v).cpu())
        rows.extend(idx)
    d = embs[0].shape[1] if embs else 0
    emb = torch.cat(embs).numpy() if embs else np.zeros((0, d), np.float32)
    return ImageEmbeddings(emb=emb, index=np.asarray(rows, dtype=np.int64), failed=failed, kind=kind)


@torch.inference_mode()
def encode_prompt_sets(pretrained: Any, prompt_sets: list[list[str]], device: str = "auto", chunk: int = 256) -> torch.Tensor:
    """One embedding per prompt set: the mean of its L2-normalised prompt embeddings, re-normalised.

    Returns (len(prompt_sets), D) float32 on CPU.
    """
    dev = pick_device(device)
    model = pretrained.model.to(dev).eval()
    flat = [p for ps in prompt_sets for p in ps]
    chunks = []
    for start in range(0, len(flat), chunk):  # PadChest-sized tables hold hundreds of prompts
        tok = pretrained.tokenize(flat[start : start + chunk])
        out = model.encode_text(tok["input_ids"].to(dev), tok["attention_mask"].to(dev))
        chunks.append(F.normalize(out.global_emb.float(), dim=-1).cpu())
    emb = torch.cat(chunks)  # (P, D)
    sets, start = [], 0
    for ps in prompt_sets:
        sets.append(F.normalize(emb[start : start + len(ps)].mean(0), dim=-1))
        start += len(ps)
    return torch.stack(sets)  # (K, D)
