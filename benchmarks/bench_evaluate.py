"""Zero-shot evaluation throughput (images/s), batched, with data loading from PNG files.

    .venv/bin/python benchmarks/bench_evaluate.py --n 256 --batch-size 64 --num-workers 2
    .venv/bin/python benchmarks/bench_evaluate.py --checkpoint runs/quick     # a trained checkpoint

Without --checkpoint the encoders are built by the model factory (random weights: throughput
does not depend on them) for resnet18 @ 128 px and resnet50 @ 224 px. The images are a simulated
benchmark written to a temp folder (256 x 256 PNGs), read through the `sim` loader, so the rate
includes PNG decoding, the checkpoint's resize/center-crop, encoding, prompt encoding and metrics
(n_boot=0). "encode only" times the image encoder alone on the same batches already in memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from syncxr.data.sources.registry import load_dataset
from syncxr.evaluate.embed import pick_device
from syncxr.evaluate.zeroshot import ZeroShotOptions, run_zeroshot
from syncxr.models.pretrained import Pretrained, Preprocess, load_pretrained

PRESETS = (("resnet18", 128), ("resnet50", 224))


def factory_model(arch: str, size: int) -> Pretrained:
    from syncxr.models.factory import ModelConfig, build_model

    cfg = ModelConfig.model_validate({"embed_dim": 128, "image": {"arch": arch, "image_size": size},
                                      "text": {"name": "bert-tiny-builtin", "max_length": 32, "vocab_size": 300}})
    corpus = ["no pleural effusion", "mild cardiomegaly", "small right pneumothorax", "bibasilar atelectasis"] * 50
    model = build_model(cfg, corpus=corpus).eval()
    return Pretrained(model, Preprocess(size, 0.5, 0.25), f"factory-{arch}", {"model": cfg.model_dump()}, True)


def encode_only(pre: Pretrained, ds, n: int, batch: int, device: torch.device) -> float:
    """images/s of model.encode_image alone on preprocessed batches already on the device."""
    x = torch.stack([pre.preprocess(ds.image(i % len(ds))) for i in range(min(n, batch))]).to(device)
    model = pre.model.to(device).eval()
    with torch.inference_mode():
        model.encode_image(x)  # warm-up (cudnn autotune, lazy init)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        reps = max(1, n // len(x))
        for _ in range(reps):
            model.encode_image(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return reps * len(x) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="images in the simulated benchmark")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--checkpoint", default=None, help="a saved syncxr checkpoint instead of the factory presets")
    ap.add_argument("--data", default=None, help="an existing sim benchmark folder (default: write one to a temp dir)")
    args = ap.parse_args()
    device = pick_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "sim"
        if not args.data:
            from syncxr.sim.benchmark import write_sim_benchmark

            write_sim_benchmark(data, n=args.n, size=256, seed=0, fmt="csv")
        ds = load_dataset("sim", data)
        models = [("checkpoint", load_pretrained(args.checkpoint))] if args.checkpoint else \
            [(f"{a}@{s}", factory_model(a, s)) for a, s in PRESETS]
        table = Table(title=f"zero-shot throughput on {len(ds)} images ({device}, batch {args.batch_size}, "
                            f"{args.num_workers} workers)")
        for col in ("model", "image size", "seconds", "images/s (task)", "images/s (encode only)"):
            table.add_column(col, justify="right")
        for name, pre in models:
            opts = ZeroShotOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=str(device), n_boot=0)
            t = time.perf_counter()
            run_zeroshot(pre, ds, opts)
            dt = time.perf_counter() - t
            enc = encode_only(pre, ds, len(ds), args.batch_size, device)
            table.add_row(name, str(pre.preprocess.image_size), f"{dt:.2f}", f"{len(ds) / dt:.1f}", f"{enc:.1f}")
        Console().print(table)


if __name__ == "__main__":
    main()
