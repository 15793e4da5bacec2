"""RSNA Pneumonia, SIIM-ACR and COVIDx on fixtures in their official file formats."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from syncxr.data import rle
from syncxr.data.sources.registry import load_dataset
from syncxr.errors import UserError


def _png(path, seed, shape=(32, 32), ext_fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path, format=ext_fmt)


# ----------------------------------------------------------------------------- RSNA

RSNA = """patientId,x,y,width,height,Target
0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0
00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1
00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1
00704310-78a8-4b38-8475-49f4573b2dbb,323.0,577.0,160.0,104.0,1
"""
CLASS_INFO = """patientId,class
0004cfab-14fd-4e49-80ba-63a80b6bddd6,No Lung Opacity / Not Normal
00436515-870c-4b36-a041-de91049b9ab4,Lung Opacity
00436515-870c-4b36-a041-de91049b9ab4,Lung Opacity
00704310-78a8-4b38-8475-49f4573b2dbb,Lung Opacity
"""


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    r = tmp_path_factory.mktemp("rsna")
    (r / "stage_2_train_labels.csv").write_text(RSNA)
    (r / "stage_2_detailed_class_info.csv").write_text(CLASS_INFO)
    ids = ["0004cfab-14fd-4e49-80ba-63a80b6bddd6", "00436515-870c-4b36-a041-de91049b9ab4",
           "00704310-78a8-4b38-8475-49f4573b2dbb"]
    _png(r / "stage_2_train_images" / f"{ids[0]}.png", 0)
    _png(r / "stage_2_train_images" / f"{ids[1]}.jpg", 1, ext_fmt="JPEG")
    _png(r / "stage_2_train_images" / f"{ids[2]}.png", 2)
    return r


def test_rsna_one_row_per_image_with_all_boxes(rsna):
    ds = load_dataset("rsna", rsna)
    assert len(ds) == 3 and ds.findings == ["pneumonia"]
    assert ds.labels[:, 0].tolist() == [0, 1, 1]
    assert ds.boxes(0) == []
    assert ds.boxes(1) == [("pneumonia", 264.0, 152.0, 213.0, 379.0), ("pneumonia", 562.0, 152.0, 256.0, 453.0)]
    assert ds.boxes(2, image_shape=(32, 32))[0][1:] == pytest.approx((323 / 32, 577 / 32, 160 / 32, 104 / 32))
    assert ds.meta["class"].tolist() == ["No Lung Opacity / Not Normal", "Lung Opacity", "Lung Opacity"]
    assert ds.image(1).shape == (32, 32) and len(ds.view_filter("frontal")) == 3


def test_rsna_inconsistent_rows(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text(RSNA.replace("264.0,152.0,213.0,379.0,1", ",,,,1"))
    with pytest.raises(UserError, match="line 3: Target=1 with box"):
        load_dataset("rsna", tmp_path)
    (tmp_path / "stage_2_train_labels.csv").write_text(RSNA.replace(",,,,,0", ",,,,,2"))
    with pytest.raises(UserError, match="line 2: Target '2'"):
        load_dataset("rsna", tmp_path)
    (tmp_path / "stage_2_train_labels.csv").write_text(RSNA)
    with pytest.raises(UserError, match="no image <patientId>"):
        load_dataset("rsna", tmp_path)


# ----------------------------------------------------------------------------- SIIM


@pytest.fixture(scope="module")
def siim(tmp_path_factory):
    """Three images: none, one region, two regions in two rows (to be united)."""
    r = tmp_path_factory.mktemp("siim")
    h, w = 24, 20
    m1 = np.zeros((h, w), bool)
    m1[3:9, 2:5] = True
    m2a, m2b = np.zeros((h, w), bool), np.zeros((h, w), bool)
    m2a[0:4, 15:19] = True
    m2b[18:24, 0:3] = True
    ids = ["1.2.276.0.7230010.3.1.4.8323329.5597.1517875188.959090",
           "1.2.276.0.7230010.3.1.4.8323329.12515.1517875239.501137",
           "1.2.276.0.7230010.3.1.4.8323329.4904.1517875185.355709"]
    lines = ["ImageId, EncodedPixels", f"{ids[0]}, -1", f"{ids[1]}, {rle.encode(m1)}",
             f"{ids[2]}, {rle.encode(m2a)}", f"{ids[2]}, {rle.encode(m2b)}"]
    (r / "train-rle.csv").write_text("\n".join(lines) + "\n")
    for k, i in enumerate(ids):
        _png(r / "png_images" / f"{i}.png", k, (h, w))
    return r, {"m1": m1, "m2": m2a | m2b}


def test_siim_labels_and_masks_union(siim):
    root, masks = siim
    ds = load_dataset("siim", root)
    assert ds.labels[:, 0].tolist() == [0, 1, 1] and ds.findings == ["pneumothorax"]
    assert not ds.mask(0, "pneumothorax").any()
    np.testing.assert_array_equal(ds.mask(1, "pneumothorax"), masks["m1"])
    np.testing.assert_array_equal(ds.mask(2, "pneumothorax"), masks["m2"])
    assert ds.mask(1, "pleural_effusion") is None
    sub = ds.subset([2])
    np.testing.assert_array_equal(sub.mask(0, "pneumothorax"), masks["m2"])


def test_siim_header_and_rle_errors(tmp_path):
    (tmp_path / "train-rle.csv").write_text("Image,Pixels\na,-1\n")
    with pytest.raises(UserError, match="expected columns 'ImageId', 'EncodedPixels'"):
        load_dataset("siim", tmp_path)
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\na, 1 x\n")
    with pytest.raises(UserError, match="line 2: EncodedPixels"):
        load_dataset("siim", tmp_path)
    with pytest.raises(UserError, match="rle_format="):
        load_dataset("siim", tmp_path, rle_format="rle")


# ----------------------------------------------------------------------------- COVIDx

COVIDX_TEST = """419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png COVID-19 ricord
1 ped_pneu 1.jpeg pneumonia rsna
8 normal-8.png normal rsna
9 normal-9.png normal rsna
"""


@pytest.fixture(scope="module")
def covidx(tmp_path_factory):
    r = tmp_path_factory.mktemp("covidx")
    (r / "test.txt").write_text(COVIDX_TEST)
    for k, name in enumerate(["MIDRC-RICORD-1C-419639-003251-46647-0.png", "ped_pneu 1.jpeg", "normal-8.png",
                              "normal-9.png"]):
        _png(r / "test" / name, k, ext_fmt="PNG")
    (r / "train.txt").write_text("a1 a.png positive bimcv\nb2 b.png negative sirm\n")
    _png(r / "train" / "a.png", 5)
    _png(r / "train" / "b.png", 6)
    return r


def test_covidx_three_class_and_filenames_with_spaces(covidx):
    ds = load_dataset("covidx", covidx)
    assert ds.task == "multiclass" and ds.findings == ["no_finding", "pneumonia", "covid_19"]
    assert ds.targets.tolist() == [2, 1, 0, 0]
    assert ds.meta["image_id"].tolist()[1] == "ped_pneu 1.jpeg"
    assert ds.meta["source"].tolist() == ["ricord", "rsna", "rsna", "rsna"]
    assert ds.image(1).shape == (32, 32)


def test_covidx_binary_release_and_bad_class(covidx, tmp_path):
    ds = load_dataset("covidx", covidx, split="train")
    assert ds.task == "multilabel" and ds.findings == ["covid_19"] and ds.labels[:, 0].tolist() == [1, 0]
    with pytest.raises(UserError, match="targets are defined for multiclass"):
        _ = ds.targets
    (tmp_path / "test.txt").write_text("1 a.png viral rsna\n")
    with pytest.raises(UserError, match="line 1: no class"):
        load_dataset("covidx", tmp_path)
