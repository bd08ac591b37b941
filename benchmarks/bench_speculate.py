"""Throughput of SpecGR inference: batched vs the one-user reference vs TIGER constrained beam search, same rows.

    python benchmarks/bench_speculate.py --random-model --preset games --rows 512 --device cpu --json out.json
    python benchmarks/bench_speculate.py --random-model --rows 20000 --device cuda --batch-size 1024
    python benchmarks/bench_speculate.py --checkpoint runs/games/specgr_pp --rows 5000 --device cuda
    python benchmarks/bench_speculate.py --checkpoint runs/games/specgr_pp --rows 5000 --device cuda --cuda-graph

Reports recommendations/s for each method (with CUDA synchronisation), the batched/reference speed-up on the rows
both ran, and the CPU latency of a single recommendation (batch of one, history of 20, median over --latency-users).

A random model (--random-model) needs no training: games-size catalog (16.9k items, C=144) and TIGER preset, the
SpecGR++ encoder drafter with a random projection. A random verifier accepts nothing at the paper's γ (its V is about
-log(vocab)), which is the worst case (4 rounds + fill-up for every user); --accept-rate p instead sets γ to the
(1-p)-quantile of the round-1 verification scores, to mimic a trained model (paper: ~44% at γ=-1.4 for SpecGR++).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from specgr.drafters.encoder import EncoderDrafter, Projection
from specgr.evaluate import write_json
from specgr.metrics import topk_metrics
from specgr.models.tiger import TIGER, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs
from specgr.speculate import GraphedRecommender, ReferenceSpecGR, SpecGR, SpecGRConfig, TigerOnly
from specgr.batching import length_batches
from specgr.speculate.batched import sync
from specgr.speculate.config import DRAFT_RANGES
from specgr.utils import resolve_device


class _Rows:
    def __init__(self, history, hist_len, target=None):
        self.history, self.hist_len, self.target = history, hist_len, target


def random_setup(args, device):
    """Random TIGER + random SIDs + SpecGR++ encoder drafter with a random projection."""
    g = torch.Generator().manual_seed(args.seed)
    n_in = int(args.n_items * args.in_sample_frac)
    codes3 = torch.randint(0, args.codebook, (args.n_items, 3), generator=g)
    sids = SemanticIDs.from_codes(codes3, n_in, args.codebook, on_overflow="grow")
    torch.manual_seed(args.seed)
    model = TIGER(tiger_preset(args.preset), sids.vocab_size).to(device).eval()
    proj = Projection(model.cfg.d_model, args.proj_dim).to(device).eval()
    drafter = EncoderDrafter(model, proj, sids, device=device, backend="torch")
    return model, drafter, sids


def checkpoint_setup(args, device):  # pragma: no cover - needs trained artifacts
    """A trained bundle (specgr.bundle): its verifier and drafter for --drafter, and the real --split rows."""
    from specgr.bundle import Bundle

    b = Bundle.load(args.checkpoint, data_root=args.data_root, device=device)
    args._rows = b.ds.rows(args.split)
    return b.verifier(args.drafter), b.drafter(args.drafter), b.sids


def random_rows(n, n_items, H, seed):
    rng = np.random.default_rng(seed + 1)
    return _Rows(rng.integers(0, n_items, (n, H)), np.full(n, H, dtype=np.int64))


def calibrate_gamma(model, drafter, sids, cfg, rows, device, p):
    """γ such that a fraction p of round-1 drafts is accepted (on up to 256 rows)."""
    rec = SpecGR(model, drafter, sids, cfg.replace(max_rounds=1, threshold=float("inf")), device)
    res = rec.recommend(rows.history[:256], rows.hist_len[:256], trace=True)
    v = np.concatenate([t.rounds[0].verify_scores for t in res.traces])
    return float(np.quantile(v, 1 - p))


def reserved_gib(device) -> float:
    """GPU memory the process keeps reserved, GiB, after releasing unused cached blocks (a CUDA graph's pool stays
    reserved while the graph lives); 0 on the CPU."""
    if device.type != "cuda":
        return 0.0
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    return torch.cuda.memory_reserved(device) / 2**30


def warm_up_batches(hist: np.ndarray, hl: np.ndarray, batch_size: int, by_length: bool) -> list[tuple]:
    """One batch (history (b, w), hist_len (b,)) per history width w the timed run will use: with --cuda-graph each
    width is a capture, which must happen before the timing starts."""
    first = {}
    for idx, w in length_batches(hl, hist.shape[1], batch_size, by_length):
        first.setdefault(w, idx)
    return [(hist[idx, :w], hl[idx]) for w, idx in first.items()]


def timed(rec, rows, batch_size, k, by_length=False):
    if hasattr(rec, "rounds_replayed"):
        rec.rounds_replayed.clear()  # count this run's batches only, not the warm-up's
        rec.round_rows.clear()
    res = rec.recommend_rows(rows, batch_size=batch_size, k=k, progress=False, by_length=by_length)
    out = {"recs_per_s": res.timing["recs_per_s"], "seconds": res.timing["seconds"], "rows": res.timing["n_rows"]}
    replayed = getattr(rec, "rounds_replayed", None)
    if replayed:  # a graphed SpecGR with early exit: the mean rounds its batches replayed (cleared before this run)
        batches = sum(replayed.values())
        out["batch_rounds_replayed"] = sum(r * n for r, n in replayed.items()) / batches
        # with shrinking, rounds run on fewer rows: the rounds replayed, weighted by the share of the batch they ran on
        out["batch_row_rounds"] = sum(size * n for (_, size), n in rec.round_rows.items()) / (batches * rec.batch_size)
    if res.n_drafted.sum() > 0:
        out.update(acceptance_rate=res.acceptance_rate, mean_rounds=float(res.n_rounds.float().mean()),
                   frac_early_exit=float((res.n_accepted >= k).float().mean()),
                   new_items_per_list=float((res.items >= rec.sids.n_in_sample).sum(1).float().mean()))
    return out, res


def agreement(ref_items: torch.Tensor, items: torch.Tensor, name: str = "reference") -> dict:
    """ref_items, items (n, K) -> {name_agreement: the fraction of rows whose lists are identical (bf16 may flip
    near-ties), name_agreement_first_64 and _256 (n > 64, n > 256: the samples of the measurements before releases
    8 and 27), name_differing_rows: which rows differ (do two runs flip the same near-ties?), name_same_sets: the
    fraction of rows whose lists hold the same items in any order, name_overlap: the mean share of a reference list's
    items that the other list holds}."""
    same = (ref_items == items).all(1).float()
    out = {f"{name}_agreement": same.mean().item()}
    for n in (64, 256):  # the samples of the measurements before release 8 and before release 27
        if len(same) > n:
            out[f"{name}_agreement_first_{n}"] = same[:n].mean().item()
    out[f"{name}_differing_rows"] = torch.nonzero(same == 0).flatten().tolist()
    out[f"{name}_same_sets"] = (ref_items.sort(1).values == items.sort(1).values).all(1).float().mean().item()
    out[f"{name}_overlap"] = (ref_items[:, :, None] == items[:, None, :]).any(2).float().mean().item()
    return out


def range_gpu_ms(prof, n: int, prefix: str = "specgr.") -> dict:
    """A finished torch.profiler run over n batches -> {range name: {"gpu_ms", "calls"} per batch}: the GPU time of
    the kernels launched inside each record_function range named prefix..., each kernel counted once, in its
    innermost such range, and "(outside)" for the kernels launched outside them.

    Not `key_averages()`' device time of a range: it lists each range twice, as the CPU range (its kernels' time) and
    as the range's GPU-side annotation (a span from its first kernel to its last), and the earlier code kept the
    annotation's, whose ranges summed to up to 3x the batch."""
    out = {}

    def walk(e, owner):
        if e.name.startswith(prefix):
            owner = e.name
            out.setdefault(owner, {"gpu_ms": 0.0, "calls": 0})["calls"] += 1
        kernel_us = sum(k.duration for k in e.kernels)
        if kernel_us:
            out.setdefault(owner or "(outside)", {"gpu_ms": 0.0, "calls": 0})["gpu_ms"] += kernel_us
        for c in e.cpu_children:
            walk(c, owner)

    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CPU and e.cpu_parent is None:
            walk(e, None)
    return {k: {"gpu_ms": v["gpu_ms"] / n / 1e3, "calls": v["calls"] / n} for k, v in out.items()}


