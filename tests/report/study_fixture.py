"""A small finished study built without training, for the report tests (fixture: conftest.py).

Two benchmarks ("sim": 6 findings, "nih48": 3 findings with blank labels), groups real /
synthetic / mixed with two seeds each, one ablation (synthetic~no_balance), two data fractions
(synthetic@25%, real@50%), zero-shot predictions plus a linear probe on "sim", and privacy /
fidelity audit results with PNGs and a closest-pairs CSV. The predictions have planted effects:
on every benchmark the synthetic arm separates the labels better than real, mixed best, the
no_balance ablation worst, and the 25% synthetic run in between.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from syncxr.evaluate.metrics import multilabel_metrics
from syncxr.report.study import write_study_report
from syncxr.report.study_summary import aggregate, headline

# group -> (arm, variant, fraction, how strongly its scores follow the labels)
GROUPS = {
    "real": ("real", None, 1.0, 0.6),
    "synthetic": ("synthetic", None, 1.0, 1.2),
    "mixed": ("mixed", None, 1.0, 1.6),
    "synthetic~no_balance": ("synthetic", "no_balance", 1.0, 0.4),
    "synthetic@25%": ("synthetic", None, 0.25, 0.9),
    "real@50%": ("real", None, 0.5, 0.5),
}
SEEDS = (0, 1)
BENCHES = {"sim": (120, ["atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion", "pneumothorax"]),
           "nih48": (48, ["cardiomegaly", "edema", "pneumothorax"])}


def _png(size: int = 8, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _figure_png(title: str) -> bytes:
    from syncxr.report import plots

    fig, ax = plots.plt.subplots(figsize=(3, 2))
    ax.hist(np.random.default_rng(0).normal(size=200), bins=20)
    ax.set_title(title)
    return plots._png(fig)


def _benchmark(folder: Path, n: int, findings: list[str], rng: np.random.Generator) -> pd.DataFrame:
    (folder / "images").mkdir(parents=True)
    labels = (rng.random((n, len(findings))) < 0.35).astype(float)
    labels[:, 0] = np.r_[np.ones(n // 3), np.zeros(n - n // 3)]  # every finding has positives and negatives
    frame = pd.DataFrame(labels, columns=findings)
    if n < 100:  # the small real-film set has unknown labels
        frame.iloc[:5, -1] = np.nan
    frame.insert(0, "image", [f"images/{i:04d}.png" for i in range(n)])
    frame.insert(1, "patient_id", [f"p{i:04d}" for i in range(n)])
    for name in frame["image"]:
        (folder / name).write_bytes(_png())
    frame.to_csv(folder / "labels.csv", index=False)
    return frame


def _eval(folder: Path, frame: pd.DataFrame, findings: list[str], strength: float, rng: np.random.Generator,
          hardness: np.ndarray) -> dict[str, dict[str, Any]]:
    """Writes zero-shot (and, on 'sim', linear-probe) outputs; returns task -> headline result."""
    y = frame[findings].to_numpy()
    scores = strength * np.nan_to_num(y) + hardness + rng.normal(scale=0.5, size=y.shape)
    zs = folder / "zeroshot"
    zs.mkdir(parents=True)
    result = {"task": "zeroshot", "mode": "multilabel", **multilabel_metrics(y, scores, findings, n_boot=50, seed=0)}
    (zs / "results.json").write_text(json.dumps(result))
    preds = frame[["image", "patient_id"]].copy()
    for k, f in enumerate(findings):
        preds[f] = scores[:, k]
    preds.to_csv(zs / "predictions.csv", index=False)
    out = {"zeroshot": headline("zeroshot", result, zs)}
    if len(findings) == 6:
        ft = folder / "finetune"
        ft.mkdir(parents=True)
        test = np.arange(len(frame)) % 2 == 0  # the shared test split
        blocks, frames = {}, []
        for f in (0.1, 1.0):
            s = (0.5 + f) * strength * y[test] + hardness[test] + rng.normal(scale=0.5, size=y[test].shape)
            blocks[f"{f:g}"] = multilabel_metrics(y[test], s, findings, n_boot=50, seed=0)
            p = frame.loc[test, ["image", "patient_id"]].reset_index(drop=True)
            p.insert(2, "fraction", f)
            frames.append(pd.concat([p, pd.DataFrame(s, columns=findings)], axis=1))
        res = {"task": "finetune", "method": "linear_probe", "mode": "multilabel", "fractions": blocks}
        (ft / "results.json").write_text(json.dumps(res))
        pd.concat(frames).to_csv(ft / "predictions.csv", index=False)
        out["finetune"] = headline("finetune", res, ft)
    return out


def _fake_synthetic(folder: Path) -> None:
    """A dataset folder with what the report reads: the plan's entity counts and one shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "shards").mkdir(parents=True)
    plan = {"reference_counts": {f"e{i}|ABNORMALITY": 400 // (i + 1) for i in range(30)},
            "sampled_counts": {f"e{i}|ABNORMALITY": 20 + i % 3 for i in range(30)}}
    (folder / "manifest.json").write_text(json.dumps({"plan": plan}))
    table = pa.table({"image_png": [_png(64, 60 + 20 * i) for i in range(4)],
                      "impression": [f"Finding number {i}. No pneumothorax." for i in range(4)]})
    pq.write_table(table, folder / "shards" / "shard-00000.parquet")


def _audits(out: Path) -> dict[str, Any]:
    steps = {}
    priv, fid = out / "audit" / "privacy", out / "audit" / "fidelity"
    priv.mkdir(parents=True)
    fid.mkdir(parents=True)
    (priv / "report_similarity.png").write_bytes(_figure_png("nearest real report"))
    (priv / "image_similarity.png").write_bytes(_figure_png("nearest real image"))
    pd.DataFrame({"synthetic": ["syn-0001", "syn-0002"], "real": ["s5001", "s5002"], "ngram_overlap": [0.71, 0.64],
                  "synthetic_report": ["Small left effusion.", "Mild cardiomegaly."],
                  "real_report": ["Small left pleural effusion.", "Cardiomegaly, mild."]}).to_csv(
        priv / "closest_pairs.csv", index=False)
    (fid / "fidelity.png").write_bytes(_figure_png("fidelity per finding"))
    steps["audit/privacy"] = {"kind": "audit", "status": "done", "command": "syncxr audit privacy ...", "seconds": 1.0,
                              "result": {"n_synthetic": 16, "n_real": 120, "report": {"ngram_overlap_p99": 0.71},
                                         "image": {"cosine_p99": 0.93}, "near_copies": 0}}
    steps["audit/fidelity"] = {"kind": "audit", "status": "done", "command": "syncxr audit fidelity ...", "seconds": 1.0,
                               "result": {"fid": 12.5, "precision": 0.81, "recall": 0.66, "density": 0.9,
                                          "coverage": 0.7, "classifier_auc": 0.74}}
    return steps


def build_study(out: Path, synthetic: Path | None = None) -> dict[str, Any]:
    """Write the study folder (eval outputs, study.yaml, study.json, study.md, study.html)."""
    rng = np.random.default_rng(0)
    steps: dict[str, Any] = {}
    frames = {}
    for bench, (n, findings) in BENCHES.items():
        frames[bench] = _benchmark(out / "data" / f"bench-{bench}", n, findings, rng)
        steps[f"data/bench-{bench}"] = {"kind": "benchmark", "status": "done", "seconds": 0.1, "result": {"images": n},
                                        "command": f"# benchmark {bench}"}
    if synthetic is None:
        synthetic = out / "data" / "synthetic"
        _fake_synthetic(synthetic)
    steps["data/synthetic"] = {"kind": "synthetic", "status": "done", "seconds": 1.0, "command": "syncxr generate ...",
                               "config": {"source": "dataset", "path": str(synthetic)}, "result": {}}
    hardness = {b: rng.normal(scale=1.0, size=(n, len(f))) for b, (n, f) in BENCHES.items()}  # shared by all runs
    runs = []
    for group, (arm, variant, fraction, strength) in GROUPS.items():
        for seed in SEEDS:
            run = f"{group}-convirt-s{seed}"
            record = {"run": run, "arm": arm, "objective": "convirt", "seed": seed, "variant": variant,
                      "fraction": fraction, "group": group, "train": f"train/{run}", "evals": {}}
            steps[f"train/{run}"] = {"kind": "train", "status": "done", "seconds": 2.0, "command": f"syncxr train {run}",
                                     "result": {"step": 3, "final_loss": 2.5, "pairs": 100, "val": {"i2t_r10": 0.2}}}
            for bench, (_, findings) in BENCHES.items():
                folder = out / "eval" / run / bench
                results = _eval(folder, frames[bench], findings, strength + 0.05 * seed, rng, hardness[bench])
                for task, res in results.items():
                    name = f"eval/{run}/{bench}/{task}"
                    record["evals"].setdefault(bench, {})[task] = name
                    steps[name] = {"kind": "eval", "status": "done", "seconds": 0.5, "command": f"syncxr evaluate {name}",
                                   "config": {"dataset": {"dataset": "csv", "data_dir": str(out / "data" / f"bench-{bench}")}},
                                   "result": res}
            runs.append(record)
    steps.update(_audits(out))
    config = {"seed": 0, "sizes": {"n_real": 100, "n_synthetic": 100, "n_benchmark": 120, "image_size": 128},
              "real": {"source": "sim"}, "synthetic": {"source": "generate"}, "arms": ["real", "synthetic", "mixed"],
              "mix": {"mode": "concat"}, "train": {"config": "configs/train/quick.yaml", "budget": "steps", "steps": 3},
              "objectives": [{"name": "convirt"}], "seeds": list(SEEDS),
              "benchmarks": [{"name": "sim", "dataset": "csv"}, {"name": "nih48", "dataset": "csv"}],
              "eval": {"defaults": {"n_boot": 50, "seed": 0}, "tasks": {"zeroshot": {}}}}
    (out / "study.yaml").write_text(yaml.safe_dump(config))
    manifest = {"version": 1, "config": config, "command": f"syncxr study --config fake.yaml --out {out}",
                "runs": runs, "steps": steps, "seconds_this_run": 1.0}
    manifest["summary"] = aggregate(manifest)
    (out / "study.json").write_text(json.dumps(manifest, default=str))
    write_study_report(out, manifest)
    return manifest
