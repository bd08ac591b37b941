"""TIGER with item text input (TigerConfig.text_dim > 0): the text term sits at each history item's 4 token positions,
travels in checkpoints and bundles, reaches items added later, and training runs with it."""

import numpy as np
import pytest
import torch

from conftest import build_untrained_bundle
from specgr.bundle import Bundle
from specgr.data.tokenize import history_tokens
from specgr.models.tiger import TIGER, load_tiger, save_tiger, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs


def text_tiger(N=12, d=8, seed=0):
    """(model, sids, emb): a tiny TIGER reading d-dim texts of N items with random 3-digit codes."""
    g = torch.Generator().manual_seed(seed)
    sids = SemanticIDs.from_codes(torch.randint(0, 4, (N, 3), generator=g), N - 2, 4, on_overflow="grow")
    emb = torch.nn.functional.normalize(torch.randn(N, d, generator=g), dim=-1)
    cfg = tiger_preset("tiny")
    cfg.text_dim = d
    torch.manual_seed(seed)
    model = TIGER(cfg, sids.vocab_size).eval()
    return model.set_item_text(sids.tokens, emb), sids, emb


def test_text_term_sits_on_each_items_tokens_and_nowhere_else():
    model, sids, emb = text_tiger()
    history = torch.tensor([[3, 7, 1], [5, -1, -1]])
    ids, _ = history_tokens(history, torch.tensor([3, 1]), sids.tokens)
    got = model._item_text(ids)  # (2, 2 + 4*3, d_model)
    proj = model.text_proj(emb.half().float())  # the expected term of each item (the table is kept in fp16)
    for b, h in enumerate(history.tolist()):
        want = torch.zeros_like(got[b])
        for j, item in enumerate(i for i in h if i >= 0):
            want[1 + 4 * j:5 + 4 * j] = proj[item]
        torch.testing.assert_close(got[b], want)  # 0 at BOS, EOS, PAD


def test_items_missing_from_the_table_get_no_text():
    model, sids, emb = text_tiger()
    model.set_item_text(sids.tokens[:-1], emb[:-1])  # the last item was never given a text
    ids, _ = history_tokens(torch.tensor([[11, 0]]), torch.tensor([2]), sids.tokens)
    got = model._item_text(ids)[0]
    assert torch.count_nonzero(got[1:5]) == 0 and torch.count_nonzero(got[5:9]) > 0


def test_text_changes_the_encoder_output():
    model, sids, emb = text_tiger()
    ids, mask = history_tokens(torch.tensor([[3, 7]]), torch.tensor([2]), sids.tokens)
    with torch.no_grad():
        a = model.encode(ids, mask)
        model.set_item_text(sids.tokens, -emb)
        b = model.encode(ids, mask)
    assert not torch.allclose(a, b)


def test_bad_inputs_name_the_fix():
    model, sids, emb = text_tiger()
    with pytest.raises(ValueError, match="text_dim"):
        model.set_item_text(sids.tokens, emb[:, :4])  # wrong width
    with pytest.raises(ValueError, match="one row per"):
        model.set_item_text(sids.tokens[:3], emb)
    with pytest.raises(ValueError, match="item_text"):
        model.set_item_text(sids.tokens, None)
    fresh = TIGER(model.cfg, sids.vocab_size)
    ids, mask = history_tokens(torch.tensor([[3]]), torch.tensor([1]), sids.tokens)
    with pytest.raises(ValueError, match="set_item_text"):
        fresh.encode(ids, mask)
    with pytest.raises(ValueError, match="no text input"):
        TIGER(tiger_preset("tiny"), sids.vocab_size).set_item_text(sids.tokens, emb)


@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip_keeps_the_text_table(tmp_path, half):
    model, sids, emb = text_tiger()
    save_tiger(tmp_path / "ck", model, sids, half=half)
    loaded, _ = load_tiger(tmp_path / "ck")
    assert torch.equal(loaded.text_keys, model.text_keys)
    ids, mask = history_tokens(torch.tensor([[3, 7, 1]]), torch.tensor([3]), sids.tokens)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(ids, mask), model.encode(ids, mask), atol=0.05 if half else 0,
                                   rtol=0.05 if half else 0)


def test_bundle_items_added_later_get_their_text(tiny_dataset, tmp_path):
    path = build_untrained_bundle(tiny_dataset, tmp_path / "bundle", text_dim=tiny_dataset.embeddings().shape[1])
    b = Bundle.load(path, data_root=tiny_dataset.path.parent)
    n0 = len(b.tiger.text_keys)
    assert n0 == b.ds.n_items
    new = np.random.default_rng(0).normal(size=(1, b.text_embeddings().shape[1])).astype(np.float32)
    (i,) = b.add_items_from_embeddings(["a brand-new item"], new / np.linalg.norm(new))
    for m in (b.tiger, b.pp_model):  # loaded before and after the item came
        assert len(m.text_keys) == n0 + 1
        ids, _ = history_tokens(torch.tensor([[i]]), torch.tensor([1]), b.sids.tokens)
        want = m.text_proj(torch.as_tensor(new / np.linalg.norm(new)).half().float())[0]
        torch.testing.assert_close(m._item_text(ids)[0, 1], want)


def test_training_with_text_input(tiny_dataset, tmp_path):
    from specgr.train.tiger import TigerTrainConfig, train_tiger

    sids = SemanticIDs.from_codes(torch.randint(0, 6, (tiny_dataset.n_items, 3),
                                                generator=torch.Generator().manual_seed(0)),
                                  tiny_dataset.n_in_sample, 6, on_overflow="grow")
    emb = tiny_dataset.embeddings()
    cfg = tiger_preset("tiny")
    cfg.text_dim = emb.shape[1]
    tc = TigerTrainConfig(epochs=1, batch_size=32, val_every=1, val_beam=20, val_batch_size=64, precision="32-true",
                          accelerator="cpu", warmup=0.2, val_max_rows=None)
    with pytest.raises(ValueError, match="item_text"):
        train_tiger(tiny_dataset, sids, cfg, tc, tmp_path / "none", fast_dev_run=True)
    model, info = train_tiger(tiny_dataset, sids, cfg, tc, tmp_path / "run", item_text=emb)
    assert info["steps"] == info["total_steps"] and len(model.text_keys) == tiny_dataset.n_items
    loaded, _ = load_tiger(tmp_path / "run", ds=tiny_dataset)
    assert torch.equal(loaded.text_emb, model.text_emb)
