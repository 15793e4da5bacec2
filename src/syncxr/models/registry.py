"""The image encoders by name (`model.image.arch`): one line per encoder, imported only when chosen.

A factory takes `embed_dim` (the projection width) and, if it needs it, `image_size`, and
returns an `ImageEncoder` (models/image.py). Adding an encoder is one module with such a factory
plus one line here; importing this module does not import torch (`syncxr doctor` lists the names).
"""

from __future__ import annotations

from typing import Any

from syncxr.registry import Registry

IMAGE_ENCODERS: "Registry[Any]" = Registry(
    "image encoder",
    {
        "resnet18": "syncxr.models.image:resnet18",
        "resnet50": "syncxr.models.image:resnet50",
        "tiny_cnn": "syncxr.models.image:tiny_cnn",
        "vit_tiny": "syncxr.models.image:vit_tiny",
        "vit_small": "syncxr.models.image:vit_small",
        "vit_base": "syncxr.models.image:vit_base",
    },
    requires={
        "resnet18": ("torch", "torchvision"),
        "resnet50": ("torch", "torchvision"),
        "tiny_cnn": ("torch",),
        "vit_tiny": ("torch", "timm"),
        "vit_small": ("torch", "timm"),
        "vit_base": ("torch", "timm"),
    },
)
