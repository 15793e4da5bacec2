import numpy as np
import pytest
import torch
from evaluate_fakes import TOP, FakeDataset, cell_box, make_pretrained, random_labels

from syncxr.errors import UserError
from syncxr.evaluate.geometry import boxes_to_mask, grid_to_original, input_region, mask_to_input
from syncxr.evaluate.grounding import GroundingOptions, run_grounding

FINDINGS = ["cardiomegaly", "pleural_effusion", "pneumothorax"]


@pytest.fixture(scope="module")
def dataset():
    y = random_labels(40, 3, seed=2, p=0.5)
    y[:, 2] = 0.0  # no positive pneumothorax -> skipped with a reason
    return FakeDataset("fakeg", FINDINGS, y)


def test_input_region_undoes_center_crop():
    assert input_region(72, 64, "center_crop") == (4, 0, 64, 64)
    assert input_region(50, 80, "center_crop") == (0, 15, 50, 50)
    assert input_region(72, 64, "stretch") == (0, 0, 72, 64)


def test_grid_maps_to_the_right_original_pixels():
    grid = torch.zeros(4, 4)
    grid[0, 1] = 1.0  # second patch of the first row of the input
    full, valid = grid_to_original(grid, 72, 64, "center_crop")
    assert full.shape == (72, 64)
    assert valid[:TOP].sum() == 0 and valid[TOP : TOP + 64].all() and valid[TOP + 64 :].sum() == 0
    y, x = np.unravel_index(np.argmax(full), full.shape)
    assert TOP <= y < TOP + 16 and 16 <= x < 32  # inside that patch's 16 x 16 footprint


def test_masks_and_boxes_geometry():
    m = boxes_to_mask([("a", 2, 3, 4, 2), ("b", 0, 0, 1, 1)], "a", 8, 8)
    assert m.sum() == 8 and m[3:5, 2:6].all()
    mask = np.zeros((72, 64), bool)
    mask[TOP : TOP + 32, :32] = True  # top-left quarter of the crop
    small = mask_to_input(mask, 16, "center_crop")
    assert small[:8, :8].all() and small.sum() == 64


def test_oracle_grounds_every_positive(dataset):
    res = run_grounding(make_pretrained(FINDINGS), dataset, GroundingOptions(n_boot=20, thresholds=[0.5])).result
    for f in FINDINGS[:2]:
        m = res["per_finding"][f]
        assert m["n"] == int((dataset.labels[:, FINDINGS.index(f)] == 1).sum())
        assert m["pointing_game"] == 1.0
        assert m["iou@0.5"] > 0.5 and m["recall@0.5"] > 0.8
        assert m["cnr"] > 1.0
    assert "no positive image" in res["skipped"]["pneumothorax"]
    assert res["mean_pointing_game"] == 1.0


def test_misaligned_model_fails_the_pointing_game(dataset):
    pre = make_pretrained(FINDINGS)
    pre.model.code = torch.roll(pre.model.code, shifts=4, dims=2)  # features two cells to the right
    res = run_grounding(pre, dataset, GroundingOptions(n_boot=0, thresholds=[0.5])).result
    assert res["per_finding"]["cardiomegaly"]["pointing_game"] == 0.0
    assert res["per_finding"]["cardiomegaly"]["iou@0.5"] == 0.0


def test_no_local_features_is_a_clear_error(dataset):
    with pytest.raises(UserError, match="grounding needs image local features"):
        run_grounding(make_pretrained(FINDINGS, local=False), dataset, GroundingOptions())
    pre = make_pretrained(FINDINGS, local=False)
    pre.has_local_features = True  # claims local features but returns none: still an error, never zeros
    with pytest.raises(UserError, match="grounding needs image local features"):
        run_grounding(pre, dataset, GroundingOptions())
