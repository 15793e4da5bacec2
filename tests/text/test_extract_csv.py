"""CSV extraction (text/extract_csv.py): output format, stats and bad input."""

import csv
import json

import pytest

from syncxr.errors import UserError
from syncxr.records import CHEXPERT14_SNAKE
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.extract_csv import extract_csv


@pytest.fixture(scope="module")
def x():
    return LexiconExtractor()


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_happy_path(tmp_path, x):
    src = write_csv(
        tmp_path / "reports.csv",
        ["study_id", "findings", "impression", "other"],
        [
            ["s1", "Small left pleural effusion.\nNo pneumothorax.", "Left effusion.", "x"],
            ["s2", "", "No acute cardiopulmonary process.", "y"],
            ["s3", "nan", "", "z"],  # no text at all
            ["s4", "Possible right lower lobe pneumonia.", "NaN", "w"],
        ],
    )
    out = tmp_path / "out" / "labels.csv"
    stats = extract_csv(src, ["findings", "impression"], "study_id", out, extractor=x)
    rows = read_csv(out)
    assert list(rows[0]) == ["study_id", *CHEXPERT14_SNAKE, "no_finding_chexpert", "entities"]
    assert [r["study_id"] for r in rows] == ["s1", "s2", "s3", "s4"]
    s1, s2, s3, s4 = rows
    assert (s1["pleural_effusion"], s1["pneumothorax"], s1["no_finding"], s1["edema"]) == ("1.0", "0.0", "0.0", "")
    assert s1["no_finding_chexpert"] == ""
    ents = json.loads(s1["entities"])
    assert [(e["name"], e["section"]) for e in ents] == [("pleural_effusion", "findings"), ("pneumothorax", "findings")]
    assert ents[0]["attributes"] == {"laterality": "left", "severity": "mild"}
    assert s2["no_finding"] == s2["no_finding_chexpert"] == "1.0"
    assert all(s3[k] == "" for k in CHEXPERT14_SNAKE) and json.loads(s3["entities"]) == []
    assert s4["pneumonia"] == "-1.0"
    assert {e["name"] for e in json.loads(s4["entities"])} == {"pneumonia", "right_lower_lobe"}
    assert (stats["rows"], stats["empty_rows"], stats["failed"]) == (4, 1, [])
    assert stats["labels"]["pleural_effusion"] == {"positive": 1, "negative": 0, "uncertain": 0}
    assert stats["labels"]["pneumonia"]["uncertain"] == 1
    assert stats["entities"] == 2 + 1 + 0 + 2
    assert list(out.parent.iterdir()) == [out]  # no temp file left behind


def test_missing_column_names_file_and_columns(tmp_path, x):
    src = write_csv(tmp_path / "r.csv", ["id", "report_text"], [["1", "No effusion."]])
    out = tmp_path / "o.csv"
    with pytest.raises(UserError) as err:
        extract_csv(src, ["findings", "report_text"], "id", out, extractor=x)
    msg = str(err.value)
    assert "r.csv" in msg and "['findings']" in msg and "['id', 'report_text']" in msg
    assert not out.exists()
    with pytest.raises(UserError, match="study_id"):
        extract_csv(src, ["report_text"], "study_id", out, extractor=x)


def test_empty_and_missing_files(tmp_path, x):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = tmp_path / "o.csv"
    with pytest.raises(UserError, match="empty.csv: the file is empty"):
        extract_csv(empty, ["text"], "id", out, extractor=x)
    header_only = write_csv(tmp_path / "h.csv", ["id", "text"], [])
    with pytest.raises(UserError, match="no rows"):
        extract_csv(header_only, ["text"], "id", out, extractor=x)
    with pytest.raises(UserError, match="not found"):
        extract_csv(tmp_path / "nope.csv", ["text"], "id", out, extractor=x)
    with pytest.raises(UserError, match="no text columns"):
        extract_csv(header_only, [], "id", out, extractor=x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "h.csv"]


def test_not_utf8(tmp_path, x):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,text\n1,\xff\xfe caf\xe9\n")
    out = tmp_path / "o.csv"
    with pytest.raises(UserError, match="bad.csv"):
        extract_csv(bad, ["text"], "id", out, extractor=x)
    assert not out.exists()


class _Flaky:
    backend_id = "flaky"

    def __init__(self, inner):
        self.inner = inner

    def extract(self, text, section=""):
        if "boom" in text:
            raise RuntimeError("cannot read this one")
        return self.inner.extract(text, section)


def test_failing_row_is_data_not_a_crash(tmp_path, x):
    src = write_csv(tmp_path / "r.csv", ["id", "text"], [["a", "Mild cardiomegaly."], ["b", "boom"]])
    out = tmp_path / "o.csv"
    stats = extract_csv(src, ["text"], "id", out, extractor=_Flaky(x))
    rows = read_csv(out)
    assert stats["failed"] == ["b"]
    assert rows[0]["cardiomegaly"] == "1.0"
    assert all(rows[1][k] == "" for k in CHEXPERT14_SNAKE)


def test_out_equal_to_in_is_refused_and_the_input_kept(tmp_path, x):
    src = write_csv(tmp_path / "r.csv", ["id", "text"], [["a", "No pneumothorax."]])
    before = src.read_bytes()
    with pytest.raises(UserError, match="is the input file"):
        extract_csv(src, ["text"], "id", tmp_path / "." / "r.csv", extractor=x)  # the same file, spelled differently
    assert src.read_bytes() == before


def test_chexpert14_plus_columns(tmp_path, x):
    src = write_csv(
        tmp_path / "r.csv",
        ["id", "findings", "impression"],
        [["a", "Calcified granuloma in the left upper lobe. Bullous emphysema.", "No acute process."],
         ["b", "Right upper lobe mass. Small hiatal hernia.", ""]],
    )
    out = tmp_path / "plus.csv"
    stats = extract_csv(src, ["findings", "impression"], "id", out, extractor=x, labels="chexpert14+")
    a, b = read_csv(out)
    assert list(a)[-8:] == ["no_finding_chexpert", "emphysema", "fibrosis", "nodule", "mass", "hernia",
                            "calcified_granuloma", "entities"]
    assert (a["calcified_granuloma"], a["emphysema"], a["lung_lesion"], a["nodule"]) == ("1.0", "1.0", "", "")
    assert (a["no_finding"], a["no_finding_chexpert"]) == ("0.0", "1.0")
    assert (b["mass"], b["lung_lesion"], b["hernia"], b["calcified_granuloma"]) == ("1.0", "1.0", "1.0", "")
    assert stats["labels"]["hernia"] == {"positive": 1, "negative": 0, "uncertain": 0}


def test_unknown_label_set_is_refused(tmp_path, x):
    src = write_csv(tmp_path / "r.csv", ["id", "findings"], [["a", "No effusion."]])
    with pytest.raises(UserError, match="chexpert14\\+"):
        extract_csv(src, ["findings"], "id", tmp_path / "o.csv", extractor=x, labels="chexpert15")
    assert not (tmp_path / "o.csv").exists()
