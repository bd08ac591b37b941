"""The shared trainer of the retrieval models (the SASRec baseline, specgr/train/sasrec.py, and the SpecGR_Aux text
drafter, specgr/train/aux.py): a "query vector . item table" LightningModule base, its validation, and `fit_retrieval`.
Generic loader/precision helpers come from specgr/train/common.py.

Validation: every `val_every` epochs, top-50 retrieval for each valid row over the validation pool (see `valid_pool`),
Recall/NDCG@{5,10,50} with specgr.metrics on overall / in-sample / unseen rows; ModelCheckpoint keeps the best
`monitor` value and EarlyStopping stops after `patience` epochs without improvement; the best weights are reloaded.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from specgr.metrics import summarize, topk_metrics
from specgr.retrieval import RetrievalIndex
from specgr.train.common import (batch_loader, load_lightning_checkpoint, resolve_precision,
                                 restores_matmul_precision)

VAL_K = 50


@dataclass
class RetrievalTrainConfig:
    """Optimisation and selection settings common to SASRec and the text drafter."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 2048
    max_epochs: int = 300
    val_every: int = 2  # validate every n epochs
    patience: int = 40  # epochs without improvement of `monitor` before stopping (0 = never stop early)
    monitor: str = "val/ndcg@10"  # overall NDCG@10 on the valid split, the official selection metric
    seed: int = 42
    eval_batch_size: int = 4096
    accelerator: str = "auto"
    devices: int = 1  # single device only (small models; validation is not sharded)
    precision: str = "32-true"  # "auto" = bf16-mixed on a bf16 GPU; losses compute logits in fp32 either way
    num_workers: int = 0
    grad_clip: float = 0.0
    max_train_rows: int | None = None  # subsample train rows (smoke runs)
    enable_progress_bar: bool = False


def rows_tensors(rows, max_rows: int | None = None) -> dict[str, torch.Tensor]:
    """Rows (numpy) -> dict of LongTensors history (R, H), hist_len (R,), target (R,)."""
    n = len(rows) if max_rows is None else min(len(rows), max_rows)
    return {"history": torch.from_numpy(np.ascontiguousarray(rows.history[:n])).long(),
            "hist_len": torch.from_numpy(np.ascontiguousarray(rows.hist_len[:n])).long(),
            "target": torch.from_numpy(np.ascontiguousarray(rows.target[:n])).long()}


class TensorRows(torch.utils.data.Dataset):
    """Indexable by a LongTensor of row ids, so `specgr.train.common.batch_loader` (batch_size=None) slices whole
    batches at once (one gather per batch instead of one __getitem__ + collate per row). Items are dicts."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.t = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx)
        return {k: v[idx] for k, v in self.t.items()}


def valid_pool(ds) -> np.ndarray:
    """(N,) bool: the items known at validation time = every item whose first interaction is not in the test period
    (first_split in {train, valid}). This follows the official pool (ids <= test_start_index) without its PAD row; it
    includes items that first appear in valid, so unseen valid targets are retrievable. The test pool (all items) is the
    evaluator's business."""
    fs = ds.items["first_split"].astype(str).to_numpy()
    return ~np.isin(fs, ["test", "added"])


