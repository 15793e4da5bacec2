"""Protocol of image generators (phantom, diffusion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

from syncxr.errors import each_or_error
from syncxr.records import Verdict
from syncxr.registry import Registry


@dataclass
class GeneratedImage:
    image: np.ndarray  # (H, W) uint8 grayscale
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # finding name -> (H, W) bool
    # What the model saw, stored with the sample's QC scores, e.g. {"prompt_tokens": 77,
    # "prompt_truncated": 1.0} for a CLIP text encoder that cut the IMPRESSION.
    meta: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRequest:
    """One image to draw: the IMPRESSION, the sample's seed and the attempt number (0 first)."""

    prompt: str
    seed: int
    attempt: int = 0


# A drawn image, or the exception that failed that one sample.
ImageResult = Union[GeneratedImage, Exception]


@runtime_checkable
class ImageFilter(Protocol):
    """What the image stage asks of a QC filter (implemented in `syncxr.qc`)."""

    def check(self, image: np.ndarray) -> Verdict:
        """ok, or a reason code (e.g. 'qc_bank_similarity', 'qc_too_dark') with scores."""
        ...

    def check_batch(self, images: Sequence[np.ndarray]) -> list[Verdict]:
        """`check` of each image, in order (features computed in one batch)."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    """Draws images from IMPRESSIONs. `generate_batch` is what the pipeline calls; an image never
    depends on its batch-mates (one random generator per request, seeded from its seed and
    attempt). An `InfrastructureError` (e.g. out of memory after halving the batch) is raised,
    not returned: it fails the shard."""

    backend_id: str

    def generate(self, impression: str, seed: int, attempt: int = 0) -> GeneratedImage:
        """Draw an image conditioned on the IMPRESSION text only."""
        ...

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        """One result per request, in order."""
        ...


class GenerateOneByOne:
    """`generate_batch` for generators with no batched path: one `generate` per request."""

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        return each_or_error(lambda r: self.generate(r.prompt, r.seed, r.attempt), requests)  # type: ignore[attr-defined]


# One line per backend: name -> "module:factory" (imported only when chosen).
GENERATORS: Registry[ImageGenerator] = Registry(
    "image generator",
    {
        "phantom": "syncxr.image.phantom.generator:PhantomGenerator",
        "diffusion": "syncxr.image.diffusion:DiffusionGenerator",
    },
    requires={"diffusion": ("torch", "diffusers")},
)
