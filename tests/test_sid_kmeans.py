"""k-means: k-means++ seeds on data points, seeded, both backends agree on easy clusters."""

import numpy as np
import pytest
import torch

from specgr.sid.kmeans import kmeans, kmeans_pp_init, nearest
from specgr.utils import has_faiss




def blobs(n_per=50, k=4, d=8, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(k, d)) * 10
    x = np.concatenate([c + g.normal(size=(n_per, d)) for c in centers]).astype(np.float32)
    return torch.from_numpy(x), np.repeat(np.arange(k), n_per)


def test_kmeans_pp_init_on_data_points():
    x, _ = blobs()
    cent = kmeans_pp_init(x, 10, torch.Generator().manual_seed(0))
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(c) in rows for c in cent.tolist())  # every centroid is exactly a data row
    assert len({tuple(r) for r in cent.tolist()}) == 10  # distinct rows
    # duplicates in the data: still k distinct rows of x
    xd = torch.cat([x[:3]] * 5)
    c2 = kmeans_pp_init(xd, 3, torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in c2.tolist()}) == 3


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_kmeans_recovers_blobs_and_is_seeded(backend):
    if backend == "faiss" and not has_faiss():
        pytest.skip("faiss not installed")
    x, y = blobs()
    r = kmeans(x, 4, n_iter=20, seed=0, backend=backend, device="cpu")
    assert r.backend == backend and r.centroids.shape == (4, 8)
    # each true blob maps to one cluster
    for c in range(4):
        assert len(set(r.assign[y == c].tolist())) == 1
    r2 = kmeans(x, 4, n_iter=20, seed=0, backend=backend, device="cpu")
    assert torch.equal(r.assign, r2.assign)
    idx, _ = nearest(x, r.centroids)
    assert torch.equal(idx, r.assign)


def test_kmeans_needs_k_points():
    with pytest.raises(ValueError, match="codebook_size"):
        kmeans(torch.randn(3, 2), 5)
