"""Metrics on hand-computed cases, and the evaluator's one-pass split into overall / in-sample / unseen."""

import math

import numpy as np
import pytest
import torch

from specgr.data.processed import Rows
from specgr.evaluate import evaluate
from specgr.metrics import summarize, target_rank, topk_metrics


def test_hand_computed_ranks_and_metrics():
    ranked = np.array([[5, 3, 9], [1, 2, 3], [7, 7, 8], [-1, 4, 6]])
    target = np.array([3, 4, 8, 6])
    np.testing.assert_array_equal(target_rank(ranked, target), [2, 0, 2, 2])
    m = topk_metrics(ranked, target, ks=(1, 2, 3))
    np.testing.assert_allclose(m["recall@1"], [0, 0, 0, 0])
    np.testing.assert_allclose(m["recall@2"], [1, 0, 1, 1])
    np.testing.assert_allclose(m["ndcg@2"], [1 / math.log2(3), 0, 1 / math.log2(3), 1 / math.log2(3)])


def test_duplicates_do_not_inflate_recall():
    ranked = np.array([[4, 4, 4, 4]])
    m = topk_metrics(ranked, np.array([4]), ks=(4,))
    assert m["recall@4"][0] == 1.0  # counted once, never 4
    # a duplicate before the target does not push it down a rank
    assert target_rank(np.array([[1, 1, 2]]), np.array([2]))[0] == 2


def test_ndcg_at_rank_one_is_one():
    m = topk_metrics(np.array([[3, 1]]), np.array([3]), ks=(10,))
    assert m["ndcg@10"][0] == 1.0 and m["recall@10"][0] == 1.0


def test_summarize_groups():
    per_row = {"recall@10": np.array([1.0, 0.0, 1.0, 1.0])}
    s = summarize(per_row, np.array([False, False, True, True]))
    assert s["overall"]["recall@10"] == 0.75
    assert s["in_sample"]["recall@10"] == 0.5
    assert s["unseen"]["recall@10"] == 1.0
    assert (s["n_rows"], s["n_in_sample"], s["n_unseen"]) == (4, 2, 2)
    # overall equals the size-weighted mean of the two groups (the official code's implied definition)
    assert s["overall"]["recall@10"] == pytest.approx((2 * 0.5 + 2 * 1.0) / 4)


def test_evaluator_schema_and_extras():
    rows = Rows(np.arange(3), np.array([[0, -1], [1, -1], [2, 0]]), np.array([1, 1, 2]), np.array([1, 5, 9]),
                np.zeros(3, dtype=np.int64))

    def fn(h, hl):  # recommends item id + 1, then 5
        return torch.stack([h[:, 0] + 1, torch.full_like(h[:, 0], 5)], 1), {"rounds": hl.float()}

    r = evaluate(fn, rows, n_in_sample=5, method="toy", batch_size=2, ks=(1, 2))
    assert r["overall"]["recall@1"] == pytest.approx(1 / 3)
    assert r["overall"]["recall@2"] == pytest.approx(2 / 3)
    assert r["unseen"]["recall@2"] == pytest.approx(1 / 2)  # targets 5 and 9 are unseen
    assert r["mean_rounds"] == pytest.approx(4 / 3)
    for key in ("n_rows", "recs_per_s", "device", "unseen_share_of_recs"):
        assert key in r
