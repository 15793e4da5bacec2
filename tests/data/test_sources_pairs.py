"""Training pair sources: syncxr shards, MIMIC-CXR-JPG layout, generic CSV, mixes; bad input."""

import io
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from syncxr.data.pairs import decode_image
from syncxr.data.schema import SHARD_SCHEMA
from syncxr.data.sources import DataConfig, SourceConfig, open_data, open_source
from syncxr.data.sources.mimic import parse_report
from syncxr.data.sources.mix import MixSource
from syncxr.errors import UserError


def _png(value: int, size=(8, 6), mode="L", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format=fmt)
    return buf.getvalue()


def _shards(root: Path, rows: list[tuple[bytes, str, str]]) -> Path:
    (root / "shards").mkdir(parents=True)
    cols = {n: [None] * len(rows) for n in SHARD_SCHEMA.names}
    cols["sample_id"] = [f"s{i}" for i in range(len(rows))]
    cols["image_png"] = [r[0] for r in rows]
    cols["findings"] = [r[1] for r in rows]
    cols["impression"] = [r[2] for r in rows]
    cols["masks"] = [[] for _ in rows]
    pq.write_table(pa.table(cols, schema=SHARD_SCHEMA), root / "shards" / "shard-00000.parquet")
    return root


def test_syncxr_sections_empty_and_corrupt(tmp_path, caplog):
    root = _shards(tmp_path, [(_png(10), "f0", "i0"), (_png(20), "", ""), (b"not a png", "f2", ""),
                              (_png(30), "", "i3")])
    with caplog.at_level(logging.WARNING):
        src = open_data(str(root))
    assert len(src) == 3 and src.describe()["skipped"] == {"empty_text": 1}
    assert "s1" in caplog.text
    img, text = src[0]
    assert img.dtype == np.uint8 and img.shape == (6, 8) and img[0, 0] == 10 and text == "f0 i0"
    img, text = src[1]  # row s2 has a corrupt PNG: skipped lazily, falls forward to s3
    assert img[0, 0] == 30 and text == "i3" and src.skipped["corrupt_image"] == 1
    only_f = open_source(SourceConfig(kind="syncxr", path=str(root), section="findings"), validate_images=True)
    assert only_f.texts() == ["f0"] and only_f.skipped == {"empty_text": 2, "corrupt_image": 1}


def test_syncxr_missing_columns_and_nothing_usable(tmp_path):
    (tmp_path / "a" / "shards").mkdir(parents=True)
    pq.write_table(pa.table({"sample_id": ["x"], "findings": ["f"]}), tmp_path / "a" / "shards" / "s.parquet")
    with pytest.raises(UserError, match=r"s\.parquet.*missing column.*image_png.*has \['sample_id', 'findings'\]"):
        open_data(str(tmp_path / "a"))
    root = _shards(tmp_path / "b", [(_png(1), "", "")])
    with pytest.raises(UserError, match="no usable"):
        open_data(str(root))


def _mimic(root: Path, sectioned: bool = False) -> Path:
    meta = ["dicom_id,subject_id,study_id,ViewPosition", "d1,10000032,50000001,PA", "d2,10000032,50000001,LATERAL",
            "d3,10000033,50000002,AP", "d4,10000034,50000003,PA", "d5,10000035,50000004,PA", "d6,10000036,50000005,AP"]
    (root / "files").mkdir(parents=True)
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text("\n".join(meta) + "\n")
    split = ["dicom_id,study_id,subject_id,split"] + [f"d{i},0,0,{'test' if i == 6 else 'train'}" for i in range(1, 7)]
    (root / "mimic-cxr-2.0.0-split.csv").write_text("\n".join(split) + "\n")
    reports = {"50000001": "FINAL REPORT\n EXAMINATION: CHEST\n FINDINGS: Clear lungs.\n \n IMPRESSION: No acute process.",
               "50000002": "IMPRESSION: Small effusion.", "50000004": "FINDINGS: Cardiomegaly.\nIMPRESSION: Enlarged heart."}
    for dicom, subj, study in [("d1", "10000032", "50000001"), ("d2", "10000032", "50000001"),
                               ("d3", "10000033", "50000002"), ("d4", "10000034", "50000003")]:
        folder = root / "files" / f"p{subj[:2]}" / f"p{subj}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{dicom}.jpg").write_bytes(_png(50, fmt="JPEG", mode="RGB"))
        if study in reports and not sectioned:
            (folder.parent / f"s{study}.txt").write_text(reports[study])
    (root / "files/p10/p10000035").mkdir(parents=True)
    (root / "files/p10/p10000035/s50000004.txt").write_text(reports["50000004"])  # report, no image
    if sectioned:
        (root / "mimic_cxr_sectioned.csv").write_text(
            "study,impression,findings\ns50000001,No acute process.,Clear lungs.\ns50000002,Small effusion.,\n")
    return root


