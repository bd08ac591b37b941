"""Decoder positions per user: SpecGR's batched loop, the fewest any exact SpecGR could decode, and beam search.

    python benchmarks/decoder_positions.py --checkpoint checkpoints/amazon2018-game --rows 512 --json out.json

Counted from the loop's traces (CPU, fp32; same lists as the GPU up to bf16 near-ties), one user at a time:
- `loop`: what `specgr.speculate.batched.SpecGR` decodes. Each round decodes one step of every beam prefix
  (`beam_advance`; round 1: the empty prefix) and, per draft, the inputs after its beam prefix, minus the one the
  advance step already gave: 3, 2, 1, 0 positions in rounds 1-4.
- `distinct_prefixes`: the distinct decoder inputs the run needs, i.e. the distinct SID prefixes of length 0-3 over
  every drafted item (0-2 for unseen ones, whose V has 3 digits) and every beam prefix that was extended. A verifier that cached every prefix it ever decoded,
  across drafts and rounds, would decode exactly these: the floor for exact speculation at this operating point.
- `beam_search`: a width-K constrained beam search decodes the distinct prefixes of its beams, at most 1 + 3K.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from specgr.bundle import Bundle
from specgr.evaluate import write_json
from specgr.sid.semantic_ids import N_DIGITS
from specgr.speculate import SpecGR, SpecGRConfig


def prefixes(tokens: np.ndarray, max_len: int) -> set:
    """(n, 4) SID tokens -> the set of their prefixes of length 0..max_len, as tuples."""
    return {tuple(t[:L]) for t in tokens.tolist() for L in range(max_len + 1)}


def count(trace, sid_tokens: np.ndarray, n_in_sample: int) -> dict:
    """One user's SpecGRResult trace (paper length rule) -> {"loop": positions, "distinct_prefixes": the floor}.

    The paper's V of an unseen item averages its first 3 digits, so its 4th digit's input (its length-3 prefix) is
    not needed; an in-sample item's V needs all 4 (inputs: its prefixes of length 0-3)."""
    loop, need = 0, {()}
    prev_beam = np.zeros((1, 0), dtype=np.int64)  # round 1 extends the empty prefix
    for r in trace.rounds:
        loop += len(prev_beam) + len(r.drafted) * (N_DIGITS - r.round)
        seen = r.drafted < n_in_sample
        need |= prefixes(sid_tokens[r.drafted[seen]], N_DIGITS - 1) | prefixes(sid_tokens[r.drafted[~seen]], 2)
        need |= {tuple(p) for p in prev_beam.tolist()}  # the guiding beam's step from these prefixes
        if r.beam_tokens is not None:
            prev_beam = r.beam_tokens
    return {"loop": loop, "distinct_prefixes": len(need)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/amazon2018-game")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--drafter", default="encoder", choices=["encoder", "aux"])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--delta", type=int, default=50)
    ap.add_argument("--beta", type=int, default=30)
    ap.add_argument("--gamma", type=float, default=-1.4)
    ap.add_argument("-K", "--top-k", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    b = Bundle.load(args.checkpoint, data_root=args.data_root)
    rows = b.ds.rows(args.split)
    cfg = SpecGRConfig(draft_size=args.delta, num_beams=args.beta, threshold=args.gamma, top_k=args.top_k)
    rec = SpecGR(b.verifier(args.drafter), b.drafter(args.drafter), b.sids, cfg)
    res = rec.recommend(rows.history[:args.rows], rows.hist_len[:args.rows], trace=True)
    tok = b.sids.tokens.cpu().numpy()
    per_user = [count(t, tok, b.sids.n_in_sample) for t in res.traces]
    out = {"checkpoint": args.checkpoint, "drafter": args.drafter, "rows": f"{args.split}[:{args.rows}]",
           "config": cfg.to_dict(), "beam_search_max": 1 + (N_DIGITS - 1) * args.top_k}
    for key in ("loop", "distinct_prefixes"):
        v = np.array([u[key] for u in per_user])
        out[key] = {"mean": float(v.mean()), "median": float(np.median(v)), "min": int(v.min()), "max": int(v.max())}
    out["mean_rounds"] = float(res.n_rounds.float().mean())
    print(json.dumps(out, indent=2))
    if args.json:
        write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
