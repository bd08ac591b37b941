"""What would SpecGR cost if verification were free? Issue 15's setting, each part of the loop timed alone.

    python experiments/speed_floor.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
        --rows 20000 --batch-size 1024 --json results/speed/speed_floor.json

Every method runs compiled (`TIGER.compile_decoder`) and as one CUDA graph per batch (`GraphedRecommender`), as the
issue-15 benchmark does with `--compile --cuda-graph`, on the same rows, in one process:
- `specgr`: the batched loop, δ50 β30 γ−1.4 K50 (bench_speculate.py's batched number);
- `specgr_no_verify`: the same loop with the verifier replaced by a constant (every draft rejected). Drafting, the
  width-β beam, the buffers and the final lists are all still there: a lower bound on any exact SpecGR at this
  operating point, however cheap its verification;
- `tiger_beam`: TIGER's constrained beam search, width K (the issue's baseline);
- `tiger_beam_width_beta`: the same at width β, i.e. the guiding beam of SpecGR alone (+ its encoder pass).
Each is timed `--repeats` times, interleaved, over the first --rows rows. The lists of `specgr_no_verify` are not
SpecGR's lists; only its time is read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform

import torch

from specgr.bundle import Bundle
from specgr.evaluate import write_json
from specgr.speculate import GraphedRecommender, SpecGR, SpecGRConfig, TigerOnly, steps


@contextlib.contextmanager
def free_verification():
    """Inside: steps.verify returns a constant V far below any γ, at no decoder cost. The loop calls steps.verify,
    so a CUDA graph captured inside this context keeps the constant."""
    real = steps.verify

    def constant(model, sids, state, ids, *a, return_logprobs=False, **kw):
        if return_logprobs:
            raise ValueError("free_verification is for the paper's ranking. Fix: a config without final_weights.")
        return torch.full(ids.shape, -1e4, device=ids.device).masked_fill(ids < 0, float("-inf"))

    steps.verify = constant
    try:
        yield
    finally:
        steps.verify = real


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/amazon2018-game")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--drafter", default="encoder", choices=["encoder", "aux"])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    torch._dynamo.config.recompile_limit = 64  # four recommenders share one compiled decoder in this process
    dev = torch.device("cuda")
    b = Bundle.load(args.checkpoint, data_root=args.data_root, device=dev)
    rows = b.ds.rows("test").subset(slice(0, args.rows))
    cfg = SpecGRConfig()  # δ50 β30 γ−1.4 K50, the paper's loop
    model = b.verifier(args.drafter).compile_decoder()
    drafter = b.drafter(args.drafter)
    K, B = cfg.top_k, args.batch_size
    recs = {
        "specgr": GraphedRecommender(SpecGR(model, drafter, b.sids, cfg, dev), B),
        "specgr_no_verify": GraphedRecommender(SpecGR(model, drafter, b.sids, cfg, dev), B),
        "tiger_beam": GraphedRecommender(TigerOnly(model, b.sids, num_beams=K, device=dev), B),
        "tiger_beam_width_beta": GraphedRecommender(TigerOnly(model, b.sids, num_beams=cfg.num_beams, device=dev), B),
    }
    ks = {"tiger_beam_width_beta": cfg.num_beams}
    for name, rec in recs.items():  # capture (and compile) outside the timing
        with free_verification() if name == "specgr_no_verify" else contextlib.nullcontext():
            rec.recommend(rows.history[:8], rows.hist_len[:8], k=ks.get(name, K))
    out = {"gpu": torch.cuda.get_device_name(dev), "cpu": platform.machine(), "torch": torch.__version__,
           "checkpoint": args.checkpoint, "drafter": args.drafter, "rows": f"test[:{args.rows}]", "batch_size": B,
           "config": cfg.to_dict(), "compile": True, "cuda_graph": True, "runs": {n: [] for n in recs}}
    for _ in range(args.repeats):
        for name, rec in recs.items():
            res = rec.recommend_rows(rows, k=ks.get(name, K), progress=False)
            out["runs"][name].append(res.timing["recs_per_s"])
            print(f"{name}: {res.timing['recs_per_s']:,.0f} recs/s", flush=True)
    out["ms_per_batch"] = {n: 1000 * B / max(v) for n, v in out["runs"].items()}
    print(json.dumps(out["ms_per_batch"], indent=2))
    if args.json:
        write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
