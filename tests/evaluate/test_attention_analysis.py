"""Mass-share statistics of `evaluate.attention` (benchmarks/zeroshot_attention.py reads maps with them)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from syncxr.evaluate.attention import (
    area_share,
    iter_maps,
    pointing_hit,
    region_stats,
    top_pixels,
    top_share,
)
from syncxr.evaluate.geometry import grid_to_original


def _planted(h: int = 64, w: int = 64) -> np.ndarray:
    region = np.zeros((h, w), bool)
    region[10:30, 40:60] = True  # 400 px of 4096: area share 0.098
    return region


def test_map_peaking_inside_a_planted_mask_puts_its_top_pixels_there() -> None:
    region = _planted()
    yy, xx = np.mgrid[:64, :64]
    saliency = np.exp(-((yy - 20) ** 2 + (xx - 50) ** 2) / 40.0)  # a bump centred in the region
    assert top_share(saliency, region, frac=0.05) == pytest.approx(1.0)  # 205 top px fit in the 400 px box
    assert pointing_hit(saliency, region) == 1.0
    # the same bump moved outside the region scores 0
    away = np.roll(saliency, 30, axis=0)
    assert top_share(away, region, frac=0.05) == 0.0
    assert pointing_hit(away, region) == 0.0


def test_uniform_map_gives_the_area_share() -> None:
    region = _planted()
    flat = np.full(region.shape, 0.3)
    assert top_share(flat, region, frac=0.1) == pytest.approx(area_share(region))
    assert area_share(region) == pytest.approx(400 / 4096)
    assert pointing_hit(flat, region) == pytest.approx(400 / 4096)  # credit shared over the tied maxima


def test_random_map_share_is_near_chance_on_average() -> None:
    rng = np.random.default_rng(0)
    region = _planted()
    shares = [top_share(rng.random(region.shape), region, frac=0.1) for _ in range(50)]
    assert np.mean(shares) == pytest.approx(area_share(region), abs=0.01)


def test_invalid_pixels_are_left_out() -> None:
    region = _planted()
    valid = np.zeros(region.shape, bool)
    valid[:, 32:] = True  # only the right half was seen: the region is 400 of its 2048 pixels
    saliency = np.zeros(region.shape)
    saliency[:, :32] = 10.0  # hot only where the model saw nothing
    assert area_share(region, valid) == pytest.approx(400 / 2048)
    assert top_share(saliency, region, valid) == pytest.approx(400 / 2048)  # flat over the valid half
    assert top_pixels(saliency, valid).sum() == 2048


def test_region_stats_is_nan_without_a_region() -> None:
    out = region_stats(np.ones((8, 8)), None, np.ones((8, 8), bool), 0.1)
    assert all(np.isnan(v) for v in out.values())
    with pytest.raises(ValueError):
        top_pixels(np.ones((8, 8)), np.ones((8, 8), bool), frac=0.0)


class _PatchModel(torch.nn.Module):
    """2 x 2 patch grid; patch (0, 1) (top right) aligns with text direction e0, the rest with e1."""

    def encode_image_patches(self, x: torch.Tensor) -> SimpleNamespace:
        local = torch.zeros(x.shape[0], 4, 2)
        local[:, :, 1] = 1.0
        local[:, 1] = torch.tensor([3.0, 0.0])
        return SimpleNamespace(local=local, grid=(2, 2))

    def encode_image(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(global_emb=self.encode_image_patches(x).local.mean(1))


def test_iter_maps_puts_the_aligned_patch_where_it_is_in_the_image() -> None:
    class Pre:
        image_size = 8

        def __call__(self, img: np.ndarray) -> np.ndarray:
            return np.zeros((1, 8, 8), np.float32)

    pretrained = SimpleNamespace(model=_PatchModel(), preprocess=Pre(), checkpoint_id="fake")

    class DS:
        name = "fake"

        def __len__(self) -> int:
            return 1

        def image(self, i: int) -> np.ndarray:
            return np.zeros((16, 16), np.uint8)

    (_, maps, valid, _), = list(iter_maps(pretrained, DS(), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])))
    assert maps.shape == (2, 16, 16) and valid.all()
    top_right = np.zeros((16, 16), bool)
    top_right[:8, 8:] = True
    for m in maps:  # cosine map and raw contribution map both point at the top-right quadrant
        assert pointing_hit(m, top_right) == 1.0
        assert top_share(m, top_right, frac=0.1) == pytest.approx(1.0)
    assert maps[1].max() == pytest.approx(3.0)  # raw: the un-normalised patch . direction
    assert maps[0].max() == pytest.approx(1.0)  # cosine
    full, _ = grid_to_original(torch.tensor([[0.0, 1.0], [0.0, 0.0]]), 16, 16, "center_crop")
    assert np.argmax(full) == np.argmax(maps[0])


def test_phantom_anatomy_masks_match_the_rendered_image() -> None:
    from syncxr.image.phantom import FindingSpec, render_phantom
    from syncxr.image.phantom.render import anatomy_masks

    findings = [FindingSpec("pleural_effusion")]
    lungs, body = anatomy_masks(findings, 7, 128)
    img = render_phantom(findings, 7, 128).image.astype(float)
    assert lungs.shape == body.shape == (128, 128)
    assert (lungs & ~body).sum() == 0  # the lungs lie inside the body
    assert 0.15 < lungs.mean() < 0.6 and 0.6 < body.mean() <= 1.0
    # air is dark on a radiograph: lungs darker than the rest of the body
    assert img[lungs].mean() < img[body & ~lungs].mean()
