"""Model config (pydantic), the dual encoder, and the factory that builds it by preset names."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from syncxr.models.base import EncoderOutput
from syncxr.models.image import IMAGE_ENCODERS, load_image_weights
from syncxr.models.text import TextEncoder, build_text_encoder


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageConfig(_Strict):
    arch: str = "tiny_cnn"  # resnet18 | resnet50 | vit_small | vit_base | vit_tiny | tiny_cnn
    pretrained: Optional[str] = None  # local .safetensors/.pt of the backbone (RGB stems folded)
    image_size: int = Field(64, ge=16, le=2048)
    mean: float = 0.5
    std: float = Field(0.25, gt=0)
    sync_bn: bool = True  # convert BatchNorm to SyncBatchNorm under DDP on GPU


class TextConfig(_Strict):
    name: str = "bert-tiny-builtin"  # bert-{tiny,small,base}-builtin | hf:<name-or-path>
    max_length: int = Field(64, ge=4, le=512)
    vocab_size: int = Field(4000, ge=100)  # built-in WordPiece only
    dropout: float = Field(0.1, ge=0, lt=1)


class ModelConfig(_Strict):
    embed_dim: int = Field(128, ge=8)
    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()


class DualEncoder(nn.Module):
    """Image + text encoder. Both return projected, not normalised, embeddings."""

    def __init__(self, image: nn.Module, text: TextEncoder) -> None:
        super().__init__()
        self.image = image
        self.text = text

    def encode_image(self, x: torch.Tensor) -> EncoderOutput:
        """x: (B, 1, H, W) normalised float images."""
        return self.image(x)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        """input_ids, attention_mask: (B, L) from `tokenize`."""
        return self.text(input_ids, attention_mask)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text.tokenize(texts)

    def forward(
        self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[EncoderOutput, EncoderOutput]:
        return self.encode_image(images), self.encode_text(input_ids, attention_mask)


def build_image_encoder(cfg: ImageConfig, embed_dim: int, load_weights: bool = True) -> nn.Module:
    """Build the image encoder preset `cfg.arch`; pretrained backbone weights from a local path."""
    from syncxr.errors import UserError

    if cfg.arch not in IMAGE_ENCODERS:
        raise UserError(
            f"model.image.arch: unknown image encoder {cfg.arch!r}; valid: {', '.join(IMAGE_ENCODERS.names())}"
        )
    enc = IMAGE_ENCODERS.build(cfg.arch, embed_dim=embed_dim, image_size=cfg.image_size)
    if load_weights and cfg.pretrained:
        load_image_weights(enc, cfg.pretrained)
    return enc


def build_model(
    cfg: ModelConfig, corpus: Iterable[str] | None = None, saved_text: Path | None = None
) -> DualEncoder:
    """Build the dual encoder. For a fresh run give `corpus` (built-in tokenizer training); to
    rebuild a saved model give `saved_text` (the checkpoint's text folder) and load weights after.
    """
    image = build_image_encoder(cfg.image, cfg.embed_dim, load_weights=saved_text is None)
    text = build_text_encoder(
        cfg.text.name, cfg.embed_dim, cfg.text.max_length, corpus=corpus,
        vocab_size=cfg.text.vocab_size, dropout=cfg.text.dropout, saved=saved_text,
    )
    return DualEncoder(image, text)

