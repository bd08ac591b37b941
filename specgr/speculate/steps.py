"""The three model-side steps of the SpecGR loop, as thin adapters over the project's one implementation of each:

- `encode`:    history -> encoder states, once per user        (specgr.data.tokenize + TIGER.encode)
- `verify`:    candidate items -> V(x)                         (specgr.models.scoring.score_candidates)
- `beam_step`: beam prefixes of length L -> length L+1         (TIGER.decoder_logprobs + specgr.models.beam.expand_beams)

Both the one-user reference and the batched loop call these, so they can only differ in the bookkeeping around them.
"""

from __future__ import annotations

import contextlib

import torch

from specgr.data.tokenize import history_tokens
from specgr.models.beam import expand_beams
from specgr.models.scoring import score_candidates


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast for model calls on CUDA; a no-op elsewhere (CPU results stay fp32 and comparable)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode(model, sids, history: torch.Tensor, hist_len: torch.Tensor):
    """history (B, H) item ids (-1 pad), hist_len (B,) -> enc (B, T, d), enc_mask (B, T) with T = 2 + 4H."""
    input_ids, mask = history_tokens(history, hist_len, sids.tokens)
    input_ids, mask = input_ids.to(history.device), mask.to(history.device)
    return model.encode(input_ids, mask), mask


def verify(model, sids, enc, enc_mask, ids: torch.Tensor, length_rule: str, min_len: int) -> torch.Tensor:
    """ids (B, R) candidate items (-1 pad) -> V (B, R) float32, the length-normalised log-likelihood; -inf at pads."""
    V = score_candidates(model, enc, enc_mask, ids, sids.tokens, sids.n_in_sample, length_rule=length_rule,
                         prefix_len=sids.prefix_len, min_len=min_len)
    V = V.float()
    return torch.where(ids >= 0, V, torch.full_like(V, float("-inf")))


def beam_step(model, sids, enc, enc_mask, tokens: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor,
              width: int, in_sample_only: bool = False):
    """One constrained beam-search step for every user of the batch.

    tokens (B, W, L) SID-token prefixes, scores (B, W) summed log-probs, valid (B, W) ->
    (tokens (B, width, L+1), scores (B, width), valid (B, width)). Only extensions towards existing items are allowed.
    """
    B, W, L = tokens.shape
    start = torch.zeros(B, W, 1, dtype=torch.long, device=tokens.device)  # decoder start token = PAD
    logp = model.decoder_logprobs(enc, enc_mask, torch.cat([start, tokens], 2))[:, :, -1].float()  # (B, W, V)
    allowed = sids.allowed_next(tokens.reshape(B * W, L), in_sample_only=in_sample_only).view(B, W, -1)
    return expand_beams(logp, scores, tokens, width, allowed, valid)


def initial_beam(B: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The empty beam: one length-0 prefix per user with score 0."""
    return (torch.zeros(B, 1, 0, dtype=torch.long, device=device), torch.zeros(B, 1, device=device),
            torch.ones(B, 1, dtype=torch.bool, device=device))
