"""TIGER training (paper §3.3 / docs/METHOD.md): next-SID generation, cross-entropy over the 4 SID tokens + EOS.

A plain step loop on Lightning Fabric (devices, DDP launch, seeding, CSV logging), built for speed because TIGER is
small and a step is launch-bound:

  * the whole train split is tokenised once and kept on the device, grouped into history-length buckets
    (specgr.train.buckets): each batch is padded to its bucket's longest history, not to 20 items;
  * on CUDA each bucket's step (forward, backward, clip, AdamW) is captured as a CUDA graph and replayed
    (specgr.train.step); no host sync inside the loop except the every-`log_every_n_steps` loss read-out;
  * validation (constrained beam search top-50, Recall/NDCG@{5,10,50}) runs every `val_every` epochs on a fixed
    seeded subset of the valid split; the best checkpoint is then scored once on the whole valid split.

AdamW, linear warmup + cosine decay per step (HF `get_scheduler("cosine")`), optional grad clipping, bf16 autocast on
GPU / fp32 on CPU. Resumable from <out_dir>/last.pt. Data-parallel (devices > 1, strategy "ddp"): every global batch is
split over the ranks and the loss is normalised by the global batch's token count, so the summed gradient is exactly
the one-process gradient; validation rows are sharded without padding and reduced exactly (specgr.distributed); the
lr follows an explicit rule (`lr_scaling`, default "none"). The step all-reduces the gradients itself rather than
through DDP, so data-parallel steps are CUDA graphs too (specgr.train.step).

    model, info = train_tiger(ds, sids, tiger_preset("games"), TigerTrainConfig(epochs=30), "runs/tiger")

The result is also written as a self-contained checkpoint directory at out_dir (specgr.checkpoint; component "tiger"
plus sids.npz), which drafters can add their own weights to.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from specgr import distributed as D
from specgr.checkpoint import atomic_torch_save
from specgr.data.tokenize import tokenize_rows
from specgr.metrics import rank_metrics, target_rank
from specgr.models.beam import beam_search
from specgr.models.tiger import TIGER, TigerConfig, save_tiger
from specgr.train.buckets import BucketedRows
from specgr.train.common import cosine_schedule, resolve_precision, resolve_warmup, restores_matmul_precision
from specgr.train.step import TrainStep, adamw, set_lr
from specgr.sid.semantic_ids import PAD

VAL_KS = (5, 10, 50)
MONITOR = "ndcg@10"  # overall valid NDCG@10 of constrained beam search (the official selection metric)
DIGITS = ("d1", "d2", "d3", "d4", "eos")
RESULT_FILE = ".result.pt"  # hands rank 0's result to the launching process under DDP


@dataclass
class TigerTrainConfig:
    epochs: int = 100
    max_steps: int | None = None  # a step budget instead of epochs
    batch_size: int = 256  # global batch (split over data-parallel ranks); paper: 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # < 1: fraction of the steps (paper: 10k of 200k = 0.05); >= 1: steps
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0  # 0 = off (paper)
    label_smoothing: float = 0.0  # 0 = off (paper)
    val_every: int = 2  # epochs between validations (paper: 2)
    val_max_rows: int | None = 4096  # fixed seeded subset of the valid split; None = all
    val_full_at_end: bool = True  # score the best checkpoint once on the whole valid split
    val_beam: int = 50
    val_batch_size: int = 512
    val_pool: str = "valid"  # "valid": items seen by the end of the valid period (official); "all"; "in_sample"
    length_buckets: int = 4  # history-length buckets (1 = every batch padded to the longest history)
    cuda_graphs: bool = True  # capture each bucket's step as CUDA graphs (on CUDA, data-parallel too; not on CPU)
    compile: bool = False  # torch.compile the model for the training step (one compilation, dynamic lengths)
    precision: str = "auto"  # bf16-mixed on GPU, 32-true on CPU
    accelerator: str = "auto"
    devices: int = 1  # data-parallel processes (GPUs); > 1 launches DDP through Lightning Fabric
    num_nodes: int = 1
    strategy: str = "auto"  # "auto" | "ddp" | "ddp_spawn" (CPU tests)
    lr_scaling: str = "none"  # lr with N processes: "none" | "linear" | "sqrt" (specgr.distributed.scaled_lr)
    seed: int = 42
    max_train_rows: int | None = None  # smoke runs
    progress_bar: bool = False
    log_every_n_steps: int = 100
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


def _subset_index(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of the seeded subset of n rows (all rows when max_rows is None or >= n)."""
    if max_rows and n > max_rows:
        return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    return np.arange(n)


def valid_rows_subset(ds, max_rows: int | None, seed: int):
    """The valid split, or a fixed seeded subset of it (sorted row order)."""
    v = ds.rows("valid")
    idx = _subset_index(len(v), max_rows, seed)
    return v if len(idx) == len(v) else v.subset(idx)


