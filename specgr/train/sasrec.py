"""Training of the ID-based SASRec baseline (specgr/drafters/sasrec.py) with the shared retrieval trainer
(specgr/train/retrieval.py).

Loss: full-softmax cross-entropy over the IN-SAMPLE items only (ids 0..n_in_sample-1; no PAD row). Peers show it beats
SASRec's original BCE with one sampled negative.

    drafter, info = train_sasrec(ds, SASRecConfig(), SASRecTrainConfig(max_epochs=200), "runs/sasrec")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from specgr.drafters.sasrec import SASRec, SASRecConfig, SASRecDrafter, save_sasrec
from specgr.losses import full_softmax_loss
from specgr.train.retrieval import RetrievalLitModule, RetrievalTrainConfig, fit_retrieval, valid_pool, write_info


@dataclass
class SASRecTrainConfig(RetrievalTrainConfig):
    batch_size: int = 512
    max_epochs: int = 200
    val_every: int = 1
    patience: int = 20
    weight_decay: float = 0.0


class SASRecLit(RetrievalLitModule):
    def __init__(self, cfg: SASRecConfig, n_in_sample: int, pool: np.ndarray, train_cfg: SASRecTrainConfig):
        super().__init__(pool, n_in_sample, train_cfg.lr, train_cfg.weight_decay, train_cfg.monitor)
        self.model = SASRec(cfg, n_in_sample)

    def loss(self, batch):
        seq = self.model.encode(batch["history"], batch["hist_len"])
        return full_softmax_loss(seq, self.model.item_table(), batch["target"], tau=self.model.cfg.temperature)

    def val_queries(self, history, hist_len):
        return self.model.encode(history, hist_len)

    def val_table(self):
        # unseen items have no embedding: zero rows, masked out below so they are never retrieved
        t = self.model.item_table()
        n = len(self.pool)
        out = t.new_zeros(n, t.shape[1])
        out[: self.n_in_sample] = t
        return out

    def val_pool(self):
        pool = self.pool.clone()
        pool[self.n_in_sample:] = False  # an ID model can only score in-sample items
        return pool


def train_sasrec(ds, cfg: SASRecConfig | None = None, train_cfg: SASRecTrainConfig | None = None,
                 out_dir="runs/sasrec", fast_dev_run=False) -> tuple[SASRecDrafter, dict]:
    """Train SASRec on ds (ProcessedDataset). Returns (SASRecDrafter over the whole catalog, info dict).

    Writes out_dir/checkpoints/best.ckpt and out_dir/logs/ (Lightning), the checkpoint directory out_dir/ (component
    "sasrec", read back by specgr.drafters.sasrec.load_sasrec) and out_dir/info.json.
    """
    cfg = cfg or SASRecConfig()
    train_cfg = train_cfg or SASRecTrainConfig()
    lit = SASRecLit(cfg, ds.n_in_sample, valid_pool(ds), train_cfg)
    info = fit_retrieval(lit, ds, train_cfg, out_dir, fast_dev_run, run_name="sasrec")
    info.update({"model_config": asdict(cfg), "dataset": ds.name, "fingerprint": ds.fingerprint})
    save_sasrec(out_dir, lit.model, ds.n_items, ds.fingerprint)
    write_info(out_dir, info)
    return SASRecDrafter(lit.model.cpu(), ds.n_items, device="auto"), info
