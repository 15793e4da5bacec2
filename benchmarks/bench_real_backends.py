"""Tiny real backends, batched vs one at a time: samples/s.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_real_backends.py [--images 16 --size 64 --steps 4]
        [--reports 64 --latency 0.05] [--texts 128]

Builds tiny random models of the real classes offline (tests/backends/tiny.py: a Stable Diffusion
pipeline, a DeBERTa token classifier, a DINOv2), starts the stub OpenAI-compatible server
(tests/backends/chat_stub.py) with a fixed per-request latency standing in for an LLM's decode
time, and times each backend on the same requests both ways. The models are tiny, so the
batched column measures how much per-call overhead batching removes on this machine, not GPU
throughput (benchmarks/gpu_check.sh measures that on a real-size model).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backends"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPORTS = [
    "Small right pleural effusion. No pneumothorax.",
    "Possible left hilar fullness. Heart size is normal.",
    "Opacity in the right lower lobe measuring 1.5 cm.",
    "Mild cardiomegaly with bilateral effusions and atelectasis at the lung bases.",
]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_diffusion(tmp: Path, n: int, size: int, steps: int) -> list[tuple[str, str, int, float]]:
    from tiny import build_sd

    from syncxr.image.base import ImageRequest
    from syncxr.image.diffusion import DiffusionGenerator

    gen = DiffusionGenerator(str(build_sd(tmp / "sd")), steps=steps, height=size, width=size)
    requests = [ImageRequest(REPORTS[i % len(REPORTS)], seed=i) for i in range(n)]
    gen.generate_batch(requests[:1])  # warm-up
    rows = []
    for batch in (1, 8):
        gen.batch_size = batch
        rows.append(("diffusion (tiny SD)", f"batch {batch}", n, timed(lambda: gen.generate_batch(requests))))
    return rows


def bench_llm(n: int, latency: float) -> list[tuple[str, str, int, float]]:
    from chat_stub import ChatStub

    from syncxr.records import Entity
    from syncxr.text.base import WRITERS, WriteRequest

    stub = ChatStub(default="FINDINGS: Small right effusion.\nIMPRESSION: Effusion.")
    stub.delay_s = latency
    requests = [WriteRequest([Entity("pleural_effusion", "DISEASE")], seed=i) for i in range(n)]
    rows = []
    try:
        for concurrency in (1, 8):
            writer = WRITERS.build(
                "llm", transport="openai", base_url=stub.base_url, model="m", api_key_env=None, concurrency=concurrency
            )
            label = f"concurrency {concurrency}"
            rows.append((f"llm writer (stub, {latency * 1000:.0f} ms/request)", label, n, timed(lambda: writer.write_batch(requests))))
    finally:
        stub.close()
    return rows


def bench_rate_ner(tmp: Path, n: int) -> list[tuple[str, str, int, float]]:
    from tiny import build_token_classifier, deberta_tokenizer

    from syncxr.text.rate_ner import RATE_NER_LABELS, RateNerExtractor

    path = tmp / "ner"
    build_token_classifier(path, deberta_tokenizer(REPORTS), list(RATE_NER_LABELS))
    texts = [REPORTS[i % len(REPORTS)] for i in range(n)]
    ext = RateNerExtractor(str(path), batch_size=32)
    ext.extract_batch(texts[:2])  # warm-up
    one = timed(lambda: [ext.extract(t) for t in texts])
    batched = timed(lambda: ext.extract_batch(texts))
    return [("rate-ner (tiny DeBERTa)", "one text at a time", n, one), ("rate-ner (tiny DeBERTa)", "extract_batch (32 sentences)", n, batched)]


def bench_rad_dino(tmp: Path, n: int) -> list[tuple[str, str, int, float]]:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from syncxr.qc.rad_dino import RadDinoFeatures

    torch.manual_seed(0)
    path = tmp / "dino"
    cfg = Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=112, patch_size=14)
    Dinov2Model(cfg).save_pretrained(path)
    BitImageProcessor(
        size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112}, do_center_crop=True,
        image_mean=[0.5] * 3, image_std=[0.25] * 3,
    ).save_pretrained(path)
    feats = RadDinoFeatures(str(path))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(128, 128), dtype=np.uint8) for _ in range(n)]
    rows = []
    for batch in (1, 16):
        feats.batch_size = batch
        rows.append(("rad-dino (tiny DINOv2)", f"batch {batch}", n, timed(lambda: feats.features(images))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reports", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.05, help="stub server seconds per request")
    ap.add_argument("--texts", type=int, default=128)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    rows: list[tuple[str, str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_diffusion(Path(tmp), args.images, args.size, args.steps)
        rows += bench_llm(args.reports, args.latency)
        rows += bench_rate_ner(Path(tmp), args.texts)
        rows += bench_rad_dino(Path(tmp), args.texts)
    table = Table(title="tiny real backends: batched vs one at a time (CPU)")
    for col in ("backend", "mode", "n", "seconds", "samples/s", "speed-up"):
        table.add_column(col, justify="left" if col in ("backend", "mode") else "right")
    base: dict[str, float] = {}
    for backend, mode, n, secs in rows:
        rate = n / secs
        base.setdefault(backend, rate)
        table.add_row(backend, mode, str(n), f"{secs:.2f}", f"{rate:.1f}", f"{rate / base[backend]:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
