"""SpecGR++ training (docs/METHOD.md §8): the TIGER encoder learns to draft for itself.

Stage 1 (from scratch, all parameters):  L  = lam_emb * InfoNCE(seq, next item; in-batch, gathered over ranks)
                                              + lam_gen * TIGER CE          (two independent shuffled loaders)
Stage 2 (from the best stage-1 model):   L' = lam_emb * CE(s . I_in^T / tau)  over a FROZEN item table
                                              + lam_gen * TIGER CE          (same batch, one encoder pass)
Validation: drafter Recall/NDCG@{5,10,50} on the valid rows (overall / in_sample / unseen), rows sharded exactly over
ranks (specgr.distributed.shard_indices) and reduced exactly (summarize_distributed). Checkpoint selection by
`select_metric` (default "val/drafter_recall@50", the paper's choice).

    model, proj, table, info = train_specgr_pp(ds, sids, tiger_preset("games"), SpecGRPPConfig(), "runs/pp")

Multi-GPU: pass devices / num_nodes / strategy="ddp" (see docs/DISTRIBUTED.md); the lr is scaled only if
cfg.lr_scaling says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Sampler

from specgr import distributed as D
from specgr.data.tokenize import tokenize_rows
from specgr.drafters.encoder import (Projection, encode_item_table, item_embeddings, save_specgr_pp,
                                     sequence_embeddings)
from specgr.losses import contrastive_loss, full_softmax_loss
from specgr.metrics import DEFAULT_KS, topk_metrics
from specgr.models.tiger import TIGER, TigerConfig
from specgr.retrieval import RetrievalIndex
from specgr.sid.semantic_ids import PAD
from specgr.train.common import (cosine_with_warmup, load_lightning_checkpoint, resolve_precision,
                                 restores_matmul_precision)
from specgr.train.retrieval import TensorRows, valid_pool, write_info


@dataclass
class SpecGRPPConfig:
    """Defaults = the paper's Games values (docs/METHOD.md §8; per device batch sizes, lr NOT scaled by GPU count)."""

    proj_dim: int = 64  # p (128 for Office/Phones)
    tau: float = 0.07
    # ---- stage 1: joint contrastive + generation, from scratch
    lambda_emb: float = 6.0  # 8 for Office/Phones
    lambda_gen: float = 1.0
    emb_batch_size: int = 1024  # per device; gathered over devices for the negatives
    gen_batch_size: int = 256  # per device; defines the epoch (the emb loader cycles)
    lr: float = 1e-3  # 3e-4 Office/Phones
    weight_decay: float = 0.05  # 0.035 Office/Phones
    epochs: int = 100  # 50 Office/Phones
    val_every: int = 2
    # ---- stage 2: learning to rank against the frozen item table
    ft_lambda_emb: float = 6.0  # 20 Office/Phones
    ft_lambda_gen: float = 1.0
    ft_batch_size: int = 256
    ft_lr: float = 1e-4  # 3e-5 Office/Phones
    ft_weight_decay: float = 0.05
    ft_epochs: int = 15
    ft_val_every: int = 1
    # ---- both stages
    warmup_steps: int = 10_000  # before lr_scaling; capped at the run's total steps
    lr_scaling: str = "none"  # "none" | "linear" (official: lr x GPUs, warmup / GPUs) | "sqrt"; see distributed.py
    grad_clip: float = 1.0
    precision: str = "auto"  # "auto": bf16-mixed on a bf16 GPU, 32-true on CPU
    seed: int = 0
    eval_batch_size: int = 1024
    item_batch_size: int = 4096  # items per encoder call when building tables
    val_pool: str = "all"  # "all" items (default) | "valid": items first seen before the test period
    select_metric: str | Callable = "val/drafter_recall@50"  # logged key, or fn(module, metrics dict) -> float
    select_mode: str = "max"
    # optional extra validation (e.g. beam-search Recall, end-to-end SpecGR): fn(module) -> {key: float}, run on every
    # rank (it must shard + reduce itself, e.g. with specgr.distributed), every `extra_val_every` validations
    extra_val_fn: Callable | None = field(default=None, repr=False)
    extra_val_every: int = 1
    num_workers: int = 0
    max_train_rows: int | None = None  # subsample (smoke runs)
    enable_progress_bar: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["select_metric"] = self.select_metric if isinstance(self.select_metric, str) else repr(self.select_metric)
        d["extra_val_fn"] = None if self.extra_val_fn is None else repr(self.extra_val_fn)
        return d


