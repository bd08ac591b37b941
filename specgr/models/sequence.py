"""The causal transformer `SequenceEncoder` shared by the sequential drafters: the UniSRec-style text drafter
(specgr/drafters/text.py) and the SASRec baseline (specgr/drafters/sasrec.py). docs/METHOD.md §4.

The encoder follows RecBole's TransformerEncoder as used by SASRec/UniSRec: learned positions added to the item
vectors, LayerNorm + dropout on the input, then post-LN blocks (self-attention -> dropout -> residual -> LN;
FFN(GELU) -> dropout -> residual -> LN), causal attention, output read at position len-1.

Histories are left-aligned (position 0 = oldest) and padded with -1 on the right. Under a causal mask position len-1
only sees positions 0..len-1, which are all real, so no key-padding mask is needed and padded positions never leak.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class EncoderConfig:
    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256  # FFN width
    dropout: float = 0.5  # hidden dropout (input, residual branches)
    attn_dropout: float = 0.5
    max_len: int = 20
    ln_eps: float = 1e-12  # RecBole's value
    init_std: float = 0.02


def encoder_config(cfg) -> EncoderConfig:
    """The EncoderConfig of a model config (AuxConfig, SASRecConfig) that names the same fields; the others keep
    their defaults."""
    return EncoderConfig(**{f.name: getattr(cfg, f.name) for f in fields(EncoderConfig) if hasattr(cfg, f.name)})


class Block(nn.Module):
    """Post-LN transformer block with causal self-attention. x (B, L, h) -> (B, L, h)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.hidden % cfg.n_heads:
            raise ValueError(f"hidden ({cfg.hidden}) must be divisible by n_heads ({cfg.n_heads}). Fix: change one "
                             "of them in the model config.")
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.fc1 = nn.Linear(cfg.hidden, cfg.inner)
        self.fc2 = nn.Linear(cfg.inner, cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_dropout = cfg.attn_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, h = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, h // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        a = a.transpose(1, 2).reshape(B, L, h)
        x = self.ln1(x + self.drop(self.proj(a)))
        f = self.fc2(F.gelu(self.fc1(x)))
        return self.ln2(x + self.drop(f))


class SequenceEncoder(nn.Module):
    """Causal transformer over a history of item vectors.

    forward(x (B, L, h) item vectors (padding rows may hold anything), lengths (B,)) -> (B, h), the output at len-1.
    Histories longer than max_len keep their last max_len items.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.apply(self._init)

    def _init(self, m):
        # RecBole/UniSRec init: N(0, 0.02) weights, zero biases, unit LayerNorm
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        x, lengths = truncate_left(x, lengths, self.cfg.max_len)
        L = x.shape[1]
        x = self.drop(self.ln(x + self.pos.weight[:L]))
        for blk in self.blocks:
            x = blk(x)
        if all_positions:
            return x  # (B, L, h)
        idx = (lengths - 1).clamp(min=0)
        return x[torch.arange(x.shape[0], device=x.device), idx]  # (B, h)


def truncate_left(x: torch.Tensor, lengths: torch.Tensor, max_len: int):
    """Keep each row's last `max_len` real items, re-aligned to start at position 0. x (B, L, ...), lengths (B,)."""
    L = x.shape[1]
    if L <= max_len:
        return x, lengths
    start = (lengths - max_len).clamp(min=0)  # (B,)
    idx = start[:, None] + torch.arange(max_len, device=x.device)[None]  # (B, max_len)
    idx = idx.clamp(max=L - 1)
    x = x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:]))
    return x, lengths.clamp(max=max_len)
