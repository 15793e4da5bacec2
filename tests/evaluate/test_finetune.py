import json

import numpy as np
import pytest
from evaluate_fakes import FakeDataset, make_pretrained, random_labels

from syncxr.errors import UserError
from syncxr.evaluate.finetune import FinetuneOptions, run_finetune
from syncxr.evaluate.splits import load_or_make_splits, make_splits, train_indices

FINDINGS = ["cardiomegaly", "pleural_effusion", "pneumothorax"]


@pytest.fixture(scope="module")
def dataset():
    return FakeDataset("fakeft", FINDINGS, random_labels(120, 3, seed=4, p=0.4, nan_frac=0.05))


def test_splits_are_saved_reused_and_nested(dataset, tmp_path):
    path = tmp_path / "splits.json"
    a = load_or_make_splits(path, dataset, seed=3, fractions=[0.1, 1.0])
    saved = json.loads(path.read_text())
    assert saved["train"]["0.1"] == train_indices(a, 0.1)
    assert set(a["test"]).isdisjoint(a["train_pool"]) and set(a["val"]).isdisjoint(a["train_pool"])
    assert len(a["test"]) + len(a["val"]) + len(a["train_pool"]) == len(dataset)
    assert set(train_indices(a, 0.1)) <= set(train_indices(a, 0.5)) <= set(a["train_pool"])
    # A later run with another seed re-uses the saved file instead of re-splitting.
    b = load_or_make_splits(path, dataset, seed=99, fractions=[0.1, 1.0])
    assert b["test"] == a["test"] and b["train_pool"] == a["train_pool"]
    with pytest.raises(UserError, match="was made for dataset 'fakeft' with 120 images"):
        load_or_make_splits(path, dataset.subset(np.arange(50)), seed=3, fractions=[1.0])


def test_random_split_keeps_patients_together():
    import pandas as pd

    meta = pd.DataFrame({"patient_id": np.repeat(np.arange(30), 3), "split": "train"})
    s = make_splits(90, seed=0, test_frac=0.2, val_frac=0.1, meta=meta)
    part = {i: name for name in ("test", "val", "train_pool") for i in s[name]}
    for p in range(30):
        assert len({part[i] for i in range(3 * p, 3 * p + 3)}) == 1
    assert s["source"] == "random_by_patient" and 15 <= len(s["test"]) <= 21


def test_official_split_is_used():
    import pandas as pd

    meta = pd.DataFrame({"split": ["train"] * 6 + ["valid"] * 2 + ["test"] * 2})
    s = make_splits(10, seed=0, meta=meta)
    assert s["source"] == "official" and s["test"] == [8, 9] and s["val"] == [6, 7]
    assert sorted(s["train_pool"]) == list(range(6))


def test_linear_probe_beats_chance_and_records_fractions(dataset, tmp_path):
    opts = FinetuneOptions(n_boot=20, fractions=[0.02, 1.0])
    out = run_finetune(make_pretrained(FINDINGS), dataset, opts, tmp_path)
    res = out.result
    assert res["mean_auc@1"] > 0.95
    assert res["fractions"]["0.02"]["n_train"] == 2
    notes = res["fractions"]["0.02"]["notes"]
    assert notes and all(n.endswith("predicting its prior") for n in notes)
    assert (tmp_path / "splits.json").is_file()
    assert set(out.predictions["fraction"]) == {0.02, 1.0}
    assert list(out.predictions.columns) == ["image", "fraction", *FINDINGS]
    thr = res["fractions"]["1"]["thresholds"]
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert thr["source"] == "validation_split" and thr["n_tune"] == len(splits["val"])
    for f in FINDINGS:
        assert res["fractions"]["1"]["per_finding"][f]["threshold"] == thr["per_finding"][f]


def test_without_a_validation_split_thresholds_come_from_part_of_the_test_set(dataset, tmp_path):
    opts = FinetuneOptions(n_boot=0, fractions=[1.0], val_frac=0.0)
    res = run_finetune(make_pretrained(FINDINGS), dataset, opts, tmp_path).result
    thr = res["fractions"]["1"]["thresholds"]
    assert thr["source"] == "patient_split" and thr["n_tune"] + thr["n_report"] == res["n_test"]


def test_linear_probe_on_uninformative_labels_is_near_chance(dataset, tmp_path):
    perm = np.random.default_rng(0).permutation(len(dataset))
    shuffled = FakeDataset("fakeft", FINDINGS, dataset.labels, image_labels=dataset.labels[perm])
    res = run_finetune(make_pretrained(FINDINGS), shuffled, FinetuneOptions(n_boot=0, fractions=[1.0]), tmp_path).result
    assert abs(res["mean_auc@1"] - 0.5) < 0.2


def test_full_finetune_runs_and_learns(dataset, tmp_path):
    opts = FinetuneOptions(method="full", n_boot=0, fractions=[1.0], epochs=3, head_lr=0.05, lr=1e-3, batch_size=16)
    res = run_finetune(make_pretrained(FINDINGS), dataset, opts, tmp_path).result
    assert res["method"] == "full"
    assert res["mean_auc@1"] > 0.8


def test_multiclass_probe_reports_accuracy(tmp_path):
    cls = np.random.default_rng(1).integers(0, 3, 90)
    ds = FakeDataset("fakecls", FINDINGS, np.eye(3, dtype=np.float32)[cls], multiclass=True)
    res = run_finetune(make_pretrained(FINDINGS), ds, FinetuneOptions(n_boot=10, fractions=[1.0]), tmp_path).result
    assert res["mode"] == "multiclass" and res["accuracy@1"] > 0.9
