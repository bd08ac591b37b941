"""Training of the SpecGR_Aux text drafter (UniSRec-style, specgr/drafters/text.py).

Loss: full-softmax CE over the IN-SAMPLE items only (ids 0..n_in_sample-1, no PAD row, unlike the official code),
logits = cosine / tau with tau = 0.07. The item side is re-adapted from the frozen text table every step (dropout and
noisy gates active), as in UniSRec.
Optimisation: Adam lr 1e-3, weight decay 0, batch 2048, up to 300 epochs, validation every 2 epochs, early stop after 40
epochs without improvement of overall valid NDCG@10 (the official schedule). No LR scaling by GPU count.
Validation pool: every item known at validation time, i.e. first_split in {train, valid}
(specgr.train.retrieval.valid_pool); test-period items are left out (the official code's valid pool includes them).

    drafter, info = train_aux(ds, "sentence-transformers/sentence-t5-base", AuxConfig(), AuxTrainConfig(), "runs/aux")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from specgr.drafters.text import AuxConfig, TextDrafter, TextSeqModel, save_aux
from specgr.losses import full_softmax_loss
from specgr.train.retrieval import RetrievalLitModule, RetrievalTrainConfig, fit_retrieval, valid_pool, write_info

__all__ = ["AuxConfig", "AuxTrainConfig", "AuxLit", "train_aux"]


@dataclass
class AuxTrainConfig(RetrievalTrainConfig):
    """Official UniSRec schedule (see RetrievalTrainConfig for the fields)."""

    lr: float = 1e-3
    batch_size: int = 2048
    max_epochs: int = 300
    val_every: int = 2
    patience: int = 40


class AuxLit(RetrievalLitModule):
    def __init__(self, cfg: AuxConfig, text_emb: np.ndarray, n_in_sample: int, pool: np.ndarray,
                 train_cfg: AuxTrainConfig):
        super().__init__(pool, n_in_sample, train_cfg.lr, train_cfg.weight_decay, train_cfg.monitor)
        self.model = TextSeqModel(cfg, text_emb)

    def loss(self, batch):
        seq = self.model.encode(batch["history"], batch["hist_len"])  # (B, h), normalised
        ids = torch.arange(self.n_in_sample, device=seq.device)
        table = self.model.item_table(ids)  # (N_in, h), normalised, adaptor in train mode
        return full_softmax_loss(seq, table, batch["target"], tau=self.model.cfg.temperature)

    def val_queries(self, history, hist_len):
        return self.model.encode(history, hist_len)

    def val_table(self):
        return self.model.item_table()


def train_aux(ds, text_model_name: str | None = None, cfg: AuxConfig | None = None,
              train_cfg: AuxTrainConfig | None = None, out_dir="runs/aux",
              fast_dev_run=False) -> tuple[TextDrafter, dict]:
    """Train SpecGR_Aux on ds (ProcessedDataset) with the frozen embeddings of `text_model_name` (None = the
    dataset's default text model). Returns (TextDrafter over the whole catalog, info dict).

    Writes out_dir/checkpoints/best.ckpt and out_dir/logs/ (Lightning), the checkpoint directory out_dir/ (component
    "aux", read back by specgr.drafters.text.load_aux) and out_dir/info.json.
    """
    cfg = cfg or AuxConfig()
    train_cfg = train_cfg or AuxTrainConfig()
    text_model_name = text_model_name or ds.manifest.get("text_model")
    text_emb = ds.embeddings(text_model_name)
    lit = AuxLit(cfg, text_emb, ds.n_in_sample, valid_pool(ds), train_cfg)
    info = fit_retrieval(lit, ds, train_cfg, out_dir, fast_dev_run, run_name="aux")
    info.update({"model_config": asdict(cfg), "text_model": text_model_name, "dataset": ds.name,
                 "fingerprint": ds.fingerprint})
    save_aux(out_dir, lit.model, text_model_name, ds.fingerprint)
    write_info(out_dir, info)
    return TextDrafter(lit.model.cpu(), device="auto"), info
