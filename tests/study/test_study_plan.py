"""Planning the study's ablations and data-size scaling (no training: planning writes nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from syncxr.errors import UserError
from syncxr.study import load_study_config
from syncxr.study.run import plan

ROOT = Path(__file__).resolve().parents[2]


def _tiny_config(folder: Path) -> Path:
    cfg = {
        "sizes": {"n_real": 120, "n_synthetic": 120, "n_benchmark": 60, "image_size": 128},
        "real": {"source": "sim", "split": "all"},
        "synthetic": {"config": str(ROOT / "configs/generate/quick.yaml"), "workers": 1},
        "train": {"config": str(ROOT / "configs/train/quick.yaml"), "budget": "steps", "steps": 3},
        "eval": {"tasks": {"zeroshot": {}}},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ablations_and_scaling_plan_their_own_data_and_arms(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path)
    cfg = load_study_config(config, ["ablations=[{name: no_balance, overrides: [entities.balance=false]},"
                                     " {name: no_verify, overrides: [verify.enabled=false]}]",
                                     "scaling={arms: [synthetic, real], fractions: [0.5, 0.25]}", "seeds=[0, 1]"])
    steps, runs = plan(cfg, tmp_path / "p", str(config))
    by = {s.name: s for s in steps}
    gen = by["data/synthetic~no_balance"].config["config"]
    assert gen["entities"]["balance"] is False and by["data/synthetic"].config["config"]["entities"]["balance"] is True
    assert by["data/synthetic~no_verify"].config["config"]["verify"]["enabled"] is False
    groups = [r["group"] for r in runs if r["seed"] == 0]
    assert groups == ["real", "synthetic", "mixed", "synthetic~no_balance", "synthetic~no_verify",
                      "synthetic@25%", "synthetic@50%", "real@25%", "real@50%"]
    assert len(runs) == 18
    ablated = by["train/synthetic~no_verify-convirt-s1"].config
    assert ablated["train"]["data"]["sources"][0]["path"].endswith("data/synthetic~no_verify")
    assert set(ablated["upstream"]) == {"data/synthetic~no_verify"}
    quarter = by["train/real@25-convirt-s0"].config["train"]["data"]["sources"]
    assert [s["fraction"] for s in quarter] == [0.25] and quarter[0]["kind"] == "mimic"
    assert by["train/real-convirt-s0"].config["train"]["data"]["sources"][0]["fraction"] == 1.0
    assert {r["variant"] for r in runs} == {None, "no_balance", "no_verify"}
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("override, named", [
    ("ablations=[{name: x, overrides: [entities.balanse=false]}]", r"(?s)ablations\[x\]\.overrides.*balanse"),
    ("ablations=[{name: x, overrides: [qc.enabled=false]}, {name: x, overrides: [qc.enabled=false]}]", "listed twice"),
    ("scaling={arms: [synthetic], fractions: [1.0]}", r"fractions must be in \(0, 1\)"),
    ("arms=[real]\nscaling={arms: [synthetic]}", "scaling.arms"),
])
def test_bad_ablation_or_scaling_is_a_user_error(tmp_path: Path, override: str, named: str) -> None:
    with pytest.raises(UserError, match=named):
        load_study_config(_tiny_config(tmp_path), override.split("\n"))


@pytest.mark.parametrize("preset, runs", [("standard", 9), ("ablations", 22)])
def test_presets_validate_and_plan(preset: str, runs: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # preset paths are relative to the repository root
    cfg = load_study_config(f"configs/study/{preset}.yaml")
    steps, planned = plan(cfg, tmp_path / "p", preset)
    assert len(planned) == runs and len(set(cfg.seeds)) >= 2
    per_group = {}
    for r in planned:
        per_group[r["group"]] = per_group.get(r["group"], 0) + 1
    assert set(per_group.values()) == {len(cfg.seeds)}  # every arm trained with every seed
    assert {s.config["train"]["train"]["max_steps"] for s in steps if s.kind == "train"} == {cfg.train.steps}


def test_an_optional_benchmark_without_its_folder_is_left_out_and_named(tmp_path: Path) -> None:
    films = ("benchmarks=[{name: sim, dataset: sim}, {name: films, dataset: cxr14, data_dir: " + str(tmp_path / "none")
             + ", optional: true}]")
    cfg = load_study_config(_tiny_config(tmp_path), [films])
    steps, runs = plan(cfg, tmp_path / "p", "x")
    assert [b.label for b in cfg.present_benchmarks()] == ["sim"]
    assert cfg.absent_benchmarks() == [f"films: data_dir {tmp_path / 'none'} not found (optional benchmark)"]
    assert not [s for s in steps if "films" in s.name] and set(runs[0]["evals"]) == {"sim"}
    (tmp_path / "none").mkdir()
    assert [b.label for b in cfg.present_benchmarks()] == ["sim", "films"]


def test_audits_are_planned_against_the_real_corpus_and_can_be_switched_off(tmp_path: Path) -> None:
    cfg = load_study_config(_tiny_config(tmp_path))
    steps, _ = plan(cfg, tmp_path / "p", "x")
    audits = {s.name: s for s in steps if s.kind == "audit"}
    assert set(audits) == {"audit/privacy", "audit/fidelity"}
    assert set(audits["audit/privacy"].config["upstream"]) == {"data/real", "data/synthetic"}
    assert audits["audit/fidelity"].command.startswith("syncxr audit fidelity --synthetic")
    off = load_study_config(_tiny_config(tmp_path), ["audit={privacy: null, fidelity: {k: 3}}"])
    steps, _ = plan(off, tmp_path / "p", "x")
    assert [s.config["options"] for s in steps if s.kind == "audit"] == [{"k": 3}]
    with pytest.raises(UserError, match=r"audit\.privacy: privacy audit: unknown option.*ngramm"):
        load_study_config(_tiny_config(tmp_path), ["audit.privacy={ngramm: 2}"])
