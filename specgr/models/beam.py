"""Batched beam search over semantic ids with a KV cache, constrained to valid ids (the trie) by default.

Scores are the plain sum of the model's log-probs of the 4 digits: masking invalid tokens removes them but does NOT
renormalise the remaining ones, so a constrained beam as wide as the catalog returns exactly the exhaustive ranking
(every item scored by its 4-digit log-likelihood). No EOS step: all ids have 4 digits, so the EOS log-prob would only
add noise to the ranking (the authors' code scores a fifth, EOS step).

`Beam` + `beam_step` are the one beam driver: `beam_search` is four steps of it, and the SpecGR loop
(specgr.speculate) takes one step per round, interleaved with drafting and verification.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from specgr.models.tiger import DECODER_START, TIGER, EncoderState
from specgr.sid.semantic_ids import N_DIGITS

NEG_INF = float("-inf")


def expand_beams(step_logprobs: torch.Tensor, beam_scores: torch.Tensor, beam_tokens: torch.Tensor, width: int,
                 allowed: torch.Tensor | None = None, beam_valid: torch.Tensor | None = None,
                 return_parent: bool = False):
    """One beam-search step for B users.

    step_logprobs (B, W, V): next-token log-probs of each beam; beam_scores (B, W): summed log-probs so far;
    beam_tokens (B, W, L): the beams' tokens (L = 0 at the start state, W = 1); allowed (B, W, V) bool or None (all
    tokens); beam_valid (B, W) bool or None (all valid).

    Returns new_tokens (B, width, L+1), new_scores (B, width) sorted descending, new_valid (B, width) (False for
    slots that could not be filled: fewer than `width` allowed continuations; their score is -inf), and with
    return_parent=True also parent (B, width): the index of the beam each new beam extends (for KV-cache reordering).
    """
    B, W, V = step_logprobs.shape
    L = beam_tokens.shape[-1]
    cand = beam_scores.float()[..., None] + step_logprobs.float()  # (B, W, V)
    if allowed is not None:
        cand = cand.masked_fill(~allowed, NEG_INF)
    if beam_valid is not None:
        cand = cand.masked_fill(~beam_valid[..., None], NEG_INF)
    k = min(width, W * V)
    scores, idx = cand.reshape(B, W * V).topk(k, dim=1)  # sorted
    parent, tok = idx // V, idx % V
    prev = beam_tokens.gather(1, parent[..., None].expand(B, k, L)) if L else beam_tokens.new_zeros(B, k, 0)
    tokens = torch.cat([prev, tok[..., None].to(beam_tokens.dtype)], -1)
    valid = scores > NEG_INF
    if k < width:  # pad to the requested width with empty slots
        pad = width - k
        tokens = torch.cat([tokens, tokens.new_zeros(B, pad, L + 1)], 1)
        scores = torch.cat([scores, scores.new_full((B, pad), NEG_INF)], 1)
        valid = torch.cat([valid, valid.new_zeros(B, pad)], 1)
        parent = torch.cat([parent, parent.new_zeros(B, pad)], 1)
    tokens = tokens.masked_fill(~valid[..., None], 0)
    return (tokens, scores, valid, parent) if return_parent else (tokens, scores, valid)


def parent_rows(parent: torch.Tensor, W: int) -> torch.Tensor:
    """parent (B, W') beam indices among each user's W beams -> (B*W',) their rows among all B*W beams."""
    return (torch.arange(parent.shape[0], device=parent.device)[:, None] * W + parent).reshape(-1)


def cache_rows(past: list, flat: torch.Tensor) -> list:
    """Self-attention cache (per layer (k, v) (N, h, L, d)) -> its rows `flat` (N', h, L, d).

    One flat row index: indexing the first dimension with one index tensor copies whole rows (a vectorised gather),
    where indexing (user, beam) with two copied element by element: in beam search on an H100, 0.95 against 3.5 ms
    per 1,024 users (docs/RESULTS.md §4, release 21)."""
    return [(k[flat], v[flat]) for k, v in past]


def reorder_cache(past: list, parent: torch.Tensor) -> list:
    """Self-attention cache (per layer (k, v) (B*W, h, L, d)) -> rows of the beams' parents (B*W', h, L, d)."""
    return cache_rows(past, parent_rows(parent, past[0][0].shape[0] // parent.shape[0]))


def index_cache(past: list, B: int, W: int, rows: torch.Tensor) -> list:
    """Self-attention cache of B users x W beams (per layer (k, v) (B*W, h, L, d)) -> users `rows` (B'*W, h, L, d)."""
    return [tuple(t.view(B, W, *t.shape[1:])[rows].reshape(-1, *t.shape[1:]) for t in kv) for kv in past]


def fit_vocab(allowed: torch.Tensor, V: int) -> torch.Tensor:
    """Allowed-token mask of the SID vocab -> the model's vocab V (a grown collision digit can exceed it)."""
    Vs = allowed.shape[-1]
    if Vs == V:
        return allowed
    if Vs > V:
        return allowed[..., :V]
    return torch.cat([allowed, allowed.new_zeros(*allowed.shape[:-1], V - Vs)], -1)


@dataclass
class Beam:
    """W beams per user. tokens (B, W, L) SID tokens, scores (B, W) summed log-probs, valid (B, W);
    logprobs (B, W, L) fp32: the log-prob of each digit of each beam (-inf on invalid beams), which lets the SpecGR
    verifier reuse a beam prefix's digits (`specgr.models.scoring.prefix_digit_logprobs`);
    past: the decoder self-attention cache of the beams (per layer (k, v), (B*W, h, L, d_kv): inputs
    [PAD, d1..d_{L-1}]), None at L = 0 and at L = 4 (nothing decodes after the last digit)."""

    tokens: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    logprobs: torch.Tensor
    past: list | None = None

    @classmethod
    def start(cls, B: int, device) -> "Beam":
        """The empty beam: one length-0 prefix per user with score 0."""
        return cls(torch.zeros(B, 1, 0, dtype=torch.long, device=device), torch.zeros(B, 1, device=device),
                   torch.ones(B, 1, dtype=torch.bool, device=device), torch.zeros(B, 1, 0, device=device))

    @property
    def length(self) -> int:
        return self.tokens.shape[2]

    def index(self, rows: torch.Tensor) -> "Beam":
        """Keep users `rows` (B',) (compaction of the active set)."""
        past = None if self.past is None else index_cache(self.past, *self.scores.shape, rows)
        return Beam(self.tokens[rows], self.scores[rows], self.valid[rows], self.logprobs[rows], past)


@dataclass
class BeamAdvance:
    """The decoder step that extends a beam, computed once and shared: logprobs (B, W, V) fp32, the next digit's
    log-probs after each beam; past: the beams' cache with that step's input added (per layer (k, v),
    (B*W, h, L+1, d_kv): inputs [PAD, d1..d_L]). `beam_step` expands the beams from it; the SpecGR verifier reads the
    next digit of every candidate under a beam from it, instead of decoding that digit once per candidate."""

    logprobs: torch.Tensor
    past: list

    def index(self, rows: torch.Tensor) -> "BeamAdvance":
        """Keep users `rows` (B',) (compaction of the active set)."""
        B, W = self.logprobs.shape[:2]
        return BeamAdvance(self.logprobs[rows], index_cache(self.past, B, W, rows))


def beam_advance(model: TIGER, state: EncoderState, beam: Beam) -> BeamAdvance:
    """The KV-cached decoder step on every beam's newest token (DECODER_START for the empty beam)."""
    B, W, L = beam.tokens.shape
    last = beam.tokens[..., -1] if L else torch.full((B, W), DECODER_START, dtype=torch.long,
                                                     device=beam.tokens.device)
    return BeamAdvance(*model.decode_step(state, last, beam.past))


def beam_step(model: TIGER, sids, state: EncoderState, beam: Beam, width: int, in_sample_only: bool = False,
              constrained: bool = True, advance: BeamAdvance | None = None) -> Beam:
    """Extend every user's beams by one digit (KV-cached decoder step + `expand_beams`).

    constrained=True: only extensions towards existing items (the trie, `sids.allowed_next`; in_sample_only keeps to
    in-sample items). The SpecGR loop calls this once per round; `beam_search` is four calls of it.
    advance: this beam's decoder step if already computed (`beam_advance`, shared with the verifier).
    """
    B, W, L = beam.tokens.shape
    adv = advance if advance is not None else beam_advance(model, state, beam)
    logp, past = adv.logprobs, adv.past  # (B, W, V) fp32
    allowed = None
    if constrained:
        allowed = sids.allowed_next(beam.tokens.reshape(B * W, L), in_sample_only=in_sample_only)
        allowed = fit_vocab(allowed.to(logp.device).view(B, W, -1), logp.shape[-1])
    tokens, scores, valid, parent = expand_beams(logp, beam.scores, beam.tokens, width, allowed, beam.valid,
                                                 return_parent=True)
    # per-digit log-probs: the parent's, then the new digit's (scores stay the running sum expand_beams computed)
    rows = torch.arange(B, device=parent.device)[:, None]
    digit = logp[rows, parent, tokens[..., -1]]  # (B, width)
    logprobs = torch.cat([beam.logprobs[rows, parent], digit[..., None].float()], -1)
    logprobs = logprobs.masked_fill(~valid[..., None], NEG_INF)
    return Beam(tokens, scores, valid, logprobs, reorder_cache(past, parent) if L + 1 < N_DIGITS else None)


@torch.no_grad()
def beam_search(model: TIGER, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, sids,
                width: int = 50, k: int | None = None, constrained: bool = True, in_sample_only: bool = False,
                state: EncoderState | None = None):
    """Top-k semantic ids per user by beam search: four `beam_step`s from the empty beam.

    input_ids, attention_mask (B, T) (or a precomputed `state`); sids: SemanticIDs (trie + lookup).
    constrained=True: only tokens that extend a valid id (sids.allowed_next; in_sample_only restricts to in-sample
    items, the classic TIGER setting). constrained=False: any token at any step (the official behaviour); ids that
    match no item come back as item -1.

    Returns item_ids (B, K) long (-1 = no item), scores (B, K) fp32 = sum of the 4 digit log-probs (-inf for empty
    slots), tokens (B, K, 4), sorted by score, K = k or width.
    """
    if state is None:
        state = model.encoder_state(model.encode(input_ids, attention_mask), attention_mask)
    B = state.batch_size
    beam = Beam.start(B, state.mask.device)
    for _ in range(N_DIGITS):
        beam = beam_step(model, sids, state, beam, width, in_sample_only, constrained)
    items = sids.lookup(beam.tokens.reshape(-1, N_DIGITS), in_sample_only=in_sample_only).to(beam.tokens.device)
    items = items.view(B, -1).masked_fill(~beam.valid, -1)
    K = k or width
    return items[:, :K], beam.scores[:, :K], beam.tokens[:, :K]
