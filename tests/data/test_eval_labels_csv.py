"""The generic labels CSV loader: columns, values, masks, boxes and its error messages."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from syncxr.data.sources.registry import load_dataset
from syncxr.errors import UserError

CSV = """image,view,patient_id,Pleural Effusion,pneumothorax,my_finding
imgs/a.png,PA,p1,1,0,
imgs/b.png,AP,p2,0,,1
imgs/c.png,LATERAL,p2,,1,0
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("csv")
    (r / "labels.csv").write_text(CSV)
    for k, n in enumerate("abc"):
        (r / "imgs").mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (16, 16), dtype=np.uint8)).save(r / "imgs" / f"{n}.png")
    m = np.zeros((16, 16), dtype=np.uint8)
    m[2:6, 3:9] = 255
    (r / "masks" / "pleural_effusion").mkdir(parents=True)
    Image.fromarray(m).save(r / "masks" / "pleural_effusion" / "a.png")
    (r / "boxes.csv").write_text("image,finding,x,y,w,h\nimgs/a.png,Pleural Effusion,3,2,6,4\n")
    return r


def test_columns_become_snake_case_findings_with_nan(root):
    ds = load_dataset("csv", root)
    assert ds.findings == ["pleural_effusion", "pneumothorax", "my_finding"]
    np.testing.assert_array_equal(
        ds.labels, np.array([[1, 0, np.nan], [0, np.nan, 1], [np.nan, 1, 0]], dtype=np.float32)
    )
    assert ds.meta["view"].tolist() == ["PA", "AP", "LATERAL"] and ds.meta["split"].tolist() == ["all"] * 3
    assert len(ds.view_filter("frontal")) == 2
    assert ds.boxes(0) == [("pleural_effusion", 3.0, 2.0, 6.0, 4.0)] and ds.boxes(1) == []


def test_masks_by_finding_folder(root):
    ds = load_dataset("csv", root, mask_dir="masks", findings=["Pleural Effusion"])
    assert ds.findings == ["pleural_effusion"]
    m = ds.mask(0, "pleural_effusion")
    assert m.dtype == bool and m.sum() == 24 and m[2:6, 3:9].all()
    assert not ds.mask(1, "pleural_effusion").any()  # no file: empty mask
    assert ds.mask(0, "pneumothorax") is None  # no folder: no masks for that finding


def test_errors_name_file_expected_and_existing_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("img,effusion\na.png,1\n")
    with pytest.raises(UserError, match=r"labels.csv: missing column\(s\) \['image'\].*has \['img', 'effusion'\]"):
        load_dataset("csv", tmp_path)
    (tmp_path / "labels.csv").write_text("image,effusion\na.png,yes\n")
    with pytest.raises(UserError, match="line 2, column 'effusion': value 'yes'; expected 1, 0 or blank"):
        load_dataset("csv", tmp_path)
    (tmp_path / "labels.csv").write_text("image,view\na.png,PA\n")
    with pytest.raises(UserError, match="no finding columns"):
        load_dataset("csv", tmp_path)
    (tmp_path / "labels.csv").write_text("image,effusion\na.png,1\n")
    with pytest.raises(UserError, match=r"1 image\(s\) not found.*'a.png'"):
        load_dataset("csv", tmp_path)
    with pytest.raises(UserError, match="labels CSV not found"):
        load_dataset("csv", tmp_path, csv="other.csv")
    with pytest.raises(UserError, match=r"finding column\(s\) \['edema'\] not found"):
        load_dataset("csv", tmp_path, findings=["edema"])


def test_numeric_looking_identifiers_keep_their_leading_zeros(tmp_path):
    (tmp_path / "007.png").parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "007.png")
    (tmp_path / "labels.csv").write_text("image,patient_id,study_id,edema\n007.png,00042,0100,1\n")
    ds = load_dataset("csv", tmp_path)
    assert ds.meta["patient_id"].tolist() == ["00042"] and ds.meta["study_id"].tolist() == ["0100"]
    assert ds.meta["image_id"].tolist() == ["007.png"]
