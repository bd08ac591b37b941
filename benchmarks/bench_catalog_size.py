"""Time per recommendation and peak GPU memory vs catalog size, like the paper's time-vs-retrieval-size figure.

    python benchmarks/bench_catalog_size.py --draft-ranges auto on off --json results/bench_catalog_size.json
    python benchmarks/bench_catalog_size.py --plot results/bench_catalog_size.json --png docs/catalog_size.png

Synthetic catalogs (random semantic ids, C = 144, 93% in-sample) with a random Games-size TIGER; the trained models'
speed depends on sizes, not weights, except through acceptance (a random verifier accepts little, the worst case for
SpecGR: 4 rounds for everyone). Methods, same rows for each: SpecGR++ (encoder drafter), SpecGR_Aux (a 300-d random
embedding drafter standing in for the text drafter: same index, same search), TIGER constrained beam search and TIGER
unconstrained beam search (both width 50). Batches of --batch-size users; peak memory = torch.cuda.max_memory_allocated
over the timed batches. A CUDA graph allocates its buffers once, at capture, from a private pool that stays reserved
while it replays: the allocated peak leaves them out, so each point also records held memory =
torch.cuda.max_memory_reserved from the first (capturing) batch on, each method on an emptied cache and released
after its run. --draft-ranges: SpecGR's guided drafting (SpecGRConfig.draft_ranges), one run per value.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

from specgr.drafters.base import EmbeddingDrafter
from specgr.drafters.encoder import EncoderDrafter, Projection
from specgr.evaluate import write_json
from specgr.models.beam import beam_search
from specgr.models.tiger import TIGER, tiger_preset
from specgr.retrieval import RetrievalIndex
from specgr.sid.semantic_ids import SemanticIDs
from specgr.speculate import GraphedRecommender, SpecGR, SpecGRConfig, TigerOnly
from specgr.speculate import steps
from specgr.speculate.config import DRAFT_RANGES


class RandomTextDrafter(EmbeddingDrafter):
    """A fixed random item table and a mean-of-history query: the search cost of the text drafter."""

    def __init__(self, n_items: int, dim: int, device, seed: int = 0):
        super().__init__(device)
        g = torch.Generator().manual_seed(seed)
        self.index = RetrievalIndex(torch.randn(n_items, dim, generator=g), backend="torch", device=device,
                                    metric="cosine")

    def query_embeddings(self, history, hist_len):
        e = self.index.embeddings()
        m = (history >= 0).float()
        return (e[history.clamp(min=0)] * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)


class Unconstrained:
    """TIGER beam search without the validity trie (the official behaviour), same recommend() shape."""

    def __init__(self, model, sids, device):
        self.model, self.sids, self.device = model, sids, device

    @torch.no_grad()
    def recommend(self, history, hist_len, k=50):
        with steps.autocast(self.device, True):
            _, _, state = steps.encode(self.model, self.sids, history, hist_len)
            return beam_search(self.model, None, None, self.sids, width=k, k=k, constrained=False, state=state)[0]


def time_method(rec, hist, hl, batch_size: int, repeats: int = 2) -> tuple[float, float, float]:
    """(seconds per recommendation, peak allocated GPU memory in GiB) over all rows, after one warm-up batch (which
    captures a graphed recommender), and the peak reserved GPU memory in GiB from the warm-up batch on (NaN on CPU)."""
    dev = hist.device
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rec.recommend(hist[:batch_size], hl[:batch_size])
    held = float("nan")
    if cuda:
        torch.cuda.synchronize()
        held = torch.cuda.max_memory_reserved() / 2**30  # the capture's peak (one reset clears both peaks)
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(repeats):
        for s in range(0, len(hl), batch_size):
            rec.recommend(hist[s:s + batch_size], hl[s:s + batch_size])
    if cuda:
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t) / (repeats * len(hl))
    mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    if cuda:
        held = max(held, torch.cuda.max_memory_reserved() / 2**30)
    return sec, mem, held


def plot(json_path: str, png: str) -> None:
    """Time per recommendation and peak GPU memory vs catalog size (log-log), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = json.loads(Path(json_path).read_text())
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for m in dict.fromkeys(p["method"] for p in d["points"]):
        pts = sorted((p for p in d["points"] if p["method"] == m), key=lambda p: p["n_items"])
        n = [p["n_items"] for p in pts]
        style = "o--" if "ranges" in m else "o-"  # the forced drafting settings, beside the default (auto)
        a1.plot(n, [1e3 * p["seconds_per_rec"] for p in pts], style, label=m)
        a2.plot(n, [p["peak_gpu_gib"] for p in pts], style, label=m)
    a1.set(xscale="log", yscale="log", xlabel="catalog size (items)", ylabel="ms per recommendation",
           title=f"batch {d['batch_size']}, {d['gpu']}")
    a2.set(xscale="log", xlabel="catalog size (items)", ylabel="peak GPU memory (GiB)")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plot", default=None, help="draw a results JSON of this script instead of measuring")
    ap.add_argument("--png", default="docs/catalog_size.png")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--draft-ranges", nargs="+", default=["auto"], choices=list(DRAFT_RANGES),
                    help="SpecGR's guided drafting, one run per value: item ranges (on), catalog scan (off), by cost "
                         "(auto); methods other than auto are named with the value")
    ap.add_argument("--cuda-graph", action="store_true", help="replay each batch of the SpecGR loops and the "
                    "constrained beam search as one CUDA graph (GraphedRecommender; the unconstrained beam runs eager)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.plot:
        plot(a.plot, a.png)
        return 0
    dev = torch.device(a.device)
    if a.cuda_graph and dev.type != "cuda":
        ap.error("--cuda-graph needs --device cuda")
    cfg = SpecGRConfig(draft_size=50, num_beams=30, threshold=-1.4, top_k=50)
    out = {"gpu": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "config": cfg.to_dict(),
           "rows": a.rows, "batch_size": a.batch_size, "cuda_graph": a.cuda_graph,
           "command": "python benchmarks/bench_catalog_size.py " + " ".join(sys.argv[1:]), "points": []}
    graphed = (lambda rec: GraphedRecommender(rec, a.batch_size)) if a.cuda_graph else (lambda rec: rec)
    for n in a.sizes:
        g = torch.Generator().manual_seed(0)
        sids = SemanticIDs.from_codes(torch.randint(0, 144, (n, 3), generator=g), int(0.93 * n), 144,
                                      on_overflow="grow").to(dev)
        torch.manual_seed(0)
        model = TIGER(tiger_preset("games"), sids.vocab_size).to(dev).eval()
        hl = torch.randint(1, 21, (a.rows,), generator=g).to(dev)
        hist = torch.randint(0, n, (a.rows, 20), generator=g).to(dev)
        hist[torch.arange(20, device=dev)[None] >= hl[:, None]] = -1
        encoder = EncoderDrafter(model, Projection(model.cfg.d_model, 64).to(dev).eval(), sids, device=dev,
                                 backend="torch")
        text = RandomTextDrafter(n, 300, dev)
        methods = {}
        for mode in a.draft_ranges:
            c, tag = cfg.replace(draft_ranges=DRAFT_RANGES[mode]), "" if mode == "auto" else f" ranges {mode}"
            methods[f"specgr++{tag}"] = graphed(SpecGR(model, encoder, sids, c, dev))
            methods[f"specgr_aux{tag}"] = graphed(SpecGR(model, text, sids, c, dev))
        methods["tiger_beam"] = graphed(TigerOnly(model, sids, num_beams=50, device=dev))
        methods["tiger_unconstrained"] = Unconstrained(model, sids, dev)
        for name in list(methods):
            rec = methods.pop(name)  # released after its run: a graph's pool must not count in the next method
            sec, mem, held = time_method(rec, hist, hl, a.batch_size)
            del rec
            gc.collect()
            out["points"].append({"n_items": n, "method": name, "seconds_per_rec": sec, "recs_per_s": 1 / sec,
                                  "peak_gpu_gib": mem, "held_gpu_gib": held})
            print(f"N={n:>8} {name:<20} {1e3 * sec:8.4f} ms/rec {1 / sec:10.0f} recs/s {mem:6.2f} GiB "
                  f"(held {held:6.2f})", flush=True)
        del methods, model, sids, encoder, text
    if a.json:
        write_json(out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
