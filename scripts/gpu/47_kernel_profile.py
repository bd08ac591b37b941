"""Release 21 (1 GPU): where a SpecGR batch's GPU time goes, kernel by kernel, beside TIGER's beam search.
Release 23: `ranges`, the GPU time per SpecGR phase, counts each kernel once (`bench_speculate.range_gpu_ms`).

Issue 15's setting (the shipped checkpoint, the first Games test rows, batches of 1,024, δ50 β30 γ -1.4 K50, the
encoder drafter), decoder and encoder compiled, static shapes, not graphed (a graph replays the same kernels; the
profiler sees each one only outside a graph). torch.profiler over 2 batches of each method after 2 warm-up batches.

    python3 scripts/gpu/47_kernel_profile.py OUT_DIR     # OUT_DIR/kernel_profile.json and kernel_profile.txt

RELU_EPILOGUE=0 in the environment turns off TIGER.relu_epilogue (on by default since release 25; release 24, call 2
set RELU_EPILOGUE=1 to turn it on).
"""

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torch.profiler as tp

from specgr.bundle import Bundle
from specgr.speculate import SpecGR, SpecGRConfig, TigerOnly
from specgr.speculate.batched import sync

sys.path.insert(0, "benchmarks")
from bench_speculate import range_gpu_ms  # noqa: E402  (the one attribution of kernels to ranges)

B, N_BATCHES = 1024, 2
# kernel name fragments -> a kind of work (first match wins; the rest is "other"). Inductor's kernels come first:
# their names list the ops they fused ("..._to_copy_..."), and attention before matmul: the fused attention kernel is
# "fmha_cutlassF...". Release 21's two result files were written before this order, so their `by_kind` files such
# kernels under "copy / cat", "gather / index" or "matmul"; `top_kernels` is exact.
KINDS = (("triton_red", "fused reduction"), ("triton_per", "fused reduction"), ("triton_poi", "fused pointwise"),
         ("fmha", "attention"), ("attention", "attention"), ("gemm", "matmul"), ("nvjet", "matmul"),
         ("xmma", "matmul"), ("cutlass", "matmul"), ("topk", "top-k / sort"), ("sort", "top-k / sort"),
         ("radix", "top-k / sort"),
         ("index", "gather / index"), ("gather", "gather / index"), ("scatter", "gather / index"),
         ("cat", "copy / cat"), ("copy", "copy / cat"), ("fill", "fill"), ("reduce", "reduction"),
         ("softmax", "reduction"), ("elementwise", "pointwise"), ("scan", "cumsum / scan"))


def kind(name: str) -> str:
    low = name.lower()
    return next((k for frag, k in KINDS if frag in low), "other")


def profile(rec, rows, k):
    """GPU time per kernel and per record_function range over N_BATCHES batches of B rows, ms per batch."""
    for i in range(2):  # warm-up: compilation, lazy tables
        rec.recommend(rows.history[i * B:(i + 1) * B], rows.hist_len[i * B:(i + 1) * B], k=k)
    sync(rec.device)
    with tp.profile(activities=[tp.ProfilerActivity.CPU, tp.ProfilerActivity.CUDA]) as prof:
        for i in range(2, 2 + N_BATCHES):
            rec.recommend(rows.history[i * B:(i + 1) * B], rows.hist_len[i * B:(i + 1) * B], k=k)
        sync(rec.device)
    kernels, by_kind = {}, defaultdict(float)
    for e in prof.key_averages():
        ms = e.self_device_time_total / N_BATCHES / 1e3
        if ms > 0 and e.device_type == torch.autograd.DeviceType.CUDA and not e.key.startswith("specgr."):
            kernels[e.key] = {"ms": ms, "calls": e.count / N_BATCHES}
            by_kind[kind(e.key)] += ms
    top = dict(sorted(kernels.items(), key=lambda kv: -kv[1]["ms"])[:40])
    total = sum(v["ms"] for v in kernels.values())
    return {"gpu_ms_per_batch": total, "by_kind_ms": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "ranges": range_gpu_ms(prof, N_BATCHES), "top_kernels": top,
            "n_kernel_launches": sum(v["calls"] for v in kernels.values())}


@torch.inference_mode()
def main(out_dir):
    b = Bundle.load("checkpoints/amazon2018-game", data_root="devdata/processed", device="cuda")
    rows = b.ds.rows("test")
    model, drafter, sids = b.verifier("encoder"), b.drafter("encoder"), b.sids
    model.relu_epilogue = os.environ.get("RELU_EPILOGUE", "1") == "1"
    model.compile_decoder()
    model.compile_encoder()
    cfg = SpecGRConfig(draft_size=50, num_beams=30, threshold=-1.4, top_k=50, compact=False)
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch_size": B, "batches": N_BATCHES,
           "setting": "shipped checkpoint, Games test rows 2048..4095, δ50 β30 γ-1.4 K50, encoder drafter, "
                      "compiled decoder and encoder, static shapes, not graphed",
           "relu_epilogue": model.relu_epilogue,
           "specgr": profile(SpecGR(model, drafter, sids, cfg, "cuda"), rows, 50),
           "tiger_beam": profile(TigerOnly(model, sids, num_beams=50, device="cuda"), rows, 50)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, "kernel_profile.json").write_text(json.dumps(out, indent=1))
    for m in ("specgr", "tiger_beam"):
        p = out[m]
        print(f"== {m}: {p['gpu_ms_per_batch']:.2f} GPU ms per batch, {p['n_kernel_launches']:.0f} kernels")
        print("   by kind:", {k: round(v, 2) for k, v in p["by_kind_ms"].items()})
        print("   ranges:", {k: round(v["gpu_ms"], 2) for k, v in p["ranges"].items()})
        for name, v in list(p["top_kernels"].items())[:25]:
            print(f"   {v['ms']:7.3f} ms {v['calls']:6.0f}x  {name[:110]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "devresults/kernel_profile")
