"""The Drafter protocol: anything that proposes k candidate items per user for the verifier.

    ids, scores = drafter.draft(history (B, H), hist_len (B,), k, allowed=None, exclude=None)

- history: (B, H) item ids, left-aligned chronological, padded with -1; hist_len: (B,) real lengths.
- allowed: (B, N) bool | None (None = the whole catalog, N = drafter.n_items); exclude: (B, E) ids, -1 padded | None.
- returns ids (B, k) LongTensor and scores (B, k) float, best first; disallowed/excluded items never appear; when
  fewer than k are admissible the tail holds id -1 and score -inf.
- add_items(...) makes new items draftable without retraining (ids n_items, n_items+1, ...).
- item_embeddings() -> (N, d) and query_embeddings(history, hist_len) -> (B, d): the vectors the drafter scores with
  (for the app's UMAP and for analysis).

`EmbeddingDrafter` implements the protocol for the common "query vector . item table" case on top of
`specgr.retrieval.RetrievalIndex`: a subclass provides `query_embeddings` and builds `self.index`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from specgr.retrieval import RetrievalIndex
from specgr.utils import as_long, resolve_device


@runtime_checkable
class Drafter(Protocol):
    """Structural type of a drafter; see the module docstring for shapes."""

    @property
    def n_items(self) -> int: ...

    def draft(self, history, hist_len, k: int, allowed=None, exclude=None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def add_items(self, *args, **kwargs) -> torch.Tensor: ...

    def item_embeddings(self) -> torch.Tensor: ...

    def query_embeddings(self, history, hist_len) -> torch.Tensor: ...


def last_item(history: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
    """(B, H), (B,) -> (B,) id of the most recent history item (-1 for an empty history)."""
    idx = (hist_len - 1).clamp(min=0)
    out = history.gather(1, idx[:, None]).squeeze(1)
    return torch.where(hist_len > 0, out, torch.full_like(out, -1))


def merge_exclude(exclude, extra: torch.Tensor) -> torch.Tensor:
    """Concatenate two (B, *) id lists (-1 padded); either may be None."""
    if exclude is None:
        return extra
    return torch.cat([as_long(exclude, extra.device), extra], 1)


class EmbeddingDrafter:
    """Base for drafters that score items by an inner product with a query vector.

    Subclasses set `self.index` (a RetrievalIndex over the (N, d) item table) and implement `query_embeddings`.
    `exclude_history=True` also removes each user's own history from the drafts (the KNN drafter does).
    """

    index: RetrievalIndex
    exclude_history: bool = False

    def __init__(self, device="auto"):
        self.device = resolve_device(device)

    @property
    def n_items(self) -> int:
        return self.index.n_items

    def item_embeddings(self) -> torch.Tensor:
        """(N, d) the item table the drafter scores against."""
        return self.index.embeddings()

    def query_embeddings(self, history, hist_len) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def draft(self, history, hist_len, k: int, allowed=None, exclude=None) -> tuple[torch.Tensor, torch.Tensor]:
        history = as_long(history, self.device)
        hist_len = as_long(hist_len, self.device)
        q = self.query_embeddings(history, hist_len)
        if self.exclude_history:
            exclude = merge_exclude(exclude, history)
        return self.index.search(q, k, allowed=allowed, exclude=exclude)

    def to(self, device) -> "EmbeddingDrafter":
        self.device = resolve_device(device)
        self.index.to(self.device)
        return self


@torch.no_grad()
def drafter_scores(drafter, history, hist_len, items: torch.Tensor) -> torch.Tensor:
    """The drafter's score of given items (B, M) for each user: what `draft` would have returned for them (the inner
    product with the user's query vector; 0 for item -1). Needs an embedding drafter (an `index` and
    `query_embeddings`), as every drafter in this package is."""
    if not (hasattr(drafter, "index") and hasattr(drafter, "query_embeddings")):
        raise ValueError(f"fusion_weight > 0 or final_weights need an embedding drafter; {type(drafter).__name__} "
                         "has no index. Fix: fusion_weight=0 and final_weights=None, or a drafter built on "
                         "specgr.drafters.base.EmbeddingDrafter.")
    dev = getattr(drafter, "device", history.device)
    q = drafter.query_embeddings(history.to(dev), hist_len.to(dev))
    return drafter.index.score(q, items.to(dev)).to(items.device)


@torch.no_grad()
def draft_in_batches(drafter, history, hist_len, k: int, batch_size: int = 1024, allowed=None,
                     exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Draft for many rows (R, H) in batches of `batch_size`; returns numpy ids (R, k) and scores (R, k).

    allowed may be a single (N,) bool mask shared by every row (the usual evaluation pool) or None.
    """
    R = len(hist_len)
    ids, scores = [], []
    for s in range(0, R, batch_size):
        e = min(R, s + batch_size)
        a = None
        if allowed is not None:
            a = torch.as_tensor(allowed, dtype=torch.bool)
            a = a[None].expand(e - s, -1) if a.ndim == 1 else a[s:e]
        ex = None if exclude is None else exclude[s:e]
        i, sc = drafter.draft(history[s:e], hist_len[s:e], k, allowed=a, exclude=ex)
        ids.append(i.cpu().numpy())
        scores.append(sc.float().cpu().numpy())
    if not ids:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(ids), np.concatenate(scores)
