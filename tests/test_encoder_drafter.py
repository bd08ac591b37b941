"""SpecGR++ encoder drafter and its two training stages, on CPU with the tiny fixture."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specgr.drafters.base import Drafter
from specgr.drafters.encoder import (EncoderDrafter, Projection, item_embeddings, item_input, load_specgr_pp,
                                     sequence_embeddings)
from specgr.models.tiger import TIGER, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs
from specgr.train.specgr_pp import SpecGRPPConfig, SpecGRPPModule, ShardedBatchSampler, train_specgr_pp

C = 8


def make_sids(ds, seed=0):
    codes3 = np.random.default_rng(seed).integers(0, C, size=(ds.n_items, 3))
    return SemanticIDs.from_codes(codes3, n_in_sample=ds.n_in_sample, codebook_size=C, on_overflow="grow")


@pytest.fixture(scope="module")
def sids(tiny_dataset):
    return make_sids(tiny_dataset)


@pytest.fixture(scope="module")
def tiny_model(sids):
    torch.manual_seed(0)
    return TIGER(tiger_preset("tiny"), sids.vocab_size).eval(), Projection(tiger_preset("tiny").d_model, 16)


def small_cfg(**kw):
    base = dict(proj_dim=16, emb_batch_size=32, gen_batch_size=16, ft_batch_size=16, eval_batch_size=64, epochs=1,
                ft_epochs=1, warmup_steps=2, seed=0)
    base.update(kw)
    return SpecGRPPConfig(**base)


def test_projection_pool_first_equals_per_token():
    torch.manual_seed(0)
    proj = Projection(12, 5)
    h = torch.randn(3, 7, 12)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] * 5 + [0] * 2])
    per_tok = proj.linear(h)  # the paper's formulation: project every token, then masked mean, then normalise
    ref = F.normalize((per_tok * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
    got = proj(h, mask)
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(3))


def test_item_embeddings_depend_on_the_sid_alone(tiny_model, sids):
    model, proj = tiny_model
    tok = sids.tokens[:10]
    ids, mask = item_input(tok)
    assert ids.shape == (10, 6) and (ids[:, 0] == 1).all() and (ids[:, 5] == 2).all() and mask.all()
    with torch.no_grad():
        a = item_embeddings(model, proj, tok, batch=3)  # chunking does not change anything
        b = item_embeddings(model, proj, tok, batch=None)
        c = sequence_embeddings(model, proj, ids, mask)  # an item is a one-item "sequence" of its own SID
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(10), atol=1e-5)


def test_encoder_drafter_protocol_and_new_items(tiny_dataset, sids, tiny_model):
    import copy

    model, proj = tiny_model
    s = copy.deepcopy(sids)
    dr = EncoderDrafter(model, proj, s, device="cpu")
    assert isinstance(dr, Drafter) and dr.n_items == s.n_items
    rows = tiny_dataset.rows("valid")
    ids, scores = dr.draft(rows.history[:5], rows.hist_len[:5], k=7)
    assert ids.shape == (5, 7) and (ids >= 0).all() and (scores[:, :-1] >= scores[:, 1:]).all()
    # brand-new items: embedded from their semantic ids alone, no retraining, retrievable at once
    n0 = s.n_items
    new = dr.add_items(codes3=torch.tensor([[1, 2, 3], [7, 7, 7], [0, 5, 1]]))
    assert new.tolist() == [n0, n0 + 1, n0 + 2] and dr.n_items == s.n_items == n0 + 3
    with torch.no_grad():
        ref = item_embeddings(model, proj, s.tokens[new], batch=None)
    assert torch.allclose(dr.item_embeddings()[new], ref, atol=1e-5)
    top, _ = dr.index.search(ref, k=1)
    assert top[:, 0].tolist() == new.tolist()
    # and a query restricted to the new items drafts them (histories may already contain new items)
    hist = torch.full((2, 20), -1)
    hist[:, 0] = new[0]
    allowed = torch.zeros(2, dr.n_items, dtype=torch.bool)
    allowed[:, new] = True
    got, sc = dr.draft(hist, torch.tensor([1, 1]), k=4, allowed=allowed)
    assert set(got[:, :3].flatten().tolist()) == set(new.tolist()) and (got[:, 3] == -1).all()
    # tokens of items already appended to the SIDs by someone else
    new2 = s.add_items(torch.tensor([[2, 2, 2]]))
    assert dr.add_items(s.tokens[new2]).tolist() == new2.tolist()


def test_sharded_batch_sampler_partitions_each_epoch():
    parts = [ShardedBatchSampler(23, 4, drop_last=True, seed=3, rank=r, world=2) for r in range(2)]
    for ep in (0, 1):
        for p in parts:
            p.set_epoch(ep)
        batches = [list(p) for p in parts]
        assert len(batches[0]) == len(batches[1]) == 2  # 11 rows per rank, 2 full batches of 4
        flat = torch.cat([torch.cat(b) for b in batches]).tolist()
        assert len(flat) == len(set(flat))  # disjoint over ranks
    a = torch.cat(list(parts[0])).tolist()
    parts[0].set_epoch(0)
    assert a != torch.cat(list(parts[0])).tolist()  # reshuffled per epoch


def test_stage2_table_is_frozen(tiny_dataset, sids):
    torch.manual_seed(0)
    tok = sids.tokens
    table = F.normalize(torch.randn(sids.n_items, 16), dim=-1)
    lit = SpecGRPPModule(tiger_preset("tiny"), sids.vocab_size, tok, tiny_dataset.n_in_sample, small_cfg(),
                         stage=2, item_table=table)
    assert not lit.item_table.requires_grad
    assert all(p is not lit.item_table for p in lit.parameters())
    before = lit.item_table.clone()
    w_before = lit.proj.linear.weight.detach().clone()
    from specgr.data.tokenize import tokenize_rows
    batch = {k: v[:8] for k, v in tokenize_rows(tiny_dataset.rows("train"), tok).items()}
    opt = torch.optim.AdamW(lit.parameters(), lr=1e-2)
    out = lit.stage2_loss(batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    opt.step()
    assert lit.item_table.grad is None and torch.equal(lit.item_table, before)
    assert not torch.equal(lit.proj.linear.weight, w_before)  # the query side does train
    assert "item_table" in lit.state_dict()  # saved with the checkpoint


def test_fast_dev_run_both_stages(tiny_dataset, sids, tmp_path):
    cfg = small_cfg()
    model, proj, table, info = train_specgr_pp(tiny_dataset, sids, tiger_preset("tiny"), cfg, tmp_path,
                                               stage="both", fast_dev_run=True, accelerator="cpu")
    assert info["stage1"]["steps"] == 1 and info["stage2"]["steps"] == 1
    assert table.shape == (sids.n_items, 16)
    assert torch.allclose(table.norm(dim=-1), torch.ones(sids.n_items), atol=1e-4)
    assert "recall@50" in info["stage2"]["best_val"]["overall"]
    dr = EncoderDrafter(model, proj, sids, item_table=table, device="cpu")
    ids, _ = dr.draft(tiny_dataset.rows("test").history[:3], tiny_dataset.rows("test").hist_len[:3], k=5)
    assert ids.shape == (3, 5)


def test_stage1_then_stage2_from_checkpoint(tiny_dataset, sids, tmp_path):
    cfg = small_cfg(epochs=2, val_every=1, ft_epochs=1, emb_batch_size=16, gen_batch_size=8)
    _, _, t1, info1 = train_specgr_pp(tiny_dataset, sids, tiger_preset("tiny"), cfg, tmp_path, stage=1,
                                      accelerator="cpu", limit_train_batches=1)
    ck = info1["stage1"]["best_ckpt"]
    assert ck and info1["stage1"]["best_val"] and info1["stage1"]["steps"] == 2  # selection by val/drafter_recall@50 produced a checkpoint
    model, proj, t2, info2 = train_specgr_pp(tiny_dataset, sids, tiger_preset("tiny"), cfg, tmp_path, stage=2,
                                             accelerator="cpu", limit_train_batches=1)
    # the frozen stage-2 table is the best stage-1 model's encoding of every item, untouched by fine-tuning
    assert torch.allclose(t1, t2, atol=1e-5)
    assert info2["stage2"]["steps"] == 1
    # self-contained checkpoint directory: TIGER + projection + frozen table + SIDs
    m3, p3, t3, s3 = load_specgr_pp(tmp_path, ds=tiny_dataset)
    assert torch.equal(t3, t2) and torch.equal(s3.tokens, sids.tokens)
    dr = EncoderDrafter(m3, p3, s3, item_table=t3, device="cpu")
    rows = tiny_dataset.rows("valid")
    a, _ = dr.draft(rows.history[:4], rows.hist_len[:4], k=5)
    b, _ = EncoderDrafter(model, proj, sids, item_table=t2, device="cpu").draft(rows.history[:4], rows.hist_len[:4], 5)
    assert torch.equal(a, b)
