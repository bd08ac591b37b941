"""train_specgr_pp under Lightning DDP on 2 CPU processes (gloo, ddp_spawn): both stages run with gathered negatives,
self-sharded loaders, exact metric reduction and the broadcast stage-2 table. Slow-ish: marked `slow`."""

import numpy as np
import pytest
import torch

from specgr.models.tiger import tiger_preset
from specgr.sid.semantic_ids import SemanticIDs
from specgr.train.specgr_pp import SpecGRPPConfig, train_specgr_pp


@pytest.mark.slow
def test_two_process_ddp_both_stages(tiny_dataset, tmp_path):
    codes3 = np.random.default_rng(0).integers(0, 8, size=(tiny_dataset.n_items, 3))
    sids = SemanticIDs.from_codes(codes3, n_in_sample=tiny_dataset.n_in_sample, codebook_size=8, on_overflow="grow")
    cfg = SpecGRPPConfig(proj_dim=16, emb_batch_size=16, gen_batch_size=8, ft_batch_size=8, eval_batch_size=16,
                         epochs=1, ft_epochs=1, val_every=1, warmup_steps=4, lr_scaling="linear")
    model, proj, table, info = train_specgr_pp(tiny_dataset, sids, tiger_preset("tiny"), cfg, tmp_path,
                                               stage="both", accelerator="cpu", devices=2, strategy="ddp_spawn",
                                               limit_train_batches=1)
    assert table.shape == (sids.n_items, 16)
    s1 = info["stage1"]
    assert s1["world_size"] == 2 and s1["best_ckpt"]
    # validation saw every valid row exactly once (summed over the two ranks)
    assert s1["best_val"]["n_rows"] == len(tiny_dataset.rows("valid"))
    assert torch.isfinite(table).all()
    # the explicit lr rule: "linear" on 2 processes doubles the lr and halves the warmup
    assert s1["lr"]["lr"] == pytest.approx(2e-3) and s1["lr"]["warmup_steps"] == 1  # min(4 / 2, total = 1 step)
    assert info["stage2"]["lr"]["lr"] == pytest.approx(2e-4) and info["stage2"]["table_encode_s"] > 0
