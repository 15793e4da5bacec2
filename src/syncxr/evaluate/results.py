"""results.json, predictions CSV and the console table. Every file is written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from rich.console import Console
from rich.table import Table

from syncxr.fsio import write_text_atomic

# Columns of the per-finding table, in display order (only those present are shown).
_COLUMNS = ("auc", "f1", "acc", "recall", "pointing_game", "cnr", "iou@0.5", "dice@0.5", "dice", "n_pos", "n")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write through the atomic writer (syncxr.fsio): readers never see half a file."""
    write_text_atomic(path, text)


def to_jsonable(obj: Any) -> Any:
    """NaN -> null and +/-inf -> "inf"/"-inf" so results.json stays strict JSON; numpy -> python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
    return obj


def output_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """(folder, results JSON, default predictions CSV) for an --out value.

    A path ending in .json is the results file itself (its folder holds the rest; predictions go
    to `predictions.csv` beside `results.json`, else to `<name>.predictions.csv`); any other path is
    a folder that gets `results.json` and `predictions.csv`.
    """
    from syncxr.errors import UserError

    p = Path(out)
    if p.suffix.lower() != ".json":
        return p, p / "results.json", p / "predictions.csv"
    if p.is_dir():
        raise UserError(f"--out {p} is a folder (older versions created one); delete it or give another path")
    pred = p.with_name("predictions.csv") if p.name == "results.json" else p.with_name(f"{p.stem}.predictions.csv")
    return p.parent, p, pred


def write_results(out: str | Path, result: dict[str, Any], predictions: Optional[pd.DataFrame] = None,
                  predictions_path: str | Path | None = None) -> Path:
    """Write the results JSON (and the predictions CSV when given) for `out` (a folder or a .json
    file, see output_paths); returns the JSON path."""
    _, path, default_pred = output_paths(out)
    atomic_write_text(path, json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n")
    if predictions is not None:
        atomic_write_text(predictions_path or default_pred, predictions.to_csv(index=False))
    return path


def _fmt(v: Any, ci: Any = None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        s = f"{v:.3f}"
        return f"{s} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else s
    return str(v)


def print_table(result: dict[str, Any], console: Optional[Console] = None) -> None:
    """Per-finding metrics (with CIs where known), the means and any skipped findings."""
    console = console or Console()
    for frac, block in result.get("fractions", {}).items():  # fine-tuning / segmentation: one table per fraction
        print_table({**block, "task": f"{result.get('task', '?')} @ {frac} of training labels",
                     "dataset": result.get("dataset"), "checkpoint_id": result.get("checkpoint_id")}, console)
    per = result.get("per_finding", {})
    if not per and "fractions" in result:
        return
    cols = [c for c in _COLUMNS if any(c in m for m in per.values())]
    title = f"{result.get('task', '?')} on {result.get('dataset', '?')} ({result.get('checkpoint_id', '?')})"
    table = Table(title=title)
    table.add_column("finding")
    for c in cols:
        table.add_column(c, justify="right")
    for name, m in per.items():
        table.add_row(name, *[_fmt(m.get(c), m.get(f"{c}_ci")) for c in cols])
    console.print(table)
    for key in sorted(result):
        if key.startswith("mean_") and not key.endswith("_ci") or key in ("accuracy", "macro_f1"):
            console.print(f"{key}: {_fmt(result[key], result.get(f'{key}_ci'))}")
    for name, reason in result.get("skipped", {}).items():
        console.print(f"[yellow]skipped {name}: {reason}[/yellow]")
