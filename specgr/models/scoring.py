"""The verifier primitive: teacher-forced, length-normalised candidate log-likelihoods (docs/METHOD.md §6).

For a candidate x with SID tokens (c1..c4), one decoder pass on [PAD, c1, c2, c3] gives log p(c_t | c_<t, X) for
t = 1..4, and

    V(x) = (1/m) * sum_{t=1..m} log p(c_t | c_<t, X)

with m = 4 for in-sample items and m = 3 for unseen ones (paper / [v-old]: the collision digit of a new item carries
no signal), or m = max(prefix_len[x], min_len) ([v-new]). All users and candidates go in one batched decoder call;
the encoder states are computed once per user and shared by its candidates. Candidates that extend a beam prefix
(guided rounds) reuse the beam's digit log-probs and KV cache and decode only the digits after it
(`prefix_digit_logprobs`).
"""

from __future__ import annotations

import torch

from specgr.models.beam import Beam, BeamAdvance, cache_rows, parent_rows
from specgr.models.tiger import DECODER_START, TIGER, EncoderState
from specgr.sid.semantic_ids import N_DIGITS

LENGTH_RULES = ("paper", "prefix_len")


def _table(sid_tokens) -> torch.Tensor:
    t = sid_tokens.tokens if hasattr(sid_tokens, "tokens") else sid_tokens
    return torch.as_tensor(t).long()


def candidate_lengths(cand: torch.Tensor, n_in_sample: int, length_rule: str = "paper",
                      prefix_len: torch.Tensor | None = None, min_len: int = 3) -> torch.Tensor:
    """Number of digits m averaged for each candidate. cand (B, R) item ids >= 0 -> (B, R) long in [1, 4]."""
    if length_rule == "paper":
        return torch.where(cand < n_in_sample, N_DIGITS, N_DIGITS - 1)
    if length_rule == "prefix_len":
        if prefix_len is None:
            raise ValueError("length_rule='prefix_len' needs prefix_len (SemanticIDs.prefix_len)")
        return torch.as_tensor(prefix_len, device=cand.device).long()[cand].clamp(min=min_len, max=N_DIGITS)
    raise ValueError(f"length_rule must be one of {LENGTH_RULES}, got {length_rule!r}")


