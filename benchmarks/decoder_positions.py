"""Decoder positions per user: SpecGR's batched loop, the fewest an exact SpecGR could decode, and beam search.

    python benchmarks/decoder_positions.py --checkpoint checkpoints/amazon2018-game --rows 512 --json out.json

Counted from the loop's traces (CPU, fp32; same lists as the GPU up to bf16 near-ties), one user at a time:
- `loop`: what `specgr.speculate.batched.SpecGR` decodes. Each round decodes one step of every beam prefix
  (`beam_advance`; round 1: the empty prefix) and, per draft, the inputs after its beam prefix, minus the one the
  advance step already gave: 3, 2, 1, 0 positions in rounds 1-4.
- `guiding_beam`: the prefixes the width-β guiding beam decodes (the empty one + its beams before the last round).
- `within_round`: the loop with each round's draft inputs de-duplicated: drafts of one round that share a prefix
  share its decoding (inputs of length r..3 in round r, as the loop decodes them), nothing shared across rounds.
- `distinct_prefixes`: the distinct decoder inputs the run needs, i.e. the distinct SID prefixes of length 0-3 over
  every drafted item (0-2 for unseen ones, whose V has 3 digits) and every beam prefix that was extended. A
  verifier that cached every prefix it ever decoded, across drafts and rounds, would decode exactly these: the floor
  for exact speculation that scores every draft to the end.
- `pruned_prefixes`: the distinct prefixes left when, on top of that cache, a draft's next input is decoded only
  while its digits so far can still change the list. Digit log-probs are <= 0, so after j digits V can only fall
  from S_j / m (S_j: their sum): a draft is decided once S_j / m <= γ (rejected) and S_j / m is below the lowest
  fill-up score of the final list (it cannot enter the fill-up either). That cutoff is read from the final list, which
  no verifier knows in advance: this is a lower bound for any exact verifier that prunes by bounds.
- `beam_search`: a width-K constrained beam search decodes the distinct prefixes of its beams, at most 1 + 3K.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from specgr.bundle import Bundle
from specgr.evaluate import write_json
from specgr.sid.semantic_ids import N_DIGITS
from specgr.speculate import SpecGR, SpecGRConfig


def prefixes(tokens: np.ndarray, max_len: int) -> set:
    """(n, 4) SID tokens -> the set of their prefixes of length 0..max_len, as tuples."""
    return {tuple(t[:L]) for t in tokens.tolist() for L in range(max_len + 1)}


def count(trace, sid_tokens: np.ndarray, n_in_sample: int, digit_logprobs: np.ndarray | None = None,
          threshold: float = SpecGRConfig.threshold) -> dict:
    """One user's SpecGRResult trace (paper length rule) -> {"loop": positions, "distinct_prefixes": the floor}, and
    with digit_logprobs ((n, 4): each drafted item's digit log-probs, in drafting order) "pruned_prefixes" too.

    The paper's V of an unseen item averages its first 3 digits, so its 4th digit's input (its length-3 prefix) is
    not needed; an in-sample item's V needs all 4 (inputs: its prefixes of length 0-3)."""
    loop, within, need, beams = 0, 0, {()}, {()}
    prev_beam = np.zeros((1, 0), dtype=np.int64)  # round 1 extends the empty prefix
    for r in trace.rounds:
        loop += len(prev_beam) + len(r.drafted) * (N_DIGITS - r.round)
        within += len(prev_beam) + len({tuple(t[:j]) for t in sid_tokens[r.drafted].tolist()
                                        for j in range(r.round, N_DIGITS)})
        seen = r.drafted < n_in_sample
        need |= prefixes(sid_tokens[r.drafted[seen]], N_DIGITS - 1) | prefixes(sid_tokens[r.drafted[~seen]], 2)
        beams |= {tuple(p) for p in prev_beam.tolist()}  # the guiding beam's step from these prefixes
        if r.beam_tokens is not None:
            prev_beam = r.beam_tokens
    out = {"loop": loop, "within_round": within, "distinct_prefixes": len(need | beams), "guiding_beam": len(beams)}
    if digit_logprobs is not None:
        fill = [s for s, src in zip(trace.scores.tolist(), trace.sources) if src != "accepted"]
        cutoff = min(fill) if fill else np.inf  # no fill-up (>= K accepted): only acceptance matters
        drafted = trace.all_drafted()
        partial = np.cumsum(digit_logprobs, 1)  # (n, 4): S_j
        pruned = set(beams)
        for x, t in enumerate(sid_tokens[drafted].tolist()):
            m = N_DIGITS if drafted[x] < n_in_sample else N_DIGITS - 1
            for j in range(1, m):  # input: the length-j prefix, for digit j + 1
                bound = partial[x, j - 1] / m
                if not (bound > threshold or bound >= cutoff):
                    break  # decided: later inputs are not needed either
                pruned.add(tuple(t[:j]))
        out["pruned_prefixes"] = len(pruned)
    return out


def drafted_digit_logprobs(rec, history, hist_len, traces) -> list[np.ndarray]:
    """Each user's drafted items' digit log-probs (n_u, 4), teacher-forced, in drafting order."""
    from specgr.models.scoring import score_candidates
    from specgr.speculate import steps

    drafted = [t.all_drafted() for t in traces]
    cand = torch.full((len(drafted), max(len(d) for d in drafted)), -1, dtype=torch.long)
    for u, d in enumerate(drafted):
        cand[u, :len(d)] = torch.as_tensor(d)
    with torch.inference_mode():
        hist, hl = torch.as_tensor(history).long(), torch.as_tensor(hist_len).long()
        _, _, state = steps.encode(rec.model, rec.sids, hist, hl)
        _, lp, _ = score_candidates(rec.model, state, None, cand, rec.sids, rec.sids.n_in_sample, chunk=25,
                                    return_logprobs=True)  # chunk: bounded CPU memory
    return [lp[u, :len(d)].numpy() for u, d in enumerate(drafted)]


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
    lps = drafted_digit_logprobs(rec, rows.history[:args.rows], rows.hist_len[:args.rows], res.traces)
    per_user = [count(t, tok, b.sids.n_in_sample, lp, args.gamma) for t, lp in zip(res.traces, lps)]
    out = {"checkpoint": args.checkpoint, "drafter": args.drafter, "rows": f"{args.split}[:{args.rows}]",
           "config": cfg.to_dict(), "beam_search_max": 1 + (N_DIGITS - 1) * args.top_k}
    for key in ("loop", "within_round", "guiding_beam", "distinct_prefixes", "pruned_prefixes"):
        v = np.array([u[key] for u in per_user])
        out[key] = {"mean": float(v.mean()), "median": float(np.median(v)), "min": int(v.min()), "max": int(v.max())}
    out["mean_rounds"] = float(res.n_rounds.float().mean())
    print(json.dumps(out, indent=2))
    if args.json:
        write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
