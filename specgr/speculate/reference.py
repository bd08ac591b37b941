"""The SpecGR loop for one user at a time: plain, readable, exactly the paper's algorithm (docs/METHOD.md §7).

    encode the history once
    for round r = 1 .. l:
        draft δ items (round 1: anywhere; guided rounds: only items whose SID starts with one of the current beam
        prefixes); an item is never drafted twice
        verify: V(x) = mean log p(SID digits of x | history); accept iff V(x) > γ
        stop if >= K accepted (adaptive exit)
        extend the width-β constrained beam by one digit (prefix length r), to guide the next round's draft
    finalize (see `finalize`)

This is the executable specification that `specgr.speculate.batched.SpecGR` must match list for list. It is slow on
purpose (batch of one, Python bookkeeping) and is not meant for evaluation runs.
"""

from __future__ import annotations

import numpy as np
import torch

from specgr.speculate import steps
from specgr.speculate.config import SpecGRConfig
from specgr.drafters.base import drafter_scores
from specgr.models.scoring import candidate_lengths
from specgr.speculate.learned_rank import candidate_features, learned_score
from specgr.sid.semantic_ids import N_DIGITS
from specgr.speculate.trace import (SOURCE_ACCEPTED, SOURCE_BEAM, SOURCE_FILL, SOURCE_NAMES, SOURCE_NONE, RoundTrace,
                                    SpecGRResult, UserTrace)



