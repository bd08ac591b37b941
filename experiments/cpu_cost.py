"""Where one SpecGR++ recommendation's CPU time goes: decoder calls, decoder positions, and a compiled decoder.

    python experiments/cpu_cost.py --checkpoint checkpoints/amazon2018-game --json results/speed/cpu_cost.json

One torch thread, one user per call (the app's case), δ50 β30 γ−1.4 K50. Measures:
- `decoder_call_ms`: one decoder pass (`TIGER.decoder_token_logprobs` on a cached prefix, the verifier's call) of
  R sequences x L positions for one user, median ms, and a least-squares line through them: a fixed cost per call
  plus a cost per decoder position;
- `calls_per_rec`: decoder passes per recommendation (SpecGR++ and TIGER's beam search), counted on `TIGER._decode`;
- `latency_ms`: median latency of SpecGR++ and TIGER beam over --users test users, eager; then SpecGR++ again after
  `TIGER.compile_decoder()` (torch.compile on the CPU, which needs a C++ compiler), with the seconds its first
  --users recommendations took (compilation included) and whether its lists equal the eager ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from specgr.bundle import Bundle
from specgr.evaluate import write_json
from specgr.speculate import SpecGR, SpecGRConfig, TigerOnly, steps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_speculate import latency  # noqa: E402  (the issue-15 benchmark's one-user latency)


def median_ms(fn, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(1e3 * (time.perf_counter() - t))
    return statistics.median(ts)


def decoder_call_ms(model, state, shapes, n: int = 100) -> dict:
    """{(R, L): median ms} of one cached decoder pass, and the line ms = fixed + per_position * R * L."""
    cfg = model.cfg
    out = {}
    for R, L in shapes:
        tok = torch.randint(3, model.vocab_size, (1, R, L))
        past = [(torch.randn(R, cfg.n_heads, 1, cfg.d_kv), torch.randn(R, cfg.n_heads, 1, cfg.d_kv))
                for _ in range(cfg.n_layers)]
        call = lambda: model.decoder_token_logprobs(state, None, tok, tok, past=past)  # noqa: E731
        for _ in range(5):
            call()
        out[f"{R}x{L}"] = median_ms(call, n)
    pos = np.array([R * L for R, L in shapes], dtype=float)
    ms = np.array(list(out.values()))
    slope, fixed = np.polyfit(pos, ms, 1)
    return {"median_ms": out, "fixed_ms_per_call": float(fixed), "ms_per_position": float(slope)}


def count_calls(model, fn) -> int:
    """Decoder passes (`TIGER._decode`) that fn() makes."""
    real, n = model._decode, [0]

    def counted(*a, **k):
        n[0] += 1
        return real(*a, **k)

    model._decode = counted
    try:
        fn()
    finally:
        del model._decode  # back to the class's method
    return n[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/amazon2018-game")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled decoder")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    b = Bundle.load(a.checkpoint, data_root=a.data_root, device=cpu)
    rows = b.ds.rows("test")
    model = b.verifier("encoder")
    rec = SpecGR(model, b.drafter("encoder"), b.sids, SpecGRConfig(), cpu)
    beam = TigerOnly(model, b.sids, num_beams=50, device=cpu)
    one = [(rows.history[i:i + 1], rows.hist_len[i:i + 1]) for i in range(a.users)]
    n = min(a.users, len(rows.hist_len))
    out = {"checkpoint": a.checkpoint, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": 1, "users": a.users, "config": rec.cfg.to_dict()}

    with torch.inference_mode():
        _, _, state = steps.encode(model, b.sids, torch.as_tensor(one[0][0]).long(), torch.as_tensor(one[0][1]).long())
        out["decoder_call"] = decoder_call_ms(model, state, [(1, 1), (10, 1), (30, 1), (50, 1), (50, 2), (50, 3),
                                                             (100, 1), (100, 3)])
    out["calls_per_rec"] = {
        "specgr": float(np.mean([count_calls(model, lambda u=u: rec.recommend(*u)) for u in one])),
        "tiger_beam": float(np.mean([count_calls(model, lambda u=u: beam.recommend(*u)) for u in one]))}

    def median_latency(r) -> float:
        r.recommend(*one[0])  # warm-up, as bench_speculate.py does
        return latency(r, rows, n, rec.cfg.top_k)["median_ms"]

    out["latency_ms"] = {"specgr": median_latency(rec), "tiger_beam": median_latency(beam)}
    if not a.no_compile:
        eager = torch.cat([rec.recommend(*u).items for u in one])
        model.compile_decoder()
        t = time.perf_counter()
        compiled = torch.cat([rec.recommend(*u).items for u in one])
        out["compiled"] = {"first_users_s": time.perf_counter() - t, "specgr_ms": median_latency(rec),
                           "same_lists": float((eager == compiled).all(1).float().mean())}
    print(json.dumps(out, indent=2))
    if a.json:
        write_json(out, a.json)
    return out


if __name__ == "__main__":
    main()
