"""TIGER training on the tiny fixture: fast_dev_run, a short real run with checkpointing, resume, length buckets."""

import json

import pytest
import torch

from specgr.checkpoint import load_checkpoint
from specgr.models.tiger import load_tiger, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs
from specgr.train.common import cosine_with_warmup, resolve_warmup
from specgr.train.tiger import TigerTrainConfig, train_tiger, validation_catalog


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CPU boxes: multi-threaded tiny matmuls spin-wait
    yield
    torch.set_num_threads(n)


def tiny_sids(ds, C=6):
    codes3 = torch.randint(0, C, (ds.n_items, 3), generator=torch.Generator().manual_seed(0))
    return SemanticIDs.from_codes(codes3, ds.n_in_sample, C, on_overflow="grow")


def cfg(**kw):
    base = dict(epochs=2, batch_size=32, val_every=1, val_beam=20, val_batch_size=64, precision="32-true",
                accelerator="cpu", warmup=0.2, log_every_n_steps=1, val_max_rows=None)
    return TigerTrainConfig(**{**base, **kw})


def test_fast_dev_run(tiny_dataset, tmp_path):
    sids = tiny_sids(tiny_dataset)
    model, info = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(), tmp_path / "run", fast_dev_run=True)
    assert info["steps"] == 1 and model.vocab_size == sids.vocab_size
    assert not (tmp_path / "run" / "config.json").exists()  # smoke runs write no checkpoint
    assert sids.device.type == "cpu"


def test_short_run_checkpoint_and_resume(tiny_dataset, tmp_path):
    sids = tiny_sids(tiny_dataset)
    out = tmp_path / "run"
    model, info = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(), out)
    assert info["steps"] == info["total_steps"] and len(info["val_history"]) == 2  # after epoch 1 and 2
    assert info["best"]["overall"]["ndcg@10"] == max(h["overall"]["ndcg@10"] for h in info["val_history"])
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    logged = (out / "logs").rglob("metrics.csv")
    assert any("val/ndcg@10" in p.read_text() for p in logged)
    # per-digit train and valid losses are recorded, and the loss went down
    assert set(info["val_history"][0]["loss_per_digit"]) == {"d1", "d2", "d3", "d4", "eos"}
    assert info["train_log"][-1]["train/loss"] < info["train_log"][0]["train/loss"]
    # the self-contained checkpoint holds the best model
    m2, s2 = load_tiger(out, ds=tiny_dataset)
    for k, v in model.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    assert torch.equal(s2.tokens, sids.tokens)
    assert load_checkpoint(out)["extra"]["tiger"]["steps"] == info["steps"]
    # resume: more epochs continue from last.ckpt
    _, info2 = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(epochs=3), out)
    assert info2["resumed_from"] and info2["steps"] == info2["total_steps"] > info["steps"]
    assert info2["steps_this_run"] == info2["steps"] - info["steps"]
    # the time reported covers both runs: the first run's loop, then this one's
    assert info["wall_s_all_runs"] == info["wall_s"]
    assert info2["wall_s_all_runs"] == pytest.approx(info["wall_s"] + info2["wall_s"], rel=1e-6, abs=0.05)
    assert len(info2["val_history"]) == 3
    assert json.loads((out / "tiger_train_info.json").read_text())["steps"] == info2["steps"]


def test_validation_pool_and_schedule(tiny_dataset):
    sids = tiny_sids(tiny_dataset)
    vs, ids = validation_catalog(tiny_dataset, sids, "valid")
    fs = tiny_dataset.items["first_split"].astype(str).to_numpy()
    assert set(fs[ids.numpy()]) <= {"train", "valid"}
    assert torch.equal(vs.tokens, sids.tokens[ids])  # same 4-digit ids, trie restricted to the pool
    assert torch.equal(ids[vs.lookup(sids.tokens[ids])], ids)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = cosine_with_warmup(opt, resolve_warmup(0.1, 100), 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tiny_dataset, tmp_path):
    """Data-parallel TIGER (2 CPU processes, gloo): the same global batch split over the ranks gives the same model as
    one process, validation sees every valid row exactly once, and the lr rule is explicit."""
    sids = tiny_sids(tiny_dataset)
    base = dict(epochs=1, batch_size=16, length_buckets=2, warmup=2)
    one, info1 = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(**base), tmp_path / "one")
    two, info2 = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(**base, devices=2, strategy="ddp_spawn"),
                             tmp_path / "two")
    assert info2["world_size"] == 2 and info2["steps"] == info1["steps"]
    for k, v in one.state_dict().items():
        assert torch.allclose(v, two.state_dict()[k], atol=1e-5), k
    assert info2["best"]["n_rows"] == info1["best"]["n_rows"] == len(tiny_dataset.rows("valid"))
    assert info2["best"]["overall"] == pytest.approx(info1["best"]["overall"])
    _, info3 = train_tiger(tiny_dataset, sids, tiger_preset("tiny"),
                           cfg(**base, devices=2, strategy="ddp_spawn", lr_scaling="linear", max_steps=1),
                           tmp_path / "three")
    assert info3["lr"]["lr"] == pytest.approx(2e-3)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpu_graphed_steps_equal_eager(tiny_dataset, tmp_path):
    """Data-parallel TIGER on two GPUs (NCCL): the graphed step (forward + backward graph, all-reduce, update graph)
    trains the same model as the eager step, and validation counts every valid row once."""
    sids = tiny_sids(tiny_dataset)
    base = dict(epochs=1, batch_size=16, length_buckets=2, warmup=2, accelerator="cuda", devices=2,
                strategy="ddp_spawn")
    eager, _ = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(**base, cuda_graphs=False), tmp_path / "e")
    graphed, info = train_tiger(tiny_dataset, sids, tiger_preset("tiny"), cfg(**base), tmp_path / "g")
    assert info["world_size"] == 2 and info["cuda_graphs"] and info["graph_capture_s"] > 0
    for k, v in eager.state_dict().items():
        assert torch.allclose(v, graphed.state_dict()[k], atol=1e-4), k
    assert info["best"]["n_rows"] == len(tiny_dataset.rows("valid"))


def test_trainers_give_back_the_float32_matmul_precision():
    """Trainers switch CUDA matmuls to TF32 for speed; the caller's precision comes back after them, also after an
    error, so inference later in the same process keeps its fp32 matmuls (a GPU test session once compared compiled
    and eager decoding in TF32 after a pipeline fixture had trained)."""
    from specgr.train import retrieval, specgr_pp, tiger
    from specgr.train.common import restores_matmul_precision

    @restores_matmul_precision
    def trainer(fail: bool):
        torch.set_float32_matmul_precision("high")
        if fail:
            raise RuntimeError("boom")
        return "done"

    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert trainer(False) == "done" and torch.get_float32_matmul_precision() == "highest"
        with pytest.raises(RuntimeError, match="boom"):
            trainer(True)
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)
    for fn in (tiger._fit, specgr_pp.train_specgr_pp, retrieval.fit_retrieval):  # every trainer that sets it
        assert getattr(fn, "__wrapped__", None) is not None, fn.__name__
