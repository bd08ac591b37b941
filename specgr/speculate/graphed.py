"""A recommender's whole batch as one CUDA graph: capture once, replay per batch (docs/RESULTS.md §4).

Decoding a batch launches thousands of small kernels (a 2M-parameter decoder over 1-4 tokens per sequence), and
between them the GPU waits for the host. With static shapes (`SpecGRConfig.compact=False`, the CUDA default) the
SpecGR loop has no host sync, and TIGER's constrained beam search never had one, so each can be captured whole:

    rec = GraphedRecommender(SpecGR(model, drafter, sids, cfg, "cuda"), batch_size=1024)
    res = rec.recommend_rows(ds.rows("test"), batch_size=1024)      # same lists as the wrapped recommender

The first batch of each (history width, K) captures the wrapped recommender's `_recommend` on fixed input buffers;
every batch then copies its rows into them and replays the graph. A batch with fewer rows is padded with copies of
its first row, whose lists are dropped. The lists are the wrapped recommender's: the same kernels run on the same
shapes (a GPU test checks equality).

Early exit (`early_exit=True`, the default for SpecGR): the loop is captured as one graph per phase (the encoder,
each round, the last beam steps, the final lists; `SpecGR._begin`, `_round`, `_fill`, `_end`), in one memory pool.
After each round's replay the host reads one flag, whether any user of the batch still has < K accepted, and a batch
whose users are all done skips its remaining rounds and the fill-up beam: with static shapes those rounds would only
rewrite masked rows, so the lists are the same (tested). This is how a graphed batch gains from a high acceptance
rate; the price is one host sync per round. `early_exit=False` captures the whole loop as one graph.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from specgr.speculate.batched import SpecGR, run_rows
from specgr.speculate.trace import SpecGRResult
from specgr.utils import as_long

WARMUP_RUNS = 2  # eager runs before capture: lazy tables, cuBLAS workspaces and the allocator settle on a side stream
_WARMUP_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def warmup_stream(device: torch.device) -> torch.cuda.Stream:
    """The side stream of every capture's warm-up runs on `device`, one per device and process: cuBLAS keeps a
    workspace per stream until the process ends, so a new stream per capture would hold one more each time."""
    if device.index is None:  # "cuda" and "cuda:0" are one device: one stream
        device = torch.device("cuda", torch.cuda.current_device())
    if device not in _WARMUP_STREAMS:
        _WARMUP_STREAMS[device] = torch.cuda.Stream(device)
    return _WARMUP_STREAMS[device]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph  # the whole batch; with early exit, the encoder phase
    hist: torch.Tensor  # (B, H) input buffer the graph reads
    hist_len: torch.Tensor  # (B,)
    out: SpecGRResult  # output tensors the (last) graph writes
    rounds: list = field(default_factory=list)  # early exit: per round, (its graph, its () bool "any user live" flag)
    fill: torch.cuda.CUDAGraph | None = None  # early exit: the last beam steps (phase 3)
    end: torch.cuda.CUDAGraph | None = None  # early exit: the final lists (phase 4)

    def replay(self) -> int:
        """Replay the batch: the one graph, or the phases until no user is live. Returns the rounds replayed."""
        self.graph.replay()
        for r, (g, live) in enumerate(self.rounds, 1):
            g.replay()
            if not live.item():  # the round's only host sync
                break
        else:
            if self.fill is not None:
                self.fill.replay()
        if self.end is not None:
            self.end.replay()
        return r if self.rounds else 0


class GraphedRecommender:
    """rec: a `SpecGR` with static shapes or a `TigerOnly`, on CUDA; batch_size: the rows of every replay;
    early_exit: SpecGR only, stop a batch after the round where its last user finished (see the module docstring)."""

    def __init__(self, rec, batch_size: int, early_exit: bool = True):
        if rec.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the recommender is on {rec.device}. Fix: build it with "
                             "device='cuda', or call it directly.")
        if isinstance(rec, SpecGR) and rec.cfg.compacts(rec.device):
            raise ValueError("a compacting SpecGR loop syncs with the host every round and cannot be captured. Fix: "
                             "SpecGRConfig(compact=False) (or None, the CUDA default).")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}. Fix: pass the batch size of the rows you will run, >= 1.")
        self.rec, self.batch_size = rec, int(batch_size)
        self.early_exit = bool(early_exit) and isinstance(rec, SpecGR)
        self.rounds_replayed: Counter = Counter()  # early exit: {rounds replayed: batches}, for benchmarks
        self.device, self.sids = rec.device, rec.sids
        self._captured: dict[tuple[int, int | None], _Captured] = {}

    def _capture(self, hist: torch.Tensor, hist_len: torch.Tensor, k: int | None) -> _Captured:
        h, n = hist.clone(), hist_len.clone()
        side = warmup_stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self.rec._recommend(h, n, k)
        torch.cuda.current_stream(self.device).wait_stream(side)
        try:
            return self._capture_phases(h, n, k) if self.early_exit else self._capture_whole(h, n, k)
        except RuntimeError as e:  # a host sync inside the loop: name it, do not fall back silently
            raise RuntimeError(f"CUDA graph capture of {type(self.rec).__name__} failed: {e}. Fix: run it without "
                               "GraphedRecommender (a step of this configuration synchronises with the host).") from e

    def _capture_whole(self, h: torch.Tensor, n: torch.Tensor, k: int | None) -> _Captured:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.rec._recommend(h, n, k)
        return _Captured(graph, h, n, out)

    def _capture_phases(self, h: torch.Tensor, n: torch.Tensor, k: int | None) -> _Captured:
        """The SpecGR loop's phases as graphs in one pool, captured in replay order. A batch may stop after any
        round and go to the final lists: those read only buffers of the encoder phase, which every replay
        re-initialises, and the phases it skips only ever wrote rows whose users were done."""
        rec, pool = self.rec, torch.cuda.graph_pool_handle()

        def captured(fn):
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=pool):
                out = fn()
            return g, out

        def round_and_flag(rnd: int) -> torch.Tensor:
            rec._round(lp, rnd)
            return rec._live(lp)

        begin, lp = captured(lambda: rec._begin(h, n, k))
        rounds = [captured(lambda r=rnd: round_and_flag(r)) for rnd in range(1, lp.rounds + 1)]
        fill, _ = captured(lambda: rec._fill(lp))
        end, out = captured(lambda: rec._end(lp))
        return _Captured(begin, h, n, out, rounds, fill, end)

    @torch.inference_mode()
    def recommend(self, history, hist_len, k: int | None = None, trace: bool = False) -> SpecGRResult:
        """history (B', H) item ids (-1 pad), hist_len (B',), B' <= batch_size -> SpecGRResult (tensors on the GPU)."""
        from specgr.recommenders import validate_history

        if trace:
            raise ValueError("traces are built on the host, outside any graph. Fix: call the wrapped recommender with "
                             "trace=True.")
        validate_history(history, hist_len, self.sids.n_items)
        hist, hl = as_long(history, self.device), as_long(hist_len, self.device)
        b = hist.shape[0]
        if b > self.batch_size:
            raise ValueError(f"{b} rows in one call, the graph holds {self.batch_size}. Fix: pass at most "
                             f"batch_size rows per call (recommend_rows does).")
        if b < self.batch_size:  # pad with the first row; its copies' lists are dropped below
            fill = self.batch_size - b
            hist = torch.cat([hist, hist[:1].expand(fill, -1)])
            hl = torch.cat([hl, hl[:1].expand(fill)])
        key = (hist.shape[1], k)
        cap = self._captured.get(key)
        if cap is None:
            cap = self._captured[key] = self._capture(hist, hl, k)
        cap.hist.copy_(hist)
        cap.hist_len.copy_(hl)
        r = cap.replay()
        if self.early_exit:
            self.rounds_replayed[r] += 1
        o = cap.out
        return SpecGRResult(*(t[:b].clone() for t in (o.items, o.scores, o.sources, o.n_rounds, o.n_accepted,
                                                      o.n_drafted)))

    def recommend_rows(self, rows, batch_size: int | None = None, k: int | None = None, progress: bool = True,
                       trace: bool = False) -> SpecGRResult:
        """A whole split in batches of the graph's batch_size, timed (`specgr.speculate.batched.run_rows`)."""
        if batch_size not in (None, self.batch_size):
            raise ValueError(f"batch_size={batch_size}, the graph holds {self.batch_size}. Fix: omit it, or build the "
                             f"GraphedRecommender with batch_size={batch_size}.")
        return run_rows(self, rows, self.batch_size, k, progress, trace)
