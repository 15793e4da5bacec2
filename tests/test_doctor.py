"""`syncxr doctor`: lists what can run, and names the first thing a config needs fixed."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from syncxr.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_lists_every_backend_and_executor():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ("lexicon", "rate-ner", "grammar", "llm", "phantom", "diffusion", "builtin", "rad-dino", "local", "ray", "vllm"):
        assert name in result.output


def test_every_registry_is_listed_from_its_names():
    from syncxr.doctor import Report, check_backends
    from syncxr.models.registry import IMAGE_ENCODERS
    from syncxr.objectives.registry import OBJECTIVES
    from syncxr.pipeline.executor import EXECUTORS
    from syncxr.transports.base import TRANSPORTS

    report = Report()
    check_backends(report)
    listed = {(c.area, c.item): c for c in report.checks}
    for kind, registry in (("objective", OBJECTIVES), ("executor", EXECUTORS), ("image encoder", IMAGE_ENCODERS),
                           ("llm transport", TRANSPORTS)):
        assert {(kind, name) for name in registry.names()} <= set(listed), kind
    assert len(OBJECTIVES.names()) == 3 and len(IMAGE_ENCODERS.names()) == 6
    assert listed[("executor", "local")].detail == "built in"
    assert listed[("image encoder", "vit_tiny")].detail in ("packages import", "missing timm")


def test_the_quick_config_can_run():
    result = runner.invoke(app, ["doctor", "--config", str(ROOT / "configs/generate/quick.yaml")])
    assert result.exit_code == 0, result.output
    assert "can run here" in result.output


def test_a_config_with_missing_weights_names_the_first_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever the machine has
    cfg = yaml.safe_load((ROOT / "configs/generate/quick.yaml").read_text())
    cfg["extract"] = {"backend": "rate-ner", "options": {"model": str(tmp_path / "no-such-model"), "device": "cuda"}}
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["doctor", "--config", str(path)])
    assert result.exit_code == 2
    assert "no such folder" in result.output and "fix first: extractor rate-ner weights" in result.output


def test_bad_backend_options_are_reported_without_building(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/generate/quick.yaml").read_text())
    cfg["image"]["options"] = {"sharpness": 3}
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["doctor", "--config", str(path)])
    assert result.exit_code == 2 and "unknown option(s) ['sharpness']" in result.output