def length_normalized(lp: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """V from digit log-probs: lp (..., D), m (...) digits averaged (candidate_lengths) -> (...) mean of the first m.

    The first m digits are added in order in fp32 (adding the 0.0 of a masked digit is exact): the cumulative sum of
    earlier releases up to rounding, without its scan kernel, which on CUDA took 0.3 ms per round for 51k drafts of
    4 digits (docs/RESULTS.md §4)."""
    total = lp[..., 0]
    for t in range(1, lp.shape[-1]):
        total = total + torch.where(m > t, lp[..., t], 0.0)  # digits after the m-th (-inf or not) never count
    return total / m


def digit_logprobs(model: TIGER, enc, enc_mask, cand_tokens: torch.Tensor) -> torch.Tensor:
    """cand_tokens (B, R, 4) SID tokens -> (B, R, 4) log p(c_t | c_<t, X), one teacher-forced decoder pass."""
    dec_in = torch.cat([torch.full_like(cand_tokens[..., :1], DECODER_START), cand_tokens[..., :N_DIGITS - 1]], -1)
    return model.decoder_token_logprobs(enc, enc_mask, dec_in, cand_tokens)


def prefix_digit_logprobs(model: TIGER, state: EncoderState, cand_tokens: torch.Tensor, beam: Beam,
                          advance: BeamAdvance | None = None) -> torch.Tensor:
    """digit_logprobs of candidates that extend their user's beam prefixes, decoding only the digits after them.

    cand_tokens (B, R, 4); beam: the user's current beam (tokens (B, W, L), 1 <= L <= 3, with its cache `past`).
    Every real candidate must start with one of its user's valid beam prefixes (what guided re-drafting drafts); other
    rows (pads) get numbers that the caller masks. Returns (B, R, 4) fp32, equal to `digit_logprobs` up to rounding:
    digits 1..L are the parent beam's own (computed by the same decoder from the same inputs), and digits L+1..4
    come from decoding the inputs c_L..c_3 (positions L..3) on top of the parent's cache of inputs [PAD, c_1..c_{L-1}],
    which is exactly what the teacher-forced pass computes at those positions (causal attention: earlier positions
    never see later ones).

    advance: the beam's next decoder step (`beam_advance`; then 0 <= L <= 3, and L = 0 is the empty beam, which every
    candidate extends). Digit L+1 is read from its log-probs and only the inputs c_{L+1}..c_3 are decoded, on its cache:
    the decoding of input c_L is done once per beam instead of once per candidate.
    """
    B, R, _ = cand_tokens.shape
    W, L = beam.tokens.shape[1:]
    # the parent beam: constrained beams are distinct prefixes, so at most one matches (none for pads: beam 0)
    match = (cand_tokens[:, :, None, :L] == beam.tokens[:, None]).all(-1) & beam.valid[:, None]  # (B, R, W)
    parent = match.int().argmax(-1)  # (B, R)
    flat = parent_rows(parent, W)  # (B*R,) each draft's parent row among the B*W beams
    parts = [beam.logprobs.reshape(B * W, L)[flat].view(B, R, L).float()]  # digits 1..L: the parent's own
    cache, start = beam.past, L  # decode inputs c_{start-1}..c_3 for digits start..4
    if advance is not None:  # digit L+1 from the shared step; decoding starts one input later, on its cache
        parts.append(advance.logprobs.reshape(B * W, -1)[flat, cand_tokens[..., L].reshape(-1)].view(B, R, 1).float())
        cache, start = advance.past, L + 1
    if start < N_DIGITS:  # (B, R, 4 - start) on a copy of each draft's parent cache row (as beams copy theirs)
        parts.append(model.decoder_token_logprobs(state, None, cand_tokens[..., start - 1:N_DIGITS - 1],
                                                  cand_tokens[..., start:], past=cache_rows(cache, flat)))
    return torch.cat(parts, -1)


@torch.no_grad()
def score_candidates(model: TIGER, enc, enc_mask, cand_items: torch.Tensor, sid_tokens, n_in_sample: int,
                     length_rule: str = "paper", prefix_len: torch.Tensor | None = None, min_len: int = 3,
                     chunk: int | None = None, beam: Beam | None = None,
                     advance: BeamAdvance | None = None, return_logprobs: bool = False):
    """Verification scores V (B, R) fp32 of candidate items; with return_logprobs, (V, lp, m): also each digit's
    log-prob lp (B, R, 4) fp32 and the number of digits m (B, R) that V averages (what a learned final ranking reads).

    enc (B, T, d) or an EncoderState (computed once per batch and reused: cheaper); enc_mask (B, T);
    cand_items (B, R) item ids, -1 = pad (score -inf); sid_tokens (N, 4) or a SemanticIDs (then prefix_len defaults
    to its prefix_len); length_rule "paper" (m = 4 in-sample / 3 unseen) or "prefix_len" (m = max(prefix_len, min_len)).
    chunk: max candidates per user per decoder call (bounds the decoder's (B, chunk, 4, d) activations).
    beam: the users' current beam (B, W, L >= 1) when every real candidate extends one of its prefixes (guided
    re-drafting): then only the digits after the prefix are decoded (`prefix_digit_logprobs`; same V up to rounding).
    advance: that beam's next decoder step (`beam_advance`), shared with the beam step: then the first digit after the
    prefix is read from it too, and beam may be the empty beam (L = 0) of an unguided first round.
    """
    if prefix_len is None and hasattr(sid_tokens, "prefix_len"):
        prefix_len = sid_tokens.prefix_len
    table = _table(sid_tokens)
    state = enc if isinstance(enc, EncoderState) else model.encoder_state(enc, enc_mask)
    dev = state.mask.device
    cand = torch.as_tensor(cand_items, device=dev).long()
    B, R = cand.shape
    valid = cand >= 0
    c = cand.clamp(min=0)
    tok = table.to(dev)[c]  # (B, R, 4)
    step = R if not chunk else int(chunk)
    # (no cache at L = 4: nothing to verify)
    reuse = beam is not None and (advance is not None or (beam.length > 0 and beam.past is not None))
    lp = torch.cat([prefix_digit_logprobs(model, state, tok[:, i:i + step], beam, advance) if reuse
                    else digit_logprobs(model, state, None, tok[:, i:i + step]) for i in range(0, R, step)], 1) if R \
        else torch.zeros(B, 0, N_DIGITS, device=dev)
    m = candidate_lengths(c, n_in_sample, length_rule, prefix_len, min_len)
    v = length_normalized(lp, m).masked_fill(~valid, float("-inf"))
    return (v, lp, m) if return_logprobs else v


@torch.no_grad()
def exhaustive_scores(model: TIGER, enc, enc_mask, sid_tokens, chunk: int = 2048) -> torch.Tensor:
    """Sum of the 4 digit log-probs of every item: (B, N) fp32. For tests and small catalogs (cost O(B*N))."""
    table = _table(sid_tokens)
    state = enc if isinstance(enc, EncoderState) else model.encoder_state(enc, enc_mask)
    dev = state.mask.device
    B, N = state.batch_size, len(table)
    tok = table.to(dev)
    out = [digit_logprobs(model, state, None, tok[None, i:i + chunk].expand(B, -1, -1)).sum(-1)
           for i in range(0, N, chunk)]
    return torch.cat(out, 1) if out else torch.zeros(B, 0, device=dev)

