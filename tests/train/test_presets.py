"""The paper presets validate and follow the reference recipes; the CPU quick preset stays offline."""

from pathlib import Path

import pytest

from syncxr.train.config import load_config

CONFIGS = Path(__file__).parents[2] / "configs" / "train"


@pytest.mark.parametrize("name", ["convirt", "convirt-r50", "gloria", "mgca"])
def test_paper_presets_start_from_imagenet(name):
    assert load_config(CONFIGS / f"{name}.yaml").model.image.weights == "imagenet"


def test_quick_preset_needs_no_weights():
    assert load_config(CONFIGS / "quick.yaml").model.image.weights is None


def test_method_specific_recipes():
    convirt, gloria, mgca = (load_config(CONFIGS / f"{n}.yaml") for n in ("convirt", "gloria", "mgca"))
    assert (convirt.model.head, convirt.model.text.pooling) == ("mlp", "max")
    assert gloria.model.image.local_layer == mgca.model.image.local_layer == "penultimate"
    assert gloria.objective.params["variant"] == "released" and gloria.model.text.merge_subwords
    assert (mgca.model.head, mgca.model.text.pooling, mgca.optim.warmup_fraction) == ("mlp_bn", "cls", 0.4)
    p = mgca.objective.params
    assert (p["lambda_ita"], p["lambda_cta"], p["lambda_cpa"], p["freeze_prototypes_epochs"]) == (1.0, 1.0, 1.0, 1)
