"""The shared evaluator: any recommender -> overall / in-sample / unseen Recall & NDCG, in one pass, one JSON schema.

A recommender is a callable `fn(history (B,H) LongTensor, hist_len (B,)) -> items (B,K)` (item ids, -1 = empty),
optionally returning `(items, extras)` where `extras` maps counter names to per-row tensors (e.g. accepted, rounds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from specgr.batching import length_batches, row_order
from specgr.data.processed import Rows
from specgr.distributed import gather_row_dict, gather_rows, get_rank, shard_batches
from specgr.metrics import DEFAULT_KS, summarize, topk_metrics


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def run_recommender(fn: Callable, rows: Rows, batch_size: int = 256, device="cpu", progress: bool = True,
                    max_rows: int | None = None, by_length: bool = False):
    """-> (ranked (R,K) np.int64, extras {name: (R,) np}, rank_seconds (world,) np.float64).

    rows: anything with history (R,H) and hist_len (R,) (Rows, Histories). Timing syncs the GPU (no async
    under-counting); rank_seconds holds each process's timed seconds, so the run's wall time is its max.
    Under torch.distributed (a torchrun launch) each rank runs its share of the one-process batches
    (`shard_batches`) and every rank gets the gathered lists in row order, each row exactly once: whatever is computed
    from them equals one process. by_length: batches of similar history lengths, cut to the columns they need
    (`batching.length_batches`); the lists still come back in row order.
    """
    from tqdm.auto import tqdm

    check_batching(batch_size, max_rows)
    n = len(rows.history) if max_rows is None else min(len(rows.history), max_rows)
    if n == 0:
        raise ValueError("no rows to run. Fix: evaluate a split that has rows.")
    hist, lens = np.asarray(rows.history)[:n], np.asarray(rows.hist_len)[:n]
    batches = length_batches(lens, hist.shape[1], batch_size, by_length)
    outs, extras = [], {}
    elapsed = 0.0
    for idx, w in tqdm(shard_batches(batches), disable=not progress or get_rank() != 0, desc="recommend"):
        h = torch.as_tensor(hist[idx, :w], device=device)
        hl = torch.as_tensor(lens[idx], device=device)
        _sync(device)
        t = time.perf_counter()
        r = fn(h, hl)
        _sync(device)
        elapsed += time.perf_counter() - t
        items, ex = (r if isinstance(r, tuple) else (r, {}))
        outs.append(torch.as_tensor(items).cpu().numpy())
        for k, v in ex.items():
            extras.setdefault(k, []).append(torch.as_tensor(v).float().cpu().numpy())
    width = max((o.shape[1] for o in outs), default=0)
    ranked = np.concatenate([np.pad(o, ((0, 0), (0, width - o.shape[1])), constant_values=-1) for o in outs]
                            or [np.zeros((0, 0))]).astype(np.int64)  # a rank with an empty shard still gathers
    extras = gather_row_dict({k: np.concatenate(v) for k, v in extras.items()})
    ranked = gather_rows(ranked, fill=-1)  # every rank's batches, in batch order
    if by_length:  # back to row order
        back = row_order(batches)
        ranked, extras = ranked[back], {k: v[back] for k, v in extras.items()}
    return ranked, extras, gather_rows(np.array([elapsed]))


def evaluate(fn: Callable, rows: Rows, n_in_sample: int, method: str, dataset: str = "", split: str = "test",
             batch_size: int = 256, device="cpu", ks=DEFAULT_KS, params: dict | None = None,
             max_rows: int | None = None, progress: bool = True, by_length: bool = False) -> dict:
    """Run `fn` over `rows` and return the results dict in the shared schema (see docs/ARCHITECTURE.md).

    Under torch.distributed the rows are sharded over ranks and the lists gathered (`run_recommender`), so the
    metrics equal one process's; recs_per_s is then all rows / the slowest rank's seconds."""
    check_batching(batch_size, max_rows)
    if max_rows is not None:
        rows = rows.subset(slice(0, max_rows))
    ranked, extras, rank_secs = run_recommender(fn, rows, batch_size, device, progress, by_length=by_length)
    secs = float(rank_secs.max())  # ranks run side by side: the run takes as long as its slowest rank
    per_row = topk_metrics(ranked, rows.target, ks)
    unseen = rows.target >= n_in_sample
    out = {"method": method, "dataset": dataset, "split": split}
    out.update(summarize(per_row, unseen))
    # what the lists contain: the share of recommended slots that are new items (the paper's "unseen share")
    valid = ranked >= 0
    out["unseen_share_of_recs"] = float(((ranked >= n_in_sample) & valid).sum() / max(valid.sum(), 1))
    for k, v in extras.items():
        out[f"mean_{k}"] = float(v.mean())
    out["recs_per_s"] = float(len(rows) / secs) if secs > 0 else float("inf")
    out["seconds"] = secs
    out["world_size"] = len(rank_secs)
    out["rank_seconds"] = rank_secs.tolist()
    out["device"] = device_name(device)
    out["batch_size"] = batch_size
    out["by_length"] = by_length  # how rows were batched: recs_per_s depends on it
    out["params"] = params or {}
    return out


def check_batching(batch_size, max_rows=None) -> None:
    """A batch size and a row limit are whole numbers >= 1 (None: no limit); -5 must not mean "all rows"."""
    for name, v, flag in (("batch_size", batch_size, "--batch-size"), ("max_rows", max_rows, "--max-rows")):
        if v is None and name == "max_rows":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} = {v!r}. Fix: {flag} N with N >= 1" + (" (leave it out for every row)."
                                                                          if name == "max_rows" else "."))


GROUPS = ("overall", "in_sample", "unseen")


SPECGR_KNOBS = ("threshold", "draft_size", "num_beams", "new_item_bonus", "fusion_weight", "length_rule", "min_len",
                "exclude_history")


def flatten_result(r: dict, metrics=None, knobs: bool = False) -> dict:
    """One flat row of a results dict (the shared schema) for tables and CSVs: "<group>_<metric>" for the overall,
    in-sample and unseen groups (e.g. overall_recall@50; `metrics` keeps a subset, default all), then
    acceptance_rate, rounds, unseen_share and recs_per_s (None where the method has no such counter).
    knobs=True puts the method name and its SpecGR knobs (from r["params"]) first (sweeps and tuning tables)."""
    row = {"method": r["method"], **{k: r.get("params", {}).get(k) for k in SPECGR_KNOBS}} if knobs else {}
    row.update({f"{g}_{m}": v for g in GROUPS for m, v in r[g].items() if metrics is None or m in metrics})
    row.update(acceptance_rate=r.get("mean_acceptance_rate"), rounds=r.get("mean_rounds"),
               unseen_share=r.get("unseen_share_of_recs"), recs_per_s=r.get("recs_per_s"))
    return row


def write_json(result: dict, path: str | Path) -> None:
    """Write a result (metrics, benchmark, experiment record) as indented JSON, atomically: a run killed mid-write
    (a time limit, a lost GPU machine) never leaves a half-written file that looks like a result. Values JSON does not
    know (paths, numpy scalars) are written as strings."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(p)


def format_result(r: dict, ks=(10, 50)) -> list[tuple]:
    rows = []
    for g in GROUPS:
        rows.append((g, *[f"{r[g][f'{m}@{k}']:.4f}" for m in ("recall", "ndcg") for k in ks]))
    return rows
