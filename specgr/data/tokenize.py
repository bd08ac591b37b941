"""Item-id histories -> TIGER token sequences, vectorised (whole splits are pre-tokenised in one call).

Encoder input (docs/METHOD.md §3): [BOS, 4 SID tokens of each history item in order, EOS], right-padded with PAD=0 to
2 + 4H tokens (82 for H=20). Labels: the target's 4 SID tokens + EOS. No user token (the paper has none).
"""

from __future__ import annotations

import torch

from specgr.sid.semantic_ids import BOS, EOS, PAD  # noqa: F401 - the token layout is defined there only
from specgr.utils import as_long


def _sid_tokens(sids) -> torch.Tensor:
    """Accept a SemanticIDs (uses .tokens) or an (N, 4) token tensor."""
    return as_long(sids.tokens if hasattr(sids, "tokens") else sids)


def history_tokens(history, hist_len=None, sid_tokens=None) -> tuple[torch.Tensor, torch.Tensor]:
    """history (B, H) item ids, left-aligned, padded -1; hist_len (B,) or None (= count of ids >= 0);
    sid_tokens (N, 4) LongTensor or a SemanticIDs.

    Returns input_ids (B, 2 + 4H) long and attention_mask (B, 2 + 4H) long (1 on real tokens).
    Also callable as history_tokens(history, sids) (the ARCHITECTURE.md form): a 2-D or SemanticIDs second argument
    is taken as the SID table and hist_len is derived from the -1 padding.
    """
    if sid_tokens is None:  # history_tokens(history, sids)
        hist_len, sid_tokens = None, hist_len
    tok = _sid_tokens(sid_tokens)
    hist = as_long(history).to(tok.device)
    B, H = hist.shape
    valid = hist >= 0
    n = valid.sum(1) if hist_len is None else as_long(hist_len).to(tok.device)
    # left-aligned histories: the first n entries are real, so the real tokens are the first 4n of the flat block
    body = tok[hist.clamp(min=0)] * valid[..., None]  # (B, H, 4), PAD where history is padded
    T = 2 + 4 * H
    ids = torch.zeros(B, T, dtype=torch.long, device=tok.device)
    ids[:, 0] = BOS
    ids[:, 1:T - 1] = body.reshape(B, 4 * H)
    ids.scatter_(1, (1 + 4 * n)[:, None], EOS)
    mask = (torch.arange(T, device=tok.device)[None, :] < (2 + 4 * n)[:, None]).long()
    return ids, mask


def target_labels(target, sid_tokens) -> torch.Tensor:
    """target (B,) item ids -> labels (B, 5) = 4 SID tokens + EOS."""
    tok = _sid_tokens(sid_tokens)
    t = as_long(target).to(tok.device)
    return torch.cat([tok[t], torch.full((len(t), 1), EOS, dtype=torch.long, device=tok.device)], 1)


def tokenize_rows(rows, sid_tokens, dtype=torch.int16) -> dict[str, torch.Tensor]:
    """A whole split (specgr.data.processed.Rows) -> compact tensors for a TensorDataset.

    input_ids (R, 2+4H) and labels (R, 5), stored as int16 when the vocab fits (4x less host memory and host->device
    traffic); the model side casts to long. The attention mask is `input_ids != PAD` (PAD never occurs inside a
    sequence), so it is not stored. Also target (R,) int64 for metrics.
    """
    tok = _sid_tokens(sid_tokens)
    if dtype == torch.int16 and int(tok.max()) >= 2 ** 15:
        dtype = torch.int32
    ids, _ = history_tokens(rows.history, rows.hist_len, tok)
    return {"input_ids": ids.to(dtype), "labels": target_labels(rows.target, tok).to(dtype), "target": as_long(rows.target)}