def test_mimic_layout_txt_reports(tmp_path):
    src = open_data(f"mimic:{_mimic(tmp_path)}")
    assert src.texts() == ["Clear lungs. No acute process.", "Small effusion."]
    assert src.skipped == {"other_view": 1, "other_split": 1, "missing_report": 1, "missing_image": 1}
    assert src[0][0].shape == (6, 8)  # RGB JPEG read as grey
    findings = open_data(SourceConfig(kind="mimic", path=str(tmp_path), section="findings", views=["PA"]))
    assert findings.texts() == ["Clear lungs."] and findings.skipped["other_view"] == 3


def test_mimic_sectioned_csv_and_parse(tmp_path):
    src = open_data(f"mimic:{_mimic(tmp_path, sectioned=True)}")
    assert src.texts() == ["Clear lungs. No acute process.", "Small effusion."]
    assert parse_report("FINDINGS: a\n b\nIMPRESSION: c") == {"findings": "a b", "impression": "c"}
    with pytest.raises(UserError, match="metadata"):
        open_data(f"mimic:{tmp_path / 'nowhere'}")


def test_csv_source_and_bad_columns(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(_png(7))
    (tmp_path / "p.csv").write_text("path,report\nimg/a.png,left effusion\nimg/b.png,x\nimg/a.png,\n")
    src = open_data(SourceConfig(kind="csv", path=str(tmp_path / "p.csv"), image_col="path", text_col="report"))
    assert len(src) == 1 and src[0][1] == "left effusion"
    assert src.describe()["skipped"] == {"missing_image": 1, "empty_text": 1}
    with pytest.raises(UserError, match=r"p\.csv: missing column\(s\) \['image', 'text'\].*\['path', 'report'\]"):
        open_data(f"csv:{tmp_path / 'p.csv'}")


def test_mix_concat_and_weighted(tmp_path):
    a = _shards(tmp_path / "a", [(_png(1), f"a{i}", "") for i in range(10)])
    b = _shards(tmp_path / "b", [(_png(2), f"b{i}", "") for i in range(30)])
    cfg = {"sources": [{"kind": "syncxr", "path": str(a)}, {"kind": "syncxr", "path": str(b)}]}
    assert len(open_data(DataConfig.model_validate(cfg))) == 40
    w = DataConfig.model_validate({**cfg, "mix": "weighted", "ratios": [3, 1], "samples_per_epoch": 400})
    m1, m2 = open_data(w, seed=5), open_data(w, seed=5)
    assert isinstance(m1, MixSource) and m1.texts() == m2.texts()
    drawn = [s["drawn"] for s in m1.describe()["sources"]]
    assert sum(drawn) == 400 and 260 < drawn[0] < 340  # ~75 % from source a
    with pytest.raises(ValueError, match="ratios"):
        DataConfig.model_validate({**cfg, "mix": "weighted"})


def test_decode_16bit_png_rescales(tmp_path):
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = decode_image(buf.getvalue())
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[1, 1] == 255
    with pytest.raises(ValueError, match="unreadable"):
        decode_image(b"\x89PNG broken")


def test_fraction_is_a_fixed_nested_subset(tmp_path):
    root = _shards(tmp_path, [(_png(i), f"finding {i}", f"impression {i}") for i in range(40)])
    full = open_source(SourceConfig(kind="syncxr", path=str(root), section="findings"))
    half = open_source(SourceConfig(kind="syncxr", path=str(root), section="findings", fraction=0.5))
    quarter = open_source(SourceConfig(kind="syncxr", path=str(root), section="findings", fraction=0.25))
    again = open_source(SourceConfig(kind="syncxr", path=str(root), section="findings", fraction=0.25))
    assert (len(full), len(half), len(quarter)) == (40, 20, 10)
    assert set(quarter.texts()) < set(half.texts()) < set(full.texts())
    assert quarter.texts() == again.texts() and quarter.texts() != full.texts()[:10]  # seeded draw, not a prefix
    img, text = quarter[3]
    assert text == quarter.texts()[3] and img[0, 0] == int(text.split()[1])  # images stay with their text
    with pytest.raises(ValueError, match="fraction"):
        SourceConfig(kind="syncxr", path=str(root), fraction=0)
