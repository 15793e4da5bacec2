"""Image encoders: ResNet-18/50 (torchvision), ViT (timm) and a tiny CNN for CPU runs.

Every encoder takes (B, 1, H, W) float images and returns an EncoderOutput whose `global_emb` is
(B, D) and whose `local` holds the last feature map as patches (B, h*w, D), both projected to D.
ViTs also fill `attn_weights` with the last block's [CLS]-to-patch attention (MGCA's patch weights).

`image_feature_maps(x)` gives the backbone's unprojected multi-scale maps for dense heads
(segmentation skips): ResNet layer1..layer4, the tiny CNN's four stages, or a ViT's patch tokens
from several blocks reshaped to the patch grid; a list of (B, C_i, h_i, w_i), coarsest last.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
import torch
from torch import nn

from syncxr.errors import UserError
from syncxr.models.base import EncoderOutput

log = logging.getLogger(__name__)

class ImageEncoder(nn.Module):
    """Backbone producing a feature map (B, C, h, w) or tokens, plus two linear projections."""

    feature_dim: int

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Return (pooled (B, C), local (B, L, C), grid (h, w))."""
        raise NotImplementedError

    def init_heads(self, embed_dim: int) -> None:
        self.global_proj = nn.Linear(self.feature_dim, embed_dim)
        self.local_proj = nn.Linear(self.feature_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        pooled, local, grid = self.features(x)  # (B, C), (B, L, C)
        return EncoderOutput(
            global_emb=self.global_proj(pooled), local=self.local_proj(local), mask=None, grid=grid
        )

    def project_patches_global(self, local: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Unprojected patch features (B, L, C) -> (B, L, D) through the GLOBAL projection, the
        space the global (instance-level) loss aligned with the text (BioViL-style patch maps)."""
        return self.global_proj(local)

    def encode_patches_global(self, x: torch.Tensor) -> EncoderOutput:
        """global_emb as in forward; local = patch embeddings in the global space (B, h*w, D)."""
        pooled, local, grid = self.features(x)  # (B, C'), (B, L, C)
        return EncoderOutput(global_emb=self.global_proj(pooled), local=self.project_patches_global(local, grid),
                             mask=None, grid=grid)


def local_to_map(out: EncoderOutput) -> torch.Tensor:
    """An encoder output's local patches back on their grid: (B, h*w, D) -> (B, D, h, w)."""
    if out.local is None or out.grid is None:
        raise ValueError("the encoder output has no local patch features on a grid")
    h, w = out.grid
    return out.local.transpose(1, 2).reshape(out.local.shape[0], -1, h, w)


class ConvMapEncoder(ImageEncoder):
    """Any conv trunk returning a (B, C, h, w) map: local = the h*w patches (of the last map, or of
    the penultimate tapped stage after `use_local_layer("penultimate")`); global = mean pool,
    or with `pool_grid=g` the g x g average-pooled map flattened, which keeps coarse position
    (left vs right) that a shallow net cannot encode in its channels alone.

    `stages`: indices of the trunk's children whose outputs `image_feature_maps` returns
    (default: the last one only)."""

    def __init__(
        self, trunk: nn.Sequential, feature_dim: int, embed_dim: int, pool_grid: int = 1,
        stages: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.stages = tuple(sorted(stages)) if stages else (len(trunk) - 1,)
        if self.stages[-1] != len(trunk) - 1:
            raise ValueError("the last feature map must be the trunk's output")
        self.pool_grid = pool_grid
        self.local_dim = feature_dim
        self.feature_dim = feature_dim * pool_grid * pool_grid
        self.global_proj = nn.Linear(self.feature_dim, embed_dim)
        self.local_proj = nn.Linear(feature_dim, embed_dim)
        self.local_stage = len(trunk) - 1  # trunk index of the map the local head reads

    def use_local_layer(self, layer: str) -> None:
        """Take local features from the "last" map (default) or the "penultimate" tapped stage
        (ResNet layer3: 14 x 14 at 224 px, as GLoRIA and MGCA do, instead of layer4's 7 x 7); the
        local projection is rebuilt for that map's channels."""
        if layer == "last":
            return
        if layer != "penultimate" or len(self.stages) < 2:
            raise ValueError(f"local layer {layer!r}: expected last or penultimate (needs two tapped stages)")
        self.local_stage = self.stages[-2]
        convs = [m for m in self.trunk[: self.local_stage + 1].modules() if isinstance(m, nn.Conv2d)]
        self.local_proj = nn.Linear(convs[-1].out_channels, self.local_proj.out_features)

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C) mean, or (B, C*g*g) cell means flattened channel-major."""
        if self.pool_grid == 1:
            return fmap.mean(dim=(2, 3))
        return nn.functional.adaptive_avg_pool2d(fmap, self.pool_grid).flatten(1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(pooled (B, C'), last map's patches (B, h*w, C), (h, w))."""
        fmap = self.trunk(x)  # (B, C, h, w)
        _, _, h, w = fmap.shape
        return self._pool(fmap), fmap.flatten(2).transpose(1, 2), (h, w)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        local_map = None
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i == self.local_stage:
                local_map = x  # (B, C_l, h_l, w_l)
        _, _, h, w = local_map.shape
        local = local_map.flatten(2).transpose(1, 2)  # (B, h_l*w_l, C_l)
        return EncoderOutput(global_emb=self.global_proj(self._pool(x)), local=self.local_proj(local), mask=None,
                             grid=(h, w))

    def project_patches_global(self, local: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, C) -> (B, h*w, D) in the global space, so that the global embedding is the mean of
        the patch embeddings (exactly, when the pool cells tile the grid evenly).

        pool_grid 1: global_proj(patch). pool_grid g: the pooled vector is the g x g cell means
        flattened channel-major (index c*g*g + cell), so global = b + sum_cells W_cell mean_cell;
        a patch in cell q gets g*g * W_q f + b. Each patch's share of the image-text similarity is
        then its own similarity, in the space the loss trained.
        """
        g = self.pool_grid
        if g == 1:
            return self.global_proj(local)
        if not isinstance(self.global_proj, nn.Linear):
            raise NotImplementedError("patches of a pool_grid > 1 encoder have no global-space image under a non-linear head")
        h, w = grid
        weight = self.global_proj.weight.view(-1, self.local_dim, g * g)  # (D, C, g*g)
        rows = torch.arange(h, device=local.device) * g // h  # (h,) cell row of each patch row
        cols = torch.arange(w, device=local.device) * g // w  # (w,)
        cell = (rows[:, None] * g + cols[None, :]).flatten()  # (h*w,) cell index of each patch
        per_patch = weight[:, :, cell]  # (D, C, L)
        return (g * g) * torch.einsum("blc,dcl->bld", local, per_patch) + self.global_proj.bias

    def image_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the tapped trunk stages, [(B, C_i, h_i, w_i)], finest first, coarsest last."""
        maps = []
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in self.stages:
                maps.append(x)
        return maps


class ViTEncoder(ImageEncoder):
    """timm VisionTransformer: global = class token, local = patch tokens, attn_weights = the last
    block's [CLS]-to-patch attention averaged over heads.

    `feature_blocks`: blocks whose patch tokens `image_feature_maps` returns (default: four evenly
    spaced blocks ending with the last, e.g. 2, 5, 8, 11 of 12). All share the patch grid.
    """

    def __init__(self, vit: nn.Module, embed_dim: int, feature_blocks: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.vit = vit
        self.feature_dim = vit.embed_dim
        depth = len(vit.blocks)
        self.feature_blocks = tuple(sorted(feature_blocks or {math.ceil(depth * (k + 1) / 4) - 1 for k in range(4)}))
        self.init_heads(embed_dim)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        tokens = self.vit.forward_features(x)  # (B, P + h*w, C), P prefix (class) tokens
        n_prefix = self.vit.num_prefix_tokens
        grid = tuple(self.vit.patch_embed.grid_size)
        return tokens[:, 0], tokens[:, n_prefix:], (int(grid[0]), int(grid[1]))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        # timm's fused attention never materialises the attention matrix, so the last block's
        # input is captured and only its [CLS] row is recomputed (one query, cheap).
        captured: dict[str, torch.Tensor] = {}
        attn = self.vit.blocks[-1].attn
        handle = attn.register_forward_pre_hook(lambda _m, args: captured.__setitem__("x", args[0]))
        try:
            out = super().forward(x)
        finally:
            handle.remove()
        if "x" in captured:
            out.attn_weights = self._cls_attention(captured["x"])
        return out

    @torch.no_grad()
    def _cls_attention(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, C): the last attention layer's input -> (B, h*w) [CLS]-to-patch attention."""
        attn = self.vit.blocks[-1].attn
        b, n, _ = x.shape
        heads, hd = attn.num_heads, attn.head_dim
        w, bias = attn.qkv.weight, attn.qkv.bias
        inner = heads * hd  # qkv rows: [q | k | v], each `inner` wide
        q = nn.functional.linear(x[:, :1], w[:inner], None if bias is None else bias[:inner])
        k = nn.functional.linear(x, w[inner : 2 * inner], None if bias is None else bias[inner : 2 * inner])
        q = attn.q_norm(q.view(b, 1, heads, hd).transpose(1, 2))  # (B, H, 1, hd)
        k = attn.k_norm(k.view(b, n, heads, hd).transpose(1, 2))  # (B, H, N, hd)
        probs = torch.softmax((q * attn.scale) @ k.transpose(-2, -1), dim=-1)  # (B, H, 1, N)
        return probs[:, :, 0, self.vit.num_prefix_tokens :].mean(dim=1)  # (B, h*w)

    def image_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens of `feature_blocks` on the patch grid: [(B, C, h, w)], last block last."""
        return list(self.vit.forward_intermediates(
            x, indices=list(self.feature_blocks), output_fmt="NCHW", intermediates_only=True,
        ))


def _resnet_trunk(arch: str) -> tuple[nn.Sequential, int]:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    # 1-channel stem: same shape as the RGB conv with in_channels=1.
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    trunk = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return trunk, net.fc.in_features


def _tiny_cnn_trunk(width: int = 32) -> tuple[nn.Sequential, int]:
    # GroupNorm, not BatchNorm: a per-batch statistic would make a DDP run differ from one
    # process over the same global batch, and tiny batches make BN noisy anyway.
    chans = [1, width // 2, width, width * 2, width * 4]
    layers: list[nn.Module] = []
    for cin, cout in zip(chans[:-1], chans[1:]):
        layers += [
            nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
            nn.GroupNorm(min(8, cout), cout),
            nn.GELU(),
        ]
    return nn.Sequential(*layers), chans[-1]  # 16x downsampling: 64 px -> 4x4 grid


def load_image_weights(module: nn.Module, path: str | Path) -> None:
    """Load backbone weights from a local .safetensors/.pt/.pth file without unpickling objects.

    RGB stems are folded to one channel by summing the conv weights over the input channels
    (a grey image is R=G=B, so the sum keeps the pretrained response). Missing/unexpected keys
    (e.g. a classifier head) are logged, not fatal.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image encoder weights {p} not found; give an existing local file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:  # weights_only=True refuses arbitrary pickled objects
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise UserError(f"cannot read weights {p}: {exc}; expected a tensor state dict") from exc
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = module.state_dict()
    fitted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        key = _match_key(key, own)
        if key is None:
            continue
        if tensor.ndim == 4 and own[key].ndim == 4 and tensor.shape[1] == 3 and own[key].shape[1] == 1:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape == own[key].shape:
            fitted[key] = tensor
    missing = sorted(set(own) - set(fitted))
    if not fitted:
        raise UserError(f"no tensor in {p} matches the image encoder; check the architecture")
    module.load_state_dict(fitted, strict=False)
    log.info("loaded %d tensors from %s (%d left at init: %s)", len(fitted), p, len(missing), missing[:5])


# ImageNet weights the reference methods start from: torchvision IMAGENET1K_V1 for ResNets (what
# `pretrained=True` gave ConVIRT/GLoRIA/MGCA), timm's default ImageNet tags for ViT-S/B on the HF hub.
IMAGENET_TORCHVISION = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights"}
IMAGENET_TIMM = {"vit_small": "timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
                 "vit_base": "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"}


def imagenet_weights_file(arch: str) -> Path:
    """The local cache file of `arch`'s ImageNet weights; never downloads. A UserError says where
    the file was expected and how to fill the cache when it is missing."""
    if arch in IMAGENET_TORCHVISION:
        import torchvision

        url = getattr(torchvision.models, IMAGENET_TORCHVISION[arch]).IMAGENET1K_V1.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if path.is_file():
            return path
        raise UserError(
            f"model.image.weights=imagenet: {arch} ImageNet weights are not in the local torch cache (expected "
            f"{path}; set TORCH_HOME to move the cache). syncxr never downloads weights: on a machine with network "
            f"run  python -c \"import torchvision; torchvision.models.{arch}(weights='IMAGENET1K_V1')\"  and copy "
            f"the file to that path, or give a local file as model.image.pretrained."
        )
    if arch in IMAGENET_TIMM:
        from huggingface_hub import try_to_load_from_cache

        repo = IMAGENET_TIMM[arch]
        found = try_to_load_from_cache(repo, "model.safetensors", cache_dir=_hf_cache_dir())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
        raise UserError(
            f"model.image.weights=imagenet: {arch} ImageNet weights ({repo}) are not in the local Hugging Face cache "
            f"({_hf_cache_dir() or 'the default cache'}; set HF_HUB_CACHE or HF_HOME to move it). syncxr never "
            f"downloads weights: on a machine with network run  huggingface-cli download {repo} model.safetensors  "
            f"and copy the cache over, or give a local file as model.image.pretrained."
        )
    valid = ", ".join([*IMAGENET_TORCHVISION, *IMAGENET_TIMM])
    raise UserError(f"model.image.weights=imagenet: no ImageNet weights for {arch!r}; available for {valid}")


def _hf_cache_dir() -> str | None:
    """The hub cache folder from the environment at call time (HF_HUB_CACHE, else HF_HOME/hub)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _match_key(key: str, own: dict[str, torch.Tensor]) -> str | None:
    """Map a torchvision/timm key to ours (trunk is an nn.Sequential over the named stages)."""
    if key in own:
        return key
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    head, _, rest = key.partition(".")
    if head in names and f"trunk.{names.index(head)}.{rest}" in own:
        return f"trunk.{names.index(head)}.{rest}"
    for prefix in ("vit.", "trunk."):
        if prefix + key in own:
            return prefix + key
    return None


# --- the encoders named in syncxr.models.registry.IMAGE_ENCODERS --------------------------------


def resnet18(embed_dim: int) -> ImageEncoder:
    trunk, dim = _resnet_trunk("resnet18")
    return ConvMapEncoder(trunk, dim, embed_dim, stages=(4, 5, 6, 7))  # layer1..layer4


def resnet50(embed_dim: int) -> ImageEncoder:
    trunk, dim = _resnet_trunk("resnet50")
    return ConvMapEncoder(trunk, dim, embed_dim, stages=(4, 5, 6, 7))  # layer1..layer4


def tiny_cnn(embed_dim: int) -> ImageEncoder:
    trunk, dim = _tiny_cnn_trunk()
    return ConvMapEncoder(trunk, dim, embed_dim, pool_grid=2, stages=(2, 5, 8, 11))  # each GELU


def _vit(embed_dim: int, image_size: int, patch: int, width: int, depth: int, heads: int) -> ImageEncoder:
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(
        img_size=image_size, patch_size=patch, in_chans=1, num_classes=0,
        embed_dim=width, depth=depth, num_heads=heads,
    )
    return ViTEncoder(vit, embed_dim)


def vit_small(embed_dim: int, image_size: int) -> ImageEncoder:
    return _vit(embed_dim, image_size, patch=16, width=384, depth=12, heads=6)


def vit_base(embed_dim: int, image_size: int) -> ImageEncoder:
    return _vit(embed_dim, image_size, patch=16, width=768, depth=12, heads=12)


def vit_tiny(embed_dim: int, image_size: int) -> ImageEncoder:
    return _vit(embed_dim, image_size, patch=8, width=64, depth=2, heads=2)
