"""Release 26 (1 GPU): where does decoding's cross-attention leave cuDNN's kernel?

`53_attention_query_sweep.py` found cuDNN's kernel bit-equal to the memory-efficient one at T = 66 and 41 keys
and different at T = 78 and 82 (histories of 19 and 20 items; 20 fills the window), at every query count but one.
So if the batched loop and the one-user reference ran cuDNN's kernel on the same calls, the window's rows could not
differ more than the others. This runs both (issue 15's official point, the shipped Games
checkpoint, 1,024 test rows batched, the first ROWS one at a time), with cuDNN's attention in five modes:
- `off`: the memory-efficient kernel (the default), eager, as are the next two;
- `cudnn_first`: TIGER's priority order (cuDNN, then flash / memory-efficient / math), as the benchmark runs it;
- `cudnn_only`: cuDNN alone; a call it refuses is recorded (shapes, strides, the error) and run by the default order;
- `compiled_cudnn_first`, `compiled_cudnn_only`: the same with the decoder compiled (a refusal ends that mode).
It prints each mode's agreement, the window's rows among the differing ones, and the refused calls.
(Found, release 26 call 4, before TIGER's one-query fix: cuDNN refused no call, and the window's rows differed
eagerly too, 8 of 11 against 1 of 11 with the memory-efficient kernel.)

    python3 scripts/gpu/54_cudnn_fallback.py CHECKPOINT DATA_ROOT OUT.json [ROWS]
"""

import json
import os
import sys
import warnings
from collections import Counter

import torch
from torch.nn.attention import SDPBackend

sys.path.insert(0, "benchmarks")
import bench_speculate  # noqa: E402

import specgr.models.tiger as tiger  # noqa: E402
from specgr.bundle import Bundle  # noqa: E402
from specgr.speculate import ReferenceSpecGR, SpecGR, SpecGRConfig  # noqa: E402

BATCH = int(os.environ.get("BATCH", 1024))  # fewer: a CPU smoke test


def shape_key(q, k, mask) -> str:
    return (f"q{tuple(q.shape)}s{tuple(q.stride())} k{tuple(k.shape)}s{tuple(k.stride())} "
            f"mask{tuple(mask.shape)}s{tuple(mask.stride())} {q.dtype} {mask.dtype}")


def main(ckpt: str, data_root: str, out_path: str, n_ref: int = 128) -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # cpu: a smoke test of the script
    b = Bundle.load(ckpt, data_root=data_root, device=dev)
    model, drafter, sids = b.verifier("encoder"), b.drafter("encoder"), b.sids
    rows = b.ds.rows("test")
    hist, hl = rows.history[:BATCH], rows.hist_len[:BATCH]
    cfg = SpecGRConfig(draft_size=50, num_beams=30, threshold=-1.4, top_k=50)
    full = torch.as_tensor(hl[:n_ref]) >= hist.shape[1]  # the histories that fill the window
    refused, warned = Counter(), Counter()
    orig_sdpa, orig_first = model._sdpa, tiger.CUDNN_FIRST

    def logged(q, k, v, mask, cross=False):
        try:
            return orig_sdpa(q, k, v, mask, cross)
        except RuntimeError as e:
            refused[shape_key(q, k, mask) + " | " + str(e).splitlines()[0][:160]] += 1
            model.cudnn_cross_attention = False
            try:
                return orig_sdpa(q, k, v, mask, cross)
            finally:
                model.cudnn_cross_attention = True

    out = {"gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None, "torch": torch.__version__,
           "batch": BATCH, "ref_rows": n_ref, "full_window_rows": int(full.sum())}
    for mode in ("off", "cudnn_first", "cudnn_only", "compiled_cudnn_first", "compiled_cudnn_only"):
        if mode.startswith("compiled") and model._compiled_decode is None:
            model.compile_decoder()
        model.cudnn_cross_attention = mode != "off"
        tiger.CUDNN_FIRST = [SDPBackend.CUDNN_ATTENTION] if mode.endswith("cudnn_only") else orig_first
        model._sdpa = logged if mode == "cudnn_only" else orig_sdpa  # compiled: a refusal ends the mode
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            try:
                res_b = SpecGR(model, drafter, sids, cfg, dev).recommend(hist, hl, k=50)
                res_r = ReferenceSpecGR(model, drafter, sids, cfg, dev).recommend(hist[:n_ref], hl[:n_ref], k=50)
            except Exception as e:  # noqa: BLE001 - a diagnostic: record what refused and go on
                out[mode] = {"error": f"{type(e).__name__}: {str(e)[:600]}"}
                print(mode, json.dumps(out[mode]), flush=True)
                continue
        for w in ws:
            warned[f"{mode}: {str(w.message).splitlines()[0][:200]}"] += 1
        a = bench_speculate.agreement(res_r.items.cpu(), res_b.items[:n_ref].cpu())
        differ = torch.zeros(n_ref, dtype=torch.bool)
        differ[a["reference_differing_rows"]] = True
        out[mode] = {"agreement": a["reference_agreement"], "same_sets": a["reference_same_sets"],
                     "full_window_differing": int((differ & full).sum()),
                     "other_differing": int((differ & ~full).sum())}
        print(mode, json.dumps(out[mode]), flush=True)
    model._sdpa, tiger.CUDNN_FIRST = orig_sdpa, orig_first
    out["refused"] = dict(refused.most_common())
    out["warnings"] = dict(warned.most_common(20))
    for key, n in refused.most_common():
        print("refused", n, key, flush=True)
    for key, n in warned.most_common(20):
        print("warning", n, key, flush=True)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