# ===================================================================== data
class ShardedBatchSampler(Sampler):
    """Shuffled batches of row ids for THIS rank: one permutation per epoch (seed + epoch, the same on every rank),
    cut into `world` equal shards (the tail that does not divide evenly is dropped, so every rank runs the same number
    of steps and all-gathers line up), then into batches. drop_last drops a short final batch (the contrastive loss
    all-gathers, which needs the same batch size on every rank)."""

    def __init__(self, n: int, batch_size: int, drop_last: bool, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.drop_last = int(n), int(batch_size), drop_last
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.per_rank = self.n // self.world

    def set_epoch(self, epoch: int):  # called by Lightning at every epoch start
        self.epoch = int(epoch)

    def __len__(self):
        return self.per_rank // self.batch_size if self.drop_last else math.ceil(self.per_rank / self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g)[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
        for i in range(len(self)):
            yield perm[i * self.batch_size:(i + 1) * self.batch_size]


def _loader(tensors, sampler, num_workers) -> DataLoader:
    # batch_size=None + a batch sampler as `sampler`: TensorRows slices whole batches at once (no per-row collate)
    return DataLoader(TensorRows(tensors), sampler=sampler, batch_size=None, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())


def _train_loader(tensors, batch_size, drop_last, seed, cfg, rank, world, name) -> DataLoader:
    n = len(tensors["target"])
    per_rank = n // world
    if per_rank == 0:
        raise ValueError(f"{n} train rows cannot be split over {world} ranks")
    if batch_size > per_rank:  # tiny data: one full batch per epoch rather than zero batches
        print(f"[specgr_pp] {name} batch {batch_size} > {per_rank} rows per rank: using {per_rank}")
        batch_size = per_rank
    return _loader(tensors, ShardedBatchSampler(n, batch_size, drop_last, seed, rank, world), cfg.num_workers)


def _eval_loader(tensors, batch_size, rank, world, num_workers) -> DataLoader:
    """This rank's exact shard of the valid rows (no padding), in the SAME number of batches on every rank (so a
    collective hidden in a forward can never wait on a rank that already finished); a batch may be empty."""
    n = len(tensors["target"])
    idx = D.shard_indices(n, rank, world)
    n_batches = max(1, math.ceil(math.ceil(n / world) / batch_size))
    chunks = [torch.as_tensor(c) for c in np.array_split(idx, n_batches)]
    return _loader(tensors, chunks, num_workers)


def _tokenized(rows, sid_tokens, max_rows=None) -> dict[str, torch.Tensor]:
    if max_rows is not None:
        rows = rows.subset(np.arange(min(len(rows), max_rows)))
    return tokenize_rows(rows, sid_tokens)  # TIGER's tokenisation: input_ids (R, 82), labels (R, 5), target (R,)


class SpecGRPPData(L.LightningDataModule):
    """Loaders of one stage. Built lazily, when the trainer knows this process's rank and the world size (under DDP the
    process group exists only once fit() starts); the trainer runs with use_distributed_sampler=False because all
    sharding is done here: shuffled equal shards for training, exact unpadded shards for validation."""

    def __init__(self, train: dict, valid: dict, cfg: SpecGRPPConfig, stage: int):
        super().__init__()
        self.train, self.valid, self.cfg, self.stage = train, valid, cfg, stage

    def _rank_world(self):
        return self.trainer.global_rank, max(1, self.trainer.world_size)

    def train_dataloader(self):
        cfg, (rank, world) = self.cfg, self._rank_world()
        if self.stage == 2:
            return _train_loader(self.train, cfg.ft_batch_size, False, cfg.seed + 2, cfg, rank, world, "fine-tune")
        # two independent shuffles; the epoch is the longer (generation) loader, the embedding loader cycles
        emb = _train_loader(self.train, cfg.emb_batch_size, True, cfg.seed, cfg, rank, world, "embedding")
        gen = _train_loader(self.train, cfg.gen_batch_size, False, cfg.seed + 1, cfg, rank, world, "generation")
        return CombinedLoader({"emb": emb, "gen": gen}, mode="max_size_cycle")

    def val_dataloader(self):
        rank, world = self._rank_world()
        return _eval_loader(self.valid, self.cfg.eval_batch_size, rank, world, self.cfg.num_workers)


# ===================================================================== module
def _mask(input_ids: torch.Tensor) -> torch.Tensor:
    return (input_ids != PAD).long()  # PAD never occurs inside a sequence (tokenize_rows does not store the mask)



class SpecGRPPModule(L.LightningModule):
    """TIGER + Projection, trained by stage 1 or stage 2 (see module docstring).

    sid_tokens (N, 4): SID tokens of every catalog item (targets of stage 1 are embedded from them).
    item_table (N, p): stage 2 only, the frozen table (a buffer: no grad, never in the optimizer, saved in the ckpt).
    """

    def __init__(self, tiger_cfg: TigerConfig, vocab_size: int, sid_tokens: torch.Tensor, n_in_sample: int,
                 cfg: SpecGRPPConfig, stage: int = 1, item_table: torch.Tensor | None = None,
                 pool: np.ndarray | None = None, item_text=None):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.cfg, self.stage, self.n_in_sample = cfg, stage, int(n_in_sample)
        self.model = TIGER(tiger_cfg, vocab_size)
        if tiger_cfg.text_dim > 0:  # item_text (N, text_dim): TigerConfig.text_dim
            self.model.set_item_text(sid_tokens, item_text)
        self.proj = Projection(tiger_cfg.d_model, cfg.proj_dim)
        self.register_buffer("sid_tokens", torch.as_tensor(sid_tokens).long(), persistent=False)
        N = self.sid_tokens.shape[0]
        self.register_buffer("pool", torch.ones(N, dtype=torch.bool) if pool is None else
                             torch.as_tensor(pool, dtype=torch.bool), persistent=False)
        if stage == 2:
            # frozen table: a buffer (no grad, not in the optimizer, saved in checkpoints). When not given it is
            # encoded once in on_fit_start, from the weights the module holds then (the best stage-1 model)
            given = item_table is not None
            tab = item_table.detach().float().clone() if given else torch.zeros(N, cfg.proj_dim)
            self.register_buffer("item_table", tab)
            self.register_buffer("table_ready", torch.tensor(given))
        self.table_encode_s = 0.0
        self.val_time_s = 0.0  # this rank's validation time (so a fit's training-only time can be reported)
        self._val: dict = {}
        self._n_val = 0
        self.best_val: dict = {}
        self._best = -math.inf if cfg.select_mode == "max" else math.inf

    # ------------------------------------------------------------------ losses
    def stage1_loss(self, emb_batch, gen_batch) -> dict[str, torch.Tensor]:
        ids = emb_batch["input_ids"].long()
        s = sequence_embeddings(self.model, self.proj, ids, _mask(ids))  # (Be, p)
        tgt = emb_batch["target"]
        i = item_embeddings(self.model, self.proj, self.sid_tokens[tgt], batch=None)  # (Be, p), from the SID alone
        l_cl = contrastive_loss(s, i, tgt, tau=self.cfg.tau, gather=True)
        gids = gen_batch["input_ids"].long()
        l_gen = self.model(gids, _mask(gids), gen_batch["labels"])
        loss = self.cfg.lambda_emb * l_cl + self.cfg.lambda_gen * l_gen
        return {"loss": loss, "l_cl": l_cl, "l_gen": l_gen}

    def stage2_loss(self, batch) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"].long()
        mask = _mask(ids)
        enc = self.model.encode(ids, mask)  # one encoder pass for both terms
        s = self.proj(enc, mask)
        l_rank = full_softmax_loss(s, self.item_table[: self.n_in_sample], batch["target"], tau=self.cfg.tau)
        l_gen = self.model.generation_loss(enc, mask, batch["labels"])
        loss = self.cfg.ft_lambda_emb * l_rank + self.cfg.ft_lambda_gen * l_gen
        return {"loss": loss, "l_rank": l_rank, "l_gen": l_gen}

    def training_step(self, batch, batch_idx):
        if self.stage == 1:
            batch = batch[0] if isinstance(batch, tuple) else batch  # CombinedLoader yields (batch, idx, dl_idx)
            out = self.stage1_loss(batch["emb"], batch["gen"])
        else:
            out = self.stage2_loss(batch)
        for k, v in out.items():
            self.log(f"train/{k}", v.detach(), on_step=True, on_epoch=False, prog_bar=(k == "loss"))
        return out["loss"]

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        world = max(1, self.trainer.world_size)
        base_lr, wd = (self.cfg.lr, self.cfg.weight_decay) if self.stage == 1 else (self.cfg.ft_lr,
                                                                                   self.cfg.ft_weight_decay)
        lr = D.scaled_lr(base_lr, world, self.cfg.lr_scaling)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(D.scaled_warmup(self.cfg.warmup_steps, world, self.cfg.lr_scaling), total)
        # fused AdamW unscales internally, which Lightning forbids together with gradient clipping under AMP
        fused = self.device.type == "cuda" and not self.cfg.grad_clip
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=wd, fused=fused)

        sched = cosine_with_warmup(opt, warmup, total)  # linear warmup, cosine to 0 (HF get_scheduler)
        self.lr_info = {"lr": lr, "base_lr": base_lr, "warmup_steps": warmup, "total_steps": total,
                        "world_size": world, "rule": self.cfg.lr_scaling}
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_fit_start(self):
        if self.stage == 2 and not bool(self.table_ready):
            self.build_item_table()

    @torch.no_grad()
    def build_item_table(self):
        """Encode every item once (eval mode) into the frozen table; rank 0's copy is broadcast so every rank holds
        the bit-identical table."""
        t0 = time.perf_counter()
        tab = encode_item_table(self.model, self.proj, self.sid_tokens, batch=self.cfg.item_batch_size)
        if D.is_dist() and D.get_world_size() > 1:
            torch.distributed.broadcast(tab, 0)
        self.item_table.copy_(tab)
        self.table_ready.fill_(True)
        self.table_encode_s = time.perf_counter() - t0

    def on_save_checkpoint(self, checkpoint):
        # python-side facts travel with the weights (ddp_spawn children do not share attributes with the parent)
        checkpoint["specgr_pp"] = {"best_val": self.best_val, "lr": getattr(self, "lr_info", None),
                                   "table_encode_s": self.table_encode_s}

    def on_load_checkpoint(self, checkpoint):
        extra = checkpoint.get("specgr_pp", {})
        self.best_val = extra.get("best_val", self.best_val)
        if extra.get("lr") is not None:
            self.lr_info = extra["lr"]
        self.table_encode_s = extra.get("table_encode_s", self.table_encode_s)

    # ------------------------------------------------------------------ validation
    def val_table(self) -> torch.Tensor:
        """(N, p): stage 1 re-encodes every item with the current weights; stage 2 uses the frozen table."""
        if self.stage == 2:
            return self.item_table
        return encode_item_table(self.model, self.proj, self.sid_tokens, batch=self.cfg.item_batch_size)

    def _synced_clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_validation_epoch_start(self):
        self._val_t0 = self._synced_clock()
        self._index = RetrievalIndex(self.val_table().float(), backend="torch", device=self.device)
        self._val = {"ids": [], "target": []}

    def validation_step(self, batch, batch_idx):
        if len(batch["target"]) == 0:
            return
        ids = batch["input_ids"].long()
        q = sequence_embeddings(self.model, self.proj, ids, _mask(ids))
        allowed = None if bool(self.pool.all()) else self.pool[None].expand(len(q), -1)
        top, _ = self._index.search(q.float(), max(DEFAULT_KS), allowed=allowed)
        self._val["ids"].append(top.cpu().numpy())
        self._val["target"].append(batch["target"].cpu().numpy())

    def on_validation_epoch_end(self):
        K = max(DEFAULT_KS)
        ids = np.concatenate(self._val["ids"]) if self._val["ids"] else np.zeros((0, K), np.int64)
        target = np.concatenate(self._val["target"]) if self._val["target"] else np.zeros(0, np.int64)
        # exact over ranks: per-row sums and counts are all-reduced (no sampler padding duplicates)
        res = D.summarize_distributed(topk_metrics(ids, target), target >= self.n_in_sample, device=self.device)
        metrics = {}
        for group in ("overall", "in_sample", "unseen"):
            for name, v in res[group].items():
                pre = "val/drafter_" if group == "overall" else f"val/drafter_{group}_"
                metrics[pre + name] = 0.0 if math.isnan(v) else v
        self._n_val += 1
        if self.cfg.extra_val_fn is not None and self._n_val % max(1, self.cfg.extra_val_every) == 0:
            metrics.update({k: float(v) for k, v in self.cfg.extra_val_fn(self).items()})
        sel = self.cfg.select_metric
        score = float(sel(self, metrics)) if callable(sel) else metrics.get(sel)
        if score is not None:
            metrics["val/select"] = score
        for k, v in metrics.items():
            # already identical on every rank; sync_dist's mean is then a no-op that keeps Lightning quiet
            self.log(k, v, prog_bar=(k == "val/select"), sync_dist=True)
        better = score is not None and (score > self._best if self.cfg.select_mode == "max" else score < self._best)
        if better:
            self._best = score
            self.best_val = {"epoch": self.current_epoch, **res, "select": score}
        self._index, self._val = None, {}
        self.val_time_s += self._synced_clock() - self._val_t0


