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
After each round's replay the host reads one number, how many users of the batch still have < K accepted, and a batch
whose users are all done skips its remaining rounds and the fill-up beam: with static shapes those rounds would only
rewrite masked rows, so the lists are the same (tested). This is how a graphed batch gains from a high acceptance
rate; the price is one host sync per round. `early_exit=False` captures the whole loop as one graph.

Shrinking (`shrink=True`, the default with early exit): rounds 2 and later, and the fill-up, are also captured on
fewer rows, B/2, B/4, ... down to B/32 (at least 2), one chain of graphs per size. Once the live users fit a smaller
size, the batch moves there (`SpecGR._shrink`: live users first, then finished ones; a captured move gathers their
encoder states, beams and pending beam step into that chain's input buffers) and its later rounds cost that size. Without it, one late user keeps the whole batch's rows decoding: the
compacting loop's saving, at the price of a few more captures and their buffers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import torch

from specgr.speculate.batched import SpecGR, _Loop, run_rows
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
class _Chain:
    """The phases of one batch size, captured: lp, the loop's state on `size` rows (its rows and encoder state are
    what the graphs read); per phase p (rounds 1..R, then p = R + 1 the fill-up), ins[p] = (beam, pending beam step)
    that phase's graph reads, graphs[p] = (graph, its () long count of live users, or None for the fill-up)."""

    size: int
    lp: _Loop
    ins: dict = field(default_factory=dict)
    graphs: dict = field(default_factory=dict)

    def at(self, p: int) -> _Loop:
        """The loop as phase p's graph finds it."""
        return dataclasses.replace(self.lp, beam=self.ins[p][0], adv=self.ins[p][1])


def _tensors(x):
    """The tensors of a loop state (dataclasses, lists and tuples of them), in field order."""
    if isinstance(x, torch.Tensor):
        yield x
    elif dataclasses.is_dataclass(x):
        for f in dataclasses.fields(x):
            yield from _tensors(getattr(x, f.name))
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _tensors(y)


def _gather_into(dst, src, keep: torch.Tensor, users: int) -> None:
    """Every tensor of src (a loop state on `users` rows) at the rows `keep` (b,), written in place into the tensor of
    dst (a graph's input buffers). Tensors lead with the users (B, ...) or with users x beams (B*W, ...), user-major:
    both read as (B, -1)."""
    b = keep.numel()
    for d, s in zip(_tensors(dst), _tensors(src), strict=True):
        if s.numel() == 0:  # the empty beam's (B, 1, 0) tokens
            continue
        if d.is_contiguous():
            torch.index_select(s.reshape(users, -1), 0, keep, out=d.view(b, -1))
        else:
            d.copy_(s.reshape(users, -1)[keep].view(d.shape))


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph  # the whole batch; with early exit, the encoder phase
    hist: torch.Tensor  # (B, H) input buffer the graph reads
    hist_len: torch.Tensor  # (B,)
    out: SpecGRResult  # output tensors the (last) graph writes
    chains: list = field(default_factory=list)  # early exit: a _Chain per size, the whole batch first
    end: torch.cuda.CUDAGraph | None = None  # early exit: the final lists (phase 4)
    moves: dict = field(default_factory=dict)  # shrinking: (from rows, to rows, phase) -> the move's graph

    def replay(self, timer: list | None = None) -> list[int]:
        """Replay the batch: the one graph, or the phases until no user is live, each round on the fewest rows that
        hold the live users (shrinking). Returns the rows of each round replayed. timer: a list that gets (phase
        name, CUDA event recorded after it), for `GraphedRecommender.phase_ms`."""

        def mark(name: str) -> None:
            if timer is not None:
                e = torch.cuda.Event(enable_timing=True)
                e.record()
                timer.append((name, e))

        mark("start")
        self.graph.replay()
        mark("encoder" if self.chains else "whole batch")
        sizes = []
        if not self.chains:
            return sizes
        chain, last = self.chains[0], max(self.chains[0].graphs)
        for p in range(1, last + 1):
            if p > 1:
                n = int(count.item())  # the round's only host sync
                if n == 0:
                    break
                fit = min((c for c in self.chains if c.size >= n and p in c.graphs), key=lambda c: c.size)
                if fit.size < chain.size:  # move the batch to fewer rows: its live users and enough finished ones
                    self.moves[chain.size, fit.size, p].replay()
                    chain = fit
                    mark(f"move to {chain.size} rows")
            g, count = chain.graphs[p]
            g.replay()
            mark(f"round {p} on {chain.size} rows" if p < last else f"fill-up on {chain.size} rows")
            if p < last:
                sizes.append(chain.size)
        self.end.replay()
        mark("final lists")
        return sizes


class GraphedRecommender:
    """rec: a `SpecGR` with static shapes or a `TigerOnly`, on CUDA; batch_size: the rows of every replay;
    early_exit: SpecGR only, stop a batch after the round where its last user finished; shrink: with early exit, run
    a batch's later rounds on fewer rows once its live users fit them (see the module docstring)."""

    def __init__(self, rec, batch_size: int, early_exit: bool = True, shrink: bool = True):
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
        self.shrink = bool(shrink) and self.early_exit
        self.rounds_replayed: Counter = Counter()  # early exit: {rounds replayed: batches}, for benchmarks
        self.round_rows: Counter = Counter()  # early exit: {(round, rows it ran on): batches}, for benchmarks
        self.phase_ms: Counter | None = None  # set to a Counter to time each phase: {name: ms, summed over batches}
        self.device, self.sids = rec.device, rec.sids
        self._captured: dict[tuple[int, int | None], _Captured] = {}
        # one memory pool for every capture (each history width and K, `recommend_rows(by_length=True)` captures up to
        # four): a capture keeps only the buffers a later replay of it reads before writing (`_capture_phases`), so
        # the rest of its memory serves the next capture
        self._pool = None

    @property
    def sizes(self) -> list[int]:
        """The batch sizes a round can run on: the batch, then halves down to 1/32 of it (at least 2 rows)."""
        out = [self.batch_size]
        while self.shrink and out[-1] // 2 >= max(2, self.batch_size // 32):
            out.append(out[-1] // 2)
        return out

    def _capture(self, hist: torch.Tensor, hist_len: torch.Tensor, k: int | None) -> _Captured:
        h, n = hist.clone(), hist_len.clone()
        self._warm_up(lambda: self.rec._recommend(h, n, k))
        try:
            return self._capture_phases(h, n, k) if self.early_exit else self._capture_whole(h, n, k)
        except RuntimeError as e:  # a host sync inside the loop: name it, do not fall back silently
            raise RuntimeError(f"CUDA graph capture of {type(self.rec).__name__} failed: {e}. Fix: run it without "
                               "GraphedRecommender (a step of this configuration synchronises with the host).") from e

    def _graph_pool(self):
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        return self._pool

    def _warm_up(self, fn) -> None:
        """Run fn WARMUP_RUNS times eagerly on the side stream, before a capture of the same shapes."""
        side = warmup_stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _capture_whole(self, h: torch.Tensor, n: torch.Tensor, k: int | None) -> _Captured:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._graph_pool()):  # what the host reads, `out`, stays held
            out = self.rec._recommend(h, n, k)
        return _Captured(graph, h, n, out)

    def _capture_phases(self, h: torch.Tensor, n: torch.Tensor, k: int | None) -> _Captured:
        """The SpecGR loop's phases as graphs in one pool: the encoder phase, the whole batch's chain (rounds, the
        fill-up), the final lists, then with shrinking a chain per smaller size from round 2 on. A batch may stop
        after any round and go to the final lists: those read only buffers of the encoder phase, which every replay
        re-initialises, and the phases it skips only ever wrote rows whose users were done. Every graph's inputs are
        the encoder phase's buffers, its chain's rows and encoder state, and the outputs of the phase before it (or
        what a move to fewer rows copied there).

        Memory: the chains keep the encoder phase's buffers, the final lists, the host-read counts and every buffer
        made outside a graph (a smaller chain's first inputs); no later capture may reuse those. The beam states that
        one phase passes to the next are let go once every graph is captured: a replay rewrites each of them before
        reading it, so the next capture in the pool (another width, by length) can reuse their memory; replays of two
        captures never interleave."""
        rec, pool = self.rec, self._graph_pool()

        def captured(fn):
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=pool):
                out = fn()
            return g, out

        def round_and_count(lp: _Loop, rnd: int) -> torch.Tensor:
            rec._round(lp, rnd)
            return rec._n_live(lp)

        def chain(lp: _Loop, first: int) -> _Chain:
            """Phases first..R and the fill-up on lp's rows, captured in order, each reading the one before."""
            c = _Chain(lp.rows.numel(), lp)
            for p in range(first, lp.rounds + 1):
                c.ins[p] = (lp.beam, lp.adv)
                c.graphs[p] = captured(lambda r=p: round_and_count(lp, r))
            c.ins[lp.rounds + 1] = (lp.beam, lp.adv)
            c.graphs[lp.rounds + 1] = (captured(lambda: rec._fill(lp))[0], None)
            return c

        def move(a: _Chain, b: _Chain, p: int) -> None:
            """Before phase p, chain a's state cut to b's rows (`SpecGR._shrink`), into b's input buffers."""
            src = a.at(p)
            _gather_into((b.lp.rows, b.lp.state, b.ins[p]), (src.rows, src.state, (src.beam, src.adv)),
                         rec._kept(src, b.size), a.size)

        def after_round_1(lp: _Loop) -> None:  # a smaller size's phases, eagerly (its warm-up)
            for rnd in range(2, lp.rounds + 1):
                rec._round(lp, rnd)
            rec._fill(lp)

        begin, lp = captured(lambda: rec._begin(h, n, k))
        chains = [chain(lp, 1)]
        end, out = captured(lambda: rec._end(lp))
        if len(self.sizes) > 1 and lp.rounds > 1:
            begin.replay()  # this batch after round 1: real states for the smaller sizes' warm-up
            chains[0].graphs[1][0].replay()
            after1 = chains[0].at(2)
            for size in self.sizes[1:]:
                self._warm_up(lambda s=size: after_round_1(rec._shrink(after1, s)))
                chains.append(chain(rec._shrink(after1, size), 2))
        # the moves to fewer rows, as graphs too: eagerly, their ~30 small gathers kept the GPU waiting for the host
        moves = {}
        for a, b, p in ((a, b, p) for a in chains for b in chains if b.size < a.size for p in b.ins if p in a.ins):
            self._warm_up(lambda: move(a, b, p))  # it only overwrites b's input buffers
            moves[a.size, b.size, p] = captured(lambda: move(a, b, p))[0]
        for c in chains:  # let go of the states between phases (see above); a chain's first inputs stay
            first = min(c.ins)
            c.lp.beam, c.lp.adv = c.ins[first]
            c.ins = {first: c.ins[first]}
        return _Captured(begin, h, n, out, chains, end, moves)

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
        timer = None if self.phase_ms is None else []
        sizes = cap.replay(timer)
        if timer:  # GPU time between consecutive events: the phase, and the wait for the host before it
            timer[-1][1].synchronize()
            for (_, before), (name, after) in zip(timer, timer[1:]):
                self.phase_ms[name] += before.elapsed_time(after)
        if self.early_exit:
            self.rounds_replayed[len(sizes)] += 1
            self.round_rows.update(enumerate(sizes, 1))
        o = cap.out
        return SpecGRResult(*(t[:b].clone() for t in (o.items, o.scores, o.sources, o.n_rounds, o.n_accepted,
                                                      o.n_drafted)))

    def recommend_rows(self, rows, batch_size: int | None = None, k: int | None = None, progress: bool = True,
                       trace: bool = False, by_length: bool = False) -> SpecGRResult:
        """A whole split in batches of the graph's batch_size, timed (`specgr.speculate.batched.run_rows`).
        by_length: batches of similar history lengths, cut to their width; one capture per width (at most four)."""
        if batch_size not in (None, self.batch_size):
            raise ValueError(f"batch_size={batch_size}, the graph holds {self.batch_size}. Fix: omit it, or build the "
                             f"GraphedRecommender with batch_size={batch_size}.")
        return run_rows(self, rows, self.batch_size, k, progress, trace, by_length)
