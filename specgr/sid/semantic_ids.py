"""SemanticIDs: the 4-digit item ids, their token layout, and the prefix trie stored as sorted tensors.

An item's semantic id is 3 quantizer codes in [0, C) plus a collision digit in [0, C4) that makes it unique: the
item's rank among items sharing the same 3-code prefix (in-sample items first, then new items in id order; since
in-sample ids come first, that is simply id order).

Token layout (see docs/ARCHITECTURE.md): PAD=0, BOS=1, EOS=2, digit d with code c -> OFFSET + d*C + c, digit 3 uses
C4 = `collision_size` slots, so vocab_size = 3 + 3*C + C4. Growing C4 never moves any existing token, because digit
3 is last in the layout.

The trie is a set of sorted int64 keys, one table per prefix length: a prefix of L digits is the mixed-radix number
key = ((c0*C + c1)*C + c2)*C4 + c3 truncated to L digits. Children of prefix p are the (L+1)-keys in
[p*radix_L, (p+1)*radix_L), found with torch.searchsorted; everything is batched and lives on one device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from specgr.utils import as_long

PAD, BOS, EOS, OFFSET = 0, 1, 2, 3
N_DIGITS = 4


class SIDOverflowError(ValueError):
    """More items share a 3-code prefix than the collision digit has slots."""


def collision_digits(keys3: torch.Tensor, start_counts: torch.Tensor | None = None) -> torch.Tensor:
    """Rank of each row among rows with the same key, in row order. keys3 (N,) -> (N,).

    start_counts (N,): per-row offset added to the rank (items already holding that prefix).
    """
    n = keys3.numel()
    if n == 0:
        return keys3.clone()
    order = torch.sort(keys3, stable=True).indices  # stable: ties keep id order
    sk = keys3[order]
    pos = torch.arange(n, device=keys3.device)
    is_start = torch.ones(n, dtype=torch.bool, device=keys3.device)
    is_start[1:] = sk[1:] != sk[:-1]
    group_start = torch.cummax(torch.where(is_start, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(keys3)
    rank[order] = pos - group_start
    if start_counts is not None:
        rank = rank + start_counts
    return rank


class _PrefixTable:
    """Sorted unique prefix keys of lengths 1..4 for one set of items, plus item ids for full keys."""

    def __init__(self, full_keys: list[torch.Tensor], item_ids: torch.Tensor):
        # full_keys[L] (n,) prefix keys of length L (L = 1..4) of the items in this set; index 0 unused
        self.keys = [None] + [torch.unique(k) for k in full_keys[1:]]  # torch.unique returns sorted
        order = torch.argsort(full_keys[4])
        self.full_sorted = full_keys[4][order]
        self.full_ids = item_ids[order]

    def to(self, device) -> "_PrefixTable":
        self.keys = [None] + [k.to(device) for k in self.keys[1:]]
        self.full_sorted, self.full_ids = self.full_sorted.to(device), self.full_ids.to(device)
        return self

    def contains(self, keys: torch.Tensor, L: int) -> torch.Tensor:
        """keys (...,) of length-L prefixes -> bool (...,): the prefix exists in this set."""
        tab = self.keys[L]
        if tab.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        i = torch.searchsorted(tab, keys).clamp(max=tab.numel() - 1)
        return tab[i] == keys


class SemanticIDs:
    """Semantic ids of N items. Build with `from_codes`; see the module docstring for the layout.

    Attributes: codes (N, 4) long, tokens (N, 4) long, prefix_len (N,) long, n_items, n_in_sample, C, collision_size,
    vocab_size, on_overflow.
    """

    def __init__(self, codes: torch.Tensor, n_in_sample: int, codebook_size: int, collision_size: int,
                 on_overflow: str = "error"):
        if on_overflow not in ("error", "grow"):
            raise ValueError(f"on_overflow must be 'error' or 'grow', got {on_overflow!r}")
        codes = as_long(codes)
        if codes.ndim != 2 or codes.shape[1] != N_DIGITS:
            raise ValueError(f"codes must be (N, 4), got {tuple(codes.shape)}")
        if not 0 <= n_in_sample <= len(codes):
            raise ValueError(f"n_in_sample={n_in_sample} outside [0, {len(codes)}]")
        self.C, self.collision_size, self.on_overflow = int(codebook_size), int(collision_size), on_overflow
        self.n_in_sample = int(n_in_sample)
        self._check_range(codes[:, :3], self.C, "quantizer codes")
        if len(codes) and int(codes[:, 3].max()) >= self.collision_size:
            raise SIDOverflowError(self._overflow_msg(int(codes[:, 3].max()) + 1))
        self.codes = codes
        self._rebuild()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_codes(cls, codes3, n_in_sample: int, codebook_size: int, collision_size: int | None = None,
                   on_overflow: str = "error") -> "SemanticIDs":
        """codes3 (N, 3) quantizer codes in [0, C) -> SemanticIDs with the collision digit appended.

        collision_size: slots of the 4th digit (default C). If a prefix holds more items: on_overflow="error" raises
        SIDOverflowError, "grow" sets collision_size to the largest group size.
        """
        codes3 = as_long(codes3).cpu()
        if codes3.ndim != 2 or codes3.shape[1] != 3:
            raise ValueError(f"codes3 must be (N, 3), got {tuple(codes3.shape)}")
        cls._check_range(codes3, codebook_size, "quantizer codes")
        C4 = int(collision_size or codebook_size)
        c4 = collision_digits(cls._key3(codes3, codebook_size))
        need = int(c4.max()) + 1 if len(c4) else 1
        if need > C4:
            if on_overflow == "grow":
                C4 = need
            elif on_overflow == "error":
                raise SIDOverflowError(cls._overflow_text(need, C4, codebook_size))
        return cls(torch.cat([codes3, c4[:, None]], 1), n_in_sample, codebook_size, C4, on_overflow)

    @staticmethod
    def _check_range(codes, hi, what):
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= hi):
            raise ValueError(f"{what} must lie in [0, {hi}); got range [{int(codes.min())}, {int(codes.max())}]")

    @staticmethod
    def _key3(codes3: torch.Tensor, C: int) -> torch.Tensor:
        return (codes3[:, 0] * C + codes3[:, 1]) * C + codes3[:, 2]

    @staticmethod
    def _overflow_text(need: int, have: int, C: int) -> str:
        return (f"{need} items share one 3-code prefix but the collision digit has only {have} slots; their ids would "
                f"overflow into other tokens. Fix: a bigger codebook (codebook_size > {C}) or a better tokenizer, or "
                f"on_overflow='grow' (collision_size={need}) BEFORE training the generative model.")

    def _overflow_msg(self, need: int) -> str:
        return self._overflow_text(need, self.collision_size, self.C)

    def _rebuild(self):
        """Recompute tokens, prefix keys, trie tables and prefix_len from self.codes (device of self.codes)."""
        dev = self.codes.device
        self.radix = [self.C, self.C, self.C, self.collision_size]
        digit_off = torch.tensor([OFFSET + d * self.C for d in range(N_DIGITS)], device=dev)
        self.tokens = self.codes + digit_off
        self._item_keys = [torch.zeros(len(self.codes), dtype=torch.long, device=dev)]
        for L in range(1, N_DIGITS + 1):
            self._item_keys.append(self._item_keys[-1] * self.radix[L - 1] + self.codes[:, L - 1])
        ids = torch.arange(len(self.codes), device=dev)
        n_in = self.n_in_sample
        self._all = _PrefixTable(self._item_keys, ids)
        self._in = _PrefixTable([None] + [k[:n_in] for k in self._item_keys[1:]], ids[:n_in])
        for tab in (self._all, self._in):
            # the most children any length-L prefix has: a static width for allowed_next (no host sync per call)
            tab.max_children = [int(torch.unique_consecutive(tab.keys[L + 1] // self.radix[L],
                                                             return_counts=True)[1].max())
                                if tab.keys[L + 1].numel() else 0 for L in range(N_DIGITS)]
            # the most items any length-L prefix holds: the static width of prefix_items
            tab.max_items = [int(torch.unique_consecutive(tab.full_sorted // self._span(L),
                                                          return_counts=True)[1].max())
                             if tab.full_sorted.numel() else 0 for L in range(N_DIGITS)]
        if self._all.full_sorted.numel() != self._all.keys[4].numel():
            raise ValueError("semantic ids are not unique")
        # prefix_len: 4 in-sample; for new items the longest prefix shared with some in-sample item ([v-new] rule)
        plen = torch.zeros(len(self.codes), dtype=torch.long, device=dev)
        for L in range(1, N_DIGITS + 1):
            plen = torch.where(self._in.contains(self._item_keys[L], L), torch.full_like(plen, L), plen)
        plen[:n_in] = N_DIGITS
        self.prefix_len = plen

    # ------------------------------------------------------------------ basic facts
    @property
    def n_items(self) -> int:
        return len(self.codes)

    @property
    def vocab_size(self) -> int:
        return OFFSET + 3 * self.C + self.collision_size

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def in_sample_mask(self) -> torch.Tensor:
        """(N,) bool: True for in-sample items (ids < n_in_sample)."""
        return torch.arange(self.n_items, device=self.device) < self.n_in_sample

    def digit_range(self, d: int) -> tuple[int, int]:
        """[lo, hi) token range of digit d."""
        lo = OFFSET + d * self.C
        return lo, lo + self.radix[d]

    def to(self, device) -> "SemanticIDs":
        """Move every tensor to `device` (in place); returns self."""
        self.codes, self.tokens, self.prefix_len = (t.to(device) for t in (self.codes, self.tokens, self.prefix_len))
        self._item_keys = [k.to(device) for k in self._item_keys]
        self._all.to(device)
        self._in.to(device)
        return self

    def __repr__(self) -> str:
        return (f"SemanticIDs(n_items={self.n_items}, n_in_sample={self.n_in_sample}, C={self.C}, "
                f"collision_size={self.collision_size}, vocab_size={self.vocab_size}, device={self.device})")

    # ------------------------------------------------------------------ token <-> key
    def _prefix_keys(self, prefix_tokens: torch.Tensor) -> torch.Tensor:
        """prefix_tokens (..., L) -> keys (...,); -1 where some token is not a valid code of its digit."""
        t = prefix_tokens.long().to(self.device)
        key = torch.zeros(t.shape[:-1], dtype=torch.long, device=self.device)
        ok = torch.ones(t.shape[:-1], dtype=torch.bool, device=self.device)
        for d in range(t.shape[-1]):
            c = t[..., d] - (OFFSET + d * self.C)
            ok &= (c >= 0) & (c < self.radix[d])
            key = key * self.radix[d] + c.clamp(min=0)
        return torch.where(ok, key, torch.full_like(key, -1))

    def _span(self, L: int) -> int:
        """Full keys under a length-L prefix key p are [p * span, (p + 1) * span): the digits after L."""
        return int(np.prod(self.radix[L:], dtype=np.int64))

    def _table(self, in_sample_only: bool) -> _PrefixTable:
        return self._in if in_sample_only else self._all

    # ------------------------------------------------------------------ trie queries
    def allowed_next(self, prefix_tokens: torch.Tensor, in_sample_only: bool = False) -> torch.Tensor:
        """Valid next tokens. prefix_tokens (R, L) token ids, L in 0..4 -> BoolTensor (R, vocab_size).

        L < 4: the next-digit tokens that extend the prefix to some item's id (all False for an invalid prefix).
        L = 4: EOS for a complete valid id. in_sample_only restricts to in-sample items (the TIGER-only setting).
        """
        R, L = prefix_tokens.shape
        out = torch.zeros(R, self.vocab_size, dtype=torch.bool, device=self.device)
        tab = self._table(in_sample_only)
        if L == N_DIGITS:
            out[:, EOS] = tab.contains(self._prefix_keys(prefix_tokens), N_DIGITS)
            return out
        if not 0 <= L < N_DIGITS:
            raise ValueError(f"prefix length must be in 0..4, got {L}")
        parent = self._prefix_keys(prefix_tokens) if L else torch.zeros(R, dtype=torch.long, device=self.device)
        child = tab.keys[L + 1]  # sorted (L+1)-keys; children of p are in [p*radix, (p+1)*radix)
        r = self.radix[L]
        lo = torch.searchsorted(child, parent * r)
        hi = torch.searchsorted(child, parent * r + r)
        hi = torch.where(parent < 0, lo, hi)  # invalid prefix: no children
        width = tab.max_children[L]  # static: no host sync, fixed shapes (CUDA-graph friendly)
        if width == 0 or R == 0:
            return out
        idx = lo[:, None] + torch.arange(width, device=self.device)  # (R, W)
        valid = idx < hi[:, None]
        tok = OFFSET + L * self.C + child[idx.clamp(max=child.numel() - 1)] % r
        # scatter instead of boolean indexing (which syncs to count): padding slots write into a spare column
        tok = torch.where(valid, tok, torch.full_like(tok, self.vocab_size))
        out = torch.zeros(R, self.vocab_size + 1, dtype=torch.bool, device=self.device)
        out.scatter_(1, tok, True)
        return out[:, :self.vocab_size]

    def lookup(self, tokens: torch.Tensor, in_sample_only: bool = False) -> torch.Tensor:
        """tokens (R, 4) -> item ids (R,) long, -1 where no item has that id."""
        tab = self._table(in_sample_only)
        keys = self._prefix_keys(tokens)
        if tab.full_sorted.numel() == 0:
            return torch.full_like(keys, -1)
        i = torch.searchsorted(tab.full_sorted, keys).clamp(max=tab.full_sorted.numel() - 1)
        hit = (tab.full_sorted[i] == keys) & (keys >= 0)
        return torch.where(hit, tab.full_ids[i], torch.full_like(keys, -1))

    def prefix_match_mask(self, prefixes: torch.Tensor, valid: torch.Tensor | None = None,
                          in_sample_only: bool = False) -> torch.Tensor:
        """Per-user prefix constraint. prefixes (B, P, L) tokens, valid (B, P) bool -> BoolTensor (B, N).

        Item n is True for user b when its id starts with one of b's valid prefixes (per user, never a union over
        the batch). L = 0 means every item (for users with at least one valid prefix).
        """
        B, P, L = prefixes.shape
        dev = self.device
        if valid is None:
            valid = torch.ones(B, P, dtype=torch.bool, device=dev)
        valid = valid.to(dev)
        if P == 0:
            out = torch.zeros(B, self.n_items, dtype=torch.bool, device=dev)
        elif L == 0:
            out = valid.any(1, keepdim=True).expand(B, self.n_items).clone()
        else:
            keys = self._prefix_keys(prefixes)  # (B, P), -1 = invalid tokens
            keys = torch.where(valid, keys, torch.full_like(keys, -1))
            keys = torch.sort(keys, dim=1).values
            item = self._item_keys[L].expand(B, -1).contiguous()  # (B, N)
            i = torch.searchsorted(keys, item).clamp(max=P - 1)
            out = torch.gather(keys, 1, i) == item  # item keys are >= 0, so -1 never matches
        if in_sample_only:
            out &= self.in_sample_mask
        return out

    def max_prefix_items(self, L: int, in_sample_only: bool = False) -> int:
        """The most items any length-L prefix holds: the per-prefix width of `prefix_items`."""
        return self._table(in_sample_only).max_items[L]

    def prefix_items(self, prefixes: torch.Tensor, valid: torch.Tensor | None = None,
                     in_sample_only: bool = False) -> torch.Tensor:
        """The items under each user's prefixes, as ids. prefixes (B, P, L) tokens, L in 1..3, valid (B, P) bool ->
        (B, P * w) long, -1 padded, w = the most items any length-L prefix holds (static: no host sync).

        The sparse twin of `prefix_match_mask`: row b lists, once each, exactly the items that are True in its row of
        the mask. Items are sorted by full key, so a prefix's items are one contiguous range (two binary searches):
        the cost grows with P * w, not with the catalog.
        """
        B, P, L = prefixes.shape
        if not 1 <= L < N_DIGITS:
            raise ValueError(f"prefix length must be in 1..3 (0 means every item: use the whole catalog), got {L}")
        tab = self._table(in_sample_only)
        w = self.max_prefix_items(L, in_sample_only)
        if B * P * w == 0:
            return torch.full((B, P * w), -1, dtype=torch.long, device=self.device)
        keys = self._prefix_keys(prefixes)  # (B, P), -1 = invalid tokens
        if valid is not None:
            keys = torch.where(valid.to(self.device), keys, torch.full_like(keys, -1))
        keys = torch.sort(keys, dim=1).values
        dup = torch.zeros_like(keys, dtype=torch.bool)
        dup[:, 1:] = keys[:, 1:] == keys[:, :-1]  # a prefix given twice lists its items once
        keys = keys.masked_fill(dup, -1)
        span = self._span(L)
        lo = torch.searchsorted(tab.full_sorted, keys * span)
        hi = torch.where(keys < 0, lo, torch.searchsorted(tab.full_sorted, (keys + 1) * span))
        idx = lo[..., None] + torch.arange(w, device=self.device)  # (B, P, w)
        ids = tab.full_ids[idx.clamp(max=tab.full_ids.numel() - 1)]
        return torch.where(idx < hi[..., None], ids, torch.full_like(ids, -1)).view(B, P * w)

    # ------------------------------------------------------------------ inductive growth
    def add_items(self, codes3, on_overflow: str | None = None) -> torch.Tensor:
        """Append new items (M, 3) codes; returns their ids (M,) = n_items, n_items+1, ...

        Old ids and codes never change; collision digits continue after the existing ones. If a prefix would need
        more than collision_size slots, on_overflow (default: the one given at construction) decides: "error" raises
        SIDOverflowError, "grow" enlarges collision_size (vocab_size grows; a model trained on the smaller vocab
        cannot emit the new tokens).
        """
        on_overflow = on_overflow or self.on_overflow
        codes3 = as_long(codes3).to(self.device)
        if codes3.ndim != 2 or codes3.shape[1] != 3:
            raise ValueError(f"codes3 must be (M, 3), got {tuple(codes3.shape)}")
        self._check_range(codes3, self.C, "quantizer codes")
        M, start = len(codes3), self.n_items
        if M == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        new_k3 = self._key3(codes3, self.C)
        # existing items per prefix: count of old keys3 equal to each new key
        old_k3 = torch.sort(self._key3(self.codes[:, :3], self.C)).values
        have = torch.searchsorted(old_k3, new_k3, right=True) - torch.searchsorted(old_k3, new_k3)
        c4 = collision_digits(new_k3, have)
        need = int(c4.max()) + 1
        if need > self.collision_size:
            if on_overflow == "grow":
                self.collision_size = need
            else:
                raise SIDOverflowError(self._overflow_msg(need))
        self.codes = torch.cat([self.codes, torch.cat([codes3, c4[:, None]], 1)])
        self._rebuild()
        return torch.arange(start, start + M, device=self.device)

    # ------------------------------------------------------------------ persistence (numpy only, no pickle)
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, codes=self.codes.cpu().numpy(), n_in_sample=np.int64(self.n_in_sample),
                 codebook_size=np.int64(self.C), collision_size=np.int64(self.collision_size),
                 on_overflow=np.array(self.on_overflow), tokens=self.tokens.cpu().numpy(),
                 prefix_len=self.prefix_len.cpu().numpy())

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> "SemanticIDs":
        z = np.load(path, allow_pickle=False)
        s = cls(torch.from_numpy(z["codes"]), int(z["n_in_sample"]), int(z["codebook_size"]),
                int(z["collision_size"]), str(z["on_overflow"]))
        return s.to(device)
