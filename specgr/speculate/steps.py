"""The model-side steps of the SpecGR loop, as thin adapters over the project's one implementation of each:

- `encode`:    history -> encoder states + cross-attention K/V, once per user   (data.tokenize, TIGER.encode)
- `verify`:    candidate items -> V(x)                                            (models.scoring.score_candidates)
- `beam_step`: width-β constrained beam, prefixes of length L -> L+1              (TIGER.decode_step + KV cache,
                                                                                  models.beam.expand_beams)

The one-user reference and the batched loop both call these, so they can only differ in the bookkeeping around them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from specgr.data.tokenize import history_tokens
from specgr.models.beam import expand_beams, fit_vocab, reorder_cache
from specgr.models.scoring import score_candidates
from specgr.models.tiger import DECODER_START

N_DIGITS = 4


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast for model calls on CUDA; a no-op elsewhere (CPU results stay fp32 and comparable)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode(model, sids, history: torch.Tensor, hist_len: torch.Tensor):
    """history (B, H) item ids (-1 pad), hist_len (B,) -> enc (B, T, d), enc_mask (B, T), state (EncoderState).

    T = 2 + 4H. The state holds the decoder's cross-attention keys/values: every later decoder call reuses it.
    """
    input_ids, mask = history_tokens(history, hist_len, sids.tokens)
    input_ids, mask = input_ids.to(history.device), mask.to(history.device)
    enc = model.encode(input_ids, mask)
    return enc, mask, model.encoder_state(enc, mask)


def verify(model, sids, state, ids: torch.Tensor, length_rule: str, min_len: int) -> torch.Tensor:
    """ids (B, R) candidate items (-1 pad) -> V (B, R) float32, the length-normalised log-likelihood; -inf at pads."""
    V = score_candidates(model, state, None, ids, sids.tokens, sids.n_in_sample, length_rule=length_rule,
                         prefix_len=sids.prefix_len, min_len=min_len).float()
    return V.masked_fill(ids < 0, float("-inf"))


@dataclass
class Beam:
    """W beams per user. tokens (B, W, L) SID tokens, scores (B, W) summed log-probs, valid (B, W);
    past: the decoder self-attention cache of the beams (per layer (k, v), (B*W, h, L, d_kv)), None at L = 0."""

    tokens: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    past: list | None = None

    @classmethod
    def start(cls, B: int, device) -> "Beam":
        """The empty beam: one length-0 prefix per user with score 0."""
        return cls(torch.zeros(B, 1, 0, dtype=torch.long, device=device), torch.zeros(B, 1, device=device),
                   torch.ones(B, 1, dtype=torch.bool, device=device))

    @property
    def length(self) -> int:
        return self.tokens.shape[2]

    def index(self, rows: torch.Tensor) -> "Beam":
        """Keep users `rows` (B',) (compaction of the active set)."""
        past = None
        if self.past is not None:
            B, W = self.scores.shape
            past = [tuple(t.view(B, W, *t.shape[1:])[rows].reshape(-1, *t.shape[1:]) for t in kv) for kv in self.past]
        return Beam(self.tokens[rows], self.scores[rows], self.valid[rows], past)


def beam_step(model, sids, state, beam: Beam, width: int, in_sample_only: bool = False) -> Beam:
    """One constrained beam-search step for every user: extensions towards existing items only (the trie).

    Same maths as `specgr.models.beam.beam_search` (KV cache, summed log-probs, no renormalisation).
    """
    B, W, L = beam.tokens.shape
    last = beam.tokens[..., -1] if L else torch.full((B, W), DECODER_START, dtype=torch.long,
                                                     device=beam.tokens.device)
    logp, past = model.decode_step(state, last, beam.past)  # (B, W, V) fp32
    allowed = sids.allowed_next(beam.tokens.reshape(B * W, L), in_sample_only=in_sample_only)
    allowed = fit_vocab(allowed.view(B, W, -1), logp.shape[-1])
    tokens, scores, valid, parent = expand_beams(logp, beam.scores, beam.tokens, width, allowed, beam.valid,
                                                 return_parent=True)
    return Beam(tokens, scores, valid, reorder_cache(past, parent) if L + 1 < N_DIGITS else None)
