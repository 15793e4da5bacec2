"""Suite configs and the full path: a real (tiny, untrained) checkpoint on a simulated benchmark."""

import json
from pathlib import Path

import pytest
import yaml

from syncxr.errors import UserError
from syncxr.evaluate.suite import load_suite, run_suite, run_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "evaluate"


def save_tiny_checkpoint(out: Path) -> Path:
    """A tiny_cnn + bert-tiny dual encoder saved through the training code's checkpoint writer."""
    import torch

    from syncxr.models.factory import ModelConfig, build_model
    from syncxr.models.pretrained import Preprocess
    from syncxr.train.checkpoint import save_checkpoint

    cfg = ModelConfig.model_validate({"embed_dim": 32, "image": {"arch": "tiny_cnn", "image_size": 64},
                                      "text": {"name": "bert-tiny-builtin", "max_length": 24, "vocab_size": 200}})
    corpus = ["no pleural effusion", "there is cardiomegaly", "small left pneumothorax", "edema and atelectasis"] * 20
    model = build_model(cfg, corpus=corpus)
    state = {"step": 0, "config": {"model": cfg.model_dump(mode="json")},
             "preprocess": Preprocess(64, 0.5, 0.25).to_dict()}
    save_checkpoint(out, model, torch.nn.Module(), torch.optim.AdamW(model.parameters()), state, keep=1)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from syncxr.sim.benchmark import write_sim_benchmark

    root = tmp_path_factory.mktemp("eval")
    write_sim_benchmark(root / "data" / "sim", n=40, size=128, seed=0, fmt="csv")
    return root, save_tiny_checkpoint(root / "run")


@pytest.mark.parametrize("name", ["paper.yaml", "sim.yaml"])
def test_shipped_suites_validate(name):
    cfg = load_suite(CONFIGS / name)
    tasks = {j.task for j in cfg.jobs}
    assert tasks == {"zeroshot", "grounding", "finetune", "segment"}


def test_paper_suite_covers_the_papers_datasets():
    cfg = load_suite(CONFIGS / "paper.yaml")
    zs = {j.dataset for j in cfg.jobs if j.task == "zeroshot"}
    assert zs == {"chexpert", "chexpert5x200", "cxr14", "padchest", "rsna", "siim", "covidx"}
    assert {j.dataset for j in cfg.jobs if j.task == "finetune"} == {"rsna", "siim", "covidx", "cxr14"}


def test_bad_job_option_names_the_job(tmp_path):
    raw = yaml.safe_load((CONFIGS / "sim.yaml").read_text())
    raw["jobs"][2]["options"] = {"fractons": [0.1]}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"(?s)jobs.2 \(finetune-sim\).options.*fractons: unknown key"):
        load_suite(p)


def test_sim_suite_end_to_end(world):
    root, ckpt = world
    raw = yaml.safe_load((CONFIGS / "sim.yaml").read_text())
    raw["data_root"] = str(root / "data")
    raw["defaults"].update(n_boot=10, batch_size=16)
    raw["task_defaults"]["segment"].update(epochs=1, fractions=[1.0], decoder_width=8)
    raw["jobs"][3]["options"].update(epochs=1, fractions=[1.0])
    cfg = root / "suite.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = root / "out"
    summary = run_suite(cfg, str(ckpt), out)

    assert set(summary["jobs"]) == {"zeroshot-sim", "grounding-sim", "finetune-sim", "finetune-full-sim", "segment-sim"}
    assert all("error" not in v for v in summary["jobs"].values())
    zs = json.loads((out / "zeroshot-sim" / "results.json").read_text())
    assert zs["checkpoint_id"] == summary["checkpoint_id"] and len(zs["checkpoint_id"]) == 16
    assert zs["config"]["preprocess"] == {"image_size": 64, "mean": 0.5, "std": 0.25}
    assert 0.0 <= zs["mean_auc"] <= 1.0 and "pneumothorax" in zs["per_finding"]
    gr = json.loads((out / "grounding-sim" / "results.json").read_text())
    assert 0.0 <= gr["mean_pointing_game"] <= 1.0 and "cnr" in gr["per_finding"]["pneumothorax"]
    # Fine-tuning and segmentation on one dataset share one saved split, re-used on the next run.
    split = out / "splits" / "sim.json"
    assert json.loads((out / "finetune-sim" / "results.json").read_text())["splits_file"] == str(split)
    assert json.loads(split.read_text())["source"] == "official"
    seg = json.loads((out / "segment-sim" / "results.json").read_text())
    assert 0.0 <= seg["dice@1"] <= 1.0
    assert (out / "suite.json").is_file()


