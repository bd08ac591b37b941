"""Release 25 (1 GPU): is decoding's cross-attention batch-invariant under each SDPA backend?

With cuDNN's cross-attention (`TIGER.cudnn_cross_attention`) the batched loop's lists differed from the one-user
reference's on 30 of the 44 rows whose history fills the window, against 7 with the memory-efficient kernel (release
25, `51_relu_epilogue.sh` PART=7); the other rows did not move. This computes one user's cross-attention alone
(batch 1, its own T keys, no padding: what the reference runs) and inside a batch of 1,024 users padded to 82 keys
(what the batched loop runs), for full (T = 82) and shorter histories, and counts the outputs that are not bit-equal;
with contiguous inputs and with the transposed head views TIGER's decoder passes.

Shapes of issue 15's batch: 6 heads, d_kv 64, bf16, an additive padding mask, R x L queries per user.

    python3 scripts/gpu/52_attention_batch_invariance.py OUT.json
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

USERS, HEADS, D_KV, T_MAX = 1024, 6, 64, 82
QUERIES = (150, 50, 30)  # verify round 1, a width-50 step, a width-30 step
T_USER = (82, 81, 66, 41, 17)  # the window's 82 history tokens, and shorter histories
LAYOUTS = ("contiguous", "heads-transposed")
BACKENDS = {"efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def attend(backend, q, k, v, mask):
    with sdpa_kernel([backend]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)


def main(out_path: str) -> None:
    torch.manual_seed(0)
    dev, dt = torch.device("cuda"), torch.bfloat16
    rows = []
    for lq, layout in [(lq, layout) for lq in QUERIES for layout in LAYOUTS]:
        if layout == "contiguous":
            q = torch.randn(USERS, HEADS, lq, D_KV, device=dev, dtype=dt)
            k = torch.randn(USERS, HEADS, T_MAX, D_KV, device=dev, dtype=dt)
            v = torch.randn(USERS, HEADS, T_MAX, D_KV, device=dev, dtype=dt)
        else:  # as TIGER's decoder passes them: (n, L, h, d_kv) projections viewed as heads
            q = torch.randn(USERS, lq, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
            k = torch.randn(USERS, T_MAX, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
            v = torch.randn(USERS, T_MAX, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
        for t in T_USER:
            # user 0 has t history tokens (right-padded to T_MAX in the batch); the others fill the window
            mask = torch.zeros(USERS, 1, 1, T_MAX, device=dev, dtype=dt)
            mask[0, ..., t:] = float("-inf")
            # the same user in fp32 (one reference for both backends)
            exact = attend(SDPBackend.MATH, q[:1].float(), k[:1, :, :t].float(), v[:1, :, :t].float(),
                           mask[:1, ..., :t].float())[0]
            for name, backend in BACKENDS.items():
                try:
                    batch = attend(backend, q, k, v, mask)[0]
                    alone = attend(backend, q[:1], k[:1, :, :t], v[:1, :, :t], mask[:1, ..., :t])[0]
                except RuntimeError as e:  # the backend refuses a shape: TIGER's CUDNN_FIRST falls back there
                    rows.append({"queries": lq, "layout": layout, "user_keys": t, "backend": name,
                                 "error": str(e)[:200]})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                rows.append({"queries": lq, "layout": layout, "user_keys": t, "backend": name,
                             "bit_equal_frac": (batch == alone).float().mean().item(),
                             "max_abs_diff": (batch.float() - alone.float()).abs().max().item(),
                             "batch_err_vs_fp32": (batch.float() - exact).abs().max().item(),
                             "alone_err_vs_fp32": (alone.float() - exact).abs().max().item()})
                print(json.dumps(rows[-1]), flush=True)
    with open(out_path, "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
