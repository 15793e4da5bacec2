#!/usr/bin/env bash
# GPU check of the real-model backends, with random-init models built from configs (no downloads).
#
#   benchmarks/gpu_check.sh                       # on a GPU machine (about 3-5 min on one H200)
#   GPU_CHECK_TINY=1 DEVICE=cpu benchmarks/gpu_check.sh   # a CPU smoke test of this script
#
# Prints:
#   1. SD-1.5-size generation (UNet 860M, CLIP ViT-L/14 text encoder, SD VAE; random init) at
#      512x512, 50 steps, batch 8, bfloat16, through syncxr's DiffusionGenerator: images/s and
#      peak GPU memory.
#   2. Drift: the same 8 requests drawn in bfloat16 batch 8, float32 batch 8 and float32 batch 1:
#      mean / max absolute pixel difference (0-255) against float32 batch 1.
#      (Random weights draw noise-like images; trained weights may drift differently.)
#   3. A real CUDA out-of-memory error is the class the generator's batch halving catches.
#   4. RAD-DINO-size ViT-B/14 features at 518x518 (float32 and bfloat16, batch 64): images/s end
#      to end (CPU preprocessing included) and forward-only, and bf16-vs-fp32 feature cosine.
# Environment: PYTHON (default python), DEVICE (default cuda), GPU_CHECK_TINY=1 (small models).
# Needs syncxr's own dependencies in that Python (torch, diffusers, transformers, tokenizers,
# pydantic, rich: pip install -e '.[diffusion,train]'); it reads the repository, not an install.
# Not run in CI. Verified here only in the GPU_CHECK_TINY=1 DEVICE=cpu mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src:tests/backends${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec "${PYTHON:-python}" - <<'PY'
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

logging.disable(logging.WARNING)
from diffusers.utils import logging as dlog  # noqa: E402
from transformers.utils import logging as tlog  # noqa: E402

dlog.disable_progress_bar()
tlog.disable_progress_bar()

DEVICE = os.environ.get("DEVICE", "cuda")
TINY = os.environ.get("GPU_CHECK_TINY") == "1"
if TINY:
    SIZE, STEPS, BATCH, TIMED_BATCHES, DINO_N, DINO_BATCH, DINO_SIZE = 64, 3, 4, 1, 16, 8, 56
else:
    SIZE, STEPS, BATCH, TIMED_BATCHES, DINO_N, DINO_BATCH, DINO_SIZE = 512, 50, 8, 3, 512, 64, 518
PROMPTS = [
    "Small right pleural effusion.",
    "Moderate cardiomegaly with mild pulmonary edema.",
    "No acute cardiopulmonary process.",
    "Left lower lobe opacity, possibly pneumonia. Small left effusion.",
    "Right upper lobe mass measuring 3.5 cm.",
    "Bilateral pleural effusions, larger on the right, with adjacent atelectasis.",
    "Endotracheal tube 4 cm above the carina. No pneumothorax.",
    " ".join(["Diffuse bilateral interstitial opacities consistent with edema"] * 6),  # > 77 CLIP tokens
]


def sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE.startswith("cuda") else float("nan")


