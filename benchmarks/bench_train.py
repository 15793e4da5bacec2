"""Training throughput on this machine (CPU unless a GPU is present).

1. Overhead of the real loop (shards -> PNG decode -> augment -> tokenize -> step, checkpoints
   off) vs a bare PyTorch loop over in-memory tensors, same model/objective/batch (target <= 1.10).
2. images/s of resnet18@128 + bert-small-builtin and resnet50@224 + bert-base-builtin (few steps),
   with the process peak RSS after each (monotonic: read as "at most").
Run: .venv/bin/python benchmarks/bench_train.py [--steps 6]
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from syncxr.data.schema import SHARD_SCHEMA
from syncxr.data.sources import open_data
from syncxr.models.factory import build_model
from syncxr.objectives import build_objective
from syncxr.train.config import load_config
from syncxr.train.loop import Trainer, freeze_unused_local
from syncxr.train.metrics import read_metrics

TEXTS = ["small left pleural effusion", "no acute cardiopulmonary process", "right upper lobe opacity",
         "mild cardiomegaly without edema", "left basilar atelectasis"]


def write_dataset(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "shards").mkdir(parents=True)
    cols = {k: [None] * n for k in SHARD_SCHEMA.names}
    pngs = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    cols.update(sample_id=[f"s{i}" for i in range(n)], image_png=pngs, masks=[[] for _ in range(n)],
                findings=[TEXTS[i % 5] for i in range(n)], impression=["" for _ in range(n)])
    pq.write_table(pa.table(cols, schema=SHARD_SCHEMA), root / "shards" / "shard-00000.parquet")
    return root


def real_loop_step_s(data: Path, out: Path, overrides: list[str], warm: int, steps: int) -> float:
    cfg = load_config(None, [*overrides, "train.progress=false", "train.log_every=1", "train.eval_each_epoch=false",
                             f"train.halt_after_steps={warm + steps}", "train.epochs=1", "data.val_fraction=0"])
    trainer = Trainer(cfg, open_data(str(data)), out)
    trainer.fit()
    rows = [r for r in read_metrics(out / "metrics.csv") if r["phase"] == "train"][warm:]
    return float(np.mean([cfg.train.batch_size / float(r["samples_per_s"]) for r in rows]))


def bare_loop(overrides: list[str], warm: int, steps: int) -> float:
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, corpus=TEXTS * 20)
    obj = build_objective(cfg.objective.name, cfg.model.embed_dim)
    freeze_unused_local(model, obj)
    opt = torch.optim.AdamW([p for m in (model, obj) for p in m.parameters() if p.requires_grad], lr=1e-4)
    b, s = cfg.train.batch_size, cfg.model.image.image_size
    images = torch.randn(b, 1, s, s)
    tok = model.tokenize([TEXTS[i % 5] for i in range(b)])
    times = []
    for i in range(warm + steps):
        t0 = time.perf_counter()
        loss, _ = obj(*model(images, tok["input_ids"], tok["attention_mask"]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    small = ["model.image.arch=resnet18", "model.image.image_size=128", "model.text.name=bert-small-builtin",
             "model.text.max_length=32", "train.batch_size=16", "train.amp=off"]
    big = ["model.image.arch=resnet50", "model.image.image_size=224", "model.text.name=bert-base-builtin",
           "model.text.max_length=64", "model.embed_dim=512", "train.batch_size=8", "train.amp=off"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "ds", 200, 256)
        real = real_loop_step_s(data, Path(tmp) / "run", small, 2, args.steps)
        bare = bare_loop(small, 2, args.steps)
        rows.append(("resnet18@128 + bert-small, real loop (shards)", 16, real, 16 / real, peak_mb()))
        rows.append(("resnet18@128 + bert-small, bare loop (tensors)", 16, bare, 16 / bare, peak_mb()))
        big_s = bare_loop(big, 1, max(2, args.steps // 3))
        rows.append(("resnet50@224 + bert-base, bare loop", 8, big_s, 8 / big_s, peak_mb()))
    print(f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}, torch threads {torch.get_num_threads()}")
    print(f"{'config':<50} {'batch':>5} {'s/step':>8} {'img/s':>8} {'peak RSS MB':>12}")
    for name, b, s, ips, mb in rows:
        print(f"{name:<50} {b:>5} {s:>8.3f} {ips:>8.1f} {mb:>12.0f}")
    print(f"real/bare step-time ratio: {real / bare:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
