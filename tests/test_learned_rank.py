"""The learned final ranking's parts (specgr.speculate.learned_rank): features on hand cases, the listwise fit."""

from __future__ import annotations

import pytest
import torch

from specgr.speculate.learned_rank import FEATURES, candidate_features, fit_listwise, learned_score


def test_features_read_only_the_digits_v_reads():
    items = torch.tensor([[2, 8, -1]])  # 2 in-sample; 8 new, longest in-sample prefix 1; -1 a pad
    lp = torch.tensor([[[-1.0, -2.0, -3.0, -4.0], [-0.5, -6.0, -7.0, -8.0], [-9.0, -9.0, -9.0, -9.0]]])
    plen = torch.tensor([4] * 6 + [1] * 4)
    X = candidate_features(items, torch.tensor([[0.3, 0.2, -1e9]]), lp, torch.tensor([[4, 1, 4]]), plen, 6)
    f = {name: X[0, :, i].tolist() for i, name in enumerate(FEATURES)}
    assert f["V"] == [pytest.approx(-2.5), -0.5, 0.0]  # mean of the digits read; 0 at the pad
    assert f["logp_digit4"] == [-4.0, 0.0, 0.0] and f["logp_digit1_new"] == [0.0, -0.5, 0.0]
    assert f["logp_digit2_new"] == [0.0, 0.0, 0.0], "a new item is not charged for digits past its prefix"
    assert f["new"] == [0.0, 1.0, 0.0] and f["new_prefix_len1"] == [0.0, 1.0, 0.0]
    assert f["drafter_score"] == [pytest.approx(0.3), pytest.approx(0.2), 0.0]


def _planted(rows=300, drafts=40, seed=0):
    """Features of random drafts where only the target's digit-1 log-prob stands out (index 3 of FEATURES)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, drafts, len(FEATURES), generator=g)
    hit = torch.zeros(rows, drafts, dtype=torch.bool)
    hit[torch.arange(rows), torch.randint(0, drafts, (rows,), generator=g)] = True
    X[..., FEATURES.index("logp_digit1")] += 3.0 * hit
    return X, torch.ones(rows, drafts, dtype=torch.bool), hit


def test_listwise_fit_finds_the_planted_signal_and_ignores_row_shifts():
    X, ok, hit = _planted()
    w = torch.tensor(fit_listwise(X, ok, hit))
    assert w.abs().argmax() == FEATURES.index("logp_digit1") and w[FEATURES.index("logp_digit1")] > 1
    Xt, okt, hitt = _planted(seed=1)  # held-out rows: the fitted rule ranks the target first in most of them
    top1 = learned_score(w, Xt).argmax(1) == hitt.float().argmax(1)
    assert top1.float().mean() > 0.5
    shifted = X + torch.randn(X.shape[0], 1, X.shape[2])  # a per-row constant per feature changes no softmax
    torch.testing.assert_close(torch.tensor(fit_listwise(shifted, ok, hit)), w, rtol=1e-3, atol=1e-3)


def test_listwise_fit_needs_a_drafted_target():
    X, ok, hit = _planted(rows=5)
    with pytest.raises(ValueError, match="Fix"):
        fit_listwise(X, ok, torch.zeros_like(hit))
