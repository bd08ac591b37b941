"""Two CPU processes over gloo: gathered contrastive loss == single-process loss (value and gradients), and metrics
reduced over ranks == metrics on one process (exact sharding, no padding duplicates)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from specgr.distributed import get_rank, get_world_size, shard_indices, summarize_distributed
from specgr.losses import contrastive_loss
from specgr.metrics import summarize, topk_metrics

WORLD = 2
B_LOCAL, D_IN, P = 6, 7, 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problem():
    """The global batch, identical on every process: inputs, a shared projection and ids with cross-rank dups."""
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(WORLD * B_LOCAL, D_IN, generator=g)
    xi = torch.randn(WORLD * B_LOCAL, D_IN, generator=g)
    w = torch.randn(D_IN, P, generator=g)
    ids = torch.tensor([4, 1, 7, 4, 2, 9, 1, 3, 4, 8, 0, 5])  # 4 on both ranks, 1 on both ranks
    return xs, xi, w, ids


def _embed(xs, xi, w):
    return F.normalize(xs @ w, dim=-1), F.normalize(xi @ w, dim=-1)


def _metric_problem():
    rng = np.random.default_rng(1)
    R = 23  # odd on purpose: uneven shards
    ranked = rng.integers(0, 40, size=(R, 15))
    target = rng.integers(0, 40, size=R)
    ranked[:5, 0] = target[:5]  # some hits at rank 1
    return ranked, target, target >= 30


def _worker(rank: int, port: int, out_dir: str):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        assert get_rank() == rank and get_world_size() == WORLD
        xs, xi, w, ids = _problem()
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        # (a1) gradients w.r.t. each rank's own inputs (no DDP averaging involved)
        xs_l = xs[sl].clone().requires_grad_()
        xi_l = xi[sl].clone().requires_grad_()
        s, i = _embed(xs_l, xi_l, w)
        loss = contrastive_loss(s, i, ids[sl], tau=0.07, ddp_average=False)
        loss.backward()
        # (a2) DDP-style: a shared parameter, gradients averaged over ranks as the DDP reducer does
        w_l = w.clone().requires_grad_()
        s2, i2 = _embed(xs[sl], xi[sl], w_l)
        loss2 = contrastive_loss(s2, i2, ids[sl], tau=0.07)  # ddp_average=True (default)
        loss2.backward()
        gw = w_l.grad.clone()
        dist.all_reduce(gw)
        gw /= WORLD
        # (b) exact metric reduction
        ranked, target, unseen = _metric_problem()
        idx = shard_indices(len(target), rank, WORLD)
        per_row = topk_metrics(ranked[idx], target[idx], ks=(1, 5, 10))
        summ = summarize_distributed(per_row, unseen[idx])
        torch.save({"loss": loss.detach(), "loss2": loss2.detach(), "gxs": xs_l.grad, "gxi": xi_l.grad, "gw": gw,
                    "summ": summ, "n_local": len(idx)}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_gathered_contrastive_equals_single_process(ddp_results):
    xs, xi, w, ids = _problem()
    xs, xi, w = xs.requires_grad_(), xi.requires_grad_(), w.requires_grad_()
    s, i = _embed(xs, xi, w)
    ref = contrastive_loss(s, i, ids, tau=0.07)  # not distributed here: plain single-process loss
    ref.backward()
    for r in ddp_results:  # every rank reports the global-batch loss
        assert torch.allclose(r["loss"], ref.detach(), atol=1e-6)
        assert torch.allclose(r["loss2"], ref.detach(), atol=1e-6)
    # per-input gradients: each rank owns its rows; summed (here: concatenated) over ranks == single process
    gxs = torch.cat([r["gxs"] for r in ddp_results])
    gxi = torch.cat([r["gxi"] for r in ddp_results])
    assert torch.allclose(gxs, xs.grad, atol=1e-6)
    assert torch.allclose(gxi, xi.grad, atol=1e-6)
    # shared parameter: DDP-averaged gradient == single process gradient
    for r in ddp_results:
        assert torch.allclose(r["gw"], w.grad, atol=1e-5)


def test_reduced_metrics_equal_single_process(ddp_results):
    ranked, target, unseen = _metric_problem()
    ref = summarize(topk_metrics(ranked, target, ks=(1, 5, 10)), unseen)
    assert sum(r["n_local"] for r in ddp_results) == len(target)  # nothing padded or repeated
    for r in ddp_results:
        got = r["summ"]
        assert (got["n_rows"], got["n_in_sample"], got["n_unseen"]) == \
            (ref["n_rows"], ref["n_in_sample"], ref["n_unseen"])
        for g in ("overall", "in_sample", "unseen"):
            for k, v in ref[g].items():
                assert got[g][k] == pytest.approx(v, abs=1e-12), (g, k)
