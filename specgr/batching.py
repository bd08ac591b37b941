"""A split's rows in batches: in row order at the full history width (the default everywhere), or by history length,
each batch cut to the columns its histories need (docs/RESULTS.md §4, release 28). `speculate.batched.run_rows` and
`evaluate.run_recommender` both batch with `length_batches`; `distributed.shard_batches` gives a rank its share."""

from __future__ import annotations

import numpy as np


def batch_width(hist_len, width: int) -> int:
    """hist_len (B,) of a batch of histories padded to `width` -> the columns it needs: its longest history, rounded
    up to a quarter of the width (5, 10, 15 or 20 of 20), so that a `GraphedRecommender` captures at most four widths.
    Left-aligned histories lose only columns of padding, which the encoder and every decoder step's cross-attention
    would otherwise read; the lists stay the same up to float rounding (docs/RESULTS.md §4, release 28)."""
    step = max(1, -(-width // 4))
    return min(width, max(step, -(-int(np.max(np.asarray(hist_len))) // step) * step))


def length_batches(hist_len: np.ndarray, width: int, batch_size: int, by_length: bool) -> list[tuple[np.ndarray, int]]:
    """hist_len (R,), the histories' padded width -> [(rows (b,), history width to keep)] per batch.

    by_length=False: batches in row order, at the full width (the default everywhere). True: rows sorted by history
    length, longest first (stable), each batch cut to its `batch_width`: the benchmark's 20,000 Games test histories
    hold 7.4 of 20 items on average, and a batch of 1,024 of them in row order almost always holds a full window.
    Longest first, so that compiled code first sees the full width, as in row order: the compiled kernels depend on
    the shapes they were first compiled for, and shortest first left 0.821 of 2,048 GPU lists equal to the one-user
    reference's, longest first 0.906, row order 0.903 (docs/RESULTS.md §4, release 29).
    """
    hist_len = np.asarray(hist_len)  # a list too: its batches are indexed by row arrays below
    R = len(hist_len)
    if not by_length:
        return [(np.arange(s, min(s + batch_size, R)), width) for s in range(0, R, batch_size)]
    order = np.argsort(-hist_len, kind="stable")
    batches = [order[s:s + batch_size] for s in range(0, R, batch_size)]
    return [(idx, batch_width(hist_len[idx], width)) for idx in batches]


def row_order(batches: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """The rows of `length_batches`' output -> (R,) the indices that put results stacked in batch order back in row
    order."""
    return np.argsort(np.concatenate([idx for idx, _ in batches]), kind="stable")
