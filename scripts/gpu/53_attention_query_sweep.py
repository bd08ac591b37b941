"""Release 26 (1 GPU): which query counts give one query the same cross-attention output, per SDPA backend?

One user, 6 heads, d_kv 64, bf16, T keys (82 and 78: a history that fills the window; 66 and 41: shorter ones), the
transposed head views the decoder passes. The first query's output is computed in blocks of 1, 2, ..., 256 queries
under cuDNN's kernel and the memory-efficient one, and the block sizes are grouped by the output they give it.
(Found: the memory-efficient kernel gives one output at every block size; cuDNN's equals it at T = 66 and 41, and at
78 and 82 keys gives one output to a lone query and another to every longer block.)

    python3 scripts/gpu/53_attention_query_sweep.py OUT.json
"""
import json, sys, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
dev, dt = torch.device("cuda"), torch.bfloat16
torch.manual_seed(0)
out = {}
for t in (82, 78, 66, 41):
    q = torch.randn(1, 256, 6, 64, device=dev, dtype=dt).transpose(1, 2)
    k = torch.randn(1, t, 6, 64, device=dev, dtype=dt).transpose(1, 2)
    v = torch.randn(1, t, 6, 64, device=dev, dtype=dt).transpose(1, 2)
    m = torch.zeros(1, 1, 1, t, device=dev, dtype=dt)
    res = {}
    for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        with sdpa_kernel([be]):
            outs = [F.scaled_dot_product_attention(q[:, :, :lq], k, v, attn_mask=m, scale=1.0)[0, :, 0]
                    for lq in range(1, 257)]  # first query's output at every block size: (h, d) each
        res[name] = torch.stack(outs)  # (256, h, d)
    c, e = res["cudnn"], res["efficient"]
    # group the block sizes by the cuDNN output they give the first query
    groups, keys = {}, []
    for i in range(256):
        for j, kk in enumerate(keys):
            if torch.equal(c[i], c[kk]):
                groups[kk].append(i + 1); break
        else:
            keys.append(i); groups[i] = [i + 1]
    out[t] = {"cudnn_groups": list(groups.values()),
              "cudnn_equal_efficient": [i + 1 for i in range(256) if torch.equal(c[i], e[i])][:10],
              "n_cudnn_equal_efficient": sum(torch.equal(c[i], e[i]) for i in range(256)),
              "efficient_variants": len({tuple(e[i].flatten().tolist()) for i in range(256)})}
    print(t, json.dumps(out[t]), flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
