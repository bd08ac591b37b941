"""Release 20 (1 GPU): where the graphed SpecGR batch's encoder phase (9.3 ms per batch of 1,024, --phase-times)
goes. Times each part of `SpecGR._begin` on the first 1,024 Games test rows of the shipped checkpoint, bf16 autocast,
eager and with the encoder through torch.compile, each part captured as a CUDA graph and replayed 50 times.

    python3 scripts/gpu/46_encoder_time.py        # prints one JSON line: ms per batch of each part
"""

import json

import numpy as np
import torch

from specgr.bundle import Bundle
from specgr.data.tokenize import history_tokens
from specgr.speculate import SpecGR, SpecGRConfig, steps


def graph_ms(fn, reps: int = 50) -> float:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g.replay()
    a.record()
    for _ in range(reps):
        g.replay()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / reps


@torch.inference_mode()
def main():
    b = Bundle.load("checkpoints/amazon2018-game", data_root="devdata/processed", device="cuda")
    rows = b.ds.rows("test")
    hist = torch.as_tensor(np.asarray(rows.history[:1024]), device="cuda")
    hl = torch.as_tensor(np.asarray(rows.hist_len[:1024]), device="cuda")
    model, drafter, sids = b.verifier("encoder"), b.drafter("encoder"), b.sids.to("cuda")
    rec = SpecGR(model, drafter, sids, SpecGRConfig(compact=False), "cuda")
    ids, mask = history_tokens(hist, hl, sids.tokens)
    dev = torch.device("cuda")
    with steps.autocast(dev, True):
        enc = model.encode(ids, mask)
    parts = {
        "history_tokens": lambda: history_tokens(hist, hl, sids.tokens),
        "encode": lambda: model.encode(ids, mask),
        "encoder_state": lambda: model.encoder_state(enc, mask),
        "drafter_query": lambda: drafter.proj(enc, mask),
        "begin (the whole phase)": lambda: rec._begin(hist, hl, None),
    }
    out = {name: graph_ms(lambda fn=fn: _ac(dev, fn)) for name, fn in parts.items()}
    out["drafter is the verifier's encoder"] = drafter.model is model
    model.compile_encoder()  # call 7 compiled `model.encode` itself, before this method existed: the same pass
    out["encode, compiled"] = graph_ms(lambda: _ac(dev, lambda: model.encode(ids, mask)))
    out["begin, encoder compiled"] = graph_ms(lambda: _ac(dev, lambda: rec._begin(hist, hl, None)))
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "T": ids.shape[1], "ms_per_batch_of_1024": out}))


def _ac(dev, fn):
    with steps.autocast(dev, True):
        return fn()


if __name__ == "__main__":
    main()
