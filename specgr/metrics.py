"""Recall@K and NDCG@K with a single ground-truth item per row: the one implementation every evaluator uses.

Binary relevance, IDCG = 1: NDCG@K = 1 / log2(rank + 1) when the target is at 1-based rank <= K, else 0.
A list that repeats an item counts it once (its first position): duplicates cannot inflate Recall (official v-new bug).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (5, 10, 50)


def target_rank(ranked: np.ndarray, target: np.ndarray) -> np.ndarray:
    """ranked: (R, K) item ids (-1 = empty slot); target: (R,). Returns the 1-based rank of the target, 0 if absent.

    Ranks count distinct items only, so a duplicate earlier in the list does not push the target down.
    """
    ranked = np.asarray(ranked)
    target = np.asarray(target)
    R, K = ranked.shape
    rank = np.zeros(R, dtype=np.int64)
    if K == 0:
        return rank
    # mark first occurrences per row so duplicates and -1 slots do not take a rank position
    srt = np.sort(ranked, axis=1, kind="stable")
    order = np.argsort(ranked, axis=1, kind="stable")
    first = np.ones_like(ranked, dtype=bool)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    np.put_along_axis(first, order, ~dup_sorted, axis=1)
    valid = first & (ranked >= 0)
    pos = np.cumsum(valid, axis=1)  # distinct-item rank at each slot
    hit = valid & (ranked == target[:, None])
    any_hit = hit.any(axis=1)
    where = hit.argmax(axis=1)
    rank[any_hit] = pos[any_hit, where[any_hit]]
    return rank


def rank_metrics(rank: np.ndarray, ks=DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-row recall@k / ndcg@k from 1-based ranks (0 = miss)."""
    rank = np.asarray(rank)
    out = {}
    for k in ks:
        hit = (rank > 0) & (rank <= k)
        out[f"recall@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(np.maximum(rank, 1) + 1.0), 0.0)
    return out


def topk_metrics(ranked: np.ndarray, target: np.ndarray, ks=DEFAULT_KS) -> dict[str, np.ndarray]:
    return rank_metrics(target_rank(ranked, target), ks)


def summarize(per_row: dict[str, np.ndarray], unseen: np.ndarray) -> dict:
    """Means over overall / in-sample / unseen rows, from a single pass (no size-weighting needed)."""
    unseen = np.asarray(unseen, dtype=bool)
    groups = {"overall": np.ones_like(unseen), "in_sample": ~unseen, "unseen": unseen}
    out = {}
    for g, m in groups.items():
        out[g] = {k: (float(v[m].mean()) if m.any() else float("nan")) for k, v in per_row.items()}
    out["n_rows"] = int(len(unseen))
    out["n_in_sample"] = int((~unseen).sum())
    out["n_unseen"] = int(unseen.sum())
    return out