def valid_rows_outside(ds, max_rows: int | None, seed: int, limit: int | None = None):
    """The valid rows that `valid_rows_subset(ds, max_rows, seed)` leaves out, or a seeded subset of at most `limit`
    of them (sorted row order): rows to fit something on that is then tuned or scored on the subset. May be empty."""
    v = ds.rows("valid")
    rest = np.setdiff1d(np.arange(len(v)), _subset_index(len(v), max_rows, seed))
    return v.subset(rest[_subset_index(len(rest), limit, seed + 1)])


@torch.no_grad()
def validate(model: TIGER, rows, tok: torch.Tensor, val_sids, val_ids: torch.Tensor, n_in_sample: int,
             beam: int = 50, batch_size: int = 512, autocast: bool = False) -> dict:
    """Constrained beam search top-`beam` over the pool + the teacher-forced loss per label position, on THIS rank's
    exact shard of `rows` (specgr.distributed.shard_indices), reduced exactly over ranks.

    tok: (N, 4) SID tokens of the catalog. Returns {"overall"|"in_sample"|"unseen": {recall@k, ndcg@k},
    "n_rows", "loss_per_digit": {d1..d4, eos}}.
    """
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    idx = D.shard_indices(len(rows.target))
    part = rows.subset(idx)
    t = tokenize_rows(part, tok)
    ranks, loss_sum, cnt = [], torch.zeros(5, device=dev), torch.zeros(5, device=dev)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast and dev.type == "cuda" else contextlib.nullcontext()
    for s in range(0, len(idx), batch_size):
        ids = t["input_ids"][s:s + batch_size].to(dev).long()
        labels = t["labels"][s:s + batch_size].to(dev).long()
        mask = ids != PAD
        with ctx:
            items, _, _ = beam_search(model, ids, mask.long(), val_sids, width=beam)
            tl = model(ids, mask, labels, reduction="none")
        loss_sum += tl.float().sum(0)
        cnt += len(ids)
        items = torch.where(items >= 0, val_ids[items.clamp(min=0)], items)
        ranks.append(target_rank(items.cpu().numpy(), t["target"][s:s + batch_size].numpy()))
    rank = np.concatenate(ranks) if ranks else np.zeros(0, np.int64)
    unseen = np.asarray(part.target) >= n_in_sample
    s = D.summarize_distributed(rank_metrics(rank, VAL_KS), unseen, device=dev if dev.type == "cuda" else None)
    per_digit = (D.reduce_sum(loss_sum) / D.reduce_sum(cnt).clamp(min=1)).tolist()
    s["loss_per_digit"] = dict(zip(DIGITS, per_digit))
    model.train(was_training)
    return s


def plan_steps(cfg: TigerTrainConfig, batches_per_epoch: int) -> tuple[int, int]:
    """(total steps, validation interval): validate every val_every epochs and after the very last step, so the
    budget is rounded to a whole number of intervals."""
    total = int(cfg.max_steps or cfg.epochs * batches_per_epoch)
    interval = max(1, cfg.val_every * batches_per_epoch)
    n_val = max(1, round(total / interval))
    interval = math.ceil(total / n_val)
    return n_val * interval, interval


def train_tiger(ds, sids, model_cfg: TigerConfig, train_cfg: TigerTrainConfig | None = None,
                out_dir="runs/tiger", fast_dev_run: bool = False, resume: bool = True, item_text=None):
    """Train TIGER on ds's train split; returns (best TIGER on CPU in eval mode, info dict).

    ds: ProcessedDataset; sids: SemanticIDs of the catalog. out_dir gets last.pt (resume state), best.pt (best
    weights), logs/ (CSV), tiger_train_info.json and the specgr checkpoint (config.json, tiger.pt, sids.npz); a
    fast_dev_run (one step, one validation batch) writes none of them. resume: continue from out_dir/last.pt.
    info: wall_s (this call's loop), wall_s_all_runs (+ the loops of the runs it resumed), train_s, val_s, steps,
    epochs, rows_per_s, best (metrics of the best validation), val_history, ...
    With devices > 1 the processes are launched by Lightning Fabric; the result comes from rank 0.
    item_text (N, text_dim): every item's text embedding, needed when model_cfg.text_dim > 0 (TIGER.set_item_text).
    """
    from lightning.fabric import Fabric
    from lightning.fabric.loggers import CSVLogger

    cfg = train_cfg or TigerTrainConfig()
    out = Path(out_dir)
    strategy = cfg.strategy if cfg.devices > 1 or cfg.num_nodes > 1 else "auto"
    # precision is applied by our own autocast (graph capture needs autocast without its cast cache)
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy,
                    precision="32-true", loggers=None if fast_dev_run else CSVLogger(out, name="logs"))
    res = fabric.launch(_fit, ds, sids, model_cfg, cfg, out, fast_dev_run, resume, item_text)
    if res is None:  # several processes: rank 0 left the result in a file (a spawn queue blocks on large payloads)
        f = out / RESULT_FILE
        blob = torch.load(f, map_location="cpu", weights_only=True)
        # under torchrun (or Fabric's subprocess launcher) every rank gets here: all read the file before rank 0
        # removes it; under ddp_spawn only the launching process, which has no process group, does
        if D.is_dist():
            torch.distributed.barrier()
        if D.get_rank() == 0:
            f.unlink()
        res = blob["state"], json.loads(blob["info"])
    model = TIGER(model_cfg, sids.vocab_size)
    model.load_state_dict(res[0])
    return model.eval(), res[1]


