"""Release 24 (1 GPU): two pieces of a decoder pass at the shapes of issue 15's batch, timed alone.

1. The feed-forward (d 128 -> d_ff 1024 -> ReLU -> 128, bf16 autocast, compiled as `TIGER.compile_decoder` runs it),
   with the ReLU as its own kernel and in the first GEMM's epilogue (`TIGER.relu_epilogue`), for the row counts of a
   verify call (1,024 users x δ 50 drafts x 3, 2 or 1 inputs) and of a beam step (1,024 x 30 or 50 beams).
2. The cross-attention of those passes (1,024 users, 6 heads, d_kv 64, 82 encoder states, an additive padding
   mask) under each SDPA backend that accepts a mask, against the same maths in fp32.

A random model of the shipped checkpoint's size (`tiger` preset, 6 layers, the Games vocabulary): times depend on
shapes only.

    python3 scripts/gpu/51_ff_attention_micro.py OUT.json
"""

import dataclasses
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from specgr.models.tiger import TIGER, tiger_preset

USERS, HEADS, D_KV, T = 1024, 6, 64, 82
FF_ROWS = {"verify round 1 (50 x 3)": USERS * 150, "verify round 2 (50 x 2)": USERS * 100,
           "verify round 3 (50 x 1)": USERS * 50, "beam step, width 50": USERS * 50,
           "beam step, width 30": USERS * 30}
QUERIES = {"verify round 1": 150, "verify round 2": 100, "verify round 3 / width-50 step": 50, "width-30 step": 30}
BACKENDS = {"efficient (today)": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "math": SDPBackend.MATH}


def gpu_ms(fn, reps: int = 20) -> float:
    """Median GPU ms of fn() over reps calls, after 3 warm-up calls (compilation included there)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def feed_forward(m: TIGER) -> dict:
    ff = m.t5.decoder.block[0].layer[2].DenseReluDense
    f = torch.compile(lambda x: m._ff(ff, x), dynamic=True)
    out = {}
    for name, n in FF_ROWS.items():
        x = torch.randn(n, m.cfg.d_model, device="cuda")
        row = {}
        for on in (False, True, False, True):  # alternating: each setting twice
            m.relu_epilogue = on
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                row.setdefault("epilogue" if on else "separate", []).append(round(gpu_ms(lambda: f(x)), 4))
        out[name] = row
        print("ff", name, row, flush=True)
    return out


def cross_attention(m: TIGER) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    k, v = (torch.randn(USERS, HEADS, T, D_KV, device="cuda", generator=g, dtype=torch.bfloat16) for _ in range(2))
    lengths = torch.randint(6, T + 1, (USERS,), device="cuda", generator=g)
    mask = torch.zeros(USERS, 1, 1, T, device="cuda").masked_fill(
        torch.arange(T, device="cuda")[None, None, None] >= lengths[:, None, None, None], float("-inf"))
    out = {}
    for name, nq in QUERIES.items():
        q = torch.randn(USERS, HEADS, nq, D_KV, device="cuda", generator=g, dtype=torch.bfloat16)
        exact = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                                  attn_mask=mask, scale=1.0)
        row = {}
        for bname, backend in BACKENDS.items():
            def run():
                with sdpa_kernel([backend]):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask.bfloat16(),
                                                                            scale=1.0)
            try:
                err = (run().float() - exact).abs().max().item()
                row[bname] = {"ms": round(gpu_ms(run), 4), "max_abs_err_vs_fp32": err}
            except RuntimeError as e:  # a backend that refuses these inputs
                row[bname] = {"error": str(e).splitlines()[0][:200]}
        out[name] = row
        print("attention", name, row, flush=True)
    return out


def main(path: str) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiger_preset("tiger"), n_layers=6)  # the amazon2018-game preset's depth
    m = TIGER(cfg, vocab_size=579).cuda().eval()
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "feed_forward_ms": feed_forward(m),
           "cross_attention_ms": cross_attention(m)}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