class ReferenceSpecGR:
    """model: TIGER verifier; drafter: any Drafter; sids: SemanticIDs of the whole catalog."""

    def __init__(self, model, drafter, sids, cfg: SpecGRConfig | None = None, device="cpu"):
        self.device = torch.device(device)
        self.model, self.drafter, self.sids = model.to(self.device).eval(), drafter, sids.to(self.device)
        self.cfg = cfg or SpecGRConfig()

    @torch.inference_mode()  # the batched loop's mode: a compiled decoder then reuses its compiled structures
    def recommend_one(self, history, hist_len: int, k: int | None = None) -> UserTrace:
        """history (H,) item ids (-1 pad), hist_len int -> the full trace, final list included."""
        cfg, sids, dev = self.cfg, self.sids, self.device
        K = k or cfg.top_k
        hist = torch.as_tensor(np.asarray(history), dtype=torch.long, device=dev)[None]  # (1, H)
        hl = torch.as_tensor([int(hist_len)], dtype=torch.long, device=dev)
        with steps.autocast(dev, cfg.autocast):
            _, _, state = steps.encode(self.model, sids, hist, hl)  # once; reused by every round
        in_only = not cfg.inductive  # ablation: drafts and beams restricted to in-sample items

        drafted: list[int] = []  # every drafted item, in drafting order
        beam = steps.Beam.start(1, dev)  # tokens (1, W, L), scores (1, W), valid (1, W); L = 0
        tr = UserTrace()
        n_acc = 0
        for rnd in range(1, cfg.max_rounds + 1):
            # 1. draft: guided rounds only see items under this user's beam prefixes; never re-draft
            allowed, plen = None, 0
            if cfg.uses_prefixes(rnd):
                allowed = sids.prefix_match_mask(beam.tokens, beam.valid, in_sample_only=in_only)  # (1, N)
                plen = rnd - 1
            elif in_only:
                allowed = sids.in_sample_mask[None]
            no = drafted + (hist[0, :int(hist_len)].tolist() if cfg.exclude_history else [])
            exclude = torch.tensor([no], dtype=torch.long, device=dev) if no else None
            ids, dscores = self.drafter.draft(hist, hl, cfg.draft_size, allowed=allowed, exclude=exclude)
            ids, dscores = ids[0].to(dev), dscores[0].float().to(dev)
            keep = ids >= 0
            ids, dscores = ids[keep], dscores[keep]
            # 2. verify with the GR model (V + the new-item bonus, 0 in the paper); guided drafts extend a beam
            #    prefix, whose digits the verifier reuses (same V as a full teacher-forced pass, docs/METHOD.md §6)
            guide = beam if cfg.uses_prefixes(rnd) else None
            if guide is not None and not bool(allowed[0, ids].all()):
                raise ValueError("the drafter returned items outside the allowed beam prefixes (Drafter protocol)")
            with steps.autocast(dev, cfg.autocast):
                V, lp, m = steps.verify(self.model, sids, state, ids[None], cfg.length_rule, cfg.min_len, guide,
                                        return_logprobs=True)
            V = V[0] + cfg.new_item_bonus * (ids >= sids.n_in_sample)
            acc = V > cfg.threshold
            drafted += ids.tolist()
            n_acc += int(acc.sum())
            rt = RoundTrace(rnd, plen, ids.cpu().numpy(), dscores.cpu().numpy(), V.cpu().numpy(), acc.cpu().numpy())
            if cfg.final_weights is not None:  # the learned final score: from V's digit log-probs, before the bonus
                feats = candidate_features(ids[None], dscores[None], lp, m, sids.prefix_len, sids.n_in_sample)
                rt.final_scores = learned_score(cfg.final_weights, feats)[0].cpu().numpy()
            tr.rounds.append(rt)
            # 3. adaptive exit
            if n_acc >= K:
                break
            # 4. one beam step: prefixes of length rnd, for the next round's re-draft (and the fill-up at the end)
            with steps.autocast(dev, cfg.autocast):
                beam = steps.beam_step(self.model, sids, state, beam, cfg.num_beams, in_sample_only=in_only)
            rt.beam_tokens, rt.beam_scores = self._beam_np(beam)

        if n_acc < K:  # the fill-up needs complete (4-digit) beams; only when max_rounds < 4 are steps left
            while beam.length < N_DIGITS:
                with steps.autocast(dev, cfg.autocast):
                    beam = steps.beam_step(self.model, sids, state, beam, cfg.num_beams, in_sample_only=in_only)
        self.finalize(tr, beam, K, hist, hl)
        return tr

    @staticmethod
    def _beam_np(beam):
        tok, sc, ok = (t[0].cpu() for t in (beam.tokens, beam.scores, beam.valid))
        return tok[ok].numpy(), sc[ok].float().numpy()

    def finalize(self, tr: UserTrace, beam, K: int, hist=None, hl=None) -> None:
        """Fill tr.items / scores / sources / is_new.

        The score of an item is V (a drafted candidate) or its beam log-prob / 4 (a final beam), plus
        fusion_weight * its drafter score (0 in the paper); with final_weights, the learned score of its features
        (specgr.speculate.learned_rank; a beam's digit log-probs are its own). >= K accepted: top-K accepted by score
        (accept_topk_by="score") or the first K accepted in drafting order ("order"). Otherwise: all accepted + the
        best (K - #accepted) of a pool made of the rejected candidates and the final beam sequences that were never
        drafted (nor in the history, with exclude_history). The list is then sorted by score. Ties keep the pool
        order: drafted items by drafting order, then beams.
        """
        cfg, sids = self.cfg, self.sids
        w, learned = cfg.fusion_weight, cfg.final_weights is not None
        cands = []  # (score, position, item, source)
        pos = 0
        for r in tr.rounds:
            final = r.final_scores.tolist() if learned else [None] * len(r.drafted)
            for i, v, d, a, f in zip(r.drafted.tolist(), r.verify_scores.tolist(), r.draft_scores.tolist(),
                                     r.accepted.tolist(), final):
                cands.append((f if learned else (v + w * d if w else v), pos, i, SOURCE_ACCEPTED if a else SOURCE_FILL))
                pos += 1
        by_score = lambda c: (-c[0], c[1])  # noqa: E731  (descending score, then pool position)
        accepted = [c for c in cands if c[3] == SOURCE_ACCEPTED]
        if len(accepted) >= K:
            chosen = sorted(accepted, key=by_score)[:K] if cfg.accept_topk_by == "score" else accepted[:K]
        else:
            skip = {c[2] for c in cands}
            if cfg.exclude_history:
                skip |= set(hist[0, :int(hl[0])].tolist())
            pool = [c for c in cands if c[3] == SOURCE_FILL]
            tok, sc, ok = beam.tokens[0], beam.scores[0], beam.valid[0]
            items = sids.lookup(tok)  # constrained beams are real items
            d = drafter_scores(self.drafter, hist, hl, items[None])[0] if w or learned else torch.zeros(len(items))
            if learned:  # the beam's own digit log-probs, V by the config's length rule
                m = candidate_lengths(items.clamp(min=0), sids.n_in_sample, cfg.length_rule, sids.prefix_len,
                                      cfg.min_len)
                lp = beam.logprobs[0].float().masked_fill(~ok[:, None], 0.0)
                bs = learned_score(cfg.final_weights,
                                   candidate_features(items, d, lp, m, sids.prefix_len, sids.n_in_sample)).tolist()
            else:
                bs = (sc.float() / N_DIGITS + w * d.float().to(sc.device)).tolist()
            for j, (item, o) in enumerate(zip(items.tolist(), ok.tolist())):
                if o and item >= 0 and item not in skip:
                    pool.append((bs[j], pos + j, item, SOURCE_BEAM))
            chosen = accepted + sorted(pool, key=by_score)[:K - len(accepted)]
        chosen = sorted(chosen, key=by_score)
        tr.items = np.array([c[2] for c in chosen], dtype=np.int64)
        tr.scores = np.array([c[0] for c in chosen], dtype=np.float32)
        tr.sources = [SOURCE_NAMES[c[3]] for c in chosen]
        tr.is_new = tr.items >= sids.n_in_sample

    def recommend(self, history, hist_len, k: int | None = None, trace: bool = False) -> SpecGRResult:
        """history (B, H), hist_len (B,) -> SpecGRResult with the same layout as the batched SpecGR (host tensors)."""
        K = k or self.cfg.top_k
        history, hist_len = np.asarray(torch.as_tensor(history).cpu()), np.asarray(torch.as_tensor(hist_len).cpu())
        traces = [self.recommend_one(history[b], int(hist_len[b]), K) for b in range(len(hist_len))]
        return result_from_traces(traces, K, keep_traces=trace)

    def recommend_rows(self, rows, batch_size: int = 1, k: int | None = None, progress: bool = True,
                       trace: bool = False, by_length: bool = False) -> SpecGRResult:
        """A whole split, timed (same as SpecGR.recommend_rows; users still run one at a time)."""
        from specgr.speculate.batched import run_rows

        return run_rows(self, rows, batch_size, k, progress, trace, by_length)


def result_from_traces(traces: list[UserTrace], K: int, keep_traces: bool = True) -> SpecGRResult:
    B = len(traces)
    items = torch.full((B, K), -1, dtype=torch.long)
    scores = torch.full((B, K), float("-inf"))
    sources = torch.full((B, K), SOURCE_NONE, dtype=torch.long)
    code = {v: k for k, v in SOURCE_NAMES.items()}
    for b, t in enumerate(traces):
        n = len(t.items)
        items[b, :n] = torch.from_numpy(t.items)
        scores[b, :n] = torch.from_numpy(t.scores)
        sources[b, :n] = torch.tensor([code[s] for s in t.sources], dtype=torch.long)
    cnt = lambda f: torch.tensor([f(t) for t in traces], dtype=torch.long)  # noqa: E731
    return SpecGRResult(items, scores, sources, cnt(lambda t: t.n_rounds), cnt(lambda t: t.n_accepted),
                        cnt(lambda t: t.n_drafted), traces=traces if keep_traces else None)
