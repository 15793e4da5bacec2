"""The generic training loop. It knows a DualEncoder, an Objective and a PairSource, nothing more.

AdamW + cosine schedule with warmup, gradient accumulation, bf16 autocast (GPU), clipping, a
NaN/inf guard, progress bar, CSV metrics, validation loss + retrieval recall each epoch,
checkpoints with exact resume, and DDP through syncxr.train.distributed.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from syncxr.data.pairs import PairSource
from syncxr.errors import UserError
from syncxr.models.factory import DualEncoder, build_model
from syncxr.models.pretrained import TEXT_DIR, Preprocess
from syncxr.objectives.contrastive import Objective
from syncxr.objectives.registry import build_objective
from syncxr.train import distributed as D
from syncxr.train.augment import Augment, Collate, PairTensors
from syncxr.train.batches import EpochBatches, split_indices
from syncxr.train.checkpoint import load_training_state, rank_rng_state, rng_state, save_checkpoint, set_rng_state
from syncxr.train.config import TrainConfig
from syncxr.train.metrics import MetricsLog, retrieval_recall
from syncxr.train.progress import Progress

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """Loss or gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    out: Path
    step: int
    checkpoint: Path | None
    losses: list[float] = field(default_factory=list)  # per optimizer step, this process's run
    val: dict[str, float] = field(default_factory=dict)  # last validation metrics
    model: nn.Module | None = None  # the trained DualEncoder (unwrapped)


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warmup to 1, then cosine down to `floor` at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def freeze_unused_local(model: DualEncoder, objective: Objective) -> None:
    """Objectives without local terms leave the local projections unused: freeze them so every
    trainable parameter gets a gradient (and DDP needs no unused-parameter search)."""
    if not objective.uses_local:
        for name, p in model.named_parameters():
            if ".local_proj." in name:
                p.requires_grad_(False)