# ===================================================================== entry point
def _trainer(cfg, out_dir, max_epochs, val_every, fast_dev_run, trainer_kwargs) -> tuple[L.Trainer, object]:
    precision = resolve_precision(cfg.precision)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=Path(out_dir) / "checkpoints", filename="best",
                                               monitor="val/select", mode=cfg.select_mode, save_top_k=1,
                                               save_last=True)
    kw = dict(accelerator="auto", devices=1, num_nodes=1, strategy="auto")
    kw.update(trainer_kwargs or {})
    trainer = L.Trainer(max_epochs=max_epochs, check_val_every_n_epoch=val_every, precision=precision,
                        gradient_clip_val=cfg.grad_clip or None, callbacks=[ckpt], default_root_dir=str(out_dir),
                        fast_dev_run=fast_dev_run, num_sanity_val_steps=0, use_distributed_sampler=False,
                        enable_progress_bar=cfg.enable_progress_bar, enable_model_summary=False,
                        logger=L.pytorch.loggers.CSVLogger(str(out_dir), name="logs"), **kw)
    return trainer, ckpt


def _fit(lit: SpecGRPPModule, trainer: L.Trainer, ckpt, data: SpecGRPPData, fast_dev_run) -> dict:
    """Fit, then reload the best checkpoint's weights into `lit` (every rank reads the same file)."""
    t0 = time.perf_counter()
    trainer.fit(lit, datamodule=data)
    dt = time.perf_counter() - t0
    best = "" if fast_dev_run else (ckpt.best_model_path or "")
    if best:
        ck = load_lightning_checkpoint(best)
        lit.load_state_dict(ck["state_dict"], strict=False)  # non-persistent buffers (sid_tokens, pool) are not in it
        lit.on_load_checkpoint(ck)
    steps = trainer.global_step
    train_only = dt - lit.val_time_s  # without the validations (for throughput; rank 0's clock)
    return {"best_ckpt": best, "best_score": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
            "epochs": trainer.current_epoch, "steps": steps, "train_time_s": dt, "val_time_s": lit.val_time_s,
            "steps_per_s": steps / dt if dt > 0 else None,
            "train_only_steps_per_s": steps / train_only if train_only > 0 else None, "best_val": lit.best_val,
            "lr": getattr(lit, "lr_info", None), "world_size": trainer.world_size}


