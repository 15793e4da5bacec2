"""Protocol of image generators (phantom, diffusion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from syncxr.records import Verdict
from syncxr.registry import Registry


@dataclass
class GeneratedImage:
    image: np.ndarray  # (H, W) uint8 grayscale
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # finding name -> (H, W) bool


@runtime_checkable
class ImageFilter(Protocol):
    """What the image stage asks of a QC filter (implemented in `syncxr.qc`)."""

    def check(self, image: np.ndarray) -> Verdict:
        """ok, or a reason code (e.g. 'qc_bank_similarity', 'qc_too_dark') with scores."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    backend_id: str

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        """Draw an image conditioned on the IMPRESSION text only."""
        ...


# One line per backend: name -> "module:factory" (imported only when chosen).
GENERATORS: Registry[ImageGenerator] = Registry(
    "image generator",
    {
        "phantom": "syncxr.image.stage:PhantomGenerator",
        "diffusion": "syncxr.image.diffusion:DiffusionGenerator",
    },
)
