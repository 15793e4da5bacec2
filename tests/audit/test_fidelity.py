"""Fidelity audit end to end on tiny data, and the corpus readers' ids and finding labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from syncxr.audit.corpus import open_set
from syncxr.audit.fidelity import run_fidelity_audit
from syncxr.cli import app
from syncxr.errors import UserError


def test_a_dataset_against_itself_is_indistinguishable(synthetic, tmp_path):
    r = run_fidelity_audit(synthetic, synthetic, "syncxr", tmp_path / "f", min_per_finding=6)
    o = r["overall"]
    assert o["fd"] == pytest.approx(0.0, abs=1e-6) and o["precision"] == 1.0 and o["recall"] == 1.0
    assert o["coverage"] == 1.0 and o["n_real"] == o["n_synthetic"] == 30
    # Every held-out row has its twin in training with the other label: the classifier is pushed to
    # the wrong side, so exact duplicates show as an AUC below chance (said in the reading).
    assert o["classifier"]["auc"] < 0.3 and "below 0.5" in r["reading"]
    for f, g in r["per_finding"].items():  # every group measured against itself
        assert g["fd"] == pytest.approx(0.0, abs=1e-6) and g["precision"] == 1.0, f


def test_synthetic_against_the_sim_corpus_writes_json_table_and_figure(synthetic, sim_corpus, tmp_path):
    out = tmp_path / "f"
    r = CliRunner().invoke(app, ["audit", "fidelity", "--synthetic", str(synthetic), "--real", str(sim_corpus),
                                 "--out", str(out), "--k", "3", "--min-per-finding", "8", "--folds", "3"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "fidelity.json").read_text())
    o = res["overall"]
    assert o["n_real"] == 40 and o["n_synthetic"] == 30 and res["k"] == 3 and o["fd"] > 0
    assert all(0.0 <= o[m] <= 1.0 for m in ("precision", "recall", "coverage")) and o["density"] >= 0
    assert len(o["classifier"]["fold_aucs"]) == 3
    ref = res["real_halves"]
    assert ref["n_real"] == ref["n_synthetic"] == 20 and "| reference: real half vs real half | 20 | 20 |" in (out / "fidelity.md").read_text()
    measured, skipped = set(res["per_finding"]), set(res["skipped_findings"])
    assert measured | skipped and not measured & skipped
    for f in skipped:
        assert "(< 8)" in res["skipped_findings"][f]
    md = (out / "fidelity.md").read_text()
    assert "| overall | 40 | 30 |" in md and "skipped" in md
    assert (out / "fidelity.png").read_bytes()[:4] == b"\x89PNG"


def test_max_images_takes_a_fixed_random_subset_per_side(synthetic, sim_corpus, tmp_path):
    a = run_fidelity_audit(synthetic, sim_corpus, "mimic", tmp_path / "a", max_images=20, folds=2)
    b = run_fidelity_audit(synthetic, sim_corpus, "mimic", tmp_path / "b", max_images=20, folds=2)
    assert a["overall"]["n_real"] == a["overall"]["n_synthetic"] == 20
    assert a["overall"]["fd"] == b["overall"]["fd"]  # the same subset each time


def test_too_few_images_for_k_is_a_user_error(synthetic, tmp_path):
    with pytest.raises(UserError, match="more than k=40"):
        run_fidelity_audit(synthetic, synthetic, "syncxr", tmp_path / "f", k=40)


def test_mimic_ids_and_labels_come_from_the_paths_and_the_chexpert_csv(sim_corpus):
    import pandas as pd

    s = open_set(sim_corpus, "mimic")
    assert len(s) == 40 and all(i.startswith("files/p") and i.endswith(".jpg") for i in s.ids)
    chex = pd.read_csv(sim_corpus / "mimic-cxr-2.0.0-chexpert.csv")
    study = int(s.ids[0].split("/")[3][1:])
    row = chex[chex.study_id == study].iloc[0]
    from syncxr.records import CHEXPERT14, snake

    assert s.labels[0] == frozenset(snake(c) for c in CHEXPERT14 if row[c] == 1.0)
    assert sum(bool(lab) for lab in s.labels) > 20


def test_csv_labels_map_nih_names_to_the_shared_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "labels.csv").write_text(
        "image,labels\n0.png,Effusion|Pneumonia\n1.png,No Finding\n2.png,Pleural_Thickening\n")
    s = open_set(tmp_path / "labels.csv", "csv", text_col="labels", label_col="labels")
    assert s.ids == ["0.png", "1.png", "2.png"]
    assert s.labels == [frozenset({"pleural_effusion", "pneumonia"}), frozenset({"no_finding"}),
                        frozenset({"pleural_thickening"})]
    assert s.load_image(1).shape == (64, 64)
    with pytest.raises(UserError, match="no column 'findings'"):
        open_set(tmp_path / "labels.csv", "csv", text_col="labels", label_col="findings")