@restores_matmul_precision
def train_specgr_pp(ds, sids, tiger_cfg: TigerConfig, cfg: SpecGRPPConfig | None = None, out_dir="runs/specgr_pp",
                    stage: str | int = "both", fast_dev_run: bool | int = False, init_ckpt: str | None = None,
                    init_model_state: dict | None = None, item_text=None, **trainer_kwargs) -> tuple[TIGER, Projection, torch.Tensor, dict]:
    """Train SpecGR++ on ds (ProcessedDataset) with semantic ids `sids` (SemanticIDs over all ds items).

    stage: "both" (1 then 2), 1, or 2 (starts from `init_ckpt`, default <out_dir>/stage1/checkpoints/best.ckpt).
    init_model_state: a TIGER state dict to start stage 1 from (a measured improvement over the paper's from-scratch
    stage 1 when GPU time is short: the pipeline's `specgr_pp_init: tiger`).
    item_text (N, text_dim): every item's text embedding, needed when tiger_cfg.text_dim > 0.
    trainer_kwargs: forwarded to lightning.Trainer (accelerator, devices, num_nodes, strategy, max_steps, ...).
    Returns (model, proj, item_table (N, p) float32 on CPU, info). The table is the frozen stage-2 table (stage 2), or
    the best stage-1 model's encoding of every item (stage 1 only). Run it on every rank under DDP (torchrun/SLURM);
    all ranks return the same objects.
    """
    cfg = cfg or SpecGRPPConfig()
    stages = {"both": (1, 2), 1: (1,), 2: (2,), "1": (1,), "2": (2,)}[stage]
    out_dir = Path(out_dir)
    tok = torch.as_tensor(sids.tokens).long().cpu()
    if tok.shape[0] != ds.n_items:
        raise ValueError(f"sids cover {tok.shape[0]} items, the dataset has {ds.n_items}")
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    pool = None if cfg.val_pool == "all" else valid_pool(ds)
    train = _tokenized(ds.rows("train"), tok, cfg.max_train_rows)
    valid = _tokenized(ds.rows("valid"), tok)
    info: dict = {"config": cfg.to_dict(), "tiger_config": tiger_cfg.to_dict(), "n_items": ds.n_items,
                  "n_in_sample": ds.n_in_sample, "n_train_rows": len(train["target"])}
    lit = None
    if 1 in stages:
        L.seed_everything(cfg.seed, workers=True)
        lit = SpecGRPPModule(tiger_cfg, sids.vocab_size, tok, ds.n_in_sample, cfg, stage=1, pool=pool,
                             item_text=item_text)
        if init_model_state is not None:  # warm start (not the paper: it trains stage 1 from scratch)
            lit.model.load_state_dict(init_model_state)
            info["init"] = "warm start from a trained TIGER"
        trainer, ckpt = _trainer(cfg, out_dir / "stage1", cfg.epochs, cfg.val_every, fast_dev_run, trainer_kwargs)
        info["stage1"] = _fit(lit, trainer, ckpt, SpecGRPPData(train, valid, cfg, 1), fast_dev_run)
        init_state = lit.state_dict()
    else:
        path = init_ckpt or out_dir / "stage1" / "checkpoints" / "best.ckpt"
        init_state = load_lightning_checkpoint(path)["state_dict"]
        info["stage1"] = {"init_ckpt": str(path)}
    if 2 not in stages:
        table = encode_item_table(lit.model, lit.proj, lit.sid_tokens, cfg.item_batch_size).cpu()
        _write_info(out_dir, info)
        return lit.model.cpu(), lit.proj.cpu(), table, info
    # ---- stage 2: the best stage-1 weights; the frozen table is encoded from them once, at fit start
    L.seed_everything(cfg.seed + 2, workers=True)
    lit2 = SpecGRPPModule(tiger_cfg, sids.vocab_size, tok, ds.n_in_sample, cfg, stage=2, pool=pool,
                          item_text=item_text)
    weights = {k: v for k, v in init_state.items() if k.startswith(("model.", "proj."))}
    missing = [k for k in lit2.state_dict() if k.startswith(("model.", "proj.")) and k not in weights]
    if missing:
        raise ValueError(f"stage-1 state lacks {missing[:3]}... (wrong checkpoint?)")
    lit2.load_state_dict(weights, strict=False)
    trainer, ckpt = _trainer(cfg, out_dir / "stage2", cfg.ft_epochs, cfg.ft_val_every, fast_dev_run, trainer_kwargs)
    info["stage2"] = _fit(lit2, trainer, ckpt, SpecGRPPData(train, valid, cfg, 2), fast_dev_run)
    info["stage2"]["table_encode_s"] = lit2.table_encode_s
    model, proj, table = lit2.model.cpu().eval(), lit2.proj.cpu().eval(), lit2.item_table.detach().cpu()
    _write_info(out_dir, info)
    if not fast_dev_run and D.get_rank() == 0:
        save_specgr_pp(out_dir, model, proj, table, sids, ds.fingerprint, train_config=cfg.to_dict(),
                       extra={"stage1": _brief(info["stage1"]), "stage2": _brief(info["stage2"])})
    return model, proj, table, info


def _brief(stage_info: dict) -> dict:
    return {k: stage_info.get(k) for k in ("best_score", "epochs", "steps", "train_time_s", "lr")}


def _write_info(out_dir, info):
    if D.get_rank() == 0:
        write_info(out_dir, info)
