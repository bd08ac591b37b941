"""Single-process tests of specgr.losses and the non-collective parts of specgr.distributed."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specgr.distributed import (all_gather_with_grad, reduce_sum, scale_grad, scaled_lr, scaled_warmup, shard_indices,
                                summarize_distributed)
from specgr.losses import contrastive_loss, full_softmax_loss
from specgr.metrics import summarize, topk_metrics


def _unit(x):
    return F.normalize(x, dim=-1)


def test_contrastive_no_duplicates_is_plain_infonce():
    g = torch.Generator().manual_seed(0)
    s, i = _unit(torch.randn(8, 5, generator=g)), _unit(torch.randn(8, 5, generator=g))
    ids = torch.arange(8)
    ref = F.cross_entropy(s @ i.T / 0.07, torch.arange(8))
    assert torch.allclose(contrastive_loss(s, i, ids), ref, atol=1e-6)


def test_contrastive_ignores_duplicate_targets():
    g = torch.Generator().manual_seed(1)
    B, tau = 7, 0.1
    s = _unit(torch.randn(B, 4, generator=g)).requires_grad_()
    i = _unit(torch.randn(B, 4, generator=g)).requires_grad_()
    ids = torch.tensor([3, 5, 3, 9, 5, 3, 1])
    loss = contrastive_loss(s, i, ids, tau=tau)
    # hand-built: for row j keep the diagonal and every column whose id differs from ids[j]
    terms = []
    for j in range(B):
        keep = [c for c in range(B) if c == j or ids[c] != ids[j]]
        lg = torch.stack([s[j] @ i[c] / tau for c in keep])
        terms.append(-(lg[keep.index(j)] - torch.logsumexp(lg, 0)))
    ref = torch.stack(terms).mean()
    assert torch.allclose(loss, ref, atol=1e-6)
    ga = torch.autograd.grad(loss, (s, i))
    gb = torch.autograd.grad(ref, (s, i))
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, atol=1e-6)
    # and it differs from the official logit-0 "mask"
    lg0 = (s @ i.T / tau).detach()
    same = (ids[:, None] == ids[None, :]) & ~torch.eye(B, dtype=torch.bool)
    official = F.cross_entropy(lg0.masked_fill(same, 0.0), torch.arange(B))
    assert not torch.allclose(loss.detach(), official, atol=1e-3)


def test_full_softmax_loss():
    g = torch.Generator().manual_seed(2)
    s = _unit(torch.randn(6, 8, generator=g))
    table = _unit(torch.randn(10, 8, generator=g))
    t = torch.tensor([0, 9, 3, 3, 5, 1])
    ref = -torch.log_softmax(s @ table.T / 0.07, -1)[torch.arange(6), t].mean()
    assert torch.allclose(full_softmax_loss(s, table, t), ref, atol=1e-5)
    with pytest.raises(ValueError):
        full_softmax_loss(s, table, torch.tensor([0, 10, 0, 0, 0, 0]))


def test_single_process_helpers_are_identities():
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x
    assert torch.equal(reduce_sum(x), x.detach())
    y = scale_grad(x, 3.0).sum()
    y.backward()
    assert torch.allclose(x.grad, torch.full_like(x, 3.0))


def test_lr_rules():
    assert scaled_lr(1e-3, 4) == 1e-3  # default: the configured lr is the lr used
    assert scaled_lr(1e-3, 4, "linear") == pytest.approx(4e-3)  # official behaviour
    assert scaled_lr(1e-3, 4, "sqrt") == pytest.approx(2e-3)
    assert scaled_warmup(10_000, 4) == 10_000
    assert scaled_warmup(10_000, 4, "linear") == 2_500
    assert scaled_warmup(10_000, 4, "sqrt") == 5_000
    assert scaled_warmup(0, 4, "linear") == 0
    with pytest.raises(ValueError):
        scaled_lr(1e-3, 2, "cubic")


@pytest.mark.parametrize("n,world", [(0, 2), (1, 3), (10, 3), (17, 4), (5, 8)])
def test_shard_indices_exact(n, world):
    parts = [shard_indices(n, r, world) for r in range(world)]
    cat = np.concatenate(parts)
    assert np.array_equal(cat, np.arange(n))  # disjoint, exhaustive, no padding, in order
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_summarize_distributed_single_process_matches_summarize():
    rng = np.random.default_rng(0)
    ranked = rng.integers(0, 30, size=(40, 12))
    target = rng.integers(0, 30, size=40)
    unseen = target >= 25
    per_row = topk_metrics(ranked, target, ks=(5, 10))
    a, b = summarize(per_row, unseen), summarize_distributed(per_row, unseen)
    assert a["n_rows"] == b["n_rows"] and a["n_unseen"] == b["n_unseen"]
    for g in ("overall", "in_sample", "unseen"):
        for k in per_row:
            assert a[g][k] == pytest.approx(b[g][k], abs=1e-12) or (math.isnan(a[g][k]) and math.isnan(b[g][k]))
