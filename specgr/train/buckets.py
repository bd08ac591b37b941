"""Length-bucketed training data: rows grouped by history length, each batch padded to its bucket's longest history.

A TIGER encoder input is 2 + 4h tokens for a history of h items, padded to 2 + 4H = 82 tokens for H = 20. On Amazon
Games the mean history is 6.7 items (29 tokens), so two thirds of a fully padded batch is padding that the encoder
still computes. Bucketing by h removes most of it. It is exact: padding is masked out of attention, and T5's relative
position bias between real tokens does not depend on how much padding follows, so a row's loss is the same in any
bucket. What changes is which rows share a batch (rows of one batch have similar history lengths); batches of all
buckets are shuffled together every epoch.

Each bucket has one fixed (batch, tokens) shape, so a CUDA graph per bucket can be captured (specgr.train.step).

    data = BucketedRows.build(tokenize_rows(rows, sids.tokens), rows.hist_len, n_buckets=4, device="cuda")
    plan = data.epoch_plan(epoch=0, batch_size=256, seed=42)   # [(bucket, row ids (256,) with -1 fillers), ...]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_LABELS = 5  # 4 SID tokens + EOS


def tokens_for(hist_items: int) -> int:
    """Encoder length of a history of `hist_items` items: [BOS] + 4 tokens per item + [EOS]."""
    return 2 + 4 * int(hist_items)


def bucket_bounds(hist_len: np.ndarray, n_buckets: int) -> list[int]:
    """The history-length upper bounds (items) of at most `n_buckets` buckets that minimise the padded token count
    sum_b n_b * tokens_for(bound_b). Exact dynamic programme over the distinct lengths. Returns ascending bounds; the
    last is the longest history present.

    hist_len: (R,) int history lengths >= 1.
    """
    hist_len = np.asarray(hist_len, dtype=np.int64)
    if hist_len.size == 0:
        raise ValueError("no training rows to bucket")
    if n_buckets < 1:
        raise ValueError(f"length_buckets must be >= 1, got {n_buckets}")
    lengths, counts = np.unique(hist_len, return_counts=True)
    m = len(lengths)
    k = min(n_buckets, m)
    csum = np.concatenate([[0], np.cumsum(counts)])
    # best[j][i]: min cost of covering lengths[:i] with j buckets, the last ending at lengths[i-1]
    INF = float("inf")
    best = np.full((k + 1, m + 1), INF)
    arg = np.zeros((k + 1, m + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for j in range(1, k + 1):
        for i in range(1, m + 1):
            for s in range(j - 1, i):  # this bucket covers lengths[s:i]
                c = best[j - 1, s] + (csum[i] - csum[s]) * tokens_for(lengths[i - 1])
                if c < best[j, i]:
                    best[j, i], arg[j, i] = c, s
    j = int(np.argmin(best[1:, m])) + 1
    bounds, i = [], m
    while j > 0:
        bounds.append(int(lengths[i - 1]))
        i = int(arg[j, i])
        j -= 1
    return sorted(bounds)


@dataclass
class BucketedRows:
    """Tokenised rows split into length buckets, kept on one device (a whole split is a few tens of MB as int16).

    ids[b]: (n_b, tokens_for(bounds[b])) encoder inputs; labels[b]: (n_b, 5); bounds: history bound per bucket (items).
    """

    ids: list[torch.Tensor]
    labels: list[torch.Tensor]
    bounds: list[int]

    @classmethod
    def build(cls, tokenized: dict, hist_len, n_buckets: int, device="cpu") -> "BucketedRows":
        """tokenized: `specgr.data.tokenize.tokenize_rows` output (input_ids (R, 2+4H), labels (R, 5));
        hist_len (R,); n_buckets <= 1 means one bucket padded to the longest history present."""
        hist_len = np.asarray(hist_len, dtype=np.int64)
        bounds = bucket_bounds(hist_len, max(1, n_buckets))
        which = np.searchsorted(np.asarray(bounds), hist_len)  # bucket of each row
        ids, labels = [], []
        for b, hb in enumerate(bounds):
            rows = torch.from_numpy(np.flatnonzero(which == b))
            ids.append(tokenized["input_ids"][rows, :tokens_for(hb)].contiguous().to(device))
            labels.append(tokenized["labels"][rows].contiguous().to(device))
        return cls(ids, labels, bounds)

    @property
    def n_rows(self) -> int:
        return sum(len(x) for x in self.ids)

    @property
    def n_tokens_padded(self) -> int:
        """Encoder tokens per epoch including bucket padding (for the padding report)."""
        return sum(x.shape[0] * x.shape[1] for x in self.ids)

    def batches_per_epoch(self, batch_size: int) -> int:
        return sum(-(-len(x) // batch_size) for x in self.ids)

    def epoch_plan(self, epoch: int, batch_size: int, seed: int) -> list[tuple[int, torch.Tensor]]:
        """Every row once, in shuffled full batches: [(bucket, row ids (batch_size,) long on the data's device)].

        A bucket's last batch is topped up with -1 fillers (the step ignores their labels), so every batch of a bucket
        has the same shape and no row is dropped. The same (epoch, seed) gives the same plan on every rank and after a
        resume.
        """
        dev = self.ids[0].device
        plan = []
        for b, x in enumerate(self.ids):
            n = len(x)
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 101 + b)
            perm = torch.randperm(n, generator=g)
            pad = (-n) % batch_size
            perm = torch.cat([perm, perm.new_full((pad,), -1)]).view(-1, batch_size)
            plan.extend((b, row) for row in perm.to(dev))
        order = torch.randperm(len(plan), generator=torch.Generator().manual_seed(int(seed) * 7919 + int(epoch)))
        return [plan[i] for i in order.tolist()]
