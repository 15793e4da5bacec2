"""The training metrics log: rows kept across a resume, the rewrite atomic."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="training needs the train extra")

from syncxr.train.metrics import MetricsLog, read_metrics  # noqa: E402


def test_truncate_after_keeps_earlier_rows_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, ["loss_i2t"])
    for step in (5, 10, 15):
        log.write({"step": step, "epoch": 0, "phase": "train", "loss": 1.0 / step, "loss_i2t": 0.5})
    log.truncate_after(10)
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == ["5", "10"] and rows[1]["loss"] == "0.1" and rows[0]["loss_i2t"] == "0.5"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "tb") == ["metrics.csv"]
    log.close()


def test_a_failed_rewrite_leaves_the_log_untouched(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, [])
    log.write({"step": 1, "epoch": 0, "phase": "train", "loss": 2.0})
    before = path.read_bytes()
    import csv

    def broken_writerows(self, rows):
        raise RuntimeError("disk went away")

    monkeypatch.setattr(csv.DictWriter, "writerows", broken_writerows)
    with pytest.raises(RuntimeError):
        log.truncate_after(0)
    assert path.read_bytes() == before
    log.close()
