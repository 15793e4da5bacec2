"""RAD-DINO features: a tiny random Dinov2Model + BitImageProcessor config saved offline and loaded
back through AutoModel / AutoImageProcessor."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from syncxr.errors import UserError  # noqa: E402
from syncxr.qc.base import FEATURES, FeatureExtractor  # noqa: E402
from syncxr.qc.rad_dino import RadDinoFeatures  # noqa: E402  (import registers "rad-dino")


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=56, patch_size=14)
    path = tmp_path_factory.mktemp("dino")
    Dinov2Model(cfg).save_pretrained(path)
    BitImageProcessor(
        size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}, do_center_crop=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25], do_convert_rgb=True,
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def feats(dino_dir):
    return FEATURES.build("rad-dino", model=str(dino_dir), batch_size=2)


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(64 + 8 * i, 60), dtype=np.uint8) for i in range(5)]


def test_features_are_normalised_batched_and_match_the_pooler(feats, dino_dir):
    assert isinstance(feats, RadDinoFeatures) and isinstance(feats, FeatureExtractor)
    assert feats.backend_id == f"rad-dino:{dino_dir.name}"
    images = _images()
    out = feats.features(images)
    assert out.shape == (5, 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # batching (batch_size=2 -> 3 batches) must not change a feature
    np.testing.assert_allclose(feats.features(images[3:4])[0], out[3], atol=1e-5)
    # same as the model's own pooled CLS for the processor's 3-channel input
    pixels = feats.processor(images=[np.repeat(images[0][..., None], 3, -1)], return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 56, 56)
    with torch.no_grad():
        pooled = feats.model(pixel_values=pixels).pooler_output[0]
    np.testing.assert_allclose(out[0], (pooled / pooled.norm()).numpy(), atol=1e-5)
    assert not np.allclose(out[0], out[1])  # different images, different features


def test_empty_and_bad_inputs(feats, tmp_path):
    assert feats.features([]).shape == (0, 32)
    with pytest.raises(UserError, match=r"image 1: expected an \(H, W\) uint8"):
        feats.features([np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32)])
    with pytest.raises(UserError, match="could not load RAD-DINO"):
        FEATURES.build("rad-dino", model=str(tmp_path / "missing"))


def test_batch_features_equal_per_image_features(feats):
    """fp32 CPU: a feature never depends on its batch-mates (batch of 5 vs one at a time)."""
    images = _images()
    saved = feats.batch_size
    try:
        feats.batch_size = 5
        batched = feats.features(images)
        single = np.stack([feats.features([img])[0] for img in images])
    finally:
        feats.batch_size = saved
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.abs(batched - batched[::-1]).max() > 1e-2  # the images do differ


def test_half_precision_features_stay_close_to_float32(dino_dir, feats):
    half = FEATURES.build("rad-dino", model=str(dino_dir), batch_size=2, dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    images = _images()
    low, full = half.features(images), feats.features(images)
    assert low.dtype == np.float32 and low.shape == full.shape
    cosine = (low * full).sum(axis=1)
    assert cosine.min() > 0.98  # bf16 rounding, not another feature
    with pytest.raises(UserError, match="dtype 'int8' is not one of"):
        FEATURES.build("rad-dino", model=str(dino_dir), dtype="int8")


def test_out_of_memory_halves_the_batch_then_fails_the_shard(dino_dir, monkeypatch):
    from syncxr.errors import InfrastructureError

    fx = FEATURES.build("rad-dino", model=str(dino_dir), batch_size=4)
    images = _images()
    expected = fx.features(images)
    real, sizes = fx._embed, []

    def embed(batch, fits=2):
        sizes.append(len(batch))
        if len(batch) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real(batch)

    monkeypatch.setattr(fx, "_embed", embed)
    np.testing.assert_allclose(fx.features(images), expected, atol=1e-5)
    assert sizes == [4, 2, 2, 1] and fx.batch_size == 2  # 4 fails; then 2 + 2 + 1
    monkeypatch.setattr(fx, "_embed", lambda batch: embed(batch, fits=0))
    with pytest.raises(InfrastructureError, match="out of memory at batch size 1"):
        fx.features(images)
