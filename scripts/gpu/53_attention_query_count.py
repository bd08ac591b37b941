"""Release 26 (1 GPU): does one query's cross-attention output depend on how many queries share the call?

Release 25 found cuDNN's attention (`TIGER.cudnn_cross_attention`) changing the batched loop's lists on rows whose
history fills the window (82 encoder states), and ruled out batch variance (`52_attention_batch_invariance.py`, which
kept the query count fixed). The one-user reference and the batched loop do not send the same queries per user: the
reference verifies only the drafts it got (fewer than δ in late guided rounds), all of a draft's remaining digits in
one pass, while the loop verifies δ padded slots and reads a draft's first remaining digit from the beam's next step.
If a kernel picks its key tiling by the query count, a query's summation order, and so its bf16 output, changes with
it, but only where the keys span more than one tile (T > 64).

This computes one user's cross-attention with Lq queries and with only its first Lq' queries, and counts the shared
rows that are not bit-equal, per backend (the memory-efficient kernel, cuDNN's, and TIGER's priority order), for
full and shorter histories; then one user alone against the same user in a padded batch of 1,024, at 1-8 queries.
Shapes of issue 15's model: 6 heads, d_kv 64, bf16, an additive mask, the transposed head views the decoder passes.
(Found, release 26 call 2: only a lone query differs from its row in a longer block, under cuDNN, at 78 and 82 keys;
every block is batch-invariant. 53_attention_query_sweep.py then tried every block size from 1 to 256.)

    python3 scripts/gpu/53_attention_query_count.py OUT.json
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, D_KV, USERS, T_MAX = 6, 64, 1024, 82
FULL = 150  # verify, round 1: 50 drafts x 3 inputs
SUB = (149, 147, 128, 120, 100, 96, 74, 65, 64, 50, 32, 30, 16, 3, 1)
T_USER = (82, 78, 66, 65, 64, 41, 17)
BACKENDS = {"efficient": [SDPBackend.EFFICIENT_ATTENTION], "cudnn": [SDPBackend.CUDNN_ATTENTION],
            "cudnn_first": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                            SDPBackend.MATH]}


def attend(backends, q, k, v, mask):
    with sdpa_kernel(backends, set_priority=len(backends) > 1):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)


def main(out_path: str) -> None:
    torch.manual_seed(0)
    dev, dt = torch.device("cuda"), torch.bfloat16
    rows = []
    for t in T_USER:
        q = torch.randn(1, FULL, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
        k = torch.randn(1, t, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
        v = torch.randn(1, t, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
        mask = torch.zeros(1, 1, 1, t, device=dev, dtype=dt)
        for name, backends in BACKENDS.items():
            try:
                full = attend(backends, q, k, v, mask)
                differ = {}
                for lq in SUB:
                    sub = attend(backends, q[:, :, :lq], k, v, mask)
                    differ[lq] = int((sub != full[:, :, :lq]).any(-1).sum().item())  # (head, query) rows not equal
            except RuntimeError as e:
                rows.append({"user_keys": t, "backend": name, "error": str(e)[:200]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            rows.append({"user_keys": t, "backend": name, "full_queries": FULL,
                         "rows_differing_by_queries": differ})
            print(json.dumps(rows[-1]), flush=True)
    # one user alone and first in a batch of 1,024 (padded to 82 keys), at few queries: 52_... covered 30-150
    for t in (82, 78, 66, 41):
        for lq in (1, 2, 3, 4, 8):
            q = torch.randn(USERS, lq, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
            k = torch.randn(USERS, T_MAX, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
            v = torch.randn(USERS, T_MAX, HEADS, D_KV, device=dev, dtype=dt).transpose(1, 2)
            mask = torch.zeros(USERS, 1, 1, T_MAX, device=dev, dtype=dt)
            mask[0, ..., t:] = float("-inf")
            for name, backends in BACKENDS.items():
                batch = attend(backends, q, k, v, mask)[0]
                alone = attend(backends, q[:1], k[:1, :, :t], v[:1, :, :t], mask[:1, ..., :t])[0]
                rows.append({"user_keys": t, "backend": name, "queries": lq, "batch_users": USERS,
                             "rows_differing_alone_vs_batch": int((batch != alone).any(-1).sum().item())})
                print(json.dumps(rows[-1]), flush=True)
    with open(out_path, "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "cudnn": torch.backends.cudnn.version(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
