"""Model config (pydantic), the dual encoder, and the factory that builds it by preset names."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from syncxr.models.base import EncoderOutput
from syncxr.models.heads import HeadKind, head_in_features, make_head
from syncxr.models.image import imagenet_weights_file, load_image_weights, local_to_map
from syncxr.models.registry import IMAGE_ENCODERS
from syncxr.models.text import TextEncoder, build_text_encoder


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageConfig(_Strict):
    arch: str = "tiny_cnn"  # a name in IMAGE_ENCODERS (syncxr.models.registry)
    pretrained: Optional[str] = None  # local .safetensors/.pt of the backbone (RGB stems folded)
    # "imagenet": the reference ImageNet weights from the local torch / Hugging Face cache (never
    # downloaded; a missing file is a clear error). Ignored when `pretrained` is given.
    weights: Optional[Literal["imagenet"]] = None
    image_size: int = Field(64, ge=16, le=2048)
    mean: float = 0.5
    std: float = Field(0.25, gt=0)
    sync_bn: bool = True  # convert BatchNorm to SyncBatchNorm under DDP on GPU
    # Map the local head reads: "last" (ResNet layer4, 7 x 7 at 224 px) or "penultimate" (layer3,
    # 14 x 14 at 224 px, as GLoRIA and MGCA); conv encoders only. The global embedding always pools the last map.
    local_layer: Literal["last", "penultimate"] = "last"


class TextConfig(_Strict):
    name: str = "bert-tiny-builtin"  # bert-{tiny,small,base}-builtin | hf:<name-or-path>
    max_length: int = Field(64, ge=4, le=512)
    vocab_size: int = Field(4000, ge=100)  # built-in WordPiece only
    dropout: float = Field(0.1, ge=0, lt=1)
    # Global text embedding: auto (mean for built-in, cls for hf:), cls (MGCA), mean (GLoRIA), max (ConVIRT).
    pooling: Literal["auto", "cls", "mean", "max"] = "auto"
    # Word-level (local) text features: one per word, the sum of its WordPiece pieces (GLoRIA, MGCA),
    # instead of one per sub-word token.
    merge_subwords: bool = False


class ModelConfig(_Strict):
    embed_dim: int = Field(128, ge=8)
    # Projection heads (image and text, global and local): linear | mlp (ConVIRT) | mlp_bn (MGCA).
    head: HeadKind = "linear"
    head_hidden: int = Field(2048, ge=8)  # hidden width of the mlp heads
    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()


class DualEncoder(nn.Module):
    """Image + text encoder. Both return projected, not normalised, embeddings."""

    def __init__(self, image: nn.Module, text: TextEncoder) -> None:
        super().__init__()
        self.image = image
        self.text = text
        # A name, not a module reference: an attribute holding the module would register it twice.
        self._text_attn_name = _last_bert_self_attention(text.model)

    def encode_image(self, x: torch.Tensor) -> EncoderOutput:
        """x: (B, 1, H, W) normalised float images."""
        return self.image(x)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) -> the backbone's pooled features before any projection (B, C), e.g.
        2048-d for ResNet-50: what the reference fine-tuners and linear probes train on."""
        return self.image.features(x)[0]

    def encode_image_patches(self, x: torch.Tensor) -> EncoderOutput:
        """x: (B, 1, H, W) -> EncoderOutput whose `local` holds the patches projected into the
        GLOBAL embedding space (B, h*w, D): comparable with the text's global embedding even when
        the local projection was never trained (ConVIRT)."""
        fn = getattr(self.image, "encode_patches_global", None)
        if not callable(fn):
            raise NotImplementedError(f"{type(self.image).__name__} cannot project its patches into the global space")
        return fn(x)

    def image_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale backbone maps [(B, C_i, h_i, w_i)], coarsest last, for dense heads; an image
        encoder without `image_feature_maps` gives its projected local patches on their grid."""
        fn = getattr(self.image, "image_feature_maps", None)
        if callable(fn):
            return list(fn(x))
        return [local_to_map(self.image(x))]  # (B, D, h, w)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        """input_ids, attention_mask: (B, L) from `tokenize`. For BERT-style text models the output's
        `attn_weights` is the last layer's [CLS]-to-token attention averaged over heads."""
        if self._text_attn_name is None:
            return self.text(input_ids, attention_mask)
        module = self.text.model.get_submodule(self._text_attn_name)
        captured: dict[str, torch.Tensor] = {}

        def grab(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["h"] = args[0] if args else kwargs["hidden_states"]

        # The sdpa attention kernel never returns probabilities; capture the last layer's input
        # and recompute only the [CLS] query row.
        handle = module.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            out = self.text(input_ids, attention_mask)
        finally:
            handle.remove()
        if "h" in captured:
            attn = _cls_attention(module, captured["h"], attention_mask)  # (B, L) per token
            if self.text.merge_subwords:  # a word's importance: the sum over its pieces
                words = attention_mask.bool() & ~torch.isin(input_ids, self.text.special_ids)
                attn = self.text.merge_tokens(attn, input_ids, words)[0]  # (B, W)
            out.attn_weights = attn
        return out

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text.tokenize(texts)

    def forward(
        self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[EncoderOutput, EncoderOutput]:
        return self.encode_image(images), self.encode_text(input_ids, attention_mask)


def _last_bert_self_attention(model: nn.Module) -> str | None:
    """Name of the last BERT-style self-attention (query/key linears + head sizes), or None."""
    found = None
    for name, m in model.named_modules():
        if all(hasattr(m, a) for a in ("query", "key", "num_attention_heads", "attention_head_size")):
            found = name
    return found


@torch.no_grad()
def _cls_attention(module: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, H): input of `module` -> (B, L) softmax([CLS] query . keys / sqrt(d)), head mean."""
    b, n, _ = hidden.shape
    heads, hd = module.num_attention_heads, module.attention_head_size
    q = module.query(hidden[:, :1]).view(b, 1, heads, hd).transpose(1, 2)  # (B, H, 1, hd)
    k = module.key(hidden).view(b, n, heads, hd).transpose(1, 2)  # (B, H, L, hd)
    logits = (q @ k.transpose(-2, -1))[:, :, 0] * hd**-0.5  # (B, H, L)
    logits = logits.float().masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1).mean(dim=1)  # (B, L)


def set_heads(encoder: nn.Module, kind: str, embed_dim: int, hidden: int) -> None:
    """Replace an encoder's linear global/local projections by heads of `kind` (same widths)."""
    if kind == "linear":
        return
    for name in ("global_proj", "local_proj"):
        setattr(encoder, name, make_head(kind, head_in_features(getattr(encoder, name)), embed_dim, hidden))


def build_image_encoder(cfg: ImageConfig, embed_dim: int, load_weights: bool = True, head: str = "linear",
                        head_hidden: int = 2048) -> nn.Module:
    """Build the image encoder preset `cfg.arch`; pretrained backbone weights from a local path."""
    from syncxr.errors import UserError

    if cfg.arch not in IMAGE_ENCODERS:
        raise UserError(
            f"model.image.arch: unknown image encoder {cfg.arch!r}; valid: {', '.join(IMAGE_ENCODERS.names())}"
        )
    enc = IMAGE_ENCODERS.create(cfg.arch, {}, context={"embed_dim": embed_dim, "image_size": cfg.image_size})
    if cfg.local_layer != "last":
        if not hasattr(enc, "use_local_layer"):
            raise UserError(f"model.image.local_layer={cfg.local_layer!r} needs a convolutional encoder; "
                            f"{cfg.arch!r} gives patch tokens of one size (use local_layer: last)")
        enc.use_local_layer(cfg.local_layer)
    set_heads(enc, head, embed_dim, head_hidden)
    if load_weights and cfg.pretrained:
        load_image_weights(enc, cfg.pretrained)
    elif load_weights and cfg.weights == "imagenet":
        load_image_weights(enc, imagenet_weights_file(cfg.arch))
    return enc


def build_model(
    cfg: ModelConfig, corpus: Iterable[str] | None = None, saved_text: Path | None = None,
    load_weights: bool | None = None,
) -> DualEncoder:
    """Build the dual encoder. For a fresh run give `corpus` (built-in tokenizer training); to
    rebuild a saved model give `saved_text` (the checkpoint's text folder) and load weights after.
    load_weights: load the configured backbone weights (default: only without `saved_text`; a fresh
    DDP run loads them although its tokenizer comes from a folder).
    """
    load = saved_text is None if load_weights is None else load_weights
    image = build_image_encoder(cfg.image, cfg.embed_dim, load_weights=load, head=cfg.head, head_hidden=cfg.head_hidden)
    text = build_text_encoder(
        cfg.text.name, cfg.embed_dim, cfg.text.max_length, corpus=corpus,
        vocab_size=cfg.text.vocab_size, dropout=cfg.text.dropout, saved=saved_text,
        pooling=cfg.text.pooling,
    )
    set_heads(text, cfg.head, cfg.embed_dim, cfg.head_hidden)
    text.merge_subwords = cfg.text.merge_subwords
    return DualEncoder(image, text)

