import json

import numpy as np
import pandas as pd
import pytest
import torch
from evaluate_fakes import FakeDataset, make_pretrained, random_labels

from syncxr.errors import UserError
from syncxr.evaluate.prompts import load_prompt_table, prompts_for
from syncxr.evaluate.suite import evaluate_loaded, parse_options
from syncxr.evaluate.zeroshot import ZeroShotOptions, pairwise_scores, run_zeroshot

FINDINGS = ["cardiomegaly", "pleural_effusion", "pneumothorax", "atelectasis"]


@pytest.fixture(scope="module")
def oracle():
    return make_pretrained(FINDINGS)


@pytest.fixture(scope="module")
def labels():
    y = random_labels(160, 4, seed=1, p=0.35, nan_frac=0.05)
    y[:, 3] = 0.0  # atelectasis: no positives -> must be reported as skipped
    return y


def test_oracle_auc_is_one_and_results_are_written(oracle, labels, tmp_path):
    ds = FakeDataset("fakeds", FINDINGS, labels)
    opts = parse_options("zeroshot", {"n_boot": 30, "batch_size": 32}, "test")
    res = evaluate_loaded("zeroshot", oracle, ds, tmp_path, opts)
    for f in FINDINGS[:3]:
        assert res["per_finding"][f]["auc"] == 1.0
        assert res["per_finding"][f]["auc_ci"] == [1.0, 1.0]
        assert res["per_finding"][f]["f1"] == 1.0 and res["per_finding"][f]["acc"] == 1.0
        known = ~np.isnan(labels[:, FINDINGS.index(f)])
        assert res["per_finding"][f]["n"] == known.sum()
        assert res["per_finding"][f]["n_pos"] == int(np.nansum(labels[:, FINDINGS.index(f)]))
    assert "no positives" in res["skipped"]["atelectasis"]
    assert res["mean_auc"] == 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["checkpoint_id"] == "fake-oracle" and saved["task"] == "zeroshot"
    assert saved["config"]["options"]["n_boot"] == 30
    assert saved["config"]["preprocess"]["image_size"] == 32
    preds = pd.read_csv(tmp_path / "predictions.csv")
    assert list(preds.columns) == ["image", *FINDINGS]
    assert preds["image"].iloc[3] == "img0003.png" and len(preds) == len(labels)


def test_shuffled_labels_give_chance_auc(oracle, labels):
    perm = np.random.default_rng(5).permutation(len(labels))
    ds = FakeDataset("fakeds", FINDINGS, labels, image_labels=labels[perm])
    res = run_zeroshot(oracle, ds, ZeroShotOptions(n_boot=50)).result
    for f in FINDINGS[:3]:
        auc = res["per_finding"][f]["auc"]
        lo, hi = res["per_finding"][f]["auc_ci"]
        assert abs(auc - 0.5) < 0.15 and lo < 0.5 < hi


def test_multiclass_oracle_accuracy_is_one(oracle):
    rng = np.random.default_rng(0)
    cls = rng.integers(0, 4, 80)
    y = np.eye(4, dtype=np.float32)[cls]
    ds = FakeDataset("fakemc", FINDINGS, y, multiclass=True)
    res = run_zeroshot(oracle, ds, ZeroShotOptions(n_boot=20)).result
    assert res["mode"] == "multiclass"
    assert res["accuracy"] == 1.0 and res["macro_f1"] == 1.0


def test_pairwise_score_is_softmax_of_pos_neg():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    pos = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0]])
    s = pairwise_scores(img, pos, neg, temperature=0.5)
    expected = torch.sigmoid((img @ pos.T - img @ neg.T) / 0.5)
    assert torch.allclose(s, expected)


def test_failed_image_is_reported_not_scored(labels):
    class Broken(FakeDataset):
        def image(self, i):
            if i == 2:
                raise ValueError("truncated PNG")
            return super().image(i)

    ds = Broken("fakeds", FINDINGS, labels)
    out = run_zeroshot(make_pretrained(FINDINGS), ds, ZeroShotOptions(n_boot=0))
    assert "truncated PNG" in out.result["failed_images"]["2"]
    assert out.result["n_images"] == len(labels) - 1
    assert "img0002.png" not in set(out.predictions["image"])


def test_image_size_mismatch_is_an_error(oracle, labels, tmp_path):
    opts = parse_options("zeroshot", {"image_size": 224}, "test")
    with pytest.raises(UserError, match="image_size=224.*trained with image_size=32"):
        evaluate_loaded("zeroshot", oracle, FakeDataset("x", FINDINGS, labels), tmp_path, opts)
    assert not (tmp_path / "results.json").exists()


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match="temprature"):
        parse_options("zeroshot", {"temprature": 1.0}, "cfg.yaml")


def test_prompt_table_covers_shared_dataset_findings():
    from syncxr.data.relabel import CHEXPERT_MAP, COVIDX_MAP, CXR14_MAP, PADCHEST_MAP

    table = load_prompt_table()
    names = set(CHEXPERT_MAP.values()) | set(CXR14_MAP.values()) | set(PADCHEST_MAP.values()) | set(COVIDX_MAP.values())
    missing = sorted(n for n in names if n not in table)
    assert missing == []
    for n in names:
        assert table[n].positive and table[n].negative
        assert not set(table[n].positive) & set(table[n].negative)
    covidx = load_prompt_table("covidx")
    assert covidx["no_finding"].source == "covidx.yaml"
    fallback = prompts_for(["sternal_wires_xyz"], table)["sternal_wires_xyz"]
    assert fallback.source == "template-fallback" and fallback.negative[0] == "no sternal wires xyz"


