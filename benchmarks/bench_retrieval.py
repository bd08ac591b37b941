"""Benchmark RetrievalIndex backends: torch vs faiss (flat, and IVF when asked), random items, with and without masks.

    python benchmarks/bench_retrieval.py                          # 17k, 100k, 1M items x d in {64, 384}
    python benchmarks/bench_retrieval.py --sizes 17000 --dims 64 --device cuda --json
    python benchmarks/bench_retrieval.py --quick                  # small, for a smoke run

Masks: "allowed" keeps a random 50% of the catalog per row, plus 20 excluded ids per row (a user's history).
Reports queries/s and ms per batch (median of --reps runs after one warm-up), and writes JSON to results/ with --json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from specgr.retrieval import RetrievalIndex, has_faiss, resolve_device


def _sync(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_one(index: RetrievalIndex, q, k, allowed, exclude, reps: int, warmup: int = 1) -> float:
    """Median seconds per search call."""
    dev = q.device
    for _ in range(warmup):  # CUDA kernels / faiss allocations
        index.search(q, k, allowed, exclude)
    ts = []
    for _ in range(reps):
        _sync(dev)
        t = time.perf_counter()
        index.search(q, k, allowed, exclude)
        _sync(dev)
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[17_000, 100_000, 1_000_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 384])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--backends", nargs="+", default=["torch", "faiss"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-mask", action="store_true", help="skip the masked runs")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--json", action="store_true", help="write results/bench_retrieval_<device>.json")
    ap.add_argument("--out", default="results")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.dims, a.reps = [5_000], [64], 1
    dev = resolve_device(a.device)
    backends = [b for b in a.backends if b == "torch" or has_faiss()]
    rows = []
    hdr = f"{'N':>9} {'d':>4} {'backend':>9} {'mask':>5} {'q/s':>10} {'ms/batch':>9} {'build s':>8}"
    print(f"device={dev} batch={a.batch} k={a.k} threads={torch.get_num_threads()}")
    print(hdr)
    print("-" * len(hdr))
    g = torch.Generator().manual_seed(0)
    for N in a.sizes:
        for d in a.dims:
            items = torch.randn(N, d, generator=g)
            q = torch.randn(a.batch, d, generator=g).to(dev)
            masks = [(False, None, None)]
            if not a.no_mask:
                allowed = (torch.rand(a.batch, N, generator=g) < 0.5).to(dev)
                exclude = torch.randint(0, N, (a.batch, 20), generator=g).to(dev)
                masks.append((True, allowed, exclude))
            for be in backends:
                t = time.perf_counter()
                index = RetrievalIndex(items, backend=be, device=dev)
                build = time.perf_counter() - t
                for masked, al, ex in masks:
                    s = bench_one(index, q, a.k, al, ex, a.reps, a.warmup)
                    r = {"n_items": N, "dim": d, "backend": be, "masked": masked, "batch": a.batch, "k": a.k,
                         "queries_per_s": a.batch / s, "ms_per_batch": 1e3 * s, "build_s": build}
                    rows.append(r)
                    print(f"{N:>9} {d:>4} {be:>9} {'yes' if masked else 'no':>5} {r['queries_per_s']:>10.0f} "
                          f"{r['ms_per_batch']:>9.1f} {build:>8.2f}", flush=True)
                del index
    if a.json:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"device": str(dev), "cuda": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                "torch": torch.__version__}
        p = out / f"bench_retrieval_{dev.type}.json"
        p.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        print(f"wrote {p}")
    return rows


if __name__ == "__main__":
    main()