def profile_phases(rec, rows, batch_size, k, out_dir):
    """torch.profiler over 3 batches of `rec.recommend`: host and GPU time per SpecGR phase (the record_function
    ranges of specgr.speculate.batched), per batch, in ms."""
    import torch.profiler as tp

    acts = [tp.ProfilerActivity.CPU] + ([tp.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    n = 3
    with tp.profile(activities=acts) as prof:
        for i in range(n):
            s = i * batch_size
            rec.recommend(rows.history[s:s + batch_size], rows.hist_len[s:s + batch_size], k=k)
        sync(rec.device)
    ka = prof.key_averages()
    gpu = range_gpu_ms(prof, n)
    phases = {e.key: {"host_ms": e.cpu_time_total / n / 1e3, "gpu_ms": gpu.get(e.key, {}).get("gpu_ms", 0.0),
                      "calls_per_batch": e.count / n} for e in ka if e.key.startswith("specgr.")}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, "profile_speculate.txt").write_text(
        ka.table(sort_by="cpu_time_total", row_limit=40) + "\n" + ka.table(sort_by="self_device_time_total", row_limit=25))
    return phases


def latency(rec, rows, n, k):
    """Median / p90 wall time of one recommendation (batch of one) over n users, ms."""
    ts = []
    for i in range(n):
        sync(rec.device)
        t0 = time.perf_counter()
        rec.recommend(rows.history[i:i + 1], rows.hist_len[i:i + 1], k=k)
        sync(rec.device)
        ts.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(ts), "p90_ms": float(np.quantile(ts, 0.9)), "users": n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a trained SpecGR checkpoint directory")
    src.add_argument("--random-model", action="store_true", help="random weights, no training needed")
    ap.add_argument("--preset", default="games", help="TIGER size preset for --random-model")
    ap.add_argument("--drafter", default="encoder", choices=["encoder", "aux", "knn"], help="with --checkpoint")
    ap.add_argument("--split", default="test", help="rows of the checkpoint's dataset (with --checkpoint)")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--n-items", type=int, default=16_900)
    ap.add_argument("--in-sample-frac", type=float, default=0.93)
    ap.add_argument("--codebook", type=int, default=144)
    ap.add_argument("--proj-dim", type=int, default=64)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--ref-rows", type=int, default=256, help="rows for the (slow) reference; <= --rows (64 before "
                    "release 8: one list of 64 moves the agreement by 0.016); 0: no reference, no agreement "
                    "(a speed comparison only)")
    ap.add_argument("--eager-reference", action=argparse.BooleanOptionalAction, default=True,
                    help="with --compile or --compile-encoder: the reference again, not compiled, on the same rows "
                    "(what compilation changes; 11 rows/s on an H100)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--delta", type=int, default=50)
    ap.add_argument("--beta", type=int, default=30)
    ap.add_argument("--gamma", type=float, default=-1.4)
    ap.add_argument("--accept-rate", type=float, default=None, help="calibrate γ to this round-1 acceptance rate")
    ap.add_argument("-K", "--top-k", type=int, default=50)
    ap.add_argument("--vnew", action="store_true", help="official v-new flags")
    ap.add_argument("--static", action="store_true", help="SpecGRConfig(compact=False): no active-set compaction, "
                    "no host sync inside the loop (the default on CUDA)")
    ap.add_argument("--compact", action="store_true", help="SpecGRConfig(compact=True): compact the active set each "
                    "round (the default on CPU)")
    ap.add_argument("--fp32", action="store_true", help="model calls in fp32 on CUDA (no bf16 autocast): fewer "
                    "near-tie flips against the reference")
    ap.add_argument("--cuda-graph", action="store_true", help="replay the batched loop and the beam search each as "
                    "one CUDA graph per batch (GraphedRecommender; static shapes, fixed --batch-size)")
    ap.add_argument("--graph-no-exit", action="store_true", help="with --cuda-graph: the batched loop as one graph "
                    "that runs every round (before release 19), instead of a graph per phase that stops a batch "
                    "once all its users are done (GraphedRecommender(early_exit=False))")
    ap.add_argument("--graph-no-shrink", action="store_true", help="with --cuda-graph and early exit: every round on "
                    "the whole batch (release 19), not on fewer rows once its live users fit them "
                    "(GraphedRecommender(shrink=False))")
    ap.add_argument("--phase-times", action="store_true", help="with --cuda-graph: after the timed run, one more pass "
                    "that times each graph phase with CUDA events (GraphedRecommender.phase_ms): ms per batch")
    ap.add_argument("--compile-encoder", action="store_true", help="torch.compile the encoder pass too "
                    "(TIGER.compile_encoder), for every method of the run")
    ap.add_argument("--compile", action="store_true", help="torch.compile the decoder pass (TIGER.compile_decoder) "
                    "for every method of the run: it is one model, shared")
    ap.add_argument("--fp32-accumulate", action="store_true", help="bf16 matmuls reduce in fp32 only (torch's "
                    "allow_bf16_reduced_precision_reduction off): split-K partial sums are not rounded to bf16, so "
                    "results depend less on batch shape")
    ap.add_argument("--tf32", action="store_true", help="fp32 matmuls on TF32 tensor cores (torch's float32 matmul "
                    "precision 'high'); with --fp32 it lowered the agreement with the reference (0.53-0.63 on an "
                    "H100, docs/RESULTS.md §4): cuBLAS runs some shapes in TF32 and others in full fp32")
    ap.add_argument("--fp32-linear", action="store_true", help="TIGER.fp32_linear: linear layers take bf16 inputs "
                    "and return fp32 (no bf16 rounding of their outputs, which depends on the batch shape's kernel)")
    ap.add_argument("--relu-epilogue", action=argparse.BooleanOptionalAction, default=None,
                    help="TIGER.relu_epilogue: the feed-forward's ReLU in its first GEMM's epilogue, not a kernel of "
                    "its own (CUDA); default: the model's (on since release 25)")
    ap.add_argument("--cudnn-cross-attention", action=argparse.BooleanOptionalAction, default=None,
                    help="TIGER.cudnn_cross_attention: decoding's cross-attention in cuDNN's kernel, not the "
                    "memory-efficient one (CUDA); default: the model's")
    ap.add_argument("--by-length", action="store_true", help="both methods batch rows of similar history lengths "
                    "and cut each batch's padding (recommend_rows(by_length=True)); the reference runs as always")
    ap.add_argument("--draft-ranges", default="auto", choices=list(DRAFT_RANGES),
                    help="guided rounds draft from the prefixes' item ranges (on), a catalog scan (off), or by cost "
                         "(auto: SpecGRConfig.draft_ranges=None)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--latency-users", type=int, default=20, help="CPU single-recommendation latency (0 = skip)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--profile-dir", default=None, help="torch.profiler: time per phase of one batched batch")
    args = ap.parse_args(argv)
    if args.static and args.compact:
        ap.error("--static and --compact exclude each other (neither: static on CUDA, compacting on CPU)")
    if args.cuda_graph and args.compact:
        ap.error("--cuda-graph needs static shapes: drop --compact")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = not args.fp32_accumulate  # set per run
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    device = resolve_device(args.device)
    model, drafter, sids = (random_setup if args.random_model else checkpoint_setup)(args, device)
    if args.random_model:
        rows = random_rows(args.rows, sids.n_items, 20, args.seed)
    else:  # the first --rows rows of the real split
        real = args._rows
        rows = _Rows(real.history[:args.rows], real.hist_len[:args.rows], real.target[:args.rows])
    mk = SpecGRConfig.official_vnew if args.vnew else SpecGRConfig
    cfg = mk(draft_size=args.delta, num_beams=args.beta, threshold=args.gamma, top_k=args.top_k,
             compact=False if args.static else (True if args.compact else None), autocast=not args.fp32,
             draft_ranges=DRAFT_RANGES[args.draft_ranges])
    if args.accept_rate is not None:
        cfg = cfg.replace(threshold=calibrate_gamma(model, drafter, sids, cfg, rows, device, args.accept_rate))
    K = args.top_k
    out = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "n_items": sids.n_items, "n_in_sample": sids.n_in_sample,
           "model": "random" if args.random_model else args.checkpoint, "preset": args.preset,
           "drafter": args.drafter, "rows": "random" if args.random_model else f"{args.split}[:{args.rows}]",
           "batch_size": args.batch_size, "config": cfg.to_dict(), "compacts": cfg.compacts(device),
           "cuda_graph": args.cuda_graph, "graph_early_exit": args.cuda_graph and not args.graph_no_exit,
           "graph_shrink": args.cuda_graph and not args.graph_no_exit and not args.graph_no_shrink,
           "compile": args.compile, "compile_encoder": args.compile_encoder, "fp32_accumulate": args.fp32_accumulate,
           "tf32": args.tf32, "fp32_linear": args.fp32_linear, "by_length": args.by_length}

    model.fp32_linear = args.fp32_linear
    for switch in ("relu_epilogue", "cudnn_cross_attention"):  # the model's default unless named; recorded as run
        if getattr(args, switch) is not None:
            setattr(model, switch, getattr(args, switch))
        out[switch] = getattr(model, switch)
    if args.compile:
        model.compile_decoder()
    if args.compile_encoder:
        model.compile_encoder()
    bat = SpecGR(model, drafter, sids, cfg, device)
    ref = ReferenceSpecGR(model, drafter, sids, cfg, device)
    tig = TigerOnly(model, sids, num_beams=K, device=device, autocast=not args.fp32)
    if args.profile_dir:  # eager only: a graph replay has no per-phase ranges
        bat.recommend(rows.history[:8], rows.hist_len[:8], k=K)
        out["profile"] = profile_phases(bat, rows, args.batch_size, K, args.profile_dir)
    if args.cuda_graph:  # both methods alike, so that the same-run comparison stays fair
        bat = GraphedRecommender(bat, args.batch_size, early_exit=not args.graph_no_exit,
                                 shrink=not args.graph_no_shrink)
        tig = GraphedRecommender(tig, args.batch_size)
    # warm-up (allocator, kernels, lazy tables; with --cuda-graph: the capture, outside the timing)
    held = {}
    hist, hl = np.asarray(rows.history), np.asarray(rows.hist_len)
    for key, rec in (("batched", bat), ("tiger_beam", tig)):
        before = reserved_gib(device)
        for h, n in warm_up_batches(hist, hl, args.batch_size, args.by_length):
            rec.recommend(h, n, k=K)
        held[key] = reserved_gib(device) - before  # with --cuda-graph: what the captured graphs keep reserved
    out["batched"], res_b = timed(bat, rows, args.batch_size, K, args.by_length)
    out["tiger_beam"], res_t = timed(tig, rows, args.batch_size, K, args.by_length)
    if device.type == "cuda":
        for key in held:
            out[key]["held_gib_after_warmup"] = held[key]
    if args.phase_times and isinstance(bat, GraphedRecommender):  # an untimed pass: each phase waited for
        bat.phase_ms = Counter()
        res = bat.recommend_rows(rows, progress=False, k=K, by_length=args.by_length)
        batches = -(-len(res.items) // args.batch_size)
        out["batched"]["phase_ms_per_batch"] = {name: ms / batches for name, ms in sorted(bat.phase_ms.items())}
        bat.phase_ms = None
    if getattr(rows, "target", None) is not None:  # real rows: the lists' quality beside their speed
        for key, res in (("batched", res_b), ("tiger_beam", res_t)):
            m = topk_metrics(res.items.numpy(), rows.target, ks=(K,))
            out[key].update({name: float(v.mean()) for name, v in m.items()})
    nr = min(args.ref_rows, args.rows)
    if nr and args.json:  # the timed runs are kept if the slow reference meets a time limit (release 27's call 6)
        write_json(out, args.json)
    ref_rows = _Rows(rows.history[:nr], rows.hist_len[:nr])
    if nr:
        out["reference"], res_r = timed(ref, ref_rows, 1, K)
        out["speedup_vs_reference"] = out["batched"]["recs_per_s"] / out["reference"]["recs_per_s"]
        out.update(agreement(res_r.items, res_b.items[:nr]))
    if nr and args.eager_reference and (args.compile or args.compile_encoder):
        # the reference again, not compiled: what compilation changes
        with torch.compiler.set_stance("force_eager"):
            out["reference_eager"], res_e = timed(ref, ref_rows, 1, K)
        out.update(agreement(res_e.items, res_b.items[:nr], "reference_eager"))

    if args.latency_users:
        cpu = torch.device("cpu")
        if device.type != "cpu":  # latency is a CPU number: separate CPU copies
            model_c, drafter_c, sids_c = random_setup(args, cpu) if args.random_model else checkpoint_setup(args, cpu)
        else:
            model_c, drafter_c, sids_c = model, drafter, sids
        lb = SpecGR(model_c, drafter_c, sids_c, cfg, cpu)
        lt = TigerOnly(model_c, sids_c, num_beams=K, device=cpu)
        n = min(args.latency_users, args.rows)
        lb.recommend(rows.history[:1], rows.hist_len[:1])
        out["cpu_latency"] = {"specgr": latency(lb, rows, n, K), "tiger_beam": latency(lt, rows, n, K)}

    print(json.dumps(out, indent=2))
    if args.json:
        write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
