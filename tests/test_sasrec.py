"""SASRec baseline: shared encoder, fast_dev_run training, drafts only in-sample items."""

import torch

from specgr.drafters.base import Drafter
from specgr.drafters.sasrec import SASRec, SASRecConfig, load_sasrec
from specgr.models.sequence import EncoderConfig, SequenceEncoder
from specgr.train.sasrec import SASRecTrainConfig, train_sasrec

SMALL = SASRecConfig(hidden=16, inner=32, dropout=0.1, attn_dropout=0.1)


def test_encoder_is_causal_and_reads_last_position():
    enc = SequenceEncoder(EncoderConfig(hidden=8, inner=16, dropout=0.0, attn_dropout=0.0, max_len=6)).eval()
    x = torch.randn(2, 6, 8)
    lengths = torch.tensor([3, 6])
    out = enc(x, lengths)
    x2 = x.clone()
    x2[0, 3:] = torch.randn(3, 8)  # padding positions of row 0 must not matter
    assert torch.allclose(enc(x2, lengths)[0], out[0], atol=1e-6)
    assert torch.allclose(enc(x, lengths, all_positions=True)[1, 5], out[1])
    # longer histories keep their last max_len items
    xl = torch.cat([torch.randn(2, 4, 8), x], 1)
    assert torch.allclose(enc(xl, lengths + 4)[1], out[1], atol=1e-6)


def test_unknown_ids_map_to_unk():
    m = SASRec(SMALL, n_in_sample=10)
    rows = m._rows(torch.tensor([[0, 9, 10, 55, -1]]))
    assert rows.tolist() == [[0, 9, 10, 10, 11]]


def test_fast_dev_run(tiny_dataset, tmp_path):
    ds = tiny_dataset
    drafter, info = train_sasrec(ds, SMALL, SASRecTrainConfig(batch_size=64, eval_batch_size=64), tmp_path,
                                 fast_dev_run=True)
    assert isinstance(drafter, Drafter) and drafter.n_items == ds.n_items
    rows = ds.rows("test")
    ids, sc = drafter.draft(rows.history[:5], rows.hist_len[:5], ds.n_items)
    got = ids[ids >= 0]
    assert (got < ds.n_in_sample).all()  # never an unseen item
    assert ((ids >= 0).sum(1) == ds.n_in_sample).all()  # the rest of the list is the -1 / -inf tail
    assert torch.isinf(sc[:, ds.n_in_sample:]).all()
    allowed = torch.zeros(5, ds.n_items, dtype=torch.bool)
    allowed[:, :3] = True
    ids, _ = drafter.draft(rows.history[:5], rows.hist_len[:5], 4, allowed=allowed)
    assert set(ids[:, :3].flatten().tolist()) <= {0, 1, 2} and (ids[:, 3] == -1).all()
    d2 = load_sasrec(tmp_path, ds=ds, device="cpu")
    assert torch.equal(d2.draft(rows.history[:5], rows.hist_len[:5], 5)[0],
                       drafter.draft(rows.history[:5], rows.hist_len[:5], 5)[0])
