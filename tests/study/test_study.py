"""The study end to end on a tiny budget: three arms, manifest, report, resume, config errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from syncxr.errors import UserError
from syncxr.report.study_summary import _combine, aggregate
from syncxr.study import load_study_config, run_study
from syncxr.study.run import plan

pytestmark = pytest.mark.slow  # end to end: `pytest -m 'not slow'` skips it for a fast loop

ROOT = Path(__file__).resolve().parents[2]
ARMS = ["real", "synthetic", "mixed"]
STEPS = 3


def _tiny_config(folder: Path) -> Path:
    cfg = {
        "seed": 0,
        "sizes": {"n_real": 120, "n_synthetic": 120, "n_benchmark": 60, "image_size": 128},
        "real": {"source": "sim", "split": "all"},
        "synthetic": {"config": str(ROOT / "configs/generate/quick.yaml"), "workers": 1},
        "arms": ARMS,
        "train": {"config": str(ROOT / "configs/train/quick.yaml"), "budget": "steps", "steps": STEPS,
                  "overrides": ["train.progress=false", "train.eval_each_epoch=false"]},
        "objectives": [{"name": "convirt"}],
        "seeds": [0],
        "benchmarks": [{"name": "sim", "dataset": "sim"}],
        "eval": {"defaults": {"n_boot": 50, "batch_size": 32}, "tasks": {"zeroshot": {}}},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("study")
    config, out = _tiny_config(tmp), tmp / "out"
    first = run_study(str(config), str(out), [])
    ckpt = out / "train" / "real-convirt-s0" / "latest.json"
    mtime = ckpt.stat().st_mtime_ns
    second = run_study(str(config), str(out), [])
    return {"config": config, "out": out, "first": first, "second": second, "ckpt": ckpt, "mtime": mtime}


def test_study_writes_manifest_and_report_with_one_row_per_arm(study: dict) -> None:
    out, m = study["out"], study["first"]
    on_disk = json.loads((out / "study.json").read_text())
    assert [r["arm"] for r in on_disk["runs"]] == ARMS
    assert {s["kind"] for s in on_disk["steps"].values()} == {"real", "synthetic", "benchmark", "audit", "train", "eval"}
    privacy = on_disk["steps"]["audit/privacy"]["result"]
    assert (out / "audit" / "privacy" / "closest.csv").is_file() and privacy  # the study audits its synthetic data
    assert (out / "audit" / "fidelity" / "fidelity.json").is_file()
    assert all(s["status"] == "done" and s["last_run"] == "ran" for s in m["steps"].values())
    groups = m["summary"]["groups"]
    assert [g["arm"] for g in groups] == ARMS
    for g in groups:
        auc = g["benchmarks"]["sim"]["zero-shot AUC"]
        assert 0.0 <= auc["ci"][0] <= auc["value"] <= auc["ci"][1] <= 1.0
        assert len(g["per_finding"]["sim"]) == 6  # the benchmark's six findings
    md = (out / "study.md").read_text()
    table = md.split("### convirt on sim")[1].split("\n\n")[1].splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == ARMS  # header, rule, one row per arm
    assert "synthetic − real" in md and "3.8%" in md and "do not reproduce" in md
    html = (out / "study.html").read_text()
    assert "data:image/png;base64," in html and "study_assets/" not in html  # self-contained
    assert (out / "study_assets" / "convirt-sim.png").stat().st_size > 1000


def test_every_arm_gets_the_same_number_of_steps(study: dict) -> None:
    steps = study["first"]["steps"]
    results = {arm: steps[f"train/{arm}-convirt-s0"]["result"] for arm in ARMS}
    assert {r["step"] for r in results.values()} == {STEPS}
    assert results["mixed"]["pairs"] == results["real"]["pairs"] + results["synthetic"]["pairs"]
    mixed_cfg = steps["train/mixed-convirt-s0"]["config"]["train"]
    assert [s["kind"] for s in mixed_cfg["data"]["sources"]] == ["mimic", "syncxr"]
    assert mixed_cfg["train"]["max_steps"] == STEPS


def test_torchrun_launch_trains_the_same_run_in_two_ddp_processes(study: dict, tmp_path: Path) -> None:
    """train.nproc_per_node > 1: the study launches torchrun (2 gloo processes on CPU here)."""
    from syncxr.study.train_steps import train_step as _train_step

    cfg = load_study_config(study["config"], ["train.nproc_per_node=2", "train.steps=2"])
    steps, _ = plan(cfg, study["out"], str(study["config"]))
    step = next(s for s in steps if s.name == "train/synthetic-convirt-s0")
    assert step.command.startswith("torchrun --standalone --nproc_per_node 2 -m syncxr train")
    launched = _train_step("t", _tcfg_of(step), [], tmp_path, nproc=2)
    result = launched.action(tmp_path / "t", False)
    assert result["step"] == 2 and (tmp_path / "t" / "latest.json").is_file()
    assert result["final_loss"] is not None and result["pairs"] == 120
    assert (tmp_path / "t" / "launch.yaml").is_file()


def _tcfg_of(step):
    from syncxr.train.config import validate_config

    return validate_config(step.config["train"], "test")


def test_rerun_skips_every_step(study: dict) -> None:
    first, second = study["first"]["steps"], study["second"]["steps"]
    assert list(second) == list(first)
    assert all(s["last_run"] == "skipped" for s in second.values())
    assert all(second[k]["seconds"] == first[k]["seconds"] and second[k]["result"] == first[k]["result"] for k in first)
    assert study["ckpt"].stat().st_mtime_ns == study["mtime"]  # the checkpoint was not rewritten
    assert study["second"]["summary"] == study["first"]["summary"]


def test_changed_eval_option_reruns_only_the_evaluations(study: dict) -> None:
    third = run_study(str(study["config"]), str(study["out"]), ["eval.defaults.n_boot=20"])
    ran = {k for k, s in third["steps"].items() if s["last_run"] == "ran"}
    assert ran == {f"eval/{arm}-convirt-s0/sim/zeroshot" for arm in ARMS}
    assert json.loads((study["out"] / "study.json").read_text())["config"]["eval"]["defaults"]["n_boot"] == 20


def test_interrupted_steps_resume_and_lost_outputs_are_redone(study: dict) -> None:
    out, args = study["out"], (str(study["config"]), str(study["out"]), ["eval.defaults.n_boot=20"])
    run_study(*args)  # settle on this config
    manifest = json.loads((out / "study.json").read_text())
    manifest["steps"]["train/synthetic-convirt-s0"]["status"] = "running"  # as if killed mid-training
    (out / "study.json").write_text(json.dumps(manifest))
    (out / "eval/mixed-convirt-s0/sim/zeroshot/results.json").unlink()  # an output that went missing
    again = run_study(*args)
    ran = {k for k, s in again["steps"].items() if s["last_run"] == "ran"}
    assert ran == {"train/synthetic-convirt-s0", "eval/mixed-convirt-s0/sim/zeroshot"}
    assert again["steps"]["train/synthetic-convirt-s0"]["result"]["step"] == STEPS  # resumed from its checkpoint
    assert (out / "eval/mixed-convirt-s0/sim/zeroshot/results.json").is_file()


@pytest.mark.parametrize(
    "override, named",
    [
        ("trian.steps=3", "trian"),
        ("sizes.n_reel=5", "sizes.n_reel"),
        ("sizes.image_size=64", "sizes.image_size"),
        ("mix.mode=weighted", "mix"),
        ("eval.tasks.zeroshot.n_bot=3", "n_bot"),
        ("eval.defaults.n_bot=3", "eval.defaults.n_bot"),
        ("objectives=[{name: convirt, paramz: {}}]", "objectives.0.paramz"),
    ],
)
def test_bad_config_key_is_a_user_error_naming_it(study: dict, override: str, named: str) -> None:
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        load_study_config(study["config"], [override])


def test_unknown_objective_fails_before_anything_is_written(study: dict, tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(UserError, match="nope"):
        run_study(str(study["config"]), str(out), ["objectives=[{name: nope}]"])
    assert not out.exists()


def test_missing_train_config_names_the_key(study: dict) -> None:
    with pytest.raises(UserError, match=r"train\.config.*missing\.yaml"):
        load_study_config(study["config"], ["train.config=configs/train/missing.yaml"])


def test_paper_config_validates_and_plans_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the preset's paths are relative to the repository root
    cfg = load_study_config("configs/study/paper.yaml")
    assert cfg.sizes.n_synthetic == 200_000 and cfg.real.source == "mimic"
    steps, runs = plan(cfg, tmp_path / "p", "configs/study/paper.yaml")
    trains = {s.name: s.config["train"] for s in steps if s.kind == "train"}
    assert len(runs) == len(trains) == 9  # 3 arms x 3 objectives x 1 seed
    convirt = trains["train/real-convirt-s0"]
    assert convirt["model"]["image"]["arch"] == "resnet50" and "Bio_ClinicalBERT" in convirt["model"]["text"]["name"]
    assert trains["train/mixed-gloria-s0"]["objective"]["params"]["tau1"] == 4.0  # gloria.yaml's own params
    assert {t["train"]["max_steps"] for t in trains.values()} == {cfg.train.steps}
    launch = next(s.command for s in steps if s.name == "train/real-convirt-s0")
    assert launch.startswith("torchrun --standalone --nproc_per_node 8 -m syncxr train --config")
    segments = {s.name: s.config["options"]["finding"] for s in steps if s.name.endswith("/segment")}
    assert segments["eval/real-convirt-s0/rsna/segment"] == "pneumonia"
    assert not (tmp_path / "p").exists()  # planning writes nothing


def test_several_seeds_give_a_t_interval() -> None:
    got = _combine([{"value": 0.6, "ci": [0.5, 0.7]}, {"value": 0.7, "ci": [0.6, 0.8]}])
    half = 12.7062 * math.sqrt(0.005) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(n)
    assert got["value"] == pytest.approx(0.65)
    assert got["ci"] == pytest.approx([0.65 - half, 0.65 + half], abs=1e-3)
    assert got["ci_kind"] == "t over 2 seeds"


def test_aggregate_computes_differences_against_real() -> None:
    def run(arm: str, auc: float) -> tuple[dict, dict]:
        name = f"eval/{arm}/sim/zeroshot"
        rec = {"run": arm, "arm": arm, "objective": "convirt", "seed": 0, "evals": {"sim": {"zeroshot": name}}}
        res = {"metrics": {"zero-shot AUC": {"value": auc, "ci": [auc - 0.01, auc + 0.01]}}, "per_finding": {}}
        return rec, {name: {"result": res}}

    recs = [run("real", 0.70), run("synthetic", 0.75), run("mixed", 0.80)]
    summary = aggregate({"runs": [r for r, _ in recs], "steps": {k: v for _, s in recs for k, v in s.items()}})
    diffs = {d["comparison"]: d for d in summary["differences"]}
    assert diffs["synthetic − real"]["diff"] == pytest.approx(0.05)
    assert diffs["synthetic − real"]["relative_pct"] == pytest.approx(100 * 0.05 / 0.70)
    assert diffs["mixed − real"]["diff"] == pytest.approx(0.10) and not diffs["mixed − real"]["cis_overlap"]
    assert diffs["mixed − synthetic"]["diff"] == pytest.approx(0.05)


def test_report_explains_a_below_chance_finding_with_its_auc_against_normals() -> None:
    from syncxr.report.study import _results_section
    from syncxr.report.study_summary import headline

    result = {"mode": "multilabel", "mean_auc": 0.6, "mean_auc_ci": [0.55, 0.65],
              "per_finding": {"atelectasis": {"auc": 0.36, "auc_ci": [0.29, 0.43]},
                              "cardiomegaly": {"auc": 0.8, "auc_ci": [0.75, 0.85]}},
              "diagnostics": {"auc_vs_normal": {"atelectasis": {"auc": 0.61, "auc_ci": [0.52, 0.7]},
                                                "cardiomegaly": {"auc": 0.9, "auc_ci": [0.85, 0.95]}}}}
    h = headline("zeroshot", result, Path("."))
    assert h["per_finding_vs_normal"]["atelectasis"] == {"value": 0.61, "ci": [0.52, 0.7]}
    name = "eval/real/sim/zeroshot"
    rec = {"run": "real", "arm": "real", "objective": "convirt", "seed": 0, "evals": {"sim": {"zeroshot": name}}}
    summary = aggregate({"runs": [rec], "steps": {name: {"result": h}}})
    md = "\n".join(_results_section(summary, {}))
    assert "**Below chance:** atelectasis (95% CI" in md  # cardiomegaly is not named
    assert "| atelectasis | 0.610 [0.520, 0.700] |" in md
    ok = dict(result, per_finding={"atelectasis": {"auc": 0.6, "auc_ci": [0.51, 0.7]}})
    summary = aggregate({"runs": [rec], "steps": {name: {"result": headline("zeroshot", ok, Path("."))}}})
    assert "Below chance" not in "\n".join(_results_section(summary, {}))


def _film_fixture(root: Path) -> Path:
    """A labelled sample of films in the NIH short-column layout (image, labels, view, patient)."""
    from PIL import Image

    from syncxr.image.phantom.render import render_phantom
    from syncxr.image.phantom.spec import FindingSpec

    root.mkdir(parents=True, exist_ok=True)
    rows = ["image,labels,view,patient"]
    for i in range(16):
        sick = i % 2 == 0
        specs = [FindingSpec("pleural_effusion", laterality="right", severity="moderate")] if sick else []
        Image.fromarray(render_phantom(specs, seed=i, size=128).image).save(root / f"{i:08d}_000.png")
        rows.append(f"{i:08d}_000.png,{'Effusion' if sick else 'No Finding'},PA,{i}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_labelled_real_film_set_is_reported_beside_the_simulated_benchmark(study: dict, tmp_path: Path) -> None:
    """Real films in the loop: a cxr14-layout subset as a second benchmark (runs last: it adds evals)."""
    films = _film_fixture(tmp_path / "films")
    bench = ("benchmarks=[{name: sim, dataset: sim}, {name: films, dataset: cxr14, data_dir: " + str(films)
             + ", dataset_options: {entries: labels.csv, split: all}, tasks: [zeroshot]}]")
    m = run_study(str(study["config"]), str(study["out"]), [bench])
    ran = {k for k, s in m["steps"].items() if s["last_run"] == "ran"}
    assert {f"eval/{arm}-convirt-s0/films/zeroshot" for arm in ARMS} <= ran
    assert not {k for k in ran if not k.startswith("eval/")}  # nothing regenerated or retrained
    for g in m["summary"]["groups"]:
        auc = g["benchmarks"]["films"]["zero-shot AUC"]
        assert 0.0 <= auc["value"] <= 1.0
        assert set(g["per_finding"]["films"]) == {"pleural_effusion", "no_finding"}
    md = (study["out"] / "study.md").read_text()
    assert "### convirt on films" in md and "### convirt on sim" in md
