"""RetrievalIndex: exact top-k, masks, exclusion, growth, torch == faiss."""

import numpy as np
import pytest
import torch

from specgr.retrieval import RetrievalIndex
from specgr.utils import has_faiss

needs_faiss = pytest.mark.skipif(not has_faiss(), reason="faiss not installed")


def _data(N=500, d=16, B=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=g), torch.randn(B, d, generator=g)


def _brute(items, q, k, allowed=None, exclude=None):
    s = q @ items.T
    if allowed is not None:
        s[~allowed] = float("-inf")
    if exclude is not None:
        for b in range(len(q)):
            for e in exclude[b].tolist():
                if e >= 0:
                    s[b, e] = float("-inf")
    sc, ids = s.topk(k, dim=1)
    ids[sc == float("-inf")] = -1
    return ids, sc


@pytest.mark.parametrize("chunk", [1 << 25, 7 * 40])  # one block, and many small chunks (merge path)
def test_torch_exact_topk(chunk):
    items, q = _data()
    idx = RetrievalIndex(items, backend="torch", device="cpu", chunk_elems=chunk)
    ids, sc = idx.search(q, 10)
    ref_i, ref_s = _brute(items, q, 10)
    assert torch.equal(ids, ref_i)
    assert torch.allclose(sc, ref_s, atol=1e-5)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("M", [5, 40])  # 5 x 16 floats to gather < 500 items; 40 x 16 > 500: one matmul, then pick
def test_score_is_the_search_score(metric, M):
    items, q = _data()
    idx = RetrievalIndex(items, backend="torch", device="cpu", metric=metric)
    ids = torch.randint(0, len(items), (len(q), M), generator=torch.Generator().manual_seed(1))
    ids[0, :2] = -1
    got = idx.score(q, ids)
    top_i, top_s = idx.search(q, len(items))  # every item's search score
    want = torch.empty_like(top_s).scatter_(1, top_i, top_s).gather(1, ids.clamp(min=0)).masked_fill(ids < 0, 0.0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
def test_mask_and_exclude_honoured(backend):
    items, q = _data()
    g = torch.Generator().manual_seed(1)
    allowed = torch.rand(len(q), len(items), generator=g) < 0.3
    exclude = torch.randint(-1, len(items), (len(q), 12), generator=g)
    idx = RetrievalIndex(items, backend=backend, device="cpu", chunk_elems=7 * 50)
    ids, sc = idx.search(q, 20, allowed=allowed, exclude=exclude)
    for b in range(len(q)):
        got = ids[b][ids[b] >= 0]
        assert allowed[b, got].all()
        assert not set(got.tolist()) & set(exclude[b].tolist())
    ref_i, ref_s = _brute(items, q, 20, allowed, exclude)
    assert torch.equal(ids, ref_i)
    assert torch.allclose(sc, ref_s, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
def test_fewer_than_k_allowed_tail(backend):
    items, q = _data(N=50, B=3)
    allowed = torch.zeros(3, 50, dtype=torch.bool)
    allowed[0, [3, 9, 27]] = True
    allowed[1, :] = True
    # row 2: nothing allowed
    ids, sc = RetrievalIndex(items, backend=backend, device="cpu").search(q, 5, allowed=allowed,
                                                                          exclude=torch.tensor([[9], [-1], [0]]))
    assert sorted(ids[0, :2].tolist()) == [3, 27]
    assert (ids[0, 2:] == -1).all() and torch.isinf(sc[0, 2:]).all() and (sc[0, 2:] < 0).all()
    assert (ids[1] >= 0).all()
    assert (ids[2] == -1).all() and (sc[2] == float("-inf")).all()
    # k larger than the catalog
    ids, sc = RetrievalIndex(items[:4], backend=backend, device="cpu").search(q, 6)
    assert (ids[:, :4] >= 0).all() and (ids[:, 4:] == -1).all()


@needs_faiss
@pytest.mark.parametrize("masked", [False, True])
def test_torch_equals_faiss(masked):
    items, q = _data(N=2000, d=32, B=16, seed=3)
    allowed = exclude = None
    if masked:
        g = torch.Generator().manual_seed(4)
        allowed = torch.rand(16, 2000, generator=g) < 0.05  # sparse: exercises the faiss -> torch fallback
        allowed[:8] = torch.rand(8, 2000, generator=g) < 0.9
        exclude = torch.randint(-1, 2000, (16, 30), generator=g)
    t_i, t_s = RetrievalIndex(items, backend="torch", device="cpu").search(q, 50, allowed, exclude)
    f_i, f_s = RetrievalIndex(items, backend="faiss", device="cpu").search(q, 50, allowed, exclude)
    assert torch.equal(t_i, f_i)
    assert torch.allclose(t_s, f_s, atol=1e-4)


@needs_faiss
def test_ivf_respects_masks():
    items, q = _data(N=3000, d=16, B=8, seed=5)
    allowed = torch.rand(8, 3000) < 0.5
    idx = RetrievalIndex(items, backend="faiss-ivf", device="cpu", ivf_nprobe=64)
    ids, _ = idx.search(q, 10, allowed=allowed)
    assert (ids >= 0).all()
    assert allowed.gather(1, ids).all()
    new = idx.add(q[:2] * 10)  # very large norm -> top-1 for its own query under IP
    assert new.tolist() == [3000, 3001]
    ids, _ = idx.search(q[:2], 1)
    assert ids[:, 0].tolist() == [3000, 3001]


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
def test_added_items_retrievable(backend):
    items, q = _data(N=100, B=4)
    idx = RetrievalIndex(items.numpy(), backend=backend, device="cpu", metric="cosine")
    new_ids = idx.add(q[:2].numpy())
    assert new_ids.tolist() == [100, 101] and idx.n_items == 102
    ids, sc = idx.search(q, 3)
    assert ids[0, 0] == 100 and ids[1, 0] == 101
    assert torch.allclose(sc[:2, 0], torch.ones(2), atol=1e-5)
    allowed = torch.ones(4, 102, dtype=torch.bool)
    allowed[0, 100] = False
    ids, _ = idx.search(q, 3, allowed=allowed)
    assert 100 not in ids[0].tolist()


def test_shape_errors():
    items, q = _data(N=20)
    idx = RetrievalIndex(items, backend="torch", device="cpu")
    with pytest.raises(ValueError):
        idx.search(q, 3, allowed=torch.ones(len(q), 19, dtype=torch.bool))
    with pytest.raises(ValueError):
        idx.search(q[:, :3], 3)
    ids, sc = idx.search(np.asarray(q), 3)  # numpy queries work too
    assert ids.shape == (len(q), 3)