class Trainer:
    def __init__(self, cfg: TrainConfig, source: PairSource, out: Path, resume: Path | None = None,
                 dist: D.DistInfo | None = None) -> None:
        self.cfg, self.source, self.out, self.resume = cfg, source, Path(out), resume
        self.dist = dist or D.DistInfo()
        self.out.mkdir(parents=True, exist_ok=True)
        t = cfg.train
        self.train_idx, self.val_idx = split_indices(len(source), cfg.data.val_fraction, cfg.data.val_max, t.seed)
        if t.batch_size % self.dist.world:
            raise UserError(f"train.batch_size {t.batch_size} must be divisible by the {self.dist.world} ranks")
        if len(self.train_idx) < t.batch_size:
            raise UserError(
                f"only {len(self.train_idx)} training pairs for train.batch_size {t.batch_size}; "
                "lower the batch size or add data"
            )
        img = cfg.model.image
        self.preprocess = Preprocess(img.image_size, img.mean, img.std)
        self.model, self.objective = self._build()
        self.device = self.dist.device
        self.model.to(self.device)
        self.objective.to(self.device)
        params = [p for m in (self.model, self.objective) for p in m.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr, betas=o.betas,
        )
        self.batches = EpochBatches(self.train_idx, t.batch_size, self.dist.rank, self.dist.world, t.seed)
        per_epoch = self.batches.batches_per_epoch() // t.grad_accum
        if per_epoch == 0:
            raise UserError(f"train.batch_size {t.batch_size} x train.grad_accum {t.grad_accum} exceeds the "
                            f"{len(self.train_idx)} training pairs; lower them or add data")
        self.total_steps = min(per_epoch * t.epochs, t.max_steps or 10**12)
        self.warmup = o.warmup_steps if o.warmup_steps is not None else int(o.warmup_fraction * self.total_steps)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.last_ckpt: Path | None = None
        self.ckpt_step = -1
        if resume is not None:
            self._restore(resume)
        # DDP wraps the pair (model, objective) so objective parameters (MGCA prototypes) sync too.
        self.pair = D.wrap(_Pair(self.model, self.objective), self.dist, cfg.model.image.sync_bn)
        self.objective.gather_global = self.dist.distributed

    # -- setup -----------------------------------------------------------------------------
    def _build(self) -> tuple[DualEncoder, Objective]:
        cfg = self.cfg
        saved = self.resume / TEXT_DIR if self.resume is not None else None
        if saved is None and self.dist.distributed:
            # Rank 0 trains the tokenizer once; the others load it so vocabularies are identical.
            saved = self.out / ".text-init" / TEXT_DIR
            if self.dist.main:
                with torch.random.fork_rng(devices=[]):
                    build_model(cfg.model, corpus=self._corpus()).text.save(saved)
            D.barrier(self.dist)
        with torch.random.fork_rng(devices=[]):  # same init on every rank and every rerun
            torch.manual_seed(cfg.train.seed)
            # Backbone weights (model.image.pretrained / weights) on a fresh run, DDP included.
            model = build_model(cfg.model, corpus=None if saved else self._corpus(), saved_text=saved,
                                load_weights=self.resume is None)
            objective = build_objective(cfg.objective.name, cfg.model.embed_dim, **cfg.objective.params)
        freeze_unused_local(model, objective)
        return model, objective

    def _corpus(self) -> list[str]:
        return [self.source.text(i) for i in self.train_idx]

    def _restore(self, ckpt: Path) -> None:
        state = load_training_state(ckpt, self.model, self.objective, self.optimizer,
                                    config=self.cfg.model_dump(mode="json"))
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        set_rng_state(rank_rng_state(state, self.dist.rank, self.dist.world, self.cfg.train.seed))
        self.last_ckpt, self.ckpt_step = ckpt, self.step
        log.info("resumed from %s at step %d (epoch %d, batch %d)", ckpt, self.step, self.epoch, self.batch_in_epoch)

    def _loader(self, dataset: PairTensors, batch_sampler: Any) -> DataLoader:
        t = self.cfg.train
        return DataLoader(
            dataset, batch_sampler=batch_sampler, num_workers=t.num_workers,
            collate_fn=Collate(self.model.tokenize), pin_memory=self.device.type == "cuda",
            persistent_workers=False, generator=torch.Generator(),  # never draw from the global RNG
        )

    def _autocast(self) -> Any:
        amp = self.cfg.train.amp
        on_gpu = self.device.type == "cuda"
        if amp == "bf16" or (amp == "auto" and on_gpu and torch.cuda.is_bf16_supported()):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    # -- training --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        t = self.cfg.train
        main = self.dist.main
        metrics = MetricsLog(self.out / "metrics.csv", self.objective.log_keys, enabled=main)
        metrics.truncate_after(self.step)
        train_set = PairTensors(self.source, self.preprocess, Augment(self.cfg.augment, self.preprocess.image_size)
                                if self.cfg.augment.enabled else None, t.seed)
        result = TrainResult(self.out, self.step, self.last_ckpt, model=self.model)
        halt = min(t.halt_after_steps or 10**12, self.total_steps)
        with Progress(self.total_steps, self.step, enabled=main and t.progress) as bar:
            while self.epoch < t.epochs and self.step < halt:
                self.batches.set_epoch(self.epoch, self.batch_in_epoch)
                self._run_epoch(self._loader(train_set, self.batches), metrics, bar, result, halt)
                if self.batch_in_epoch < self._usable_batches():
                    break  # halted mid-epoch: a resumed run continues this epoch
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if t.eval_each_epoch and self.val_idx:
                    result.val = self._validate(metrics)
                self._checkpoint(result)
        if self.ckpt_step != self.step:
            self._checkpoint(result)
        metrics.close()
        return result

    def _usable_batches(self) -> int:
        """Micro-batches per epoch that form whole accumulation groups (a partial one is dropped)."""
        accum = self.cfg.train.grad_accum
        return (self.batches.batches_per_epoch() // accum) * accum

    def _run_epoch(self, loader: DataLoader, metrics: MetricsLog, bar: Any, result: TrainResult, halt: int) -> None:
        t, accum = self.cfg.train, self.cfg.train.grad_accum
        self.pair.train()
        tick, seen, micro, loss_sum, logs_sum = time.perf_counter(), 0, 0, 0.0, {}
        usable = self._usable_batches()
        for batch in loader:
            if self.batch_in_epoch >= usable or self.step >= halt:
                break
            micro += 1
            last = micro % accum == 0
            with D.no_sync(self.pair, skip=not last):
                with self._autocast():
                    loss, logs = self.pair(batch["images"].to(self.device, non_blocking=True),
                                           batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
                (loss / accum).backward()
            loss_sum += loss.item() / accum
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / accum
            seen += batch["images"].shape[0] * self.dist.world
            self.batch_in_epoch += 1
            if not last:
                continue
            grad_norm = self._optimizer_step(loss_sum)
            loss_avg = D.all_mean(loss_sum, self.dist)
            result.losses.append(loss_avg)
            bar.advance(loss_avg)
            if self.step % t.log_every == 0 or self.step == halt:
                rate = seen / max(time.perf_counter() - tick, 1e-9)
                metrics.write({"step": self.step, "epoch": self.epoch, "phase": "train", "loss": loss_avg,
                               "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                               "samples_per_s": rate, **logs_sum})
                tick, seen = time.perf_counter(), 0
            if t.ckpt_every and self.step % t.ckpt_every == 0:
                self._checkpoint(result)
            loss_sum, logs_sum = 0.0, {}

    def _optimizer_step(self, loss_value: float) -> float:
        t, o = self.cfg.train, self.cfg.optim
        # Gradients are complete here (DDP all-reduced them during the last backward).
        self.objective.before_optimizer_step(self.step, self.epoch)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if t.clip_grad:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, t.clip_grad))
        else:
            grad_norm = float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        if not D.all_true(math.isfinite(loss_value) and math.isfinite(grad_norm), self.dist):
            keep = f"the last good checkpoint is {self.last_ckpt}" if self.last_ckpt else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"training diverged at step {self.step + 1} (epoch {self.epoch}): loss={loss_value}, "
                f"grad_norm={grad_norm}; {keep}. Try a lower optim.lr, a longer warmup, train.clip_grad, "
                "or train.amp=off, then --resume latest."
            )
        for g in self.optimizer.param_groups:
            g["lr"] = o.lr * lr_factor(self.step, self.warmup, self.total_steps, o.min_lr_ratio)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return grad_norm

    @torch.no_grad()
    def _validate(self, metrics: MetricsLog) -> dict[str, float]:
        """Rank 0: loss and image<->text recall@1/5/10 on the held-out split."""
        out: dict[str, float] = {}
        if self.dist.main:
            out = evaluate_pairs(self.model, self.objective, self.source, self.val_idx, self.preprocess,
                                 self.cfg.train.batch_size, self.device, self._autocast)
            metrics.write({"step": self.step, "epoch": self.epoch, "phase": "val", **out})
            log.info("epoch %d val: %s", self.epoch, {k: round(v, 4) for k, v in out.items()})
        D.barrier(self.dist)
        self.pair.train()
        return out

    def _checkpoint(self, result: TrainResult) -> None:
        # Each rank's RNG (dropout masks differ per rank); gathered to rank 0, which writes the file.
        rng_per_rank = D.gather_to_main(rng_state(), self.dist)
        if self.dist.main:
            state = {"config": self.cfg.model_dump(mode="json"), "preprocess": self.preprocess.to_dict(),
                     "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                     "scheduler": {"kind": "cosine", "warmup_steps": self.warmup, "total_steps": self.total_steps},
                     "trained_heads": {"global": True, "local": bool(self.objective.uses_local)},
                     "rng": rng_per_rank[0], "rng_per_rank": rng_per_rank, "world_size": self.dist.world,
                     "val": result.val}
            self.last_ckpt = save_checkpoint(self.out, self.model, self.objective, self.optimizer, state,
                                             self.cfg.train.keep_checkpoints)
        D.barrier(self.dist)
        self.ckpt_step = self.step
        result.checkpoint, result.step = self.last_ckpt, self.step


class _Pair(nn.Module):
    """(model, objective) as one module so DDP sees every parameter in one forward."""

    def __init__(self, model: DualEncoder, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        img, txt = self.model(images, input_ids, attention_mask)
        return self.objective(img, txt)


@torch.no_grad()
def evaluate_pairs(model: DualEncoder, objective: Objective, source: PairSource, indices: list[int],
                   preprocess: Preprocess, batch_size: int, device: torch.device, autocast: Any) -> dict[str, float]:
    model.eval()
    gather, objective.gather_global = objective.gather_global, False
    data = PairTensors(source, preprocess, None, 0)
    loader = DataLoader(torch.utils.data.Subset(data, indices), batch_size=batch_size,
                        collate_fn=Collate(model.tokenize), generator=torch.Generator())
    imgs, txts, texts, losses, sizes = [], [], [], [], []
    for batch in loader:
        with autocast():
            io, to = model(batch["images"].to(device), batch["input_ids"].to(device), batch["attention_mask"].to(device))
            if len(batch["texts"]) > 1:
                losses.append(objective(io, to)[0].float().item())
                sizes.append(len(batch["texts"]))
        imgs.append(io.global_emb.float().cpu())
        txts.append(to.global_emb.float().cpu())
        texts += batch["texts"]
    objective.gather_global = gather
    out = {"val_loss": sum(l * n for l, n in zip(losses, sizes)) / max(sum(sizes), 1)}
    out.update(retrieval_recall(torch.cat(imgs), torch.cat(txts), texts))
    return out
