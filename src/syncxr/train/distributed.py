"""torchrun DDP setup: NCCL on GPU, gloo on CPU. Only rank 0 writes files.

The differentiable all-gather used by contrastive objectives lives in
syncxr.objectives.contrastive.all_gather_with_grad (re-exported here).
"""

from __future__ import annotations

import datetime
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch import nn

from syncxr.objectives.contrastive import all_gather_with_grad

__all__ = ["DistInfo", "setup", "cleanup", "all_gather_with_grad", "wrap", "no_sync", "all_mean", "barrier",
           "gather_to_main"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30)
        )
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo, sync_bn: bool) -> nn.Module:
    """DDP-wrap on multi-process runs (SyncBatchNorm on GPU when asked); identity otherwise."""
    if not info.distributed:
        return module
    if sync_bn and info.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def no_sync(module: nn.Module, skip: bool) -> ContextManager:
    """Skip the gradient all-reduce on accumulation micro-steps."""
    if skip and isinstance(module, nn.parallel.DistributedDataParallel):
        return module.no_sync()
    return nullcontext()


def all_mean(value: float, info: DistInfo) -> float:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world


def all_true(flag: bool, info: DistInfo) -> bool:
    """True only when `flag` holds on every rank (so all ranks stop together)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's `obj` (a small JSON-like value) as a list indexed by rank on rank 0, None on the
    others; [obj] when not distributed. A collective: every rank must call it."""
    if not info.distributed:
        return [obj]
    out: list[Any] | None = [None] * info.world if info.main else None
    dist.gather_object(obj, out, dst=0)
    return out
