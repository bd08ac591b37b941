"""Checkpoint directories: round trip (fp32 and fp16), merging components, dataset-fingerprint mismatch."""

import json

import pytest
import torch

from specgr.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from specgr.models.tiger import TIGER, load_tiger, save_tiger, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs


def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    sids = SemanticIDs.from_codes(torch.randint(0, 4, (30, 3), generator=g), 20, 4, on_overflow="grow")
    torch.manual_seed(seed)
    return TIGER(tiger_preset("tiny"), sids.vocab_size).eval(), sids


def test_round_trip_and_merge(tmp_path, tiny_dataset):
    model, sids = make()
    d = tmp_path / "ck"
    save_tiger(d, model, sids, tiny_dataset.fingerprint, extra={"best": {"val/ndcg@10": 0.1}})
    # a drafter adds its own weights to the same directory later
    save_checkpoint(d, {"drafter_text": {"dim": 8}}, {"drafter_text": {"w": torch.ones(3, 8)}}, None,
                    tiny_dataset.fingerprint)
    meta = json.loads((d / "config.json").read_text())
    assert set(meta["weights"]) == {"tiger", "drafter_text"} and set(meta["config"]) == {"tiger", "drafter_text"}

    m2, s2 = load_tiger(d, ds=tiny_dataset)
    for k, v in model.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert torch.equal(s2.tokens, sids.tokens) and s2.n_in_sample == sids.n_in_sample
    assert m2.t5.lm_head.weight is m2.t5.shared.weight
    ck = load_checkpoint(d)
    assert torch.equal(ck["state_dicts"]["drafter_text"]["w"], torch.ones(3, 8))
    assert ck["extra"]["tiger"]["best"]["val/ndcg@10"] == 0.1


def test_half_storage(tmp_path):
    model, sids = make()
    save_tiger(tmp_path / "a", model, sids, "fp")
    save_tiger(tmp_path / "b", model, sids, "fp", half=True)
    size = lambda p: (p / "tiger.pt").stat().st_size
    assert size(tmp_path / "b") < 0.6 * size(tmp_path / "a")
    m2, _ = load_tiger(tmp_path / "b")
    sd = m2.state_dict()
    for k, v in model.state_dict().items():
        assert sd[k].dtype == v.dtype and torch.allclose(sd[k], v, atol=1e-2, rtol=1e-3), k


def test_fingerprint_mismatch(tmp_path, tiny_dataset):
    model, sids = make()
    d = tmp_path / "ck"
    save_tiger(d, model, sids, "0123456789abcdef")
    with pytest.raises(CheckpointMismatchError, match="Fix"):
        load_checkpoint(d, ds=tiny_dataset)
    with pytest.raises(CheckpointMismatchError, match="Fix"):
        load_tiger(d, ds="ffffffffffffffff")
    with pytest.raises(CheckpointMismatchError):  # adding a component for another dataset
        save_checkpoint(d, {}, {"x": {"w": torch.zeros(1)}}, None, tiny_dataset.fingerprint)
    with pytest.raises(FileNotFoundError, match="Fix"):
        load_checkpoint(tmp_path / "nothing")
