"""The study summary by group and the report built from it (fixture: tests/report/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest


def _rows(manifest: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [r for r in manifest["summary"]["paired"]["rows"] if all(r[k] == v for k, v in match.items())]


def test_groups_keep_seeds_spread_and_the_bootstrap_ci_of_the_seed_mean(fake_study) -> None:
    _, m = fake_study
    groups = {g["group"]: g for g in m["summary"]["groups"]}
    assert list(groups) == ["real", "synthetic", "mixed", "synthetic~no_balance", "synthetic@25%", "real@50%"]
    g = groups["synthetic~no_balance"]
    assert (g["arm"], g["variant"], g["fraction"], g["seeds"]) == ("synthetic", "no_balance", 1.0, [0, 1])
    assert groups["real@50%"]["fraction"] == 0.5 and groups["real@50%"]["variant"] is None
    auc = groups["mixed"]["benchmarks"]["sim"]["zero-shot AUC"]
    assert len(auc["seeds"]) == 2 and auc["value"] == pytest.approx(sum(auc["seeds"]) / 2)
    assert auc["min"] <= auc["value"] <= auc["max"] and auc["std"] > 0
    assert auc["boot_ci"][0] < auc["value"] < auc["boot_ci"][1]
    assert set(groups["real"]["benchmarks"]) == {"sim", "nih48"}
    edema = groups["mixed"]["per_finding"]["sim"]["edema"]
    assert edema["boot_ci"][0] < edema["value"] < edema["boot_ci"][1]
    assert edema["boot_ci"][1] - edema["boot_ci"][0] < edema["ci"][1] - edema["ci"][0]  # t over 2 seeds is far wider


def test_paired_rows_cover_arms_ablation_and_scaling_on_every_benchmark(fake_study) -> None:
    _, m = fake_study
    paired = m["summary"]["paired"]
    assert paired["skipped"] == [] and paired["n_boot"] == 1000
    for bench in ("sim", "nih48"):
        got = {(r["kind"], r["comparison"]) for r in _rows(m, benchmark=bench, metric="zero-shot AUC")}
        assert got == {("arms", "synthetic − real"), ("arms", "mixed − real"), ("arms", "mixed − synthetic"),
                       ("ablation", "synthetic~no_balance − synthetic"), ("scaling", "synthetic@25% − synthetic"),
                       ("scaling", "real@50% − real")}
    probe = {r["metric"] for r in _rows(m, benchmark="sim") if r["metric"] != "zero-shot AUC"}
    assert probe == {"linear probe AUC @10%", "linear probe AUC @100%"}
    assert not [r for r in _rows(m, benchmark="nih48") if r["metric"] != "zero-shot AUC"]


def test_planted_effects_come_out_with_holm_corrected_p_values(fake_study) -> None:
    _, m = fake_study
    syn = _rows(m, benchmark="sim", metric="zero-shot AUC", comparison="synthetic − real")[0]
    assert syn["diff"] > 0.05 and syn["ci"][0] > 0
    assert syn["p"] == pytest.approx(2 / 1001)  # no resample reverses it: the smallest p the bootstrap can give
    assert syn["p_holm"] < 0.05
    assert syn["seeds_a"] == [0, 1] and syn["n_images"] == 120
    abl = _rows(m, benchmark="sim", metric="zero-shot AUC", kind="ablation")[0]
    assert abl["diff"] < 0 and abl["ci"][1] < 0
    rows = _rows(m, benchmark="sim")
    assert all(r["p_holm"] >= r["p"] for r in rows)  # Holm never lowers a p-value
    smallest = min(rows, key=lambda r: r["p"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, len(rows) * smallest["p"]))  # first Holm step: m * p
    # nih48 has unknown labels in its last finding: those images are left out of that finding only
    nih = _rows(m, benchmark="nih48", comparison="synthetic − real")[0]
    assert nih["n_images"] == 48 and set(nih["per_finding"]) == {"cardiomegaly", "edema", "pneumothorax"}


def test_study_md_has_a_table_per_benchmark_and_every_section(fake_study) -> None:
    out, _ = fake_study
    md = (out / "study.md").read_text()
    for heading in ("### convirt on sim", "### convirt on nih48", "### Paired differences on sim",
                    "### Paired differences on nih48", "## Ablations", "### Ablations: convirt on sim", "## Data-size scaling",
                    "## The synthetic data", "## Privacy audit", "## Generative fidelity", "## Reproduce"):
        assert heading in md, heading
    table = md.split("### convirt on sim")[1].split("\n\n")[1].splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == ["real", "synthetic", "mixed", "synthetic~no_balance",
                                                                "real@50%", "synthetic@25%"]  # arms, ablations, fractions
    assert "seed spread: zero-shot AUC" in table[0] and re.search(r"sd 0\.\d{3}; 0\.\d{3}–0\.\d{3}", table[2])
    assert "synthetic-only beats real (MIMIC-CXR) by 3.8%" in md and "p (Holm)" in md
    assert "| syn-0001 | s5001 | 0.71 |" in md  # closest pairs from the privacy audit's CSV
    assert "classifier_auc | 0.74" in md
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):  # every PNG link resolves
        assert (out / link).is_file(), link
    assert "(audit/privacy/report_similarity.png)" in md and "(study_assets/scaling-convirt-sim.png)" in md
    assert "syncxr study --config fake.yaml" in md and "seeds:\n- 0\n- 1" in md  # command and resolved config


def test_study_html_is_self_contained(fake_study) -> None:
    out, _ = fake_study
    page = (out / "study.html").read_text()
    srcs = re.findall(r"""src=["']([^"']+)""", page)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in page and "stylesheet" not in page and "http://" not in page and "https://" not in page
    assert page.count("<table>") >= 10


def test_a_study_without_predictions_still_reports_plain_differences(tmp_path: Path) -> None:
    from syncxr.report.study import render_markdown
    from syncxr.report.study_summary import aggregate

    name = "eval/real/sim/zeroshot"
    runs, steps = [], {}
    for arm, auc in (("real", 0.6), ("synthetic", 0.65)):
        name = f"eval/{arm}/sim/zeroshot"
        runs.append({"run": arm, "arm": arm, "objective": "convirt", "seed": 0, "train": f"train/{arm}",
                     "evals": {"sim": {"zeroshot": name}}})
        steps[name] = {"kind": "eval", "command": "x", "result": {"metrics": {"zero-shot AUC": {"value": auc, "ci": [auc - .01, auc + .01]}}}}
    manifest = {"runs": runs, "steps": steps, "command": f"syncxr study --config c.yaml --out {tmp_path}",
                "config": {"arms": ["real", "synthetic"], "mix": {"mode": "concat"}, "train": {"config": "t", "budget": "steps", "steps": 1},
                           "objectives": [{"name": "convirt"}], "seeds": [0], "seed": 0, "real": {"source": "sim"},
                           "synthetic": {"source": "generate"}, "benchmarks": [{"name": "sim", "dataset": "sim"}],
                           "sizes": {"n_real": 1, "n_synthetic": 1, "n_benchmark": 1, "image_size": 128}}}
    manifest["summary"] = aggregate(manifest)
    assert manifest["summary"]["paired"]["rows"] == []
    md = render_markdown(manifest, {}, "")
    assert "No paired comparison could be made" in md and "| convirt | sim | synthetic − real |" in md
