"""TIGER training throughput: the previous trainer (Lightning Trainer, padded batches from host memory) vs the current
one (specgr.train.tiger: GPU-resident length buckets, CUDA-graph steps), same GPU, same run, same data and model.

    python benchmarks/bench_train_tiger.py --data-root data/processed --dataset amazon2018-game \
        --sids checkpoints/amazon2018-game --legacy-src .carry/legacy --batch-sizes 256 2048 \
        --json results/bench_train_tiger.json --profile-dir /tmp/prof

--legacy-src is a folder holding the previous revision's `specgr/` package (for example
`git archive fc037b1 specgr | tar -x -C .carry/legacy`); without it only the current trainer is measured. Every
configuration runs in its own process (fresh CUDA context). Rates are steady-state: wall time between two step
counts after warm-up (graph capture, first validation-free steps), with CUDA synchronisation at both ends.

Variants of the current trainer, one change at a time: `current` (buckets + graphs), `compiled` (+ torch.compile),
`no_graphs` (buckets, eager),
`no_buckets` (graphs, one bucket padded to the longest history). `lightning_noop` is Lightning's own per-step loop
cost: a Trainer running a no-op training step on a 1-parameter model. --profile-dir writes torch.profiler tables of
the previous trainer's step and of the current eager step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "current": {},
    "compiled": {"compile": True},
    "no_graphs": {"cuda_graphs": False},
    "no_buckets": {"length_buckets": 1},
}


def _load(args):
    from specgr.data.processed import ProcessedDataset
    from specgr.sid.semantic_ids import SemanticIDs

    ds = ProcessedDataset.load(Path(args["data_root"]) / args["dataset"])
    sids = SemanticIDs.load(Path(args["sids"]) / "sids.npz")
    return ds, sids


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def worker_legacy(args) -> dict:
    """The previous trainer, timed by a callback between steps `warm` and `steps` (two synchronised clock reads)."""
    import lightning as L

    from specgr.models.tiger import tiger_preset
    from specgr.train.tiger import TigerTrainConfig, train_tiger

    marks, prof = {}, None
    if args.get("profile"):
        import torch.profiler as tp

        prof = tp.profile(activities=[tp.ProfilerActivity.CPU, tp.ProfilerActivity.CUDA],
                          schedule=tp.schedule(wait=args["warm"], warmup=5, active=args["profile_steps"], repeat=1))

    class Clock(L.Callback):
        def on_train_batch_end(self, trainer, *a):
            s = trainer.global_step
            if s in (args["warm"], args["steps"]):
                _sync()
                marks[s] = time.perf_counter()
            if prof is not None:
                prof.step()

    orig = L.Trainer.__init__

    def init(self, *a, callbacks=None, **kw):  # the previous train_tiger builds its own Trainer: add the clock
        orig(self, *a, callbacks=list(callbacks or []) + [Clock()], **kw)

    L.Trainer.__init__ = init
    ds, sids = _load(args)
    cfg = TigerTrainConfig(max_steps=args["steps"], batch_size=args["batch_size"], lr=1e-3, val_max_rows=256,
                           log_every_n_steps=50)
    if prof is not None:
        prof.start()
    train_tiger(ds, sids, tiger_preset(args["preset"]), cfg, args["out"])
    if prof is not None:
        prof.stop()
        _write_profile(prof, args, "previous")
    n = args["steps"] - args["warm"]
    sec = marks[args["steps"]] - marks[args["warm"]]
    return {"steps_per_s": n / sec, "rows_per_s": n * args["batch_size"] / sec, "ms_per_step": 1e3 * sec / n}


def worker_current(args) -> dict:
    """The current trainer; steady-state rate from its own synchronised log marks (no validation in between)."""
    from specgr.models.tiger import tiger_preset
    from specgr.train import step as step_mod
    from specgr.train.tiger import TigerTrainConfig, train_tiger

    prof = None
    if args.get("profile"):
        import torch.profiler as tp

        prof = tp.profile(activities=[tp.ProfilerActivity.CPU, tp.ProfilerActivity.CUDA],
                          schedule=tp.schedule(wait=args["warm"], warmup=5, active=args["profile_steps"], repeat=1))
        run = step_mod.TrainStep.run

        def profiled(self, *a, **kw):
            run(self, *a, **kw)
            prof.step()

        step_mod.TrainStep.run = profiled
        prof.start()
    ds, sids = _load(args)
    cfg = TigerTrainConfig(max_steps=args["steps"], batch_size=args["batch_size"], lr=1e-3, val_max_rows=256,
                           log_every_n_steps=args["warm"], val_full_at_end=False, **args["overrides"])
    _, info = train_tiger(ds, sids, tiger_preset(args["preset"]), cfg, args["out"])
    if prof is not None:
        prof.stop()
        _write_profile(prof, args, "current_" + args["variant"])
    log = {r["step"]: r["t"] for r in info["train_log"]}
    a, b = args["warm"], args["steps"] - args["steps"] % args["warm"]
    sec = log[b] - log[a]
    n = b - a
    return {"steps_per_s": n / sec, "rows_per_s": n * args["batch_size"] / sec, "ms_per_step": 1e3 * sec / n,
            "graph_capture_s": info["graph_capture_s"], "buckets": info["buckets"], "n_params": info["n_params"],
            "fixed_overhead_s": log[a] - a * sec / n}  # compile + capture: time to step `warm` beyond its steady cost


def worker_lightning_noop(args) -> dict:
    """Lightning Trainer's own cost per step: a no-op step on a 1-parameter model, batches of one scalar."""
    import lightning as L
    import torch

    marks = {}

    class Noop(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, i):
            return (self.w * batch.float()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

        def on_train_batch_end(self, *a):
            if self.global_step in (args["warm"], args["steps"]):
                _sync()
                marks[self.global_step] = time.perf_counter()

    dl = torch.utils.data.DataLoader(torch.zeros(args["steps"] + 10), batch_size=1)
    trainer = L.Trainer(max_steps=args["steps"], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="auto", devices=1)
    trainer.fit(Noop(), dl)
    n = args["steps"] - args["warm"]
    return {"ms_per_step": 1e3 * (marks[args["steps"]] - marks[args["warm"]]) / n}


def _write_profile(prof, args, name):
    d = Path(args["profile_dir"])
    d.mkdir(parents=True, exist_ok=True)
    from torch.autograd import DeviceType

    ka = prof.key_averages()
    n = args["profile_steps"]
    cpu = sum(e.self_cpu_time_total for e in ka) / n / 1e3
    # kernels only: CPU-side ops and ranges also carry the device time of what they launched (double counting)
    dev = sum(e.self_device_time_total for e in ka if e.device_type == DeviceType.CUDA) / n / 1e3
    text = [f"# {name}, batch {args['batch_size']}: per step {cpu:.2f} ms of host (CPU) op time, {dev:.2f} ms of "
            f"GPU kernel time ({n} profiled steps)\n",
            ka.table(sort_by="self_cpu_time_total", row_limit=25),
            ka.table(sort_by="self_device_time_total", row_limit=15)]
    (d / f"profile_{name}_b{args['batch_size']}.txt").write_text("\n".join(text))
    summ = d / "profile_summary.json"
    s = json.loads(summ.read_text()) if summ.exists() else {}
    s[f"{name}_b{args['batch_size']}"] = {"host_op_ms_per_step": cpu, "gpu_kernel_ms_per_step": dev,
                                          "profiled_steps": n}
    summ.write_text(json.dumps(s, indent=2))


def run_worker(kind: str, wargs: dict, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(wargs)], env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t
    return out


def main(argv=None):
    from specgr.evaluate import write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--dataset", default="amazon2018-game")
    ap.add_argument("--sids", default="checkpoints/amazon2018-game", help="a checkpoint folder holding sids.npz")
    ap.add_argument("--preset", default="games", help="TIGER model preset")
    ap.add_argument("--legacy-src", default=None, help="folder holding the previous revision's specgr/ package")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--steps", type=int, default=600, help="steps per run (the rate is measured after --warm)")
    ap.add_argument("--legacy-steps", type=int, default=250, help="steps per run of the slower previous trainer")
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--profile-dir", default=None, help="write torch.profiler tables here")
    ap.add_argument("--profile-steps", type=int, default=20)
    ap.add_argument("--runs-dir", default="/tmp/bench_train_tiger")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.worker:
        kind, wargs = a.worker[0], json.loads(a.worker[1])
        res = {"legacy": worker_legacy, "current": worker_current, "lightning_noop": worker_lightning_noop}[kind](wargs)
        print(json.dumps(res))
        return 0

    import torch

    base = {"data_root": a.data_root, "dataset": a.dataset, "sids": a.sids, "preset": a.preset,
            "profile_dir": a.profile_dir, "profile_steps": a.profile_steps}
    report = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "dataset": a.dataset, "preset": a.preset, "warm_steps": a.warm,
              "command": "python benchmarks/bench_train_tiger.py " + " ".join(sys.argv[1:]), "runs": {}}
    report["runs"]["lightning_noop"] = run_worker("lightning_noop", {"warm": a.warm, "steps": a.warm + 1000}, None)
    for bs in a.batch_sizes:
        r = report["runs"].setdefault(f"batch_{bs}", {})
        if a.legacy_src:
            w = {**base, "batch_size": bs, "steps": a.legacy_steps, "warm": a.warm // 2,
                 "out": f"{a.runs_dir}/legacy_{bs}"}
            r["previous"] = run_worker("legacy", w, str(Path(a.legacy_src).resolve()))
        for v in a.variants:
            w = {**base, "batch_size": bs, "steps": a.steps, "warm": a.warm, "variant": v,
                 "overrides": VARIANTS[v], "out": f"{a.runs_dir}/{v}_{bs}"}
            r[v] = run_worker("current", w, None)
        if a.profile_dir:  # separate, shorter runs: the profiler slows the steps it records
            n = 20 + 5 + a.profile_steps + 5
            if a.legacy_src:
                w = {**base, "batch_size": bs, "steps": n, "warm": 20, "out": f"{a.runs_dir}/legacy_prof_{bs}",
                     "profile": True}
                run_worker("legacy", w, str(Path(a.legacy_src).resolve()))
            w = {**base, "batch_size": bs, "steps": n, "warm": 20, "variant": "no_graphs", "profile": True,
                 "overrides": VARIANTS["no_graphs"], "out": f"{a.runs_dir}/prof_{bs}"}
            run_worker("current", w, None)
        prev = r.get("previous", {}).get("rows_per_s")
        for v in a.variants:
            if prev and "rows_per_s" in r[v]:
                r[v]["speedup_vs_previous"] = r[v]["rows_per_s"] / prev
        print(f"batch {bs}: " + ", ".join(f"{k} {x.get('rows_per_s', float('nan')):,.0f} rows/s"
                                          for k, x in r.items()), flush=True)
    print(json.dumps(report, indent=2))
    if a.json:
        write_json(report, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
