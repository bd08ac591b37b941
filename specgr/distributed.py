"""Small torch.distributed helpers: gathers for in-batch negatives, exact sharding and metric reduction, lr scaling.

Everything is an identity / no-op when torch.distributed is not initialised (single process, CPU tests, notebooks), so
the same code paths run everywhere. See docs/DISTRIBUTED.md for how these fit together under Lightning DDP.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

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


# ---------------------------------------------------------------- sharded inference under one torchrun launch
def launch_size() -> int:
    """How many processes torchrun launched (WORLD_SIZE), 1 without a launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def refuse_launch(what: str) -> None:
    """Stop `what` (a command or function that runs in one process) when torchrun launched several, with the fix."""
    world = launch_size()
    if world > 1:
        raise ValueError(f"`{what}` runs in one process, but torchrun launched {world} (WORLD_SIZE={world}): each "
                         "would repeat its work and write the same files. Fix: run it without torchrun; under "
                         "torchrun use `specgr train tiger|specgr++ --devices N`, `specgr evaluate` or `specgr "
                         "recommend` (docs/DISTRIBUTED.md).")


def init_from_env(device="auto") -> torch.device:
    """The device of this process, with the process group started when torchrun launched several (WORLD_SIZE > 1).

    One process: `resolve_device(device)`, nothing else. Under torchrun: rank r takes cuda:LOCAL_RANK (device auto
    or cuda, with CUDA) over NCCL, else the CPU over gloo. A group that is already up (Lightning, a test) is kept.
    """
    from specgr.utils import resolve_device

    dev = resolve_device(device)
    world = launch_size()
    if world <= 1:
        return dev
    if not dist.is_available():
        raise ValueError(f"WORLD_SIZE={world} (a torchrun launch), but this torch build has no torch.distributed. "
                         "Fix: run one process (no torchrun), or install a torch build with distributed support.")
    if dev.type == "cuda":
        if dev.index is not None:
            raise ValueError(f"--device {device} under torchrun: every rank would share one card. Fix: pass --device "
                             "cuda or auto (rank r takes cuda:LOCAL_RANK; CUDA_VISIBLE_DEVICES picks the cards).")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local}, but only {torch.cuda.device_count()} GPU(s) are visible. Fix: "
                             f"torchrun --nproc_per_node {torch.cuda.device_count()} or fewer.")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)  # NCCL's object collectives use the current device
    if not is_dist():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} unset. Fix: launch with torchrun (it sets "
                             "them), or unset WORLD_SIZE for one process.")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


@contextmanager
def launched(device="auto"):
    """`init_from_env` as a with-block (the CLI doors): yields the device; destroys the group it started on exit."""
    started = not is_dist()
    dev = init_from_env(device)
    try:
        yield dev
    finally:
        if started and is_dist():
            dist.destroy_process_group()


def shard_batches(batches: list) -> list:
    """This rank's share of the batches one process would run (`batching.length_batches`), split over ranks by
    `shard_indices` (contiguous, disjoint, no padding); [] when a rank has none (more ranks than batches).

    Whole batches, not rows, are sharded so that every row meets the same batch-mates as on one process: a recommender
    whose output depends on the batch (kernels picked by batch shape, lists padded to the batch's widest) still gives
    the one-process lists. On one process: every batch.
    """
    return [batches[int(b)] for b in shard_indices(len(batches))]


def _collective_device() -> torch.device:
    """NCCL moves CUDA tensors only, gloo CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_rows(x: np.ndarray, fill=0) -> np.ndarray:
    """Every rank's rows, concatenated in rank order on every rank: (R_r, ...) -> (sum_r R_r, ...).

    With shards from `shard_indices` that is the original row order, each row exactly once: the shapes are gathered
    first, every rank pads to the largest shape (trailing dims too, with `fill`) for the all_gather, and each rank's
    part is cut back to its own row count. Trailing dims of the result are the largest over ranks (the extra slots
    hold `fill`). Every rank must pass the same dtype and ndim; an empty (0, ...) shard still takes part. Identity
    when not distributed.
    """
    x = np.ascontiguousarray(x)
    if not is_dist() or get_world_size() == 1:
        return x
    dev = _collective_device()
    shapes = all_gather_nograd(torch.tensor([x.shape], dtype=torch.long, device=dev)).cpu()  # (world, ndim)
    full = shapes.max(0).values.tolist()
    padded = np.full(full, fill, dtype=x.dtype)
    padded[tuple(slice(0, s) for s in x.shape)] = x
    parts = all_gather_nograd(torch.from_numpy(padded).to(dev)).cpu().numpy()  # (world * max_rows, ...)
    return np.concatenate([parts[r * full[0]: r * full[0] + int(shapes[r, 0])] for r in range(len(shapes))])


def gather_row_dict(d: dict[str, np.ndarray], fill=0) -> dict[str, np.ndarray]:
    """`gather_rows` for each array of {name: (R_r, ...)}. The names (with dtype and trailing shape) are agreed on
    first, since a rank with an empty shard never saw them; it takes part with (0, ...) arrays. Identity when not
    distributed."""
    if not is_dist() or get_world_size() == 1:
        return d
    specs = [None] * get_world_size()
    dist.all_gather_object(specs, {k: (np.asarray(v).dtype.str, np.shape(v)[1:]) for k, v in d.items()})
    merged = {k: s for spec in specs for k, s in spec.items()}  # the same names, in the same order, on every rank
    return {k: gather_rows(d[k] if k in d else np.zeros((0, *shape), dtype), fill)
            for k, (dtype, shape) in merged.items()}


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
