"""EvalDataset contract, image range checks, relabel merging, RLE round trips, registry."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from syncxr.data import rle
from syncxr.data.relabel import merge_columns, native_to_shared, snake_name
from syncxr.data.sources.base import EvalDataset, ImageRangeError, load_gray_u8, to_uint8
from syncxr.data.sources.registry import dataset_names, load_dataset
from syncxr.errors import UserError

NAN = np.nan


def _dataset(tmp_path) -> EvalDataset:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 20), dtype=np.uint8)).save(p)
        paths.append(str(p))
    meta = pd.DataFrame({"path": paths, "image_id": [f"im{i}" for i in range(4)],
                         "view": ["PA", "AP", "LATERAL", "L"], "patient_id": ["a", "a", "b", "c"],
                         "split": "test", "box_frame_w": 40, "box_frame_h": 32})
    labels = np.array([[1, 0, NAN], [0, 0, 0], [0, NAN, 0], [NAN, 1, 1]], dtype=np.float32)
    boxes = [[("mass", 4.0, 8.0, 10.0, 6.0)], [], [], [("nodule", 0.0, 0.0, 2.0, 2.0)]]
    return EvalDataset("toy", ["mass", "nodule", "pleural_effusion"], labels, meta, boxes=boxes)


def test_image_loads_uint8_and_subset_keeps_alignment(tmp_path):
    ds = _dataset(tmp_path)
    img = ds.image(3)
    assert img.dtype == np.uint8 and img.shape == (16, 20)
    sub = ds.subset([3, 0])
    assert len(sub) == 2 and sub.meta["image_id"].tolist() == ["im3", "im0"]
    np.testing.assert_array_equal(sub.labels[0], ds.labels[3])
    assert sub.boxes(0) == [("nodule", 0.0, 0.0, 2.0, 2.0)]
    np.testing.assert_array_equal(sub.image(0), img)


def test_boxes_rescale_to_image_shape(tmp_path):
    ds = _dataset(tmp_path)
    # frame 40x32 -> image 20x16 halves every coordinate
    assert ds.boxes(0, image_shape=(16, 20)) == [("mass", 2.0, 4.0, 5.0, 3.0)]
    assert ds.mask(0, "mass") is None and not ds.has_masks


def test_view_filter_groups_and_errors(tmp_path):
    ds = _dataset(tmp_path)
    assert ds.view_filter("frontal").meta["image_id"].tolist() == ["im0", "im1"]
    assert ds.view_filter(["lateral"]).meta["image_id"].tolist() == ["im2", "im3"]
    assert ds.view_filter("pa").meta["image_id"].tolist() == ["im0"]
    with pytest.raises(UserError, match="views present"):
        ds.view_filter("AP_SUPINE")


def test_relabel_merges_any_positive_and_keeps_unknown(tmp_path):
    ds = _dataset(tmp_path).relabel({"mass": "lung_lesion", "nodule": "lung_lesion"})
    assert ds.findings == ["lung_lesion", "pleural_effusion"]
    # rows: (1,0)->1, (0,0)->0, (0,nan)->nan, (nan,1)->1
    np.testing.assert_array_equal(ds.labels[:, 0], np.array([1, 0, NAN, 1], dtype=np.float32))
    dropped = _dataset(tmp_path).relabel({"pleural_effusion": None})
    assert dropped.findings == ["mass", "nodule"]
    only = _dataset(tmp_path).relabel("chexpert14", keep_unmapped=False)
    assert only.findings == ["lung_lesion"]
    with pytest.raises(UserError, match="none of the dataset findings"):
        _dataset(tmp_path).relabel({"covid_19": "pneumonia"})


def test_merge_columns_all_negative_only_when_all_known():
    labels = np.array([[0, 0], [0, NAN], [NAN, NAN]], dtype=np.float32)
    _, out = merge_columns(["a", "b"], labels, {"a": "x", "b": "x"})
    np.testing.assert_array_equal(out[:, 0], np.array([0, NAN, NAN], dtype=np.float32))


def test_random_split_is_patient_disjoint_and_seeded(tmp_path):
    ds = _dataset(tmp_path)
    a, b = ds.random_split([0.5, 0.5], seed=3)
    assert len(a) + len(b) == 4
    assert not set(a.meta["patient_id"]) & set(b.meta["patient_id"])
    a2, _ = ds.random_split([0.5, 0.5], seed=3)
    assert a2.meta["image_id"].tolist() == a.meta["image_id"].tolist()


def test_describe_and_counts(tmp_path):
    ds = _dataset(tmp_path)
    counts = ds.counts()
    assert counts.loc["mass"].tolist() == [1, 2, 1]
    text = ds.describe()
    assert "toy: 4 images, 3 findings" in text and "boxes: 2 on 2 images" in text


def test_16bit_png_is_windowed_to_full_8bit_range(tmp_path):
    # 12-bit data in a 16-bit PNG: read naively as 8 bits it would be garbage or all white
    ramp = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)
    img = load_gray_u8(p)
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    assert np.all(np.diff(img.ravel().astype(int)) >= 0)  # monotone mapping


def test_constant_image_raises_with_path(tmp_path, caplog):
    p = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(p)
    with pytest.raises(ImageRangeError, match="flat.png.*nearly constant"):
        load_gray_u8(p)
    mask_like = tmp_path / "mask.png"
    Image.fromarray(np.eye(32, dtype=np.uint8)).save(mask_like)  # values 0..1
    with pytest.raises(ImageRangeError, match="mask.png"):
        load_gray_u8(mask_like)
    with caplog.at_level(logging.WARNING):
        img = load_gray_u8(p, strict=False)
    assert img.shape == (32, 32) and "flat.png" in caplog.text


def test_low_dynamic_range_8bit_image_warns_with_path(tmp_path, caplog):
    # 12-bit data squeezed into 8 bits by dividing by 256: values 0..15
    p = tmp_path / "squeezed.png"
    Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 16).astype(np.uint8)).save(p)
    with caplog.at_level(logging.WARNING):
        img = load_gray_u8(p)
    assert img.max() == 15 and "squeezed.png: low dynamic range" in caplog.text


def test_to_uint8_rejects_bool_and_keeps_8bit_values_in_wide_containers():
    with pytest.raises(ImageRangeError):
        to_uint8(np.zeros((4, 4), dtype=bool))
    wide = np.arange(16, dtype=np.int32).reshape(4, 4) * 10
    np.testing.assert_array_equal(to_uint8(wide), wide.astype(np.uint8))


# ----------------------------------------------------------------------------- RLE


def test_rle_siim_relative_known_values():
    # 4x3 mask, column-major indices: col0 = 0..3, col1 = 4..7, col2 = 8..11
    m = np.zeros((4, 3), dtype=bool)
    m[1:3, 0] = True  # indices 1, 2
    m[0, 2] = True  # index 8
    assert rle.encode(m) == "1 2 5 1"  # gap 1, run 2, gap 8-3=5, run 1
    assert rle.encode(m, "absolute") == "2 2 9 1"
    np.testing.assert_array_equal(rle.decode("1 2 5 1", (4, 3)), m)
    assert rle.encode(np.zeros((3, 3), dtype=bool)) == "-1"
    assert not rle.decode(" -1", (3, 3)).any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_rle_round_trip(h, w, seed):
    m = np.random.default_rng(seed).random((h, w)) < 0.4
    for fmt in ("relative", "absolute"):
        np.testing.assert_array_equal(rle.decode(rle.encode(m, fmt), (h, w), fmt), m)


def test_rle_bad_strings_raise():
    with pytest.raises(UserError, match="outside"):
        rle.decode("10 20", (4, 4))
    with pytest.raises(UserError, match="even number"):
        rle.decode("1 2 3", (4, 4))
    with pytest.raises(UserError, match="integers"):
        rle.decode("a b", (4, 4))


# ----------------------------------------------------------------------------- names, registry


def test_native_names_map_to_shared_vocabulary():
    assert native_to_shared("cxr14", "Effusion") == "pleural_effusion"
    assert native_to_shared("cxr14", "Infiltrate") == "infiltration"
    assert native_to_shared("padchest", "laminar atelectasis") == "atelectasis"
    assert native_to_shared("padchest", "aortic elongation") == "aortic_elongation"
    assert native_to_shared("covidx", "COVID-19") == "covid_19"
    assert snake_name("Pleural Effusion") == "pleural_effusion"


def test_registry_names_and_errors(tmp_path):
    assert dataset_names() == sorted(
        ["chexpert", "chexpert5x200", "cxr14", "padchest", "rsna", "siim", "covidx", "csv", "sim"]
    )
    with pytest.raises(UserError, match="valid names: .*chexpert"):
        load_dataset("mimic", tmp_path)
    with pytest.raises(UserError, match=r"unknown option\(s\) \['bogus'\].*uncertain"):
        load_dataset("chexpert", tmp_path, bogus=1)
    with pytest.raises(UserError, match="not a folder"):
        load_dataset("chexpert", tmp_path / "nope")
