"""Length buckets (specgr.train.buckets) and the training step (specgr.train.step): exact, exhaustive, deterministic."""

import itertools

import numpy as np
import pytest
import torch

from specgr.data.tokenize import PAD, tokenize_rows
from specgr.models.tiger import TIGER, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs
from specgr.train.buckets import BucketedRows, bucket_bounds, tokens_for
from specgr.train.step import TrainStep, adamw


def padded_cost(hist_len, bounds):
    which = np.searchsorted(np.asarray(bounds), hist_len)
    return sum(tokens_for(bounds[b]) for b in which)


def test_bucket_bounds_is_the_exact_optimum():
    rng = np.random.default_rng(0)
    hist_len = np.minimum(rng.geometric(0.15, size=500), 20)
    for n in (1, 2, 3, 4):
        got = bucket_bounds(hist_len, n)
        assert got[-1] == hist_len.max() and len(got) <= n
        lengths = np.unique(hist_len)
        best = min(padded_cost(hist_len, sorted(set(c) | {int(hist_len.max())}))
                   for c in itertools.combinations(lengths.tolist(), n - 1)) if n > 1 else \
            padded_cost(hist_len, [int(hist_len.max())])
        assert padded_cost(hist_len, got) == best
    with pytest.raises(ValueError, match="length_buckets"):
        bucket_bounds(hist_len, 0)


def tiny_sids(ds, C=6):
    codes3 = torch.randint(0, C, (ds.n_items, 3), generator=torch.Generator().manual_seed(0))
    return SemanticIDs.from_codes(codes3, ds.n_in_sample, C, on_overflow="grow")


def test_epoch_plan_covers_every_row_once(tiny_dataset):
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    t = tokenize_rows(rows, sids.tokens)
    data = BucketedRows.build(t, rows.hist_len, 3)
    assert data.n_rows == len(rows) and data.n_tokens_padded < len(rows) * t["input_ids"].shape[1]
    plan = data.epoch_plan(0, 16, seed=1)
    assert len(plan) == data.batches_per_epoch(16)
    seen = {b: [] for b in range(len(data.ids))}
    for b, idx in plan:
        assert idx.shape == (16,)
        seen[b].extend(idx[idx >= 0].tolist())
    for b, ids in seen.items():
        assert sorted(ids) == list(range(len(data.ids[b])))  # every row exactly once
    # bucket rows are the real rows, cut to the bucket length (nothing but padding is cut)
    full = {tuple(r[r != PAD].tolist()) for r in t["input_ids"]}
    for x in data.ids:
        assert {tuple(r[r != PAD].tolist()) for r in x} <= full
    assert [i.tolist() for _, i in data.epoch_plan(0, 16, 1)] == [i.tolist() for _, i in plan]  # deterministic
    assert [i.tolist() for _, i in data.epoch_plan(1, 16, 1)] != [i.tolist() for _, i in plan]  # reshuffled


def test_bucket_padding_does_not_change_the_loss(tiny_dataset):
    """Exactness of bucketing: a row's loss is the same padded to 82 tokens or to its bucket's length."""
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    t = tokenize_rows(rows, sids.tokens)
    torch.manual_seed(0)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size).eval()
    short = np.flatnonzero(np.asarray(rows.hist_len) <= 3)[:8]
    ids, lab = t["input_ids"][short].long(), t["labels"][short].long()
    full = model(ids, ids != PAD, lab, reduction="none")
    cut = ids[:, :tokens_for(3)]
    assert torch.allclose(model(cut, cut != PAD, lab, reduction="none"), full, atol=1e-5)


def test_train_step_fillers_are_ignored(tiny_dataset):
    """-1 fillers contribute neither loss nor gradient: a batch with fillers == the batch without them."""
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    data = BucketedRows.build(tokenize_rows(rows, sids.tokens), rows.hist_len, 1)
    params = []
    for idx in (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3, -1, -1])):
        torch.manual_seed(0)
        model = TIGER(tiger_preset("tiny"), sids.vocab_size)
        opt = adamw(model.parameters(), 1e-2, 0.0, capturable=False)
        TrainStep(model, opt, data, len(idx)).run(0, idx)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-6)


def test_train_step_refuses_a_global_batch_the_ranks_cannot_split(tiny_dataset):
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    data = BucketedRows.build(tokenize_rows(rows, sids.tokens), rows.hist_len, 1)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size)
    opt = adamw(model.parameters(), 1e-2, 0.0, capturable=False)
    with pytest.raises(ValueError, match="Fix: make the global batch"):
        TrainStep(model, opt, data, 7, world=2)


@pytest.mark.gpu
def test_cuda_graph_step_equals_eager_step(tiny_dataset):
    """The captured-and-replayed step computes the same updates as the eager step (no dropout, fp32)."""
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    data = BucketedRows.build(tokenize_rows(rows, sids.tokens), rows.hist_len, 2, device="cuda")
    plan = data.epoch_plan(0, 8, seed=0) * 3  # enough steps to warm up, capture and replay every bucket
    out = []
    for graphs in (False, True):
        torch.manual_seed(0)
        model = TIGER(tiger_preset("tiny"), sids.vocab_size).cuda()
        opt = adamw(model.parameters(), 1e-3, 0.01, capturable=graphs)
        step = TrainStep(model, opt, data, 8, grad_clip=1.0, graphs=graphs)
        for b, idx in plan:
            step.run(b, idx)
        out.append((torch.cat([p.detach().flatten() for p in model.parameters()]), step.pop_stats()))
        assert (len(step._graph) == len(data.ids)) == graphs
    assert torch.allclose(out[0][0], out[1][0], atol=1e-4, rtol=1e-3)
    assert np.allclose(out[0][1], out[1][1], rtol=1e-3)


@pytest.mark.gpu
def test_graph_replays_draw_fresh_dropout(tiny_dataset):
    """Dropout inside a captured step is re-drawn at every replay (the graph does not freeze one mask), also when the
    forward is compiled."""
    sids = tiny_sids(tiny_dataset)
    rows = tiny_dataset.rows("train")
    data = BucketedRows.build(tokenize_rows(rows, sids.tokens), rows.hist_len, 1, device="cuda")
    cfg = tiger_preset("tiny")
    cfg.dropout = 0.3
    for compile in (False, True):
        torch.manual_seed(0)
        model = TIGER(cfg, sids.vocab_size).cuda()
        opt = adamw(model.parameters(), 0.0, 0.0, capturable=True)  # lr 0: the weights never change
        step = TrainStep(model, opt, data, 8, graphs=True, compile=compile)
        idx = torch.arange(8, device="cuda")
        losses = []
        for _ in range(6):  # 3 warm-up steps, capture + replay, then replays
            step.run(0, idx)
            losses.append(step.pop_stats()[0])
        assert step._graph, "the step was not captured"
        assert len(set(round(x, 6) for x in losses[3:])) == 3  # a different dropout mask at every replay