def test_run_task_rejects_other_image_size_before_loading_data(world, tmp_path):
    _, ckpt = world
    with pytest.raises(UserError, match="trained with image_size=64"):
        run_task("zeroshot", str(ckpt), "sim", str(tmp_path / "does-not-exist"), str(tmp_path / "o"), image_size=128)
    assert not (tmp_path / "o").exists()


def test_run_task_writes_predictions_where_asked(world, tmp_path):
    root, ckpt = world
    res = run_task("zeroshot", str(ckpt), "sim", str(root / "data" / "sim"), str(tmp_path / "zs"),
                   predictions=str(tmp_path / "preds.csv"), n_boot=5, findings=["pneumothorax", "cardiomegaly"])
    assert set(res["per_finding"]) | set(res["skipped"]) == {"pneumothorax", "cardiomegaly"}
    header = (tmp_path / "preds.csv").read_text().splitlines()[0]
    assert header == "image,patient_id,pneumothorax,cardiomegaly"


def test_predictions_echo_the_input_image_values(world, tmp_path):
    import pandas as pd

    root, ckpt = world
    data = root / "data" / "sim"
    run_task("zeroshot", str(ckpt), "sim", str(data), str(tmp_path / "zs"), n_boot=0, findings=["pneumothorax"])
    preds = pd.read_csv(tmp_path / "zs" / "predictions.csv", dtype=str)
    labels = pd.read_csv(data / "labels.csv", dtype=str)
    assert preds["image"].tolist() == labels["image"].tolist()  # e.g. images/sim00000.png, not an absolute path
    assert preds["patient_id"].tolist() == labels["patient_id"].tolist()
    joined = labels.merge(preds, on=["image", "patient_id"], suffixes=("_label", "_score"))
    assert len(joined) == len(labels)


@pytest.mark.parametrize("name, pred_name", [("results.json", "predictions.csv"), ("zs.json", "zs.predictions.csv")])
def test_out_json_is_the_results_file(world, tmp_path, name, pred_name):
    root, ckpt = world
    out = tmp_path / "deep" / name
    run_task("zeroshot", str(ckpt), "sim", str(root / "data" / "sim"), str(out), n_boot=0, findings=["pneumothorax"])
    assert out.is_file() and json.loads(out.read_text())["task"] == "zeroshot"
    assert (out.parent / pred_name).is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([name, pred_name])


def test_out_json_that_is_a_folder_is_refused_by_the_cli(world, tmp_path):
    from typer.testing import CliRunner

    from syncxr.cli import _register_optional_commands, app

    if not any(g.name == "evaluate" for g in app.registered_groups):
        _register_optional_commands()
    root, ckpt = world
    (tmp_path / "results.json").mkdir()
    r = CliRunner().invoke(app, ["evaluate", "zeroshot", "--checkpoint", str(ckpt), "--dataset", "sim",
                                 "--data-dir", str(root / "data" / "sim"), "--out", str(tmp_path / "results.json")])
    assert r.exit_code == 2 and "is a folder" in r.output


def test_evaluate_never_imports_generation_code():
    src = Path(__file__).resolve().parents[2] / "src" / "syncxr" / "evaluate"
    offenders = []
    for f in src.glob("*.py"):
        for line in f.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import syncxr.", "from syncxr.")) and s.split()[1].split(".")[1] in ("text", "image", "pipeline"):
                offenders.append(f"{f.name}: {s}")
    assert offenders == []


def test_linear_probe_reads_the_backbones_pooled_features(world, tmp_path):
    from syncxr.data.sources.registry import load_dataset
    from syncxr.evaluate.embed import encode_images
    from syncxr.models.pretrained import load_pretrained

    root, ckpt = world
    pre = load_pretrained(ckpt)
    ds = load_dataset("sim", root / "data" / "sim")
    backbone = encode_images(pre, ds, [0, 1, 2], kind="backbone")
    embedding = encode_images(pre, ds, [0, 1, 2])
    assert backbone.emb.shape == (3, 128 * 4)  # tiny_cnn: 128 channels, 2 x 2 cell means; not the 32-d projection
    assert embedding.emb.shape == (3, 32)
    res = run_task("finetune", str(ckpt), "sim", str(root / "data" / "sim"), str(tmp_path / "ft"), n_boot=0,
                   fractions=[1.0])
    assert res["features"] == "backbone"
