"""The model-side steps of the SpecGR loop, as thin adapters over the project's one implementation of each:

- `encode`:    history -> encoder states + cross-attention K/V, once per user   (data.tokenize, TIGER.encode)
- `verify`:    candidate items -> V(x), reusing the beam prefix in guided rounds  (models.scoring.score_candidates)
- `beam_step`: width-β constrained beam, prefixes of length L -> L+1              (models.beam: the one beam driver)

The one-user reference and the batched loop both call these, so they can only differ in the bookkeeping around them.
"""

from __future__ import annotations

import contextlib

import torch

from specgr.data.tokenize import history_tokens
from specgr.models.beam import Beam, BeamAdvance, beam_advance, beam_step  # noqa: F401  (the loop's beam driver)
from specgr.models.scoring import score_candidates



def autocast(device: torch.device, enabled: bool):
    """bf16 autocast for model calls on CUDA; a no-op elsewhere (CPU results stay fp32 and comparable).

    No cast cache: each context covers one model call, which uses each weight about once, and a cache kept across a
    CUDA graph capture would hold tensors of the graph's private pool (`specgr.speculate.graphed`)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def encode(model, sids, history: torch.Tensor, hist_len: torch.Tensor):
    """history (B, H) item ids (-1 pad), hist_len (B,) -> enc (B, T, d), enc_mask (B, T), state (EncoderState).

    T = 2 + 4H. The state holds the decoder's cross-attention keys/values: every later decoder call reuses it.
    """
    input_ids, mask = history_tokens(history, hist_len, sids.tokens)
    input_ids, mask = input_ids.to(history.device), mask.to(history.device)
    enc = model.encode(input_ids, mask)
    return enc, mask, model.encoder_state(enc, mask)


def verify(model, sids, state, ids: torch.Tensor, length_rule: str, min_len: int, beam: Beam | None = None,
           advance: BeamAdvance | None = None, return_logprobs: bool = False):
    """ids (B, R) candidate items (-1 pad) -> V (B, R) float32, the length-normalised log-likelihood; -inf at pads.
    return_logprobs: (V, lp (B, R, 4), m (B, R)), the digit log-probs and digit counts behind V (`score_candidates`).

    beam: in guided rounds, the beam whose prefixes the drafts were restricted to; the verifier then reuses each
    candidate's prefix (its parent beam's digit log-probs and KV cache) and decodes only the remaining digits.
    None (unguided rounds): every candidate is decoded teacher-forced from PAD. advance: that beam's next decoder step
    (`beam_advance`, which the beam step then reuses): the first digit after the prefix is read from it, not decoded
    per candidate; with it, the empty beam of round 1 is a prefix every draft extends.
    """
    out = score_candidates(model, state, None, ids, sids.tokens, sids.n_in_sample, length_rule=length_rule,
                           prefix_len=sids.prefix_len, min_len=min_len, beam=beam, advance=advance,
                           return_logprobs=return_logprobs)
    V = (out[0] if return_logprobs else out).float().masked_fill(ids < 0, float("-inf"))
    return (V, *out[1:]) if return_logprobs else V
