"""Generation throughput: end to end and per stage, peak RSS, against the PNG-encoding floor.

    .venv/bin/python benchmarks/bench_generate.py --n 4000 --size 256 --workers 2

Prints a table. "PNG floor" is the rate of only encoding already-rendered images of the same
size to PNG (the cost any generator pays to store its output).
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from syncxr.config import load_config
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import run_generate

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def png_floor(images: list[np.ndarray], level: int) -> tuple[float, float]:
    """Images/s of PNG-encoding alone: syncxr's encoder (the one the pipeline uses), and Pillow's."""
    from syncxr.image.png import encode_gray_png

    t = time.perf_counter()
    for img in images:
        encode_gray_png(img, level)
    ours = len(images) / (time.perf_counter() - t)
    t = time.perf_counter()
    for img in images:
        Image.fromarray(img).save(io.BytesIO(), format="PNG", compress_level=level)
    return ours, len(images) / (time.perf_counter() - t)


def extractor_rates(n: int = 2000) -> tuple[float, float, float]:
    """CPU-time reports/s of the built-in extractor (memo bypassed): on 5-sentence FINDINGS, and on
    whole simulated dictated reports (FINDINGS + IMPRESSION); plus their mean sentence count."""
    from syncxr.sim.corpus import iter_reports
    from syncxr.text.lexicon_extractor import LexiconExtractor, split_sentences

    reports = [(f, i) for _, f, i in iter_reports(n, seed=3)]
    ex = LexiconExtractor()
    five = [f for f, _ in reports if len(split_sentences(f)) == 5]
    t = time.process_time()
    for f in five:
        ex._extract(f, "findings")
    five_rate = len(five) / (time.process_time() - t)
    t = time.process_time()
    for f, i in reports:
        ex._extract(f, "findings")
        ex._extract(i, "impression")
    full_rate = n / (time.process_time() - t)
    sentences = float(np.mean([len(split_sentences(f)) + len(split_sentences(i)) for f, i in reports]))
    return five_rate, full_rate, sentences


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cfg = load_config(
        GenerateConfig,
        ROOT / "configs/generate/quick.yaml",
        [f"n={args.n}", f"image.size={args.size}", "shard_size=500"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        t = time.perf_counter()
        manifest = run_generate(cfg, out, workers=args.workers)
        wall = time.perf_counter() - t
        import pandas as pd

        pngs = pd.read_parquet(out / "shards/shard-00000.parquet", columns=["image_png"])["image_png"][:300]
        images = [np.array(Image.open(io.BytesIO(b))) for b in pngs]
    tp = manifest["throughput_last_run"]
    table = Table(title=f"syncxr generate: n={args.n}, {args.size}x{args.size}, {args.workers} workers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("end to end (incl. start, plan, bank), pairs/s", f"{args.n / wall:.1f}")
    table.add_row("generation phase, pairs/s", f"{tp['pairs_per_second']}")
    table.add_row("plan (sampling) seconds", f"{tp['plan_seconds']}")
    for stage, rate in tp["stage_samples_per_second"].items():
        table.add_row(f"stage {stage}, samples/s per worker", f"{rate}")
    level = cfg.image.png_compress_level
    ours, pillow = png_floor(images, level)
    table.add_row(f"PNG floor: encode only (level {level}), images/s on 1 core", f"{ours:.0f}")
    table.add_row("  (Pillow's PNG encoder, same images), images/s", f"{pillow:.0f}")
    five, full, sentences = extractor_rates()
    table.add_row("extractor, 5-sentence reports/s, 1 core (CPU time)", f"{five:.0f}")
    table.add_row(f"extractor, whole dictated reports/s ({sentences:.1f} sentences)", f"{full:.0f}")
    table.add_row("accepted / rejected", f"{manifest['counts']['accepted']} / {manifest['counts']['rejected']}")
    table.add_row("peak RSS (max of parent, largest worker), MB", f"{peak_rss_mb():.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
