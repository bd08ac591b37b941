"""Batched, exact SpecGR: the loop of `specgr.speculate.reference` run for B users at once, returning the same lists.

What "exact" takes care of, compared with the authors' batched code (docs/METHOD.md §7):
- per-user prefix constraints (`SemanticIDs.prefix_match_mask` and `prefix_items` are per row), never a union over
  the batch;
- an item is never drafted twice (the drafter gets each user's drafted ids as `exclude`), so lists have no duplicates;
- per-user early exit: users with >= K accepted stop. Compacting (the default on CPU): they leave the active set, so
  they stop costing compute, and one host sync per round decides who is still active. Static (the default on CUDA,
  faster there, docs/RESULTS.md §4): shapes stay fixed, finished users are masked in place, and the loop has no host
  sync (`SpecGRConfig.compact`). `GraphedRecommender` replays a static batch's phases as CUDA graphs and stops after
  the round where its last user finished (one host sync per round, between graphs);
- the encoder runs once per user; its states are gathered for the active rows in every round.

Per round, for the b active users: one drafter call (b, δ), one verifier pass over (b, δ) candidates (in guided rounds
only the digits after their beam prefix are decoded, docs/METHOD.md §6), one decoder pass over (b, β) beam prefixes +
a constrained top-β. Candidates are appended to fixed (B, l·δ) buffers in drafting order; `_finalize` turns the
buffers into the final lists with sorts over (B, l·δ + β), no Python per user.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.profiler import record_function

from specgr.drafters.base import drafter_scores
from specgr.models.beam import NEG_INF, beam_search
from specgr.models.scoring import candidate_lengths
from specgr.models.tiger import EncoderState
from specgr.sid.semantic_ids import N_DIGITS
from specgr.batching import length_batches, row_order
from specgr.utils import as_long, resolve_device
from specgr.speculate import steps
from specgr.speculate.config import SpecGRConfig
from specgr.speculate.learned_rank import candidate_features, learned_score
from specgr.speculate.trace import (SOURCE_ACCEPTED, SOURCE_BEAM, SOURCE_FILL, SOURCE_NAMES, SOURCE_NONE, RoundTrace,
                                    SpecGRResult, UserTrace)



def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pad_lists(k: int, items: torch.Tensor, scores: torch.Tensor, sources: torch.Tensor | None = None) -> tuple:
    """Lists of k' <= k columns -> k columns, empty slots appended: items (B, k') -> (B, k) with -1, scores with -inf,
    sources (optional) with SOURCE_NONE. Shapes are static, so this adds nothing to a CUDA graph when k' = k."""
    pad = k - items.shape[1]
    out = (items, scores) if sources is None else (items, scores, sources)
    if pad <= 0:
        return out
    fills = (-1, NEG_INF, SOURCE_NONE)
    return tuple(torch.cat([t, t.new_full((t.shape[0], pad), f)], 1) for t, f in zip(out, fills))


