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


def test_local_space_word_attention_grounds_the_oracle(dataset):
    pre = make_pretrained(FINDINGS, local_head_trained=True)
    res = run_grounding(pre, dataset, GroundingOptions(n_boot=0, thresholds=[0.5])).result
    assert res["space"] == "local" and "trained the local heads" in res["space_reason"]
    assert res["local_temperature"] == 4.0  # no objective in the fake's config: GLoRIA's tau1
    assert res["per_finding"]["cardiomegaly"]["pointing_game"] == 1.0
    assert res["mean_pointing_game_gain"] > 0.8  # regions are 1/16 of the view: chance 0.0625


def test_auto_uses_the_global_space_when_the_local_head_was_never_trained(dataset):
    res = run_grounding(make_pretrained(FINDINGS), dataset, GroundingOptions(n_boot=0)).result
    assert res["space"] == "global"
    assert res["per_finding"]["cardiomegaly"]["pointing_game_chance"] == pytest.approx(1 / 16)


def test_local_space_on_an_untrained_local_head_is_refused(dataset):
    pre = make_pretrained(FINDINGS)  # local_head_trained=False, like any ConVIRT checkpoint
    pre.config = {"objective": {"name": "convirt"}}
    with pytest.raises(UserError, match="objective 'convirt', which has no local term"):
        run_grounding(pre, dataset, GroundingOptions(space="local"))


def test_word_attention_map_averages_valid_words_only():
    from syncxr.evaluate.grounding import word_attention_map

    patches = torch.eye(3)[None]  # (1, R=3, D=3)
    words = torch.stack([torch.eye(3)[[0, 2]], torch.eye(3)[[1, 1]]])  # (P=2, L=2, D)
    mask = torch.tensor([[True, False], [True, True]])  # prompt 0: only its word on patch 0 counts
    m = word_attention_map(patches, words, mask, tau=50.0)  # near-hard attention
    assert m.shape == (1, 3)
    assert m[0].tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)
