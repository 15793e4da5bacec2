"""ChestX-ray14 and PadChest on fixtures in their official CSV layouts."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from syncxr.data.sources.registry import load_dataset
from syncxr.errors import UserError

# Data_Entry_2017.csv: the header ends with a comma and splits "OriginalImage[Width,Height]".
ENTRY = """Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],
00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143
00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143
00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171
00000003_000.png,Effusion|Infiltration|Pleural_Thickening,0,3,074Y,F,AP,2048,2500,0.168,0.168
00000004_000.png,Mass|Nodule,0,4,82,M,AP,2500,2048,0.168,0.168
"""
BBOX = """Image Index,Finding Label,Bbox [x,y,w,h],,,
00000003_000.png,Infiltrate,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661,,,
00000003_000.png,Effusion,686.067,353.355,132.622,301.511,,,
00000004_000.png,Mass,119.0,431.0,220.0,200.0,,,
"""


def _png(path, seed, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    hi = 256 if dtype == np.uint8 else 4096
    Image.fromarray(np.random.default_rng(seed).integers(0, hi, (32, 32)).astype(dtype)).save(path)


@pytest.fixture(scope="module")
def cxr14(tmp_path_factory):
    r = tmp_path_factory.mktemp("cxr14")
    (r / "Data_Entry_2017.csv").write_text(ENTRY)
    (r / "BBox_List_2017.csv").write_text(BBOX)
    (r / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (r / "test_list.txt").write_text("00000003_000.png\n00000004_000.png\n")
    for k, name in enumerate(["00000001_000", "00000001_001", "00000002_000"]):
        _png(r / "images_001" / "images" / f"{name}.png", k)
    for k, name in enumerate(["00000003_000", "00000004_000"]):
        _png(r / "images" / f"{name}.png", 10 + k)
    return r


def test_cxr14_labels_splits_and_meta(cxr14):
    ds = load_dataset("cxr14", cxr14, split="all")
    col = {f: j for j, f in enumerate(ds.findings)}
    assert len(ds) == 5 and len(ds.findings) == 15 and not np.isnan(ds.labels).any()
    assert ds.labels[1, col["cardiomegaly"]] == 1 and ds.labels[1, col["emphysema"]] == 1
    assert ds.labels[2, col["no_finding"]] == 1 and ds.labels[2].sum() == 1
    assert ds.labels[3, [col["pleural_effusion"], col["infiltration"], col["pleural_thickening"]]].tolist() == [1, 1, 1]
    assert ds.meta["split"].tolist() == ["train_val"] * 3 + ["test"] * 2
    assert ds.meta["age"].tolist() == [58, 58, 81, 74, 82]  # "074Y" parsed
    assert ds.meta["view"].tolist() == ["PA", "PA", "PA", "AP", "AP"]
    test = load_dataset("cxr14", cxr14)
    assert test.meta["image_id"].tolist() == ["00000003_000.png", "00000004_000.png"]
    assert len(load_dataset("cxr14", cxr14, split="train_val").view_filter("PA")) == 3


def test_cxr14_boxes_from_odd_header(cxr14):
    ds = load_dataset("cxr14", cxr14)
    b = ds.boxes(0)
    assert [x[0] for x in b] == ["infiltration", "pleural_effusion"]
    assert b[0][1:] == pytest.approx((225.084745762712, 547.019216763771, 86.7796610169491, 79.1864406779661))
    assert ds.boxes(1) == [("mass", 119.0, 431.0, 220.0, 200.0)]
    # 32x32 images, boxes in the 1024 frame -> scaled by 1/32
    assert ds.boxes(1, image_shape=(32, 32))[0][1:] == pytest.approx((119 / 32, 431 / 32, 220 / 32, 200 / 32))
    assert len(load_dataset("cxr14", cxr14, split="all", boxes_only=True)) == 2


def test_cxr14_missing_images_dropped_loudly_and_bad_labels(cxr14, tmp_path, caplog):
    r = tmp_path / "partial"
    r.mkdir()
    (r / "Data_Entry_2017.csv").write_text(ENTRY)
    _png(r / "images" / "00000002_000.png", 0)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("cxr14", r, split="all")
    assert len(ds) == 1 and "4 listed images are missing" in caplog.text
    with pytest.raises(UserError, match="needs .*test_list.txt"):
        load_dataset("cxr14", r)
    (r / "Data_Entry_2017.csv").write_text(ENTRY.replace("Cardiomegaly|Emphysema", "Cardiomegaly|Emphysemia"))
    with pytest.raises(UserError, match="line 3: unknown finding 'Emphysemia'"):
        load_dataset("cxr14", r, split="all")


# ----------------------------------------------------------------------------- PadChest

PADCHEST_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
PADCHEST = """,ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,Projection,MethodProjection,Pediatric,Modality_DICOM,Manufacturer_DICOM,PhotometricInterpretation_DICOM,PixelRepresentation_DICOM,PixelAspectRatio_DICOM,SpatialResolution_DICOM,BitsStored_DICOM,WindowCenter_DICOM,WindowWidth_DICOM,Rows_DICOM,Columns_DICOM,XRayTubeCurrent_DICOM,Exposure_DICOM,ExposureInuAs_DICOM,ExposureTime,RelativeXRayExposure_DICOM,ReportID,Report,MethodLabel,Labels,Localizations,LabelsLocalizationsBySentence,labelCUIS,LocalizationsCUIS
0,img_a.png,0,20140915,s1,p1,1932.0,M,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,1,text,Physician,"['pneumonia', 'pleural effusion', 'laminar atelectasis']",[],[],[],[]
1,img_b.png,0,20140915,s2,p2,1950.0,F,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,2,text,RNN_model,['normal'],[],[],[],[]
2,img_c.png,1,20140915,s3,p3,1950.0,F,,L,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,3,text,Physician,['pneumonia'],[],[],[],[]
3,img_d.png,1,20140915,s4,p4,1950.0,F,,AP,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,4,text,Physician,"['pneumonia', ' COPD signs', 'unchanged']",[],[],[],[]
4,img_e.png,1,20140915,s5,p5,1950.0,F,,PA,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,5,text,Physician,['exclude'],[],[],[],[]
5,img_f.png,1,20140915,s6,p6,1950.0,F,,PA,Manual review of DICOM fields,No,CR,PhilipsMedicalSystems,MONOCHROME2,0,1\\1,0.139,12,2048,4096,32,32,,,,,,6,text,Physician,,[],[],[],[]
"""


@pytest.fixture(scope="module")
def padchest(tmp_path_factory):
    r = tmp_path_factory.mktemp("padchest")
    (r / PADCHEST_CSV).write_text(PADCHEST)
    for k, (d, name) in enumerate([(0, "img_a"), (0, "img_b"), (1, "img_c"), (1, "img_d"), (1, "img_e"), (1, "img_f")]):
        _png(r / str(d) / f"{name}.png", k, np.uint16)  # 16-bit PNGs as distributed
    return r


def test_padchest_labels_views_and_16bit(padchest):
    ds = load_dataset("padchest", padchest)
    # frontal by default; 'exclude' and unlabelled rows dropped
    assert ds.meta["image_id"].tolist() == ["img_a.png", "img_b.png", "img_d.png"]
    assert ds.findings == ["atelectasis", "no_finding", "pleural_effusion", "pneumonia", "copd_signs"]
    np.testing.assert_array_equal(ds.labels, np.array([[1, 0, 1, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 1]], np.float32))
    img = ds.image(0)
    assert img.dtype == np.uint8 and img.max() == 255 and img.min() == 0
    assert len(load_dataset("padchest", padchest, views=None)) == 4


def test_padchest_method_and_seen_class_protocol(padchest):
    ds = load_dataset("padchest", padchest, method="Physician", min_positives=2)
    assert ds.meta["image_id"].tolist() == ["img_a.png", "img_d.png"]
    assert ds.findings == ["pneumonia"]
    sel = load_dataset("padchest", padchest, findings=["pneumonia", "atelectasis"])
    assert sel.findings == ["pneumonia", "atelectasis"] and sel.labels[:, 1].tolist() == [1, 0, 0]
    with pytest.raises(UserError, match="do not occur"):
        load_dataset("padchest", padchest, findings=["hernia"])


def test_padchest_bad_labels_string(tmp_path):
    (tmp_path / PADCHEST_CSV).write_text(PADCHEST.replace("['normal']", "normal]"))
    with pytest.raises(UserError, match="ImageID img_b.png: Labels 'normal]'"):
        load_dataset("padchest", tmp_path)


def test_cxr14_subset_entries_with_short_column_names(cxr14, tmp_path):
    """A labelled sample of NIH films (image, labels, view, patient): same labels as the official CSV."""
    short = ("image,labels,view,patient,age,sex\n"
             "00000002_000.png,No Finding,PA,2,81,M\n"
             "00000003_000.png,Effusion|Infiltration|Pleural_Thickening,AP,3,74,F\n")
    (cxr14 / "sample.csv").write_text(short)
    ds = load_dataset("cxr14", cxr14, entries="sample.csv", split="all")
    col = {f: j for j, f in enumerate(ds.findings)}
    assert list(ds.meta["image_id"]) == ["00000002_000.png", "00000003_000.png"]
    assert ds.labels[0, col["no_finding"]] == 1 and ds.labels[1, col["pleural_effusion"]] == 1
    assert ds.labels.sum() == 4 and list(ds.meta["view"]) == ["PA", "AP"]
    with pytest.raises(UserError, match="entries file .*missing.csv not found"):
        load_dataset("cxr14", cxr14, entries="missing.csv")
    (cxr14 / "bad.csv").write_text("image,findings\n00000002_000.png,No Finding\n")
    with pytest.raises(UserError, match="labels|Finding Labels"):
        load_dataset("cxr14", cxr14, entries="bad.csv", split="all")
