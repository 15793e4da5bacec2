"""Writes small syncxr shard folders whose images and texts correlate (for training tests).

Each image is noise plus a bright blob in one of 4 zones (left/right x upper/lower) with one of
2 sizes; the report names the zone and size, so retrieval is learnable (8 distinct reports).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from syncxr.data.schema import SHARD_SCHEMA

SIDES, LEVELS, SIZES = ("left", "right"), ("upper", "lower"), ("small", "large")


def make_pair(rng: np.random.Generator, size: int) -> tuple[bytes, str, str]:
    side, level, big = rng.integers(2), rng.integers(2), rng.integers(2)
    yy, xx = np.mgrid[:size, :size] / size
    cx = 0.3 if side == 0 else 0.7
    cy = 0.3 if level == 0 else 0.7
    r = 0.16 if big else 0.08
    img = 60 + 20 * rng.standard_normal((size, size))
    img += 160 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    findings = f"There is a {SIZES[big]} bright opacity in the {SIDES[side]} {LEVELS[level]} zone."
    impression = f"{SIZES[big].capitalize()} {SIDES[side]} {LEVELS[level]} opacity."
    return buf.getvalue(), findings, impression


def write_shards(root: Path, n: int, seed: int = 0, size: int = 64, shard_size: int = 100) -> Path:
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    for s, start in enumerate(range(0, n, shard_size)):
        rows = {name: [] for name in SHARD_SCHEMA.names}
        for i in range(start, min(n, start + shard_size)):
            png, f, imp = make_pair(rng, size)
            for name in SHARD_SCHEMA.names:
                rows[name].append(None)
            rows["sample_id"][-1], rows["index"][-1], rows["seed"][-1] = f"s{i:05d}", i, i
            rows["image_png"][-1], rows["width"][-1], rows["height"][-1] = png, size, size
            rows["findings"][-1], rows["impression"][-1] = f, imp
            rows["report"][-1] = f"FINDINGS: {f}\n\nIMPRESSION: {imp}"
            rows["masks"][-1] = []
        pq.write_table(pa.table(rows, schema=SHARD_SCHEMA), root / "shards" / f"shard-{s:05d}.parquet")
    return root
