"""Tiny audit inputs: a quick-preset synthetic dataset, a simulated MIMIC-shaped corpus, and a copy
of the dataset with one real study planted in it (its report and image, exactly)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PLANT_AT = 7  # row of the first shard that becomes the copy


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    from syncxr.config import load_config
    from syncxr.pipeline.config import GenerateConfig
    from syncxr.pipeline.runner import run_generate

    out = tmp_path_factory.mktemp("audit") / "ds"
    cfg = load_config(GenerateConfig, ROOT / "configs/generate/quick.yaml",
                      ["n=30", "image.size=128", "shard_size=16", "entities.sim_reports=300"])
    run_generate(cfg, out, workers=1)
    return out


@pytest.fixture(scope="session")
def sim_corpus(tmp_path_factory) -> Path:
    from syncxr.sim.corpus import write_mimic

    return write_mimic(tmp_path_factory.mktemp("audit") / "sim", 40, seed=3, size=128)


def real_study(corpus: Path, k: int) -> tuple[str, str, str, np.ndarray]:
    """(image id under the root, findings, impression, pixels) of the k-th study of the corpus."""
    from syncxr.data.sources.mimic import parse_report
    from syncxr.imread import read_gray

    img = sorted(corpus.glob("files/p*/p*/s*/*.jpg"))[k]
    secs = parse_report(img.parent.with_suffix(".txt").read_text())
    return str(img.relative_to(corpus)), secs["findings"], secs["impression"], read_gray(img)


@pytest.fixture(scope="session")
def planted(synthetic, sim_corpus, tmp_path_factory) -> tuple[Path, str, str]:
    """(dataset, planted sample id, real id it copies): the synthetic dataset with row PLANT_AT of
    its first shard replaced by real study 5, text and pixels, and the manifest's hash updated."""
    from syncxr.data.schema import SHARD_SCHEMA
    from syncxr.data.shards import sha256_file

    out = tmp_path_factory.mktemp("audit") / "planted"
    shutil.copytree(synthetic, out)
    real_id, findings, impression, pixels = real_study(sim_corpus, 5)
    shard = out / "shards" / "shard-00000.parquet"
    rows = pq.read_table(shard).to_pydict()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    rows["findings"][PLANT_AT], rows["impression"][PLANT_AT] = findings, impression
    rows["image_png"][PLANT_AT] = buf.getvalue()
    import pyarrow as pa

    pq.write_table(pa.Table.from_pydict(rows, schema=SHARD_SCHEMA), shard)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = sha256_file(shard)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, rows["sample_id"][PLANT_AT], real_id
