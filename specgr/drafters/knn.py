"""Semantic-KNN drafter: the paper's trivial plug-and-play drafter, no training.

query = text embedding of the user's LAST history item; drafts = cosine top-k over the whole catalog (new items
included), never the user's own history items.
"""

from __future__ import annotations

import torch

from specgr.drafters.base import EmbeddingDrafter, last_item
from specgr.retrieval import RetrievalIndex


class SemanticKNNDrafter(EmbeddingDrafter):
    """text_emb: (N, d) item text embeddings (normalised here, so scores are cosines)."""

    exclude_history = True

    def __init__(self, text_emb, device="auto", backend: str = "auto"):
        super().__init__(device)
        self.index = RetrievalIndex(text_emb, backend=backend, device=self.device, metric="cosine")

    def query_embeddings(self, history, hist_len) -> torch.Tensor:
        """(B, d): the stored (normalised) vector of each row's last history item; zeros for an empty history."""
        last = last_item(history, hist_len)
        table = self.index.embeddings()
        q = table[last.clamp(min=0).to(table.device)]
        return q.masked_fill((last < 0).to(q.device)[:, None], 0.0).to(self.device)

    def add_items(self, text_emb) -> torch.Tensor:
        """Append (M, d) text embeddings; returns the new ids."""
        return self.index.add(text_emb)