class RetrievalLitModule(L.LightningModule):
    """Base LightningModule for "query vector . item table" retrieval models.

    Subclasses implement: loss(batch) -> scalar; val_queries(history, hist_len) -> (B, d);
    val_table() -> (N, d) vectors of every catalog item (rows outside val_pool() are masked out).
    `best_val` keeps the metrics of the best validation so far by `monitor`.
    """

    def __init__(self, pool: np.ndarray, n_in_sample: int, lr: float, weight_decay: float,
                 monitor: str = "val/ndcg@10"):
        super().__init__()
        self.register_buffer("pool", torch.as_tensor(pool, dtype=torch.bool), persistent=False)
        self.n_in_sample = int(n_in_sample)
        self.lr, self.weight_decay, self.monitor = lr, weight_decay, monitor
        self._val: dict[str, list] = {}
        self.best_val: dict = {}
        self._best = -math.inf

    def val_pool(self) -> torch.Tensor:
        """(N,) bool: items a validation query may retrieve."""
        return self.pool

    # -- to implement
    def loss(self, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def val_queries(self, history, hist_len) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def val_table(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- Lightning
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch["target"]))
        return loss

    def on_validation_epoch_start(self):
        with torch.no_grad():
            self._index = RetrievalIndex(self.val_table().float(), backend="torch", device=self.device)
        self._allowed = self.val_pool()
        self._val = {"ids": [], "target": []}

    def validation_step(self, batch, batch_idx):
        q = self.val_queries(batch["history"], batch["hist_len"]).float()
        allowed = self._allowed[None].expand(len(q), -1)
        ids, _ = self._index.search(q, VAL_K, allowed=allowed)
        self._val["ids"].append(ids.cpu().numpy())
        self._val["target"].append(batch["target"].cpu().numpy())

    def on_validation_epoch_end(self):
        if not self._val.get("ids"):
            return
        ids = np.concatenate(self._val["ids"])
        target = np.concatenate(self._val["target"])
        res = summarize(topk_metrics(ids, target), target >= self.n_in_sample)
        logged = {}
        for group in ("overall", "in_sample", "unseen"):
            for name, v in res[group].items():
                key = f"val/{name}" if group == "overall" else f"val/{group}/{name}"
                logged[key] = 0.0 if math.isnan(v) else v
                self.log(key, logged[key], prog_bar=(key == "val/ndcg@10"))
        if logged.get(self.monitor, -math.inf) > self._best:
            self._best = logged[self.monitor]
            self.best_val = {"epoch": self.current_epoch, **res}
        self._index = self._allowed = None
        self._val = {}


@restores_matmul_precision
def fit_retrieval(lit: RetrievalLitModule, ds, cfg: RetrievalTrainConfig, out_dir, fast_dev_run=False,
                  run_name: str = "model") -> dict:
    """Train `lit` on ds's train rows, validate on its valid rows; reload the best checkpoint's weights into `lit`.

    Returns info: best_score, best_ckpt, epochs, steps, train_time_s, steps_per_s, rows_per_s, best_val (the
    overall/in-sample/unseen valid metrics of the best epoch).
    """
    if str(cfg.devices) != "1":
        # these models are small (~3M parameters): one GPU is enough, and the validation above is not sharded
        raise NotImplementedError("retrieval-model training runs on one device; set devices=1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
    train = rows_tensors(ds.rows("train"), cfg.max_train_rows)
    valid = rows_tensors(ds.rows("valid"))
    train_dl = batch_loader(TensorRows(train), cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers)
    valid_dl = batch_loader(TensorRows(valid), cfg.eval_batch_size, shuffle=False, num_workers=cfg.num_workers)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best",
                                               monitor=cfg.monitor, mode="max", save_top_k=1)
    callbacks = [ckpt]
    if cfg.patience > 0:
        # EarlyStopping counts validation checks, the config counts epochs
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor=cfg.monitor, mode="max",
                                                           patience=max(1, math.ceil(cfg.patience / cfg.val_every))))
    trainer = L.Trainer(max_epochs=cfg.max_epochs, check_val_every_n_epoch=cfg.val_every,
                        accelerator=cfg.accelerator, devices=cfg.devices,
                        precision=resolve_precision(cfg.precision),
                        callbacks=callbacks, default_root_dir=str(out_dir), fast_dev_run=fast_dev_run,
                        num_sanity_val_steps=0, enable_progress_bar=cfg.enable_progress_bar,
                        enable_model_summary=False, gradient_clip_val=cfg.grad_clip or None, log_every_n_steps=1,
                        logger=L.pytorch.loggers.CSVLogger(str(out_dir), name="logs"), deterministic=False)
    t0 = time.perf_counter()
    trainer.fit(lit, train_dl, valid_dl)
    dt = time.perf_counter() - t0
    best = ckpt.best_model_path if not fast_dev_run else ""
    if best:
        lit.load_state_dict(load_lightning_checkpoint(best)["state_dict"])  # non-persistent buffers (text table, pool) are neither saved nor expected
    steps = trainer.global_step
    info = {"run": run_name, "best_score": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
            "monitor": cfg.monitor, "best_ckpt": best, "epochs": trainer.current_epoch, "steps": steps,
            "train_time_s": dt, "steps_per_s": steps / dt if dt > 0 else None,
            "rows_per_s": steps * cfg.batch_size / dt if dt > 0 else None,
            "device": str(lit.device), "best_val": lit.best_val, "train_config": asdict(cfg),
            "n_params": sum(p.numel() for p in lit.parameters() if p.requires_grad)}
    return info


def write_info(out_dir, info: dict):
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "info.json").write_text(json.dumps(info, indent=2, default=str))
