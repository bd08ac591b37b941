"""TIGER training with Lightning (specgr.md §3): next-SID generation, CE over the 4 SID tokens + EOS.

AdamW (lr 1e-3, wd 0.05), linear warmup + cosine decay per step, optional grad clipping, bf16-mixed on GPU / fp32 on
CPU. Validation every `val_every` epochs on (a fixed, seeded subset of) the valid split: constrained beam search top-50
over the validation pool, Recall/NDCG@{5,10,50} with specgr.metrics (logged as val/ndcg@10, ...); ModelCheckpoint keeps
the best val/ndcg@10; CSVLogger; resumable from <out_dir>/lightning/last.ckpt.

Throughput: whole splits are tokenised once into int16 tensors; each batch is one gather + one pinned host->device
copy (no per-row Python, no collate). Validation runs every `val_every` epochs worth of steps and always after the
last step (the step budget is rounded up to a whole number of validation intervals).

    model, info = train_tiger(ds, sids, tiger_preset("games"), TigerTrainConfig(epochs=30, batch_size=1024), "runs/tiger")

The result is also written as a self-contained checkpoint directory at out_dir (specgr.checkpoint; component "tiger"
plus sids.npz), which drafters can add their own weights to.
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
from torch.utils.data import TensorDataset

from specgr.data.tokenize import PAD, tokenize_rows
from specgr.metrics import rank_metrics, summarize, target_rank
from specgr.models.beam import beam_search
from specgr.models.tiger import TIGER, TigerConfig, save_tiger
from specgr.train.common import batch_loader, cosine_with_warmup, resolve_precision, resolve_warmup

VAL_KS = (5, 10, 50)
MONITOR = "val/ndcg@10"


@dataclass
class TigerTrainConfig:
    epochs: int = 100
    max_steps: int | None = None  # a step budget instead of epochs
    batch_size: int = 256  # paper: 256; on a GPU, 1024+ with a higher lr trains much faster per wall second
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # < 1: fraction of the steps (paper: 10k of 200k = 0.05); >= 1: steps
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0  # 0 = off (paper)
    val_every: int = 2  # epochs between validations (paper: 2)
    val_max_rows: int | None = 4096  # fixed seeded subset of the valid split; None = all
    val_beam: int = 50
    val_batch_size: int = 256
    val_pool: str = "valid"  # "valid": items seen by the end of the valid period (official); "all"; "in_sample"
    precision: str = "auto"  # bf16-mixed on GPU, 32-true on CPU
    accelerator: str = "auto"
    num_workers: int = 0
    seed: int = 42
    max_train_rows: int | None = None  # smoke runs
    progress_bar: bool = False
    log_every_n_steps: int = 50
    save_half: bool = False  # fp16 weights in the checkpoint directory

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TigerTrainConfig":
        from specgr.config import from_dict  # strict: unknown keys are an error, never silently dropped

        return from_dict(cls, d)


def validation_catalog(ds, sids, pool: str = "valid"):
    """(SemanticIDs restricted to the pool, pool item ids (M,) long) for validation beam search.

    The restricted SemanticIDs keeps every item's 4-digit id (codes incl. collision digit), so the trie only holds
    pool items; its item index j maps back to catalog id pool_ids[j].
    """
    from specgr.sid.semantic_ids import SemanticIDs

    codes = sids.codes.cpu()
    N = len(codes)
    if pool == "all":
        mask = np.ones(N, bool)
    elif pool == "in_sample":
        mask = np.arange(N) < sids.n_in_sample
    elif pool == "valid":
        fs = ds.items["first_split"].astype(str).to_numpy()[:N]
        mask = ~np.isin(fs, ["test", "added"])
    else:
        raise ValueError(f"val_pool must be 'valid', 'all' or 'in_sample', got {pool!r}")
    ids = torch.from_numpy(np.flatnonzero(mask)).long()
    if len(ids) == N:
        return sids, ids
    n_in = int((ids < sids.n_in_sample).sum())
    return SemanticIDs(codes[ids], n_in, sids.C, sids.collision_size, sids.on_overflow), ids


class TigerDataModule(L.LightningDataModule):
    """Pre-tokenised train / valid tensors (int16), whole-batch loaders."""

    def __init__(self, ds, sids, cfg: TigerTrainConfig):
        super().__init__()
        self.ds, self.sids, self.cfg = ds, sids, cfg
        self.train_set = self.val_set = None

    def setup(self, stage: str | None = None):
        if self.train_set is not None:
            return
        tok = self.sids.tokens.cpu()
        rows = self.ds.rows("train")
        if self.cfg.max_train_rows:
            rows = rows.subset(slice(0, self.cfg.max_train_rows))
        t = tokenize_rows(rows, tok)
        self.train_set = TensorDataset(t["input_ids"], t["labels"])
        v = self.ds.rows("valid")
        if self.cfg.val_max_rows and len(v) > self.cfg.val_max_rows:
            idx = np.sort(np.random.default_rng(self.cfg.seed).choice(len(v), self.cfg.val_max_rows, replace=False))
            v = v.subset(idx)
        tv = tokenize_rows(v, tok)
        unseen = torch.from_numpy(self.ds.unseen_mask(v))
        self.val_set = TensorDataset(tv["input_ids"], tv["target"], unseen)

    def train_dataloader(self):
        return batch_loader(self.train_set, self.cfg.batch_size, True, self.cfg.seed, self.cfg.num_workers)

    def val_dataloader(self):
        return batch_loader(self.val_set, self.cfg.val_batch_size, False, 0, 0)


class TigerModule(L.LightningModule):
    def __init__(self, model_cfg: dict, vocab_size: int, train_cfg: dict, total_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = TIGER(TigerConfig.from_dict(model_cfg), vocab_size)
        self.tcfg = TigerTrainConfig.from_dict(train_cfg)
        self.total_steps = int(total_steps)
        self.val_history: list[dict] = []
        self.val_seconds = 0.0
        self._val_sids = self._val_ids = None

    def set_val_catalog(self, sids, item_ids: torch.Tensor):
        self._val_sids, self._val_ids = sids, item_ids

    # ---------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        ids, labels = batch
        ids = ids.long()
        loss = self.model(ids, ids != PAD, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=ids.shape[0])
        return loss

    def configure_optimizers(self):
        c = self.tcfg
        fused = self.device.type == "cuda"
        opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=fused)
        sched = cosine_with_warmup(opt, resolve_warmup(c.warmup, self.total_steps), self.total_steps, c.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---------------------------------------------------------------- validation: constrained beam top-K
    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_validation_epoch_start(self):
        self._sync()
        self._t0 = time.perf_counter()
        self._ranks, self._unseen = [], []
        if self._val_sids is not None and self._val_sids.device != self.device:
            self._val_sids.to(self.device)
            self._val_ids = self._val_ids.to(self.device)

    def validation_step(self, batch, batch_idx):
        ids, target, unseen = batch
        ids = ids.long()
        items, _, _ = beam_search(self.model, ids, (ids != PAD).long(), self._val_sids, width=self.tcfg.val_beam)
        items = torch.where(items >= 0, self._val_ids[items.clamp(min=0)], items)
        self._ranks.append(target_rank(items.cpu().numpy(), target.cpu().numpy()))
        self._unseen.append(unseen.cpu().numpy())

    def on_validation_epoch_end(self):
        if not self._ranks:
            return
        s = summarize(rank_metrics(np.concatenate(self._ranks), VAL_KS), np.concatenate(self._unseen))
        for k, v in s["overall"].items():
            self.log(f"val/{k}", v)
        for k in ("recall@50", "ndcg@10"):
            for g in ("in_sample", "unseen"):
                if not math.isnan(s[g][k]):
                    self.log(f"val_{g}/{k}", s[g][k])
        self._sync()
        dt = time.perf_counter() - self._t0
        self.val_seconds += dt
        self.val_history.append({"step": int(self.global_step), "epoch": int(self.current_epoch), "seconds": dt,
                                 **{g: s[g] for g in ("overall", "in_sample", "unseen")}, "n_rows": s["n_rows"]})

    def on_save_checkpoint(self, checkpoint):
        checkpoint["val_history"] = self.val_history
        checkpoint["val_seconds"] = self.val_seconds

    def on_load_checkpoint(self, checkpoint):
        self.val_history = list(checkpoint.get("val_history", []))
        self.val_seconds = float(checkpoint.get("val_seconds", 0.0))


def train_tiger(ds, sids, model_cfg: TigerConfig, train_cfg: TigerTrainConfig | None = None,
                out_dir="runs/tiger", fast_dev_run: bool = False, resume: bool = True):
    """Train TIGER on ds's train split; returns (best TIGER on CPU in eval mode, info dict).

    ds: ProcessedDataset; sids: SemanticIDs of the catalog. out_dir gets lightning/ (best + last Lightning ckpts),
    logs/ (CSV), tiger_train_info.json and the specgr checkpoint (config.json, tiger.pt, sids.npz; not for
    fast_dev_run). resume: continue from out_dir/lightning/last.ckpt when it exists.
    info: wall_s, val_s, steps, epochs, rows_per_s, best (metrics of the best validation), val_history, ...
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    cfg = train_cfg or TigerTrainConfig()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    dm = TigerDataModule(ds, sids, cfg)
    dm.setup()
    n_train = len(dm.train_set)
    spe = math.ceil(n_train / cfg.batch_size)
    total = int(cfg.max_steps or cfg.epochs * spe)
    # validate every val_every epochs and after the very last step: round the budget to whole intervals
    interval = max(1, cfg.val_every * spe)
    n_val = max(1, round(total / interval))
    interval = math.ceil(total / n_val)
    total = n_val * interval
    precision = resolve_precision(cfg.precision)

    module = TigerModule(model_cfg.to_dict(), sids.vocab_size, cfg.to_dict(), total)
    val_sids, val_ids = validation_catalog(ds, sids, cfg.val_pool)
    if val_sids is sids:  # validation moves its SemanticIDs to the GPU in place: keep the caller's where it is
        import copy

        val_sids = copy.deepcopy(sids)
    module.set_val_catalog(val_sids, val_ids)

    ckpt_dir = out / "lightning"
    ckpt_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best-{step}", monitor=MONITOR, mode="max", save_top_k=1,
                              save_last=True, auto_insert_metric_name=False)
    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, precision=precision, max_steps=total, max_epochs=-1,
        val_check_interval=interval, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        gradient_clip_val=cfg.grad_clip or None, callbacks=[ckpt_cb], logger=CSVLogger(out, name="logs"),
        log_every_n_steps=cfg.log_every_n_steps, enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
        use_distributed_sampler=False, fast_dev_run=fast_dev_run, default_root_dir=out)
    last = ckpt_dir / "last.ckpt"
    ckpt_path = str(last) if (resume and last.exists() and not fast_dev_run) else None

    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0

    best_path = ckpt_cb.best_model_path if not fast_dev_run else ""
    if best_path:
        # our own file: Lightning checkpoints hold optimizer/loop state, not just tensors
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    model = module.model.cpu().eval()
    hist = module.val_history
    best = max(hist, key=lambda h: h["overall"]["ndcg@10"]) if hist else None
    steps = int(trainer.global_step)
    info = {
        "wall_s": wall, "val_s": module.val_seconds, "train_s": wall - module.val_seconds, "steps": steps,
        "total_steps": total, "steps_per_epoch": spe, "epochs": steps / spe, "n_train_rows": n_train,
        "rows_per_s": steps * cfg.batch_size / max(wall - module.val_seconds, 1e-9), "n_params": model.n_params,
        "precision": precision, "device": str(trainer.strategy.root_device), "resumed_from": ckpt_path,
        "best": best, "best_ckpt": best_path, "val_history": hist, "train_config": cfg.to_dict(),
        "model_config": model_cfg.to_dict(), "vocab_size": sids.vocab_size, "dataset_fingerprint": ds.fingerprint,
    }
    if not fast_dev_run:
        (out / "tiger_train_info.json").write_text(json.dumps(info, indent=2, default=str))
        save_tiger(out, model, sids, ds.fingerprint, half=cfg.save_half, train_config=cfg.to_dict(),
                   extra={k: info[k] for k in ("wall_s", "steps", "epochs", "best", "precision", "device")})
    return model, info