@restores_matmul_precision
def _fit(fabric, ds, sids, model_cfg: TigerConfig, cfg: TigerTrainConfig, out: Path, fast_dev_run: bool,
         resume: bool, item_text=None):
    fabric.seed_everything(cfg.seed, workers=True, verbose=False)
    dev = fabric.device
    world = fabric.world_size
    rank = fabric.global_rank
    precision = resolve_precision(cfg.precision) if dev.type == "cuda" else "32-true"
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")
    out.mkdir(parents=True, exist_ok=True)

    # ---- data: tokenised once, bucketed by history length, on the device
    tok = sids.tokens.cpu()
    rows = ds.rows("train")
    if cfg.max_train_rows:
        rows = rows.subset(slice(0, cfg.max_train_rows))
    data = BucketedRows.build(tokenize_rows(rows, tok), rows.hist_len, cfg.length_buckets, device=dev)
    bpe = data.batches_per_epoch(cfg.batch_size)
    total, interval = plan_steps(cfg, bpe)
    if fast_dev_run:
        total, interval = 1, 1
    val_rows = valid_rows_subset(ds, 1 if fast_dev_run else cfg.val_max_rows, cfg.seed)
    val_sids, val_ids = validation_catalog(ds, sids, cfg.val_pool)
    if val_sids is sids:  # beam search moves its SemanticIDs to the device: keep the caller's where it is
        import copy

        val_sids = copy.deepcopy(sids)
    val_sids.to(dev)
    val_ids = val_ids.to(dev)

    # ---- model, optimiser, schedule
    lr = D.scaled_lr(cfg.lr, world, cfg.lr_scaling)
    warmup = D.scaled_warmup(resolve_warmup(cfg.warmup, total), world, cfg.lr_scaling)
    model = TIGER(model_cfg, sids.vocab_size)
    if model_cfg.text_dim > 0:
        model.set_item_text(tok, item_text)
    model = model.to(dev)
    graphs = cfg.cuda_graphs and dev.type == "cuda"
    opt = adamw(model.parameters(), lr, cfg.weight_decay, capturable=graphs)
    step0, history, best = 0, [], {"score": -math.inf, "step": None}
    last = out / "last.pt"
    resumed_from, loop_s_before = None, 0.0
    if resume and last.exists() and not fast_dev_run:
        st = torch.load(last, map_location=dev, weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step0, history, best = int(st["step"]), json.loads(st["history"]), json.loads(st["best"])
        resumed_from = str(last)
        # the loop time of the calls before this one, up to their last saved validation (so a run cut by a time limit
        # and resumed reports the time of all its calls, not only of the last)
        loop_s_before = float(st.get("loop_s", 0.0))
    if world > 1:  # the step all-reduces the gradients itself (specgr.train.step): start from rank 0's weights
        import torch.distributed as dist

        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, 0)
    step = TrainStep(model, opt, data, cfg.batch_size, cfg.grad_clip, cfg.label_smoothing, graphs=graphs,
                     autocast=precision == "bf16-mixed", compile=cfg.compile, rank=rank, world=world)
    autocast = precision == "bf16-mixed"

    def run_validation(s: int) -> dict:
        r = validate(model, val_rows, tok, val_sids, val_ids, sids.n_in_sample, cfg.val_beam, cfg.val_batch_size,
                     autocast)
        return {"step": s, "epoch": s / bpe, **{k: r[k] for k in ("overall", "in_sample", "unseen", "n_rows",
                                                                    "loss_per_digit")}}

    def save_last(s: int):
        if rank == 0 and not fast_dev_run:
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": s,
                               "history": json.dumps(history), "best": json.dumps(best),
                               "loop_s": loop_s_before + time.perf_counter() - t_start}, last)

    # ---- the loop
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=step0, disable=not cfg.progress_bar or rank != 0, desc="tiger", unit="step")
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    train_log, val_s = [], 0.0
    set_lr(opt, lr * cosine_schedule(step0, warmup, total, cfg.min_lr_ratio))
    sync()
    t_start = time.perf_counter()
    s = step0
    epoch = s // bpe
    plan = data.epoch_plan(epoch, cfg.batch_size, cfg.seed)
    model.train()
    while s < total:
        j = s - epoch * bpe
        if j >= bpe:
            epoch += 1
            plan = data.epoch_plan(epoch, cfg.batch_size, cfg.seed)
            continue
        bucket, idx = plan[j]
        step.run(bucket, idx)  # the global batch: under data parallelism the step takes this rank's slice
        s += 1
        set_lr(opt, lr * cosine_schedule(s, warmup, total, cfg.min_lr_ratio))
        bar.update(1)
        if s % cfg.log_every_n_steps == 0 or s == total:
            per_digit = step.pop_stats()
            rec = {"step": s, "t": time.perf_counter() - t_start, "train/loss": float(np.mean(per_digit)),
                   **{f"train/loss_{d}": v for d, v in zip(DIGITS, per_digit)},
                   "lr": lr * cosine_schedule(s, warmup, total, cfg.min_lr_ratio)}
            train_log.append(rec)
            fabric.log_dict({k: v for k, v in rec.items() if k not in ("step", "t")}, step=s)
        if s % interval == 0 or s == total:
            sync()
            tv = time.perf_counter()
            h = run_validation(s)
            sync()
            h["seconds"] = time.perf_counter() - tv
            val_s += h["seconds"]
            history.append(h)
            fabric.log_dict({**{f"val/{k}": v for k, v in h["overall"].items()},
                             **{f"val/loss_{d}": v for d, v in h["loss_per_digit"].items()}}, step=s)
            score = h["overall"][MONITOR]
            if score > best["score"]:
                best = {"score": score, "step": s}
                if rank == 0 and not fast_dev_run:
                    atomic_torch_save({"model": model.state_dict()}, out / "best.pt")
            save_last(s)
    sync()
    wall = time.perf_counter() - t_start
    bar.close()
    for lg in fabric.loggers:
        lg.finalize("success")  # flush the CSV

    # ---- the best model, scored once on the whole valid split
    fabric.barrier()  # rank 0 has written best.pt
    if best["step"] is not None and not fast_dev_run and (out / "best.pt").exists():
        model.load_state_dict(torch.load(out / "best.pt", map_location=dev, weights_only=True)["model"])
    best_h = next((h for h in history if h["step"] == best["step"]), None)
    full = None
    if cfg.val_full_at_end and not fast_dev_run and cfg.val_max_rows:
        tv = time.perf_counter()
        full = validate(model, ds.rows("valid"), tok, val_sids, val_ids, sids.n_in_sample, cfg.val_beam,
                        cfg.val_batch_size, autocast)
        full["seconds"] = time.perf_counter() - tv
    model_cpu = TIGER(model_cfg, sids.vocab_size)
    model_cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    model_cpu.eval()
    steps_run = s - step0
    train_s = wall - val_s
    info = {
        "wall_s": wall, "wall_s_all_runs": loop_s_before + wall,
        "val_s": val_s, "train_s": train_s, "graph_capture_s": step.capture_seconds,
        "steps": s, "steps_this_run": steps_run, "total_steps": total, "steps_per_epoch": bpe, "epochs": s / bpe,
        "n_train_rows": data.n_rows, "rows_per_s": steps_run * cfg.batch_size / max(train_s, 1e-9),
        "steps_per_s": steps_run / max(train_s, 1e-9), "n_params": model_cpu.n_params, "precision": precision,
        "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "world_size": world, "lr": {"lr": lr, "warmup_steps": warmup, "rule": cfg.lr_scaling},
        "cuda_graphs": graphs, "buckets": {"bounds": data.bounds, "rows": [len(x) for x in data.ids],
                                           "padded_tokens_per_epoch": data.n_tokens_padded},
        "resumed_from": resumed_from, "best": best_h, "best_full_valid": full, "val_history": history,
        "train_log": train_log, "train_config": cfg.to_dict(), "model_config": model_cfg.to_dict(),
        "vocab_size": sids.vocab_size, "dataset_fingerprint": ds.fingerprint,
    }
    if rank == 0 and not fast_dev_run:
        (out / "tiger_train_info.json").write_text(json.dumps(info, indent=2, default=str))
        save_tiger(out, model_cpu, sids, ds.fingerprint, half=cfg.save_half, train_config=cfg.to_dict(),
                   extra={k: info[k] for k in ("wall_s", "steps", "epochs", "best", "precision", "device")})
    if world == 1:
        return model_cpu.state_dict(), info
    if rank == 0:
        atomic_torch_save({"state": model_cpu.state_dict(), "info": json.dumps(info, default=str)}, out / RESULT_FILE)
    fabric.barrier()
    return None
