"""One TIGER optimisation step (forward, backward, clip, AdamW), eager or replayed from a CUDA graph.

Why graphs: TIGER is small (2-7M parameters), so a step is a thousand or so tiny kernels whose launch cost, not their
arithmetic, sets the step time (profile in docs/RESULTS.md). On one CUDA device the whole step of each length bucket
is captured once as a CUDA graph (after a few eager warm-up steps on a side stream, as torch.cuda.graph requires) and
then replayed: one launch per step, no Python in between, no host sync. This needs static shapes (one per bucket,
specgr.train.buckets), a capturable optimizer whose lr is a device tensor, and autocast without its weight-cast cache.
Dropout stays random: PyTorch advances the graph's Philox offset at every replay.

The eager path (CPU, data-parallel ranks, cuda_graphs=False) runs the same `_body`, so both compute the same maths.

    step = TrainStep(model, opt, data, batch_size=256, graphs=True, autocast=True)
    step.run(bucket, row_ids)          # row ids (B,) on the data's device, -1 = filler row (labels ignored)
    step.pop_stats()                   # mean loss per label position since the last call
"""

from __future__ import annotations

import contextlib

import torch

from specgr.sid.semantic_ids import PAD
from specgr.train.buckets import N_LABELS, BucketedRows

WARMUP_STEPS = 3  # eager steps per bucket before capture (cuBLAS/allocator/autograd set-up must not be captured)


def adamw(params, lr: float, weight_decay: float, capturable: bool) -> torch.optim.AdamW:
    """AdamW whose lr is a device tensor when `capturable` (a graph reads the lr at replay time; set it with
    `set_lr`). Fused kernels on CUDA."""
    params = list(params)
    cuda = params[0].is_cuda
    lr_arg = torch.tensor(lr, device=params[0].device) if capturable else lr
    return torch.optim.AdamW(params, lr=lr_arg, weight_decay=weight_decay, fused=cuda, capturable=capturable)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)  # in place: captured graphs read this tensor
        else:
            g["lr"] = lr


class TrainStep:
    """Runs optimisation steps of `model` (a TIGER, or a data-parallel wrapper whose forward is TIGER.forward).

    data: BucketedRows on the model's device; batch_size: rows per step on this process; graphs: capture CUDA graphs
    (one CUDA device only); autocast: bf16 autocast on CUDA; backward: fn(loss) (Fabric's under DDP) or None;
    compile: run the forward (and so the backward) through torch.compile.
    norm: how the summed token loss is normalised, "local" (this batch's non-ignored tokens: the ordinary mean) or a
    number per step passed to `run` (the global batch's token count / world size, so that DDP's gradient average is
    exactly the mean over the global batch).
    """

    def __init__(self, model, optimizer, data: BucketedRows, batch_size: int, grad_clip: float = 0.0,
                 label_smoothing: float = 0.0, graphs: bool = False, autocast: bool = False, backward=None,
                 compile: bool = False):
        self.model, self.opt, self.data, self.B = model, optimizer, data, int(batch_size)
        # torch.compile fuses the many small elementwise kernels (casts, norms, dropout, residuals); dynamic shapes so
        # that one compilation serves every length bucket
        self.forward = torch.compile(model, dynamic=True) if compile else model
        self.grad_clip, self.ls = float(grad_clip), float(label_smoothing)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.dev = self.params[0].device
        self.graphs = bool(graphs) and self.dev.type == "cuda"
        self.autocast = bool(autocast) and self.dev.type == "cuda"
        self.backward = backward or (lambda loss: loss.backward())
        self.loss_sum = torch.zeros(N_LABELS, device=self.dev)  # summed token loss per label position
        self.tok_count = torch.zeros(N_LABELS, device=self.dev)
        self._norm = torch.ones((), device=self.dev)  # divisor of the summed loss when given per step
        self._graph, self._idx, self._grads, self._warm = {}, {}, {}, {}
        self.capture_seconds = 0.0

    def _ctx(self):
        # the autocast weight-cast cache must be off under graph capture (cached casts would outlive the capture)
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _body(self, bucket: int, idx: torch.Tensor, global_norm: bool) -> None:
        real = idx >= 0
        rows = idx.clamp(min=0)  # fillers reuse row 0 as input (never an all-PAD row: that would give NaN attention)
        ids = self.data.ids[bucket].index_select(0, rows).long()
        labels = self.data.labels[bucket].index_select(0, rows).long().masked_fill(~real[:, None], -100)
        with self._ctx():
            tl = self.forward(ids, ids != PAD, labels, label_smoothing=self.ls, reduction="none")  # (B, 5)
        counted = (labels != -100).float()
        norm = self._norm if global_norm else counted.sum().clamp(min=1)
        self.backward(tl.sum() / norm)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=self.dev.type == "cuda")
        self.opt.step()
        self.loss_sum += tl.detach().sum(0)
        self.tok_count += counted.sum(0)

    def run(self, bucket: int, idx: torch.Tensor, norm: float | None = None) -> None:
        """One step on rows `idx` (B,) of `bucket`. norm: the divisor of the summed token loss (None: the local mean)."""
        if norm is not None:
            self._norm.fill_(float(norm))
        gnorm = norm is not None
        if not self.graphs:
            self.opt.zero_grad(set_to_none=True)
            self._body(bucket, idx, gnorm)
            return
        g = self._graph.get(bucket)
        if g is not None:
            self._idx[bucket].copy_(idx)
            g.replay()
            return
        n = self._warm.get(bucket, 0)
        if n < WARMUP_STEPS:  # real steps, run eagerly on a side stream before this bucket's capture
            s = torch.cuda.Stream(self.dev)
            s.wait_stream(torch.cuda.current_stream(self.dev))
            with torch.cuda.stream(s):
                self.opt.zero_grad(set_to_none=True)
                self._body(bucket, idx, gnorm)
            torch.cuda.current_stream(self.dev).wait_stream(s)
            self._warm[bucket] = n + 1
            return
        self._capture(bucket, gnorm)
        self._idx[bucket].copy_(idx)
        self._graph[bucket].replay()

    def _capture(self, bucket: int, gnorm: bool) -> None:
        import time

        torch.cuda.synchronize(self.dev)
        t = time.perf_counter()
        self._idx[bucket] = torch.zeros(self.B, dtype=torch.long, device=self.dev)
        # grads None before capture: backward then WRITES (not accumulates) them, from the graph's own memory pool
        self.opt.zero_grad(set_to_none=True)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self._body(bucket, self._idx[bucket], gnorm)
        self._graph[bucket] = g
        self._grads[bucket] = [p.grad for p in self.params]  # keep this graph's gradient buffers alive
        torch.cuda.synchronize(self.dev)
        self.capture_seconds += time.perf_counter() - t

    def pop_stats(self) -> list[float]:
        """Mean token loss per label position (4 digits + EOS) since the last call (one host sync)."""
        v = (self.loss_sum / self.tok_count.clamp(min=1)).tolist()
        self.loss_sum.zero_()
        self.tok_count.zero_()
        return v
