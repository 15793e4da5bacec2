"""CLI behaviour: exit code 2 with one clear message on bad input; commands produce their files."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from syncxr.cli import _register_optional_commands, app

_register_optional_commands()
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_extract_writes_labels(tmp_path):
    src = tmp_path / "reports.csv"
    pd.DataFrame(
        {
            "uid": ["a", "b"],
            "findings": ["The lungs are clear. No pleural effusion.", "Large left pleural effusion."],
            "impression": ["No acute cardiopulmonary process.", "Pneumothorax cannot be excluded."],
        }
    ).to_csv(src, index=False)
    out = tmp_path / "labels.csv"
    res = run("extract", "--in", str(src), "--text-columns", "findings,impression", "--id-column", "uid", "--out", str(out))
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df["uid"]) == ["a", "b"]
    assert df.loc[0, "pleural_effusion"] == 0 and df.loc[0, "no_finding"] == 1
    assert df.loc[1, "pleural_effusion"] == 1 and df.loc[1, "pneumothorax"] == -1


@pytest.mark.parametrize(
    "content, needle",
    [
        ("uid,text\na,No effusion.\n", "findings"),
        ("", "empty"),
    ],
)
def test_extract_bad_csv_exits_2(tmp_path, content, needle):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "labels.csv"
    res = run("extract", "--in", str(src), "--id-column", "uid", "--out", str(out))
    assert res.exit_code == 2
    assert needle in res.output.lower()
    assert not out.exists()


def test_extract_missing_file_exits_2(tmp_path):
    res = run("extract", "--in", str(tmp_path / "nope.csv"), "--id-column", "uid", "--out", str(tmp_path / "o.csv"))
    assert res.exit_code == 2 and "nope.csv" in res.output


def test_card_on_non_dataset_exits_2(tmp_path):
    res = run("card", str(tmp_path))
    assert res.exit_code == 2 and "manifest" in res.output


def test_qc_build_bank(tmp_path):
    out = tmp_path / "bank.npz"
    res = run("qc", "build-bank", "--out", str(out), "--per-defect", "2", "--size", "128")
    assert res.exit_code == 0, res.output
    from syncxr.qc.bank import ProblemBank

    bank = ProblemBank.load(out)
    assert len(bank.labels) == 2 * 8 and bank.features.shape[0] == 16


def test_messages_keep_square_brackets(tmp_path):
    """Rich markup must not swallow text like '[train]' or '[lo, hi]' in error messages."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("entities:\n  k: [5, 2]\n")
    res = run("generate", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "[lo, hi]" in res.output


def test_qc_build_bank_with_a_model_backend_needs_model(tmp_path):
    res = run("qc", "build-bank", "--out", str(tmp_path / "b.npz"), "--features", "rad-dino")
    assert res.exit_code == 2 and "--model" in res.output
