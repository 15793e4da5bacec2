"""The simulated benchmark (`sim`): a generic labels CSV with masks and boxes.

Written by `syncxr.sim.benchmark.write_sim_benchmark(..., fmt="csv")`: `labels.csv`,
`images/<id>.png`, `masks/<finding>/<id>.png` (positives only), `boxes.csv`, `sim.json`.
The other formats that writer produces ("chexpert", "rsna", "siim") are read by those loaders.
"""

from __future__ import annotations

import json
from pathlib import Path

from syncxr.data.sources.base import EvalDataset
from syncxr.data.sources.labels_csv import load_labels_csv
from syncxr.errors import UserError

MANIFEST = "sim.json"


def load_sim(data_dir: str | Path, strict_images: bool = True) -> EvalDataset:
    """A simulated benchmark folder written in the "csv" format."""
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST
    if not manifest.is_file():
        raise UserError(
            f"{data_dir} is not a simulated benchmark (no {MANIFEST}); write one with "
            "syncxr.sim.benchmark.write_sim_benchmark(out_dir, n, size, seed, fmt='csv')"
        )
    info = json.loads(manifest.read_text())
    if info.get("fmt") != "csv":
        raise UserError(
            f"{manifest}: benchmark written in format {info.get('fmt')!r}; the sim loader reads 'csv'. "
            f"Load it with load_dataset({info.get('loader')!r}, ...)"
        )
    return load_labels_csv(data_dir, mask_dir="masks", name="sim", strict_images=strict_images)
