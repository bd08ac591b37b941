"""Small torch.distributed helpers: gathers for in-batch negatives, exact sharding and metric reduction, lr scaling.

Everything is an identity / no-op when torch.distributed is not initialised (single process, CPU tests, notebooks), so
the same code paths run everywhere. See docs/DISTRIBUTED.md for how these fit together under Lightning DDP.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

LR_RULES = ("none", "linear", "sqrt")


# ---------------------------------------------------------------- process group facts
def is_dist() -> bool:
    """True when a torch.distributed process group is up (and has more than nothing to talk to)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


# ---------------------------------------------------------------- gathers
def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather `x` (B, ...) from every rank into (world*B, ...), rank order; only the local shard carries gradient.

    Every rank must pass the same B (pad + mask yourself otherwise). The other ranks' shards are constants here: their
    own rank computes the gradient for them (see `contrastive_loss`, which evaluates the loss on the whole gathered batch
    on every rank for exactly that reason). Identity when not distributed.
    """
    if not is_dist() or get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[get_rank()] = x  # put the autograd-connected local tensor back in its slot
    return torch.cat(parts, dim=0)


def all_gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """All-gather without gradient (ids, masks). (world*B, ...). Identity when not distributed."""
    if not is_dist() or get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass, multiplies the gradient by `scale` in the backward pass."""
    if scale == 1.0:
        return x
    return _ScaleGrad.apply(x, float(scale))


def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (returns a new tensor, the input is untouched). Identity when not distributed."""
    out = tensor.detach().clone()
    if is_dist() and get_world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


# ---------------------------------------------------------------- exact evaluation sharding + metric reduction
def shard_indices(n: int, rank: int | None = None, world: int | None = None) -> np.ndarray:
    """Contiguous, disjoint, exhaustive split of range(n) over ranks with NO padding (unlike DistributedSampler,
    which repeats rows to even the shards out and so biases metrics). Shard sizes differ by at most one."""
    rank = get_rank() if rank is None else rank
    world = get_world_size() if world is None else world
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world of size {world}")
    lo = (n * rank) // world
    hi = (n * (rank + 1)) // world
    return np.arange(lo, hi, dtype=np.int64)


def summarize_distributed(per_row: dict[str, np.ndarray], unseen: np.ndarray, device=None) -> dict:
    """`specgr.metrics.summarize` over the union of every rank's rows: sums of per-row metrics and row counts per
    group (overall / in_sample / unseen) are all-reduced, then divided. Exact (no padding duplicates) provided the
    rows were split with `shard_indices`. Same output structure as `summarize`; identical to it on one process.

    per_row: {name: (R_local,) float}; unseen: (R_local,) bool. Every rank must pass the same metric names.
    """
    unseen = np.asarray(unseen, dtype=bool)
    names = sorted(per_row)
    groups = {"overall": np.ones_like(unseen), "in_sample": ~unseen, "unseen": unseen}
    # one (n_groups, n_names + 1) float64 table: metric sums, then the row count -> a single all_reduce
    table = np.zeros((len(groups), len(names) + 1), dtype=np.float64)
    for gi, m in enumerate(groups.values()):
        for ni, k in enumerate(names):
            table[gi, ni] = float(np.asarray(per_row[k], dtype=np.float64)[m].sum())
        table[gi, -1] = float(m.sum())
    t = torch.from_numpy(table)
    if device is not None:  # NCCL needs CUDA tensors; gloo is happy on CPU
        t = t.to(device)
    table = reduce_sum(t).cpu().numpy()
    out = {}
    for gi, g in enumerate(groups):
        cnt = table[gi, -1]
        out[g] = {k: (float(table[gi, ni] / cnt) if cnt > 0 else float("nan")) for ni, k in enumerate(names)}
    out["n_rows"] = int(table[0, -1])
    out["n_in_sample"] = int(table[1, -1])
    out["n_unseen"] = int(table[2, -1])
    return out


# ---------------------------------------------------------------- learning-rate scaling (explicit, never silent)
def _factor(world_size: int, rule: str) -> float:
    if rule not in LR_RULES:
        raise ValueError(f"unknown lr scaling rule {rule!r}; choose one of {LR_RULES}")
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    return {"none": 1.0, "linear": float(world_size), "sqrt": math.sqrt(world_size)}[rule]


def scaled_lr(base_lr: float, world_size: int, rule: str = "none") -> float:
    """The lr actually used with `world_size` data-parallel processes.

    rule="none" (default): the configured lr is the lr used, whatever the GPU count.
    rule="linear": lr * world_size, what the official SpecGR code does silently (Goyal et al. linear scaling).
    rule="sqrt": lr * sqrt(world_size) (a common choice for Adam-type optimisers).
    """
    return base_lr * _factor(world_size, rule)


def scaled_warmup(base_warmup_steps: int, world_size: int, rule: str = "none") -> int:
    """Warmup steps that go with `scaled_lr(rule)`: unchanged for "none"; divided by world_size ("linear", the
    official code) or by sqrt(world_size) ("sqrt"), so warmup covers about as many samples as on one GPU."""
    if base_warmup_steps <= 0:
        return 0
    return max(1, math.ceil(base_warmup_steps / _factor(world_size, rule)))