def build_sd(path: Path) -> Path:
    """SD-1.5 architecture (or a small one with GPU_CHECK_TINY), random init, saved in diffusers layout."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tiny import clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = clip_tokenizer()
    tok.model_max_length = 77
    if TINY:
        text = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, max_position_embeddings=77)
        unet = UNet2DConditionModel(sample_size=SIZE // 8, block_out_channels=(16, 32), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=4, norm_num_groups=8)
        vae = AutoencoderKL(block_out_channels=(16, 16), layers_per_block=1, norm_num_groups=8,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    else:
        text = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            sample_size=512)
    text.bos_token_id, text.eos_token_id, text.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tok, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    n_unet = sum(p.numel() for p in unet.parameters()) / 1e6
    pipe.save_pretrained(path)
    print(f"built SD pipeline: UNet {n_unet:.0f}M parameters -> {path}")
    return path


def drift(a: list[np.ndarray], b: list[np.ndarray]) -> str:
    d = np.abs(np.stack(a).astype(np.int16) - np.stack(b).astype(np.int16))
    return f"mean {d.mean():.2f}, max {d.max()}, pixels >8 levels off {100 * (d > 8).mean():.2f}%"


def check_diffusion(tmp: Path) -> None:
    from syncxr.image.base import ImageRequest
    from syncxr.image.diffusion import DiffusionGenerator

    folder = build_sd(tmp / "sd15")
    reqs = [ImageRequest(PROMPTS[i % len(PROMPTS)], seed=1000 + i) for i in range(BATCH * TIMED_BATCHES)]
    bf16 = DiffusionGenerator(str(folder), device=DEVICE, dtype="bfloat16", steps=STEPS, guidance_scale=4.0,
                              height=SIZE, width=SIZE, batch_size=BATCH)
    bf16.steps = 3
    bf16.generate_batch(reqs[:BATCH])  # warm-up (kernels, allocator)
    bf16.steps = STEPS
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync()
    t = time.perf_counter()
    out = bf16.generate_batch(reqs)
    sync()
    secs = time.perf_counter() - t
    bad = [o for o in out if isinstance(o, Exception)]
    assert not bad, bad[:1]
    print(f"\n[1] SD-1.5-size, {SIZE}x{SIZE}, {STEPS} steps, batch {BATCH}, bfloat16: {len(reqs)} images in "
          f"{secs:.1f} s = {len(reqs) / secs:.2f} images/s; peak GPU memory {peak_gib():.1f} GiB")
    print(f"    prompt accounting of the long IMPRESSION: {bf16.prompt_meta(PROMPTS[-1])}")

    first = reqs[:BATCH]
    b16 = [o.image for o in out[:BATCH]]
    fp32 = DiffusionGenerator(str(folder), device=DEVICE, dtype="float32", steps=STEPS, guidance_scale=4.0,
                              height=SIZE, width=SIZE, batch_size=1)
    sync()
    t = time.perf_counter()
    f1 = [o.image for o in fp32.generate_batch(first)]
    sync()
    t1 = time.perf_counter() - t
    fp32.batch_size = BATCH
    t = time.perf_counter()
    f8 = [o.image for o in fp32.generate_batch(first)]
    sync()
    t8 = time.perf_counter() - t
    print(f"\n[2] drift against float32 batch 1 ({len(first)} images, pixel levels 0-255):")
    print(f"    float32 batch {BATCH}  : {drift(f8, f1)}")
    print(f"    bfloat16 batch {BATCH} : {drift(b16, f1)}")
    print(f"    (float32 rates: batch 1 {len(first) / t1:.2f} images/s, batch {BATCH} {len(first) / t8:.2f} images/s)")
    del fp32, bf16
    if DEVICE.startswith("cuda"):
        torch.cuda.empty_cache()


def check_oom() -> None:
    from syncxr.image.diffusion import _is_oom

    if not DEVICE.startswith("cuda"):
        print("\n[3] out-of-memory class: skipped (no CUDA)")
        return
    try:
        torch.empty(1 << 46, dtype=torch.uint8, device=DEVICE)  # 64 TiB
    except Exception as e:  # noqa: BLE001 - we want to see what CUDA raises
        print(f"\n[3] a real CUDA OOM raises {type(e).__module__}.{type(e).__name__}; caught by the halving: {_is_oom(e)}")
        torch.cuda.empty_cache()


def check_dino(tmp: Path) -> None:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from syncxr.qc.rad_dino import RadDinoFeatures

    torch.manual_seed(0)
    path = tmp / "raddino"
    if TINY:
        cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=DINO_SIZE, patch_size=14)
    else:  # RAD-DINO: ViT-B/14, 518 px input
        cfg = Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           image_size=DINO_SIZE, patch_size=14, layerscale_value=1e-5)
    Dinov2Model(cfg).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": DINO_SIZE}, crop_size={"height": DINO_SIZE, "width": DINO_SIZE},
                      do_center_crop=True, image_mean=[0.53] * 3, image_std=[0.25] * 3).save_pretrained(path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(512, 512), dtype=np.uint8) for _ in range(DINO_N)]
    feats = {}
    print(f"\n[4] RAD-DINO-size ViT-B/14 at {DINO_SIZE}x{DINO_SIZE}, batch {DINO_BATCH}, {DINO_N} images:")
    for dtype in ("float32", "bfloat16"):
        fx = RadDinoFeatures(str(path), device=DEVICE, batch_size=DINO_BATCH, dtype=dtype)
        fx.features(images[:DINO_BATCH])  # warm-up
        sync()
        t = time.perf_counter()
        feats[dtype] = fx.features(images)
        sync()
        e2e = DINO_N / (time.perf_counter() - t)
        pixels = torch.randn(DINO_BATCH, 3, DINO_SIZE, DINO_SIZE, device=DEVICE, dtype=fx.dtype)
        reps = max(1, DINO_N // DINO_BATCH)
        with torch.inference_mode():
            fx.model(pixel_values=pixels)
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                fx.model(pixel_values=pixels)
            sync()
        fwd = reps * DINO_BATCH / (time.perf_counter() - t)
        print(f"    {dtype:8s}: {e2e:8.1f} images/s end to end (CPU preprocessing included), {fwd:8.1f} images/s forward only")
        del fx
    cos = (feats["float32"] * feats["bfloat16"]).sum(axis=1)
    print(f"    bf16 vs fp32 feature cosine: min {cos.min():.4f}, mean {cos.mean():.4f}")


if DEVICE.startswith("cuda"):
    print(f"device: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB), "
          f"torch {torch.__version__}")
start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    check_diffusion(Path(tmp))
    check_oom()
    check_dino(Path(tmp))
print(f"\ngpu_check done in {time.perf_counter() - start:.0f} s")
PY