def desc_order(score: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """(B, M) scores, (B, M) bool -> (B, M) column order: members first by descending score, then non-members.

    Stable, so equal scores keep column order (drafting order, then beam rank), the reference's tie-break.
    """
    o1 = torch.sort(score, dim=1, descending=True, stable=True).indices
    o2 = torch.sort((~member).gather(1, o1).to(torch.uint8), dim=1, stable=True).indices
    return o1.gather(1, o2)


def desc_rank(score: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """(B, M) -> (B, M) 0-based rank of each column under `desc_order`."""
    order = desc_order(score, member)
    ar = torch.arange(score.shape[1], device=score.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, ar)


class _DraftSource:
    """Calls the drafter once per round for the active rows.

    Fast paths for embedding drafters (an `index` + `query_embeddings`, i.e. `EmbeddingDrafter`): the query vectors
    are computed once per batch and every round is one masked top-k on the index, exactly what `draft()` computes.
    For the SpecGR++ `EncoderDrafter` over the same TIGER, the query comes from the loop's own encoder pass (the
    encoder runs once per user, not twice). Any other Drafter is called through `draft()` every round.
    """

    def __init__(self, drafter, model, hist: torch.Tensor, hist_len: torch.Tensor, enc, enc_mask):
        from specgr.drafters.encoder import EncoderDrafter

        self.drafter, self.hist, self.hist_len = drafter, hist, hist_len
        self.q = None
        if isinstance(drafter, EncoderDrafter) and drafter.model is model:
            self.q = drafter.proj(enc, enc_mask).float().to(drafter.device)  # = drafter.query_embeddings(...)
        elif hasattr(drafter, "index") and hasattr(drafter, "query_embeddings") and hasattr(drafter.index, "search"):
            dev = getattr(drafter, "device", hist.device)
            self.q = drafter.query_embeddings(hist.to(dev), hist_len.to(dev))

    def score(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The drafter's scores of items (b, M) for batch rows (b,) (0 for id -1), on the items' device."""
        if self.q is None:
            return drafter_scores(self.drafter, self.hist[rows], self.hist_len[rows], items)
        return self.drafter.index.score(self.q[rows.to(self.q.device)], items).to(items.device)

    @property
    def has_index(self) -> bool:
        """Whether drafts come from an embedding index (the fast path), so `draft_among` can be used."""
        return self.q is not None

    def draft_among(self, rows: torch.Tensor, k: int, cands: torch.Tensor, exclude):
        """`draft` restricted to given items: rows (b,); cands (b, M) item ids (-1 = none, each id once per row);
        exclude (b, E) | None -> ids, scores (b, k), the top k of cands by the index's score, missing slots -1 / -inf.

        The same drafts as `draft` with allowed = the items of cands, without touching the rest of the catalog.
        """
        dev = self.q.device
        q, cands = self.q[rows.to(dev)], cands.to(dev)
        exclude = self._with_history(rows, exclude)
        bad = cands < 0
        if exclude is not None and exclude.shape[1]:
            ex = torch.sort(exclude.to(dev), dim=1).values  # membership by binary search: (b, M log E), not (b, M, E)
            i = torch.searchsorted(ex, cands).clamp(max=ex.shape[1] - 1)
            bad |= ex.gather(1, i) == cands
        sc = self.drafter.index.score(q, cands).masked_fill(bad, float("-inf"))
        kk = min(k, cands.shape[1])
        top, pos = sc.topk(kk, dim=1)
        ids = cands.gather(1, pos).masked_fill(top == float("-inf"), -1)
        return pad_lists(k, ids, top)

    def _with_history(self, rows: torch.Tensor, exclude):
        """exclude (b, E) | None, plus the users' histories when the drafter excludes them (as
        EmbeddingDrafter.draft does, which the fast paths bypass)."""
        if not getattr(self.drafter, "exclude_history", False):
            return exclude
        h = self.hist[rows]
        return h if exclude is None else torch.cat([exclude, h], 1)

    def draft(self, rows: torch.Tensor, k: int, allowed, exclude):
        """rows (b,) batch rows of the users; allowed (b, N) bool | None; exclude (b, E) -> ids, scores (b, k)."""
        h = self.hist[rows]
        if self.q is None:
            return self.drafter.draft(h, self.hist_len[rows], k, allowed=allowed, exclude=exclude)
        dev = self.q.device
        q = self.q[rows.to(dev)]
        exclude = self._with_history(rows, exclude)
        allowed = None if allowed is None else allowed.to(dev)
        exclude = None if exclude is None else exclude.to(dev)
        return self.drafter.index.search(q, k, allowed=allowed, exclude=exclude)


@dataclass
class _Loop:
    """The batched loop's state between its phases (`SpecGR._begin`, `_round`, `_fill`, `_end`).

    Buffers (B = batch, M = max_rounds x δ columns in drafting order, W = β): cand (B, M) item ids (-1 = none),
    cand_v (B, M) V, cand_acc (B, M) accepted, cand_ds (B, M) drafter scores, cand_fs (B, M) learned final scores or
    None; n_acc, n_rounds (B,); fin: the final 4-digit beams for the fill-up, tokens (B, W, 4), scores (B, W), valid
    (B, W), digit log-probs (B, W, 4). rows (b,): the batch rows of the active users (all B with static shapes);
    state, beam, adv: their encoder state, beam and the beam's pending decoder step (`steps.beam_advance`)."""

    K: int
    rounds: int
    compact: bool
    learned: bool
    cand: torch.Tensor
    cand_v: torch.Tensor
    cand_acc: torch.Tensor
    cand_ds: torch.Tensor
    cand_fs: torch.Tensor | None
    n_acc: torch.Tensor
    n_rounds: torch.Tensor
    fin: tuple
    state: EncoderState
    drafts: _DraftSource
    rows: torch.Tensor
    beam: steps.Beam
    adv: steps.BeamAdvance | None = None
    round_beams: list = field(default_factory=list)  # trace only: per round, (active rows, beam) after the beam step


class SpecGR:
    """Batched SpecGR inference. model: TIGER; drafter: any Drafter; sids: SemanticIDs (moved to `device`)."""

    def __init__(self, model, drafter, sids, cfg: SpecGRConfig | None = None, device="cpu"):
        self.cfg = cfg or SpecGRConfig()
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.drafter = drafter
        self.sids = sids.to(self.device)

    # ------------------------------------------------------------------ the loop
    @torch.inference_mode()
    def recommend(self, history, hist_len, k: int | None = None, trace: bool = False) -> SpecGRResult:
        """history (B, H) item ids (-1 pad), hist_len (B,) -> SpecGRResult (tensors on self.device)."""
        from specgr.recommenders import validate_history

        validate_history(history, hist_len, self.sids.n_items)  # unknown ids, empty histories: a ValueError with a fix
        return self._recommend(as_long(history, self.device), as_long(hist_len, self.device), k, trace)

    def _recommend(self, hist: torch.Tensor, hl: torch.Tensor, k: int | None = None,
                   trace: bool = False) -> SpecGRResult:
        """`recommend` on validated device tensors hist (B, H), hl (B,): the loop's phases in order. The static loop
        runs every round; `GraphedRecommender` replays the same phases, each as a graph, and skips the rounds left
        once no user of the batch is live (`_n_live`)."""
        lp = self._begin(hist, hl, k)
        for rnd in range(1, lp.rounds + 1):
            self._round(lp, rnd, trace)
            if lp.compact and self._compact(lp):
                break
        if lp.rows.numel():
            self._fill(lp, trace)
        return self._end(lp, trace)

    def _begin(self, hist: torch.Tensor, hl: torch.Tensor, k: int | None) -> _Loop:
        """Phase 1: the candidate buffers, the only encoder pass, the drafter's queries and the empty beam."""
        cfg, dev = self.cfg, self.device
        B, M, W = hist.shape[0], cfg.max_rounds * cfg.draft_size, cfg.num_beams
        learned = cfg.final_weights is not None
        with steps.autocast(dev, cfg.autocast), record_function("specgr.encode"):
            enc, enc_mask, state = steps.encode(self.model, self.sids, hist, hl)
            drafts = _DraftSource(self.drafter, self.model, hist, hl, enc, enc_mask)
        del enc  # the loop only needs the cross-attention state
        # candidate buffers in drafting order: column (r - 1) * δ + j = j-th draft of round r
        return _Loop(
            K=k or cfg.top_k, rounds=cfg.max_rounds, compact=cfg.compacts(dev), learned=learned,
            cand=torch.full((B, M), -1, dtype=torch.long, device=dev),
            cand_v=torch.full((B, M), NEG_INF, device=dev),
            cand_acc=torch.zeros(B, M, dtype=torch.bool, device=dev),
            cand_ds=torch.full((B, M), 0.0, device=dev),  # drafter scores: the trace, and the fused final score
            cand_fs=torch.full((B, M), NEG_INF, device=dev) if learned else None,  # learned final scores
            n_acc=torch.zeros(B, dtype=torch.long, device=dev),
            n_rounds=torch.zeros(B, dtype=torch.long, device=dev),
            # final 4-digit beams (+ digit log-probs), for the fill-up
            fin=(torch.zeros(B, W, N_DIGITS, dtype=torch.long, device=dev), torch.full((B, W), NEG_INF, device=dev),
                 torch.zeros(B, W, dtype=torch.bool, device=dev), torch.zeros(B, W, N_DIGITS, device=dev)),
            state=state, drafts=drafts, rows=torch.arange(B, device=dev), beam=steps.Beam.start(B, dev))

    def _round(self, lp: _Loop, rnd: int, trace: bool = False) -> None:
        """Phase 2, round `rnd`: the previous round's beam step (it guides this round), then draft, verify and record.

        The beam step runs at the start of the round that reads it, so a batch that stops after a round skips it."""
        cfg, sids, dev = self.cfg, self.sids, self.device
        if lp.adv is not None:
            self._beam_step(lp, trace)
        rows, beam, d, K = lp.rows, lp.beam, cfg.draft_size, lp.K
        lo = (rnd - 1) * d
        live = lp.n_acc[rows] < K  # (b,): all True when compacting; with static shapes finished users are masked
        # 1. draft under each user's own beam prefixes; exclude what that user already drafted
        with record_function("specgr.draft"):
            ids, ds = self._draft(lp.drafts, rows, lp.cand, beam, rnd, lo)
        # 2. verify. The beam's next decoder step comes first: the beam step reuses it, and the verifier reads from it
        # the next digit of every draft that extends a beam (all drafts in guided rounds, and in round 1, where the
        # beam is the empty prefix): that digit's input is decoded once per beam, not per draft
        with steps.autocast(dev, cfg.autocast), record_function("specgr.beam_step"):
            lp.adv = adv = steps.beam_advance(self.model, lp.state, beam)
        with steps.autocast(dev, cfg.autocast), record_function("specgr.verify"):
            extends = rnd == 1 or cfg.uses_prefixes(rnd)  # drafts extend these prefixes: reuse them
            guide, guide_adv = (beam, adv) if extends else (None, None)
            v = steps.verify(self.model, sids, lp.state, ids, cfg.length_rule, cfg.min_len, guide, guide_adv,
                             return_logprobs=lp.learned)
        if lp.learned:  # the learned final score reads V's digit log-probs (before the new-item bonus)
            v, logp, m = v
            fs = learned_score(cfg.final_weights,
                               candidate_features(ids, ds.to(dev), logp, m, sids.prefix_len, sids.n_in_sample))
        if not lp.compact:  # a finished user's new drafts are dropped: its buffers stay as its last round left them
            ids, v = ids.masked_fill(~live[:, None], -1), v.masked_fill(~live[:, None], NEG_INF)
        v = v + cfg.new_item_bonus * (ids >= sids.n_in_sample)  # 0 in the paper; pads stay -inf
        acc = v > cfg.threshold  # pads have V = -inf: never accepted
        n = ids.shape[1]
        lp.cand[rows, lo:lo + n], lp.cand_v[rows, lo:lo + n], lp.cand_acc[rows, lo:lo + n] = ids, v, acc
        lp.cand_ds[rows, lo:lo + n] = ds.float().to(dev).masked_fill(ids < 0, 0.0)
        if lp.learned:
            lp.cand_fs[rows, lo:lo + n] = fs.masked_fill(ids < 0, NEG_INF)
        lp.n_acc[rows] += acc.sum(1)
        lp.n_rounds[rows] = torch.where(live, rnd, lp.n_rounds[rows])

    def _compact(self, lp: _Loop) -> bool:
        """Per-user early exit of the compacting loop: users with >= K accepted leave the active set (the one host
        sync of the round). Returns True when none is left."""
        with record_function("specgr.host_sync"):
            keep = (lp.n_acc[lp.rows] < lp.K).nonzero().squeeze(1)
        if keep.numel() == 0:
            lp.rows = lp.rows[:0]
            return True
        if keep.numel() < lp.rows.numel():
            lp.rows = lp.rows[keep]
            lp.state, lp.beam, lp.adv = lp.state.index(keep), lp.beam.index(keep), lp.adv.index(keep)
        return False

    @staticmethod
    def _n_live(lp: _Loop) -> torch.Tensor:
        """() long on the device: how many users of the batch still have < K accepted (static shapes)."""
        return (lp.n_acc < lp.K).sum()

    @staticmethod
    def _shrink(lp: _Loop, size: int) -> _Loop:
        """The static loop's state cut to `size` of its rows, for the rounds left: its live users first (batch order),
        then finished ones up to `size`. The buffers are shared; rows, encoder state, beam and pending beam step
        are gathered (new tensors). `size` must hold every live user (`_n_live`), which the caller knows.

        With static shapes a finished user's rows are masked in place and its lists no longer change, so the rounds
        left give the same lists on any rows that include the live ones (tested). `GraphedRecommender` moves a batch
        to a graph of fewer rows this way once most of its users are done."""
        if lp.compact:
            raise ValueError("_shrink cuts a static loop; a compacting loop drops its finished users itself. Fix: "
                             "SpecGRConfig(compact=False).")
        keep = SpecGR._kept(lp, size)
        return dataclasses.replace(lp, rows=lp.rows[keep], state=lp.state.index(keep), beam=lp.beam.index(keep),
                                   adv=None if lp.adv is None else lp.adv.index(keep))

    @staticmethod
    def _kept(lp: _Loop, size: int) -> torch.Tensor:
        """(size,) positions in lp.rows that `_shrink` keeps: the live users first, in batch order, then finished
        ones. Static shapes, no host sync."""
        done = (lp.n_acc[lp.rows] >= lp.K).to(torch.uint8)
        return torch.sort(done, stable=True).indices[:size]

    def _beam_step(self, lp: _Loop, trace: bool) -> None:
        """Extend the beam by one digit from the round's shared decoder step (`lp.adv`)."""
        cfg, dev = self.cfg, self.device
        with steps.autocast(dev, cfg.autocast), record_function("specgr.beam_step"):
            lp.beam = steps.beam_step(self.model, self.sids, lp.state, lp.beam, cfg.num_beams,
                                      in_sample_only=not cfg.inductive, advance=lp.adv)
        lp.adv = None
        if trace:  # the beams of the users still active after the round (masked users have none, as compacted)
            on = (lp.n_acc[lp.rows] < lp.K).cpu()
            b = lp.beam
            lp.round_beams.append((lp.rows.cpu()[on], b.tokens.cpu()[on], b.scores.cpu()[on], b.valid.cpu()[on]))

    def _fill(self, lp: _Loop, trace: bool = False) -> None:
        """Phase 3, after the last round: the last beam step, then (max_rounds < 4) the beams finished, kept for
        the fill-up. Skipped when no user needs it."""
        cfg, dev = self.cfg, self.device
        if lp.adv is not None:
            self._beam_step(lp, trace)
        beam = lp.beam
        while beam.length < N_DIGITS:  # only when max_rounds < 4
            with steps.autocast(dev, cfg.autocast):
                beam = steps.beam_step(self.model, self.sids, lp.state, beam, cfg.num_beams,
                                       in_sample_only=not cfg.inductive)
        rows, fin = lp.rows, lp.fin
        fin[0][rows], fin[1][rows], fin[2][rows] = beam.tokens, beam.scores.float(), beam.valid
        if lp.learned:  # the learned final score reads the fill beams' digit log-probs
            fin[3][rows] = beam.logprobs.float().masked_fill(~beam.valid[..., None], 0.0)

    def _end(self, lp: _Loop, trace: bool = False) -> SpecGRResult:
        """Phase 4: the final lists from the buffers."""
        with record_function("specgr.finalize"):
            items, scores, sources = self._finalize(lp.cand, lp.cand_v, lp.cand_ds, lp.cand_acc, lp.n_acc, lp.fin,
                                                    lp.K, lp.drafts, lp.cand_fs)
        res = SpecGRResult(items, scores, sources, lp.n_rounds, lp.n_acc, (lp.cand >= 0).sum(1))
        if trace:
            res.traces = self._traces(res, lp.cand, lp.cand_v, lp.cand_acc, lp.cand_ds, lp.round_beams, lp.cand_fs)
        return res

    def _draft(self, drafts, rows: torch.Tensor, cand: torch.Tensor, beam, rnd: int, lo: int):
        """Round `rnd` drafts for the active users `rows` (b,) -> ids (b, δ) on self.device, scores (b, δ).

        Guided rounds restrict each user to items under that user's own beam prefixes; every round excludes the
        user's earlier drafts (cand[:, :lo]). Users go in chunks so the (chunk, N) bool mask stays bounded.
        """
        cfg, sids, dev = self.cfg, self.sids, self.device
        in_only = not cfg.inductive
        b = rows.numel()
        m = self._range_candidates(drafts, beam) if cfg.uses_prefixes(rnd) else 0
        ranges = m > 0
        # elements per user: the (c, N) mask and scan, or the candidates and their scores (`RetrievalIndex.score`)
        per_user = m + min(m * drafts.q.shape[1], sids.n_items) if ranges else sids.n_items
        step = max(1, cfg.draft_chunk_elems // max(per_user, 1))
        out_i, out_s = [], []
        for s in range(0, b, step):
            e = min(b, s + step)
            exclude = cand[rows[s:e], :lo] if lo else None
            if cfg.exclude_history:
                exclude = drafts.hist[rows[s:e]] if exclude is None else torch.cat([exclude, drafts.hist[rows[s:e]]], 1)
            if ranges:  # (c, β·w) ids under the user's own prefixes: same drafts, the catalog is never scanned
                items = sids.prefix_items(beam.tokens[s:e], beam.valid[s:e], in_sample_only=in_only)
                i, sc = drafts.draft_among(rows[s:e], cfg.draft_size, items, exclude)
            else:
                allowed = None
                if cfg.uses_prefixes(rnd):  # (c, N) bool, per user: never a union over the batch
                    allowed = sids.prefix_match_mask(beam.tokens[s:e], beam.valid[s:e], in_sample_only=in_only)
                elif in_only:
                    allowed = sids.in_sample_mask[None].expand(e - s, -1)
                i, sc = drafts.draft(rows[s:e], cfg.draft_size, allowed, exclude)
            out_i.append(i.to(dev))
            out_s.append(sc)
        if len(out_i) == 1:
            return out_i[0], out_s[0]
        return torch.cat(out_i), torch.cat([x.to(dev) for x in out_s])

    def _range_candidates(self, drafts, beam) -> int:
        """A guided round's candidates per user when it drafts from the prefixes' item ranges, β × w (w: the most
        items a prefix of this length holds); 0 when it scans the catalog (`SpecGRConfig.draft_ranges`). Ranges need
        an embedding index; by default they are used when β × w <= N, so that ranking them costs less than masking
        and ranking the catalog. Decided from shapes only: no host sync."""
        if not drafts.has_index or beam.length == 0:
            return 0
        m = beam.tokens.shape[1] * self.sids.max_prefix_items(beam.length, not self.cfg.inductive)
        use = self.cfg.draft_ranges if self.cfg.draft_ranges is not None else m <= self.sids.n_items
        return m if use else 0

    # ------------------------------------------------------------------ final lists
    def _finalize(self, cand, cand_v, cand_ds, cand_acc, n_acc, fin, K: int, drafts, cand_fs=None):
        """Buffers -> items (B, K), scores (B, K), sources (B, K); see ReferenceSpecGR.finalize for the rule.

        Columns: M candidates in drafting order, then the W final beams in beam order. The selection is
        (accepted, top-K of them by score or by drafting order) + (pool = rejected candidates and never-drafted beams,
        top max(K - #accepted, 0) by score); the selection is then sorted by score. Score = V (candidates) or beam
        log-prob / 4 (beams), plus fusion_weight * drafter score; or, with final_weights, the learned score of both
        (cand_fs (B, M), computed per round; the beams' from their digit log-probs fin[3]).
        """
        B, M = cand.shape
        w = self.cfg.fusion_weight
        cand_sc = cand_fs if cand_fs is not None else (cand_v + w * cand_ds if w else cand_v)
        # accepted part: all of them when < K were accepted, else the top K by score (v-old) or the first K (v-new)
        if self.cfg.accept_topk_by == "score":
            acc_rank = desc_rank(cand_sc, cand_acc)
        else:
            acc_rank = cand_acc.long().cumsum(1) - 1
        acc_sel = cand_acc & (acc_rank < K)
        # fill-up pool: rejected candidates and final beams that were never drafted (nor in the history)
        f_tok, f_sc, f_ok, f_lp = fin
        W = f_tok.shape[1]
        b_items = self.sids.lookup(f_tok.reshape(B * W, N_DIGITS)).view(B, W)
        b_drafted = (b_items[:, :, None] == cand[:, None, :]).any(2)  # (B, W, M); small: W, M ~ 10^2
        if self.cfg.exclude_history:
            b_drafted |= (b_items[:, :, None] == drafts.hist[:, None, :]).any(2)
        b_ok = f_ok & (b_items >= 0) & ~b_drafted
        b_sc = f_sc / N_DIGITS
        if cand_fs is not None:
            b_sc = self._beam_learned_score(b_items, f_lp, drafts)
        elif w:
            b_sc = b_sc + w * drafts.score(torch.arange(B, device=cand.device), b_items)
        ids = torch.cat([cand, b_items], 1)
        sc = torch.cat([cand_sc, b_sc], 1)
        in_pool = torch.cat([(cand >= 0) & ~cand_acc, b_ok], 1)
        need = (K - n_acc).clamp(min=0)
        pool_sel = in_pool & (desc_rank(sc, in_pool) < need[:, None])
        sel = pool_sel | torch.cat([acc_sel, torch.zeros_like(b_ok)], 1)
        # final order: selected first, by descending score
        src = torch.cat([torch.where(cand_acc, SOURCE_ACCEPTED, SOURCE_FILL),
                         torch.full_like(b_items, SOURCE_BEAM)], 1)
        order = desc_order(sc, sel)
        kk = min(K, order.shape[1])
        order = order[:, :kk]
        got = sel.gather(1, order)
        items = torch.where(got, ids.gather(1, order), -1)
        scores = torch.where(got, sc.gather(1, order), NEG_INF)
        sources = torch.where(got, src.gather(1, order), SOURCE_NONE)
        return pad_lists(K, items, scores, sources)  # K > l·δ + β: empty slots at the end

    def _beam_learned_score(self, b_items: torch.Tensor, b_lp: torch.Tensor, drafts) -> torch.Tensor:
        """The learned final score of the final beams: b_items (B, W) (-1 = none), b_lp (B, W, 4) their digit
        log-probs -> (B, W); features as for a drafted item (digit log-probs from the beam, V by the config's rule)."""
        cfg, sids = self.cfg, self.sids
        ds = drafts.score(torch.arange(b_items.shape[0], device=b_items.device), b_items)
        m = candidate_lengths(b_items.clamp(min=0), sids.n_in_sample, cfg.length_rule, sids.prefix_len, cfg.min_len)
        return learned_score(cfg.final_weights,
                             candidate_features(b_items, ds, b_lp, m, sids.prefix_len, sids.n_in_sample))

    # ------------------------------------------------------------------ traces (trace=True only)
    def _traces(self, res, cand, cand_v, cand_acc, cand_ds, round_beams, cand_fs=None) -> list[UserTrace]:
        cfg, d = self.cfg, self.cfg.draft_size
        cand, cand_v, cand_acc, cand_ds = (t.cpu().numpy() for t in (cand, cand_v, cand_acc, cand_ds))
        cand_fs = None if cand_fs is None else cand_fs.cpu().numpy()
        items, scores, sources = (t.cpu().numpy() for t in (res.items, res.scores, res.sources))
        n_rounds = res.n_rounds.cpu().numpy()
        where = [{int(u): j for j, u in enumerate(rb[0].tolist())} for rb in round_beams]
        out = []
        for u in range(len(cand)):
            tr = UserTrace()
            for r in range(1, int(n_rounds[u]) + 1):
                s = slice((r - 1) * d, r * d)
                m = cand[u, s] >= 0
                rt = RoundTrace(r, r - 1 if cfg.uses_prefixes(r) else 0, cand[u, s][m], cand_ds[u, s][m],
                                cand_v[u, s][m], cand_acc[u, s][m])
                if cand_fs is not None:
                    rt.final_scores = cand_fs[u, s][m]
                if r <= len(round_beams) and u in where[r - 1]:
                    j = where[r - 1][u]
                    tok, sc, ok = (t[j] for t in round_beams[r - 1][1:])
                    rt.beam_tokens, rt.beam_scores = tok[ok].numpy(), sc[ok].float().numpy()
                tr.rounds.append(rt)
            m = items[u] >= 0
            tr.items, tr.scores = items[u][m], scores[u][m]
            tr.sources = [SOURCE_NAMES[int(c)] for c in sources[u][m]]
            tr.is_new = tr.items >= self.sids.n_in_sample
            out.append(tr)
        return out

    # ------------------------------------------------------------------ whole splits
    def recommend_rows(self, rows, batch_size: int = 256, k: int | None = None, progress: bool = True,
                       trace: bool = False, by_length: bool = False) -> SpecGRResult:
        """Run a whole split (specgr.data.processed.Rows or anything with .history / .hist_len) in batches.

        Returns host tensors for all rows, in row order, and `timing` = {"seconds", "n_rows", "recs_per_s",
        "device"}, measured around the whole loop with CUDA synchronisation. by_length: batch rows of similar history
        lengths and cut the padding (`length_batches`).
        """
        return run_rows(self, rows, batch_size, k, progress, trace, by_length)


def run_rows(rec, rows, batch_size: int = 256, k: int | None = None, progress: bool = True,
             trace: bool = False, by_length: bool = False) -> SpecGRResult:
    """Shared by SpecGR, ReferenceSpecGR and TigerOnly: batches of `rows` through rec.recommend, timed; results in
    row order. by_length: batches of similar history lengths, cut to their width (`length_batches`)."""
    from tqdm.auto import tqdm

    dev = getattr(rec, "device", torch.device("cpu"))
    hist, hl = np.asarray(rows.history), np.asarray(rows.hist_len)
    R = len(hl)
    batches = length_batches(hl, hist.shape[1], batch_size, by_length)
    parts = []
    sync(dev)
    t0 = time.perf_counter()
    for idx, w in tqdm(batches, disable=not progress, desc=type(rec).__name__, unit="batch"):
        parts.append(rec.recommend(hist[idx, :w], hl[idx], k=k, trace=trace).cpu())
    sync(dev)
    sec = time.perf_counter() - t0
    out = SpecGRResult.cat(parts) if parts else None
    if out is not None and by_length:  # back to row order
        out = out.take(row_order(batches))
    if out is not None:
        out.timing = {"seconds": sec, "n_rows": R, "recs_per_s": R / max(sec, 1e-9), "device": str(dev)}
    return out


class TigerOnly:
    """Baseline with the same recommend() shape: plain TIGER constrained beam search (width K, in-sample items
    only, so it never recommends unseen items). Scores are beam log-prob / 4; every source is SOURCE_BEAM."""

    def __init__(self, model, sids, num_beams: int | None = None, device="cpu", autocast: bool = True):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.sids = sids.to(self.device)
        self.num_beams, self.autocast = num_beams, autocast

    @torch.inference_mode()
    def recommend(self, history, hist_len, k: int = 50, trace: bool = False) -> SpecGRResult:
        from specgr.recommenders import validate_history

        validate_history(history, hist_len, self.sids.n_items)
        return self._recommend(as_long(history, self.device), as_long(hist_len, self.device), k)

    def _recommend(self, hist: torch.Tensor, hl: torch.Tensor, k: int | None = 50) -> SpecGRResult:
        """`recommend` on validated device tensors hist (B, H), hl (B,): what `GraphedRecommender` captures."""
        dev, sids = self.device, self.sids
        k = k or 50
        W = max(self.num_beams or k, k)
        B = hist.shape[0]
        with steps.autocast(dev, self.autocast):
            _, _, state = steps.encode(self.model, sids, hist, hl)
            items, sc, _ = beam_search(self.model, None, None, sids, width=W, k=k, constrained=True,
                                       in_sample_only=True, state=state)
        ok = items >= 0
        sc = sc.float() / N_DIGITS
        items = torch.where(ok, items, -1)
        scores = torch.where(ok, sc, NEG_INF)
        sources = torch.where(ok, SOURCE_BEAM, SOURCE_NONE)
        zero = torch.zeros(B, dtype=torch.long, device=dev)
        return SpecGRResult(*pad_lists(k, items, scores, sources), zero, zero, zero)

    def recommend_rows(self, rows, batch_size: int = 256, k: int | None = 50, progress: bool = True,
                       trace: bool = False, by_length: bool = False) -> SpecGRResult:
        return run_rows(self, rows, batch_size, k, progress, False, by_length)
