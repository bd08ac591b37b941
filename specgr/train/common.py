"""Small Lightning/optimisation helpers shared by trainers."""

from __future__ import annotations

import functools
import math

import torch
from torch.utils.data import DataLoader, Sampler


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16-mixed" on a CUDA GPU with bf16 support, else "32-true"; anything else passes through."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def restores_matmul_precision(fn):
    """Decorator for trainers that set torch's float32 matmul precision to 'high' (TF32 matmuls on CUDA) for speed:
    the caller's setting comes back when the trainer returns or raises, so inference later in the same process (a
    notebook, the pipeline's next stages, a test session) does not silently run its fp32 matmuls in TF32."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        before = torch.get_float32_matmul_precision()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_float32_matmul_precision(before)

    return wrapped


def resolve_warmup(warmup: float, total_steps: int) -> int:
    """warmup < 1: fraction of total steps; >= 1: a step count."""
    return int(round(warmup * total_steps)) if 0 < warmup < 1 else int(warmup)


def cosine_schedule(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """lr multiplier after `step` optimizer steps: linear warmup to 1, then cosine decay to min_ratio at total_steps
    (HF `get_scheduler("cosine")`)."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """`cosine_schedule` as a per-step LambdaLR (for Lightning-driven trainers)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_schedule(step, warmup_steps, total_steps, min_ratio))


class ShuffledBatches(Sampler):
    """Yields LongTensor index batches of a fresh permutation each epoch (seed + epoch: reproducible, resumable).

    Use with `DataLoader(dataset, sampler=ShuffledBatches(...), batch_size=None)` and a dataset indexable by a
    tensor (TensorDataset is): one gather per batch, no per-row Python.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.n, self.bs, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.bs if self.drop_last else -(-self.n // self.bs)

    def __iter__(self):
        if self.shuffle:
            idx = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        else:
            idx = torch.arange(self.n)
        for b in range(len(self)):
            yield idx[b * self.bs:(b + 1) * self.bs]


def batch_loader(dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                 drop_last: bool = False) -> DataLoader:
    """Whole-batch loader over a tensor-indexable dataset; pinned memory on CUDA hosts."""
    return DataLoader(dataset, sampler=ShuffledBatches(len(dataset), batch_size, shuffle, seed, drop_last),
                      batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                      persistent_workers=num_workers > 0)


def load_lightning_checkpoint(path) -> dict:
    """A Lightning checkpoint our trainers wrote (`<out>/checkpoints/best.ckpt`): the one place that reloads one, with
    torch.load(weights_only=True). The model weights are under "state_dict"."""
    from specgr.checkpoint import safe_torch_load

    return safe_torch_load(path, "cpu", fix="retrain the stage (its checkpoints/ folder is incomplete).")
