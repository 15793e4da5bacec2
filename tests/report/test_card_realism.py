"""The dataset card's realism section: shown from a realism.json the benchmark left, else how to
measure it; a broken file is named, not fatal."""

import json

from syncxr.report.card import REALISM_FILE, _read_realism, _realism_section


def test_no_file_says_how_to_measure(tmp_path):
    assert _read_realism(tmp_path) is None
    text = "\n".join(_realism_section(None))
    assert "Not measured" in text and "benchmarks/realism.py" in text and REALISM_FILE in text


def test_figures_from_the_benchmark_file(tmp_path):
    (tmp_path / REALISM_FILE).write_text(json.dumps({
        "discriminator_auc": 0.8765, "discriminator_accuracy": 0.8, "real_images": 50, "renders": 48,
        "renderer": "phantom-v3", "statistics": {"grain": {"real": 1.6, "phantom": 1.5}},
        "command": "python benchmarks/realism.py --real R --n 48 --seed 0 --json D/realism.json"}))
    text = "\n".join(_realism_section(_read_realism(tmp_path)))
    assert "| 0.88 |" in text and "50 / 48" in text and "phantom-v3" in text
    assert "1.60 / 1.50" in text and "--seed 0" in text


def test_broken_file_is_named(tmp_path):
    (tmp_path / REALISM_FILE).write_text('{"renders": 3}')
    text = "\n".join(_realism_section(_read_realism(tmp_path)))
    assert "realism.json unreadable" in text and "KeyError" in text
