"""Semantic-KNN drafter: last-item cosine neighbours, history excluded, new items draftable."""

import numpy as np
import torch

from specgr.drafters.base import Drafter
from specgr.drafters.knn import SemanticKNNDrafter


def test_knn_excludes_history_and_ranks_by_cosine(tiny_dataset):
    ds = tiny_dataset
    emb = ds.embeddings()
    d = SemanticKNNDrafter(emb, device="cpu", backend="torch")
    assert isinstance(d, Drafter) and d.n_items == ds.n_items
    rows = ds.rows("test")
    h, hl = rows.history[:8], rows.hist_len[:8]
    ids, sc = d.draft(h, hl, 10)
    for b in range(8):
        hist = set(h[b][: hl[b]].tolist())
        assert not hist & set(ids[b].tolist())
        last = h[b][hl[b] - 1]
        cos = emb @ emb[last]
        cos[list(hist)] = -np.inf
        assert ids[b].tolist() == np.argsort(-cos, kind="stable")[:10].tolist()
        assert np.allclose(sc[b].numpy(), np.sort(cos)[::-1][:10], atol=1e-5)


def test_knn_new_item_and_masks(tiny_dataset):
    ds = tiny_dataset
    emb = ds.embeddings()
    d = SemanticKNNDrafter(emb, device="cpu")
    h = np.array([[3, 5, -1], [7, -1, -1]])
    hl = np.array([2, 1])
    new = d.add_items(emb[[5, 7]] + 1e-3)  # near-duplicates of each user's last item
    ids, _ = d.draft(h, hl, 3)
    assert ids[0, 0] == new[0] and ids[1, 0] == new[1]
    allowed = torch.zeros(2, d.n_items, dtype=torch.bool)
    allowed[:, [3, 4]] = True
    ids, sc = d.draft(h, hl, 3, allowed=allowed)
    assert ids[0].tolist() == [4, -1, -1]  # 3 is in the history
    assert sorted(ids[1, :2].tolist()) == [3, 4] and ids[1, 2] == -1 and sc[1, 2] == float("-inf")
