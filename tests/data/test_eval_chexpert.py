"""CheXpert and the 5x200 protocol on fixtures in the official valid.csv/train.csv layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from syncxr.data.sources.registry import load_dataset
from syncxr.errors import UserError

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
          "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,"
          "Pleural Effusion,Pleural Other,Fracture,Support Devices")
# Official-style rows: valid.csv uses 1.0/0.0; train.csv also -1.0 and blanks.
VALID = [
    "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,"
    "0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    "CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Male,70,Frontal,PA,"
    "1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    "CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Male,70,Lateral,,"
    "1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
]
TRAIN = [
    # patient, view, labels for the 14 columns in HEADER order ('' = blank)
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,"
    "1.0,,,,,,,,,0.0,,,,1.0",
    "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,"
    ",,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,",
]


def _jpg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8)).save(path)


def _write(root, name, rows):
    base = root / "CheXpert-v1.0-small"
    base.mkdir(parents=True, exist_ok=True)
    (base / name).write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    for k, row in enumerate(rows):
        _jpg(root / row.split(",")[0], k)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("chexpert")
    _write(r, "valid.csv", VALID)
    _write(r, "train.csv", TRAIN)
    return r


def test_valid_labels_views_and_meta(root):
    ds = load_dataset("chexpert", root)
    assert len(ds) == 3 and ds.findings[0] == "atelectasis" and ds.findings[-1] == "support_devices"
    col = {f: j for j, f in enumerate(ds.findings)}
    assert ds.labels[0, col["cardiomegaly"]] == 1 and ds.labels[0, col["no_finding"]] == 0
    assert ds.labels[1, col["no_finding"]] == 1
    assert ds.meta["view"].tolist() == ["AP", "PA", "LATERAL"]
    assert ds.meta["patient_id"].tolist() == ["patient64541", "patient64542", "patient64542"]
    assert ds.meta["sex"].tolist() == ["Male"] * 3
    assert ds.image(0).shape == (24, 24)
    assert len(ds.view_filter("frontal")) == 2


def test_data_dir_may_be_the_chexpert_folder_itself(root):
    ds = load_dataset("chexpert", root / "CheXpert-v1.0-small")
    assert len(ds) == 3 and ds.image(2).dtype == np.uint8


@pytest.mark.parametrize("policy,expected", [("ignore", np.nan), ("zeros", 0.0), ("ones", 1.0), ("U-Ones", 1.0)])
def test_uncertainty_policies(root, policy, expected):
    ds = load_dataset("chexpert", root, split="train", uncertain=policy)
    col = {f: j for j, f in enumerate(ds.findings)}
    v = ds.labels[1, col["cardiomegaly"]]  # -1.0 in the file
    assert (np.isnan(v) and np.isnan(expected)) or v == expected
    assert ds.labels[1, col["fracture"]] == 1.0
    assert np.isnan(ds.labels[0, col["edema"]])  # blank -> NaN
    assert ds.labels[0, col["pneumothorax"]] == 0.0


def test_blank_as_zero(root):
    ds = load_dataset("chexpert", root, split="train", blank="zero")
    col = {f: j for j, f in enumerate(ds.findings)}
    assert ds.labels[0, col["edema"]] == 0.0 and np.isnan(ds.labels[1, col["cardiomegaly"]])


def test_bad_inputs(root, tmp_path):
    with pytest.raises(UserError, match="uncertain="):
        load_dataset("chexpert", root, uncertain="maybe")
    with pytest.raises(UserError, match="test.csv not found"):
        load_dataset("chexpert", root, split="test")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "valid.csv").write_text(HEADER + "\n" + VALID[0].replace(",1.0,1.0,1.0,", ",2.0,1.0,1.0,", 1) + "\n")
    with pytest.raises(UserError, match=r"line 2, column 'Enlarged Cardiomediastinum': value '2.0'"):
        load_dataset("chexpert", bad)
    (bad / "valid.csv").write_text("Path,Sex\nx.jpg,Male\n")
    with pytest.raises(UserError, match="missing column.*the file has"):
        load_dataset("chexpert", bad)
    (bad / "valid.csv").write_text(HEADER + "\n" + VALID[0] + "\n")
    with pytest.raises(UserError, match="not found under any of"):
        load_dataset("chexpert", bad)


# ----------------------------------------------------------------------------- 5x200

FIVE = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


@pytest.fixture(scope="module")
def five_root(tmp_path_factory):
    """3 exclusive positives per class, plus distractors that must never be selected."""
    r = tmp_path_factory.mktemp("c5")
    cols = HEADER.split(",")[5:]
    rows, k = [], 0
    for c in FIVE:
        for _ in range(3):
            vals = ["0.0"] * 14
            vals[cols.index(c)] = "1.0"
            rows.append(f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg,Male,50,Frontal,PA,"
                        + ",".join(vals))
            k += 1
    for other, label in ((cols.index("Edema"), "-1.0"), (cols.index("Cardiomegaly"), "1.0")):
        vals = ["0.0"] * 14
        vals[cols.index("Atelectasis")] = "1.0"
        vals[other] = label  # a second positive or an uncertain one: not exclusive
        rows.append(f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg,Male,50,Frontal,PA,"
                    + ",".join(vals))
        k += 1
    vals = ["0.0"] * 14
    vals[cols.index("Edema")] = "1.0"
    rows.append(f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view2_lateral.jpg,Male,50,Lateral,,"
                + ",".join(vals))  # lateral: excluded
    _write(r, "train.csv", rows)
    return r


def test_5x200_selects_exclusive_frontal_positives(five_root, tmp_path):
    ds = load_dataset("chexpert5x200", five_root, n_per_class=2, seed=1)
    assert ds.task == "multiclass" and len(ds) == 10
    assert ds.findings == ["atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion"]
    np.testing.assert_array_equal(np.bincount(ds.targets), [2, 2, 2, 2, 2])
    assert (ds.labels.sum(1) == 1).all()
    pids = ds.meta["patient_id"].str[-5:].astype(int)
    assert (pids < 15).all()  # none of the distractors (rows 15-17)
    # class of each row matches the file: the first 3 patients are atelectasis, etc.
    np.testing.assert_array_equal(pids // 3, ds.targets)


def test_5x200_is_seeded_and_indices_are_saved_and_reused(five_root, tmp_path):
    idx = tmp_path / "sel.json"
    a = load_dataset("chexpert5x200", five_root, n_per_class=2, seed=1, indices_path=idx)
    b = load_dataset("chexpert5x200", five_root, n_per_class=2, seed=1)
    assert a.meta["image_id"].tolist() == b.meta["image_id"].tolist()
    saved = json.loads(idx.read_text())
    assert saved["seed"] == 1 and len(saved["paths"]) == 10
    # a different seed still reuses the saved selection when the file exists
    c = load_dataset("chexpert5x200", five_root, n_per_class=2, seed=99, indices_path=idx)
    assert c.meta["image_id"].tolist() == a.meta["image_id"].tolist()
    picks = {tuple(load_dataset("chexpert5x200", five_root, n_per_class=2, seed=s).meta["image_id"]) for s in range(6)}
    assert len(picks) > 1


def test_5x200_too_few_candidates(five_root):
    with pytest.raises(UserError, match="only 3 images are positive for exactly 'Atelectasis'"):
        load_dataset("chexpert5x200", five_root, n_per_class=4)
