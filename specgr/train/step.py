"""One TIGER optimisation step (forward, backward, clip, AdamW), eager or replayed from a CUDA graph.

Why graphs: TIGER is small (2-7M parameters), so a step is a thousand or so tiny kernels whose launch cost, not their
arithmetic, sets the step time (profile in docs/RESULTS.md). On a CUDA device the whole step of each length bucket
is captured once as a CUDA graph (after a few eager warm-up steps on a side stream, as torch.cuda.graph requires) and
then replayed: one launch per step, no Python in between, no host sync. This needs static shapes (one per bucket,
specgr.train.buckets), a capturable optimizer whose lr is a device tensor, and autocast without its weight-cast cache.
Dropout stays random: PyTorch advances the graph's Philox offset at every replay.

Data parallelism (world > 1) all-reduces the gradients itself instead of wrapping the model in DDP, so that the
step can still be graphed: every rank holds the same global batch's row ids and takes its slice, the gradients live in
one flat buffer (each parameter's .grad is a view of it; backward accumulates into it in place), and a step is
[forward + backward] -> one NCCL/gloo all-reduce (SUM) of the flat buffer -> [clip + AdamW]. The loss is divided by
the global batch's token count, so the summed gradient is exactly the one-process mean. On CUDA the two bracketed
parts are CUDA graphs (one per bucket, one shared) and the all-reduce is launched between them without a host sync.

The eager path (CPU, cuda_graphs=False) runs the same pieces, so both compute the same maths.

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
    """Runs optimisation steps of a TIGER `model`.

    data: BucketedRows on the model's device; batch_size: rows per step, the GLOBAL batch (split over `world` ranks);
    graphs: capture CUDA graphs; autocast: bf16 autocast on CUDA; compile: run the forward (and so the backward)
    through torch.compile; rank, world: this process's data-parallel rank and the number of ranks (an initialised
    torch.distributed process group when world > 1; the parameters must already be equal on every rank).
    The loss is the summed token loss divided by the step's non-ignored tokens: this rank's batch on one process, the
    global batch's under data parallelism (then the all-reduced sum of the ranks' gradients is the global mean).
    """

    def __init__(self, model, optimizer, data: BucketedRows, batch_size: int, grad_clip: float = 0.0,
                 label_smoothing: float = 0.0, graphs: bool = False, autocast: bool = False, compile: bool = False,
                 rank: int = 0, world: int = 1):
        self.model, self.opt, self.data, self.B = model, optimizer, data, int(batch_size)
        self.rank, self.world = int(rank), int(world)
        if self.B % self.world:
            raise ValueError(f"batch_size {self.B} must be divisible by the {self.world} data-parallel processes. "
                             "Fix: make the global batch (tiger_train.batch_size) a multiple of the GPU count.")
        # torch.compile fuses the many small elementwise kernels (casts, norms, dropout, residuals); dynamic shapes so
        # that one compilation serves every length bucket
        self.forward = torch.compile(model, dynamic=True) if compile else model
        self.grad_clip, self.ls = float(grad_clip), float(label_smoothing)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.dev = self.params[0].device
        self.graphs = bool(graphs) and self.dev.type == "cuda"
        self.autocast = bool(autocast) and self.dev.type == "cuda"
        self.loss_sum = torch.zeros(N_LABELS, device=self.dev)  # summed token loss per label position (this rank)
        self.tok_count = torch.zeros(N_LABELS, device=self.dev)
        self._graph, self._idx, self._grads, self._warm = {}, {}, {}, {}
        self._update_graph = None
        self.capture_seconds = 0.0
        self.flat_grad = None
        if self.world > 1:  # one flat gradient buffer: one all-reduce per step; .grad are views that outlive graphs
            self.flat_grad = torch.zeros(sum(p.numel() for p in self.params), device=self.dev)
            off = 0
            for p in self.params:
                p.grad = self.flat_grad[off:off + p.numel()].view_as(p)
                off += p.numel()

    def _ctx(self):
        # the autocast weight-cast cache must be off under graph capture (cached casts would outlive the capture)
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _zero_grad(self) -> None:
        if self.flat_grad is not None:
            self.flat_grad.zero_()  # in place: the parameters' .grad views must stay where they are
        else:
            self.opt.zero_grad(set_to_none=True)

    def _forward_backward(self, bucket: int, idx: torch.Tensor) -> None:
        """Loss and gradients of the global batch `idx` (B,) (this rank's slice of it under data parallelism)."""
        global_idx = idx
        if self.world > 1:
            per = self.B // self.world
            idx = idx[self.rank * per:(self.rank + 1) * per]
        real = idx >= 0
        rows = idx.clamp(min=0)  # fillers reuse row 0 as input (never an all-PAD row: that would give NaN attention)
        ids = self.data.ids[bucket].index_select(0, rows).long()
        labels = self.data.labels[bucket].index_select(0, rows).long().masked_fill(~real[:, None], -100)
        with self._ctx():
            tl = self.forward(ids, ids != PAD, labels, label_smoothing=self.ls, reduction="none")  # (B, 5)
        counted = (labels != -100).float()
        # the divisor is the global batch's token count (fillers have none): the ranks' gradients then SUM to the mean
        norm = counted.sum() if self.world == 1 else (global_idx >= 0).sum().float() * N_LABELS
        (tl.sum() / norm.clamp(min=1)).backward()
        self.loss_sum += tl.detach().sum(0)
        self.tok_count += counted.sum(0)

    def _all_reduce(self) -> None:
        if self.flat_grad is not None:
            import torch.distributed as dist

            dist.all_reduce(self.flat_grad)  # SUM of the ranks' shares of the global mean

    def _update(self) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=self.dev.type == "cuda")
        self.opt.step()

    def _eager_step(self, bucket: int, idx: torch.Tensor) -> None:
        self._zero_grad()
        self._forward_backward(bucket, idx)
        self._all_reduce()
        self._update()

    def run(self, bucket: int, idx: torch.Tensor) -> None:
        """One step on rows `idx` (B,) of `bucket` (the global batch; the same on every rank)."""
        if not self.graphs:
            self._eager_step(bucket, idx)
            return
        g = self._graph.get(bucket)
        if g is None and self._warm.get(bucket, 0) < WARMUP_STEPS:
            # real steps, run eagerly on a side stream before this bucket's capture
            s = torch.cuda.Stream(self.dev)
            s.wait_stream(torch.cuda.current_stream(self.dev))
            with torch.cuda.stream(s):
                self._eager_step(bucket, idx)
            torch.cuda.current_stream(self.dev).wait_stream(s)
            self._warm[bucket] = self._warm.get(bucket, 0) + 1
            return
        if g is None:
            self._capture(bucket)
        self._idx[bucket].copy_(idx)
        self._graph[bucket].replay()
        if self.flat_grad is not None:  # forward + backward replayed; all-reduce; then the shared update graph
            self._all_reduce()
            self._update_graph.replay()

    def _capture(self, bucket: int) -> None:
        import time

        torch.cuda.synchronize(self.dev)
        t = time.perf_counter()
        self._idx[bucket] = torch.zeros(self.B, dtype=torch.long, device=self.dev)
        g = torch.cuda.CUDAGraph()
        if self.flat_grad is None:
            # grads None before capture: backward then WRITES (not accumulates) them, from the graph's own memory pool
            self.opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(g):
                self._forward_backward(bucket, self._idx[bucket])
                self._update()
            self._grads[bucket] = [p.grad for p in self.params]  # keep this graph's gradient buffers alive
        else:
            with torch.cuda.graph(g):
                self._zero_grad()
                self._forward_backward(bucket, self._idx[bucket])
            if self._update_graph is None:
                self._update_graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self._update_graph):
                    self._update()
        self._graph[bucket] = g
        torch.cuda.synchronize(self.dev)
        self.capture_seconds += time.perf_counter() - t

    def pop_stats(self) -> list[float]:
        """Mean token loss per label position (4 digits + EOS) of this rank's rows since the last call (one host
        sync)."""
        v = (self.loss_sum / self.tok_count.clamp(min=1)).tolist()
        self.loss_sum.zero_()
        self.tok_count.zero_()
        return v
