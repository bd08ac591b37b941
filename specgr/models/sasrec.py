"""SASRec (Kang & McAuley 2018) and the causal transformer `SequenceEncoder` it shares with the UniSRec-style text
drafter (specgr/drafters/text.py).

The encoder follows RecBole's TransformerEncoder as used by SASRec/UniSRec: learned positions added to the item
vectors, LayerNorm + dropout on the input, then post-LN blocks (self-attention -> dropout -> residual -> LN;
FFN(GELU) -> dropout -> residual -> LN), causal attention, output read at position len-1.

Histories are left-aligned (position 0 = oldest) and padded with -1 on the right. Under a causal mask position len-1
only sees positions 0..len-1, which are all real, so no key-padding mask is needed and padded positions never leak.

SASRec here is ID-based and transductive: it has embeddings for the in-sample items only (ids 0..n_in_sample-1, the
softmax output table, tied with the input table), plus one shared UNK row for any other item that shows up in a
history (items that were never a train target, or items added later). It cannot recommend unseen items.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class Block(nn.Module):
    """Post-LN transformer block with causal self-attention. x (B, L, h) -> (B, L, h)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        assert cfg.hidden % cfg.n_heads == 0, "hidden must be divisible by n_heads"
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


@dataclass
class SASRecConfig:
    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256
    dropout: float = 0.3
    attn_dropout: float = 0.3
    max_len: int = 20
    temperature: float = 1.0  # logits = <seq, item> / temperature (plain SASRec: 1)

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(hidden=self.hidden, n_layers=self.n_layers, n_heads=self.n_heads, inner=self.inner,
                             dropout=self.dropout, attn_dropout=self.attn_dropout, max_len=self.max_len)


class SASRec(nn.Module):
    """ID-based SASRec. Item table rows: 0..n_in_sample-1 in-sample items, then UNK, then PAD (zero, no gradient).

    encode(history (B, H) ids -1 padded, hist_len (B,)) -> (B, hidden); item_table() -> (n_in_sample, hidden);
    logits(seq) -> (B, n_in_sample) = seq . item_table / temperature.
    """

    def __init__(self, cfg: SASRecConfig, n_in_sample: int):
        super().__init__()
        self.cfg = cfg
        self.n_in_sample = int(n_in_sample)
        self.unk, self.pad = self.n_in_sample, self.n_in_sample + 1
        self.item_emb = nn.Embedding(self.n_in_sample + 2, cfg.hidden, padding_idx=self.pad)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[self.pad].zero_()
        self.encoder = SequenceEncoder(cfg.encoder_config())

    def _rows(self, history: torch.Tensor) -> torch.Tensor:
        """Map item ids to table rows: unknown ids -> UNK, -1 -> PAD."""
        r = torch.where(history >= self.n_in_sample, torch.full_like(history, self.unk), history)
        return torch.where(history < 0, torch.full_like(history, self.pad), r)

    def encode(self, history: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.item_emb(self._rows(history)), hist_len)

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight[: self.n_in_sample]

    def logits(self, seq: torch.Tensor) -> torch.Tensor:
        return seq @ self.item_table().T / self.cfg.temperature

    def forward(self, history, hist_len):
        return self.logits(self.encode(history, hist_len))


class SASRecDrafter:
    """SASRec in the Drafter protocol shape (specgr.drafters.base). Scores = <seq, item> (dot product).

    Only in-sample items can be drafted; unseen / added items are never returned (their score would be -inf).
    `n_items` counts the whole catalog (add_items only grows the count: SASRec cannot embed new items).
    item_embeddings() returns the in-sample table (n_in_sample, hidden) only.
    """

    def __init__(self, model: SASRec, n_items: int, device="auto", backend: str = "torch"):
        from specgr.retrieval import RetrievalIndex, resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self._n_items = int(n_items)
        with torch.no_grad():
            self.index = RetrievalIndex(self.model.item_table().float(), backend=backend, device=self.device)

    @property
    def n_items(self) -> int:
        return self._n_items

    def add_items(self, n_new: int = 1, *args, **kwargs) -> torch.Tensor:
        """New items get ids but no embedding: they are never drafted by an ID-based model."""
        n_new = int(n_new) if not hasattr(n_new, "__len__") else len(n_new)
        ids = torch.arange(self._n_items, self._n_items + n_new)
        self._n_items += n_new
        return ids

    def item_embeddings(self) -> torch.Tensor:
        return self.index.embeddings()

    @torch.no_grad()
    def query_embeddings(self, history, hist_len) -> torch.Tensor:
        from specgr.drafters.base import as_long

        return self.model.encode(as_long(history, self.device), as_long(hist_len, self.device)).float() / \
            self.model.cfg.temperature

    @torch.no_grad()
    def draft(self, history, hist_len, k: int, allowed=None, exclude=None):
        q = self.query_embeddings(history, hist_len)
        if allowed is not None:
            allowed = torch.as_tensor(allowed, dtype=torch.bool)
            if allowed.shape[1] != self._n_items:
                raise ValueError(f"allowed must be (B, {self._n_items}), got {tuple(allowed.shape)}")
            allowed = allowed[:, : self.model.n_in_sample]
        return self.index.search(q, k, allowed=allowed, exclude=exclude)

    def to(self, device):
        from specgr.retrieval import resolve_device

        self.device = resolve_device(device)
        self.model.to(self.device)
        self.index.to(self.device)
        return self