def test_console_table_shows_findings_means_and_skips(oracle, labels):
    from rich.console import Console

    from syncxr.evaluate.results import print_table

    res = run_zeroshot(oracle, FakeDataset("fakeds", FINDINGS, labels), ZeroShotOptions(n_boot=10)).result
    console = Console(record=True, width=200)
    print_table({"task": "zeroshot", "dataset": "fakeds", "checkpoint_id": "fake-oracle", **res}, console)
    text = console.export_text()
    assert "zeroshot on fakeds (fake-oracle)" in text
    assert "pleural_effusion" in text and "1.000 [1.000, 1.000]" in text
    assert "mean_auc: 1.000" in text and "skipped atelectasis: no positives" in text


def _noisy_dataset(labels, split=None, patients=None):
    ds = FakeDataset("fakeds", FINDINGS, labels)
    if split is not None:
        ds.meta["split"] = split
    if patients is not None:
        ds.meta["patient_id"] = patients
    return ds


def test_thresholds_come_from_the_validation_split(oracle, labels):
    from syncxr.evaluate.metrics import best_f1

    n = len(labels)
    split = np.where(np.arange(n) < 50, "valid", "test")
    ds = _noisy_dataset(labels, split=split)
    out = run_zeroshot(oracle, ds, ZeroShotOptions(n_boot=0))
    res, scores = out.result, out.predictions
    assert res["thresholds"]["source"] == "validation_split"
    assert (res["thresholds"]["n_tune"], res["thresholds"]["n_report"]) == (50, n - 50)
    f = "cardiomegaly"
    y = labels[:, 0]
    val = (np.arange(n) < 50) & ~np.isnan(y)
    thr = best_f1(y[val], scores[f].to_numpy()[val])[0]
    assert res["per_finding"][f]["threshold"] == thr == res["thresholds"]["per_finding"][f]


def test_without_validation_rows_patients_are_split_seeded(oracle, labels):
    n = len(labels)
    patients = [f"p{i // 3}" for i in range(n)]  # 3 images per patient
    ds = _noisy_dataset(labels, patients=patients)
    a = run_zeroshot(oracle, ds, ZeroShotOptions(n_boot=0, seed=3)).result["thresholds"]
    b = run_zeroshot(oracle, ds, ZeroShotOptions(n_boot=0, seed=3)).result["thresholds"]
    assert a == b and a["source"] == "patient_split" and a["seed"] == 3
    assert a["n_tune"] + a["n_report"] == n and abs(a["n_tune"] - 0.3 * n) <= 3

    from syncxr.evaluate.splits import threshold_split

    tune, report, _ = threshold_split(ds.meta, n, 3, 0.3)
    assert not set(np.asarray(patients)[tune]) & set(np.asarray(patients)[report])  # no patient on both sides


def test_diagnostics_separate_a_shared_abnormality_axis_from_an_inverted_finding() -> None:
    """Issue 7: every score follows how abnormal an image looks (driven by a conspicuous finding b).
    Finding a is subtle: its plain AUC is below chance (b-images outrank it), but against normal
    images only it is clearly above chance, and the score columns are strongly correlated."""
    import numpy as np

    from syncxr.evaluate.metrics import roc_auc
    from syncxr.evaluate.zeroshot import score_diagnostics

    rng = np.random.default_rng(0)
    n = 300
    kind = np.array([0, 1, 2, 2, 2, 2])[np.arange(n) % 6]  # 0 normal, 1 has a, 2 has b (as common as in the sim benchmark)
    labels = np.stack([(kind == 1), (kind == 2)], axis=1).astype(np.float32)
    axis = 0.3 * (kind == 1) + 1.0 * (kind == 2) + rng.normal(0, 0.15, n)
    scores = np.stack([axis + rng.normal(0, 0.05, n), axis + rng.normal(0, 0.05, n)], axis=1)
    assert roc_auc(labels[:, 0], scores[:, 0]) < 0.3  # the symptom
    d = score_diagnostics(labels, scores, ["a", "b"], n_boot=100, seed=0)
    assert d["auc_vs_normal"]["a"]["auc"] > 0.85 and d["auc_vs_normal"]["a"]["auc_ci"][0] > 0.5
    assert d["auc_vs_normal"]["a"]["n_pos"] == 50 and d["auc_vs_normal"]["a"]["n_normal"] == 50
    assert d["mean_score_correlation"] > 0.9
    # A truly inverted finding stays below chance against normals too.
    d = score_diagnostics(labels, np.stack([-scores[:, 0], scores[:, 1]], axis=1), ["a", "b"], n_boot=50)
    assert d["auc_vs_normal"]["a"]["auc"] < 0.15
    # no_finding is not a finding: it does not define "normal" rows and gets no entry.
    lab3 = np.concatenate([labels, (kind == 0)[:, None].astype(np.float32)], axis=1)
    d = score_diagnostics(lab3, np.concatenate([scores, -axis[:, None]], axis=1), ["a", "b", "no_finding"], n_boot=0)
    assert set(d["auc_vs_normal"]) == {"a", "b"} and d["auc_vs_normal"]["a"]["auc_ci"] is None
