"""Privacy audit on tiny data: a planted copy of a real study ranks first and the filter drops it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from syncxr.audit.privacy import run_privacy_audit
from syncxr.cli import app
from syncxr.data.integrity import verify_dataset
from syncxr.errors import UserError

runner = CliRunner()


def _closest(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_planted_copy_ranks_first_on_every_measure(planted, sim_corpus, tmp_path):
    ds, copy_id, real_id = planted
    s = run_privacy_audit(ds, sim_corpus, "mimic", tmp_path / "p", baseline=40)
    rows = _closest(tmp_path / "p" / "closest.csv")
    assert len(rows) == s["synthetic"]["samples"] == 30 and s["real"]["samples"] == 40
    for m in ("text_ngram", "text_emb", "image"):
        best = max(rows, key=lambda r: float(r[m]))
        assert best["synthetic_id"] == copy_id and best[f"{m}_real_id"] == real_id
        assert float(best[m]) == pytest.approx(1.0, abs=1e-5)
        others = [float(r[m]) for r in rows if r["synthetic_id"] != copy_id]
        assert max(others) < 0.999  # nothing else in the tiny data is a copy
        st = s["measures"][m]
        assert s["measures"][m]["exact_copies"] == 1 and st["synthetic_to_real"]["at_or_above"]["1"] == 1
        assert st["synthetic_to_real"]["quantiles"]["q100"] == pytest.approx(1.0, abs=1e-4)
        assert st["real_to_real"]["n"] == 40
    assert json.loads((tmp_path / "p" / "privacy.json").read_text())["measures"].keys() == s["measures"].keys()
    page = (tmp_path / "p" / "privacy.html").read_text()
    assert copy_id in page and page.count("data:image/png;base64,") >= 3 + 2  # 3 histograms + a pair
    assert (tmp_path / "p" / "hist_image.png").read_bytes()[:4] == b"\x89PNG"


def test_the_filter_drops_the_copy_and_writes_a_dataset_that_verifies(planted, sim_corpus, tmp_path):
    ds, copy_id, real_id = planted
    out, filtered = tmp_path / "p", tmp_path / "filtered"
    r = runner.invoke(app, ["audit", "privacy", "--synthetic", str(ds), "--real", str(sim_corpus), "--out", str(out),
                            "--measures", "text_ngram,image", "--drop-above", "0.999", "--drop-measure", "image",
                            "--filtered", str(filtered)])
    assert r.exit_code == 0, r.output
    assert "1 dropped" in r.output
    dropped = _closest(out / "dropped.csv")
    assert [(d["synthetic_id"], d["real_id"], d["measure"]) for d in dropped] == [(copy_id, real_id, "image")]
    assert verify_dataset(filtered) == []
    manifest = json.loads((filtered / "manifest.json").read_text())
    assert manifest["counts"]["accepted"] == 29 and manifest["filtered"]["dropped"] == 1
    assert manifest["rejects_by_reason"].get("audit:near_copy") == 1
    from syncxr.data.shards import iter_rows

    ids = [row["sample_id"] for row in iter_rows(filtered, columns=["sample_id"])]
    assert len(ids) == 29 and copy_id not in ids
    rejected = [row for row in iter_rows(filtered, "rejects", columns=["sample_id", "stage", "detail"]) if row["stage"] == "audit"]
    assert [row["sample_id"] for row in rejected] == [copy_id] and real_id in rejected[0]["detail"]
    from syncxr.data.sources import open_data

    assert len(open_data(str(filtered))) == 29  # training reads the filtered copy like any dataset
    r = runner.invoke(app, ["audit", "privacy", "--synthetic", str(ds), "--real", str(sim_corpus), "--out", str(out),
                            "--measures", "text_ngram", "--drop-above", "0.999", "--filtered", str(filtered)])
    assert r.exit_code == 2 and "not an empty folder" in r.output  # never writes over a folder


def test_containment_and_a_section_choice_are_honoured(synthetic, sim_corpus, tmp_path):
    s = run_privacy_audit(synthetic, sim_corpus, "mimic", tmp_path / "p", measures=["text_ngram"],
                          ngram_metric="containment", section="impression", baseline=0)
    assert "containment" in s["measures"]["text_ngram"]["what"] and s["section"] == "impression"
    scores = np.array([float(r["text_ngram"]) for r in _closest(tmp_path / "p" / "closest.csv")])
    assert ((scores >= 0) & (scores <= 1)).all() and s["measures"]["text_ngram"]["real_to_real"] == {"n": 0}


@pytest.mark.parametrize("options, needle", [
    ({"measures": ["text_ngram"], "drop_above": 0.9, "drop_measure": "image"}, "not one of the measures"),
    ({"filtered": "x"}, "--filtered needs --drop-above"),
    ({"ngram_metric": "cosine"}, "jaccard or containment"),
    ({"colour": 1}, "unknown option"),
])
def test_bad_options_are_user_errors(synthetic, sim_corpus, tmp_path, options, needle):
    with pytest.raises(UserError, match=needle):
        run_privacy_audit(synthetic, sim_corpus, "mimic", tmp_path / "p", **options)


@pytest.mark.parametrize("args, needle", [
    (["--synthetic", "{missing}", "--real", "{sim}"], "--synthetic"),
    (["--synthetic", "{sim}", "--real", "{sim}"], "no shards/*.parquet"),
    (["--synthetic", "{ds}", "--real", "{missing}"], "--real"),
    (["--synthetic", "{ds}", "--real", "{sim}", "--real-kind", "csv"], "not a file"),
    (["--synthetic", "{ds}", "--real", "{sim}", "--real-kind", "dicom"], "unknown corpus kind"),
    (["--synthetic", "{ds}", "--real", "{sim}", "--real-text-col", "x"], "does not apply"),
])
@pytest.mark.parametrize("command", ["privacy", "fidelity"])
def test_cli_missing_or_invalid_folders_exit_2_with_a_clear_message(synthetic, sim_corpus, tmp_path, command, args, needle):
    fill = {"missing": str(tmp_path / "nope"), "sim": str(sim_corpus), "ds": str(synthetic)}
    argv = ["audit", command, *[a.format(**fill) for a in args], "--out", str(tmp_path / "o")]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
