"""results/ddp_scaling*.json from the multi-GPU run (scripts/gpu/41_ddp_scaling.sh): training throughput of TIGER and
both SpecGR++ stages on 1, 2 and 4 GPUs (same preset, same global batch, same seed), speedup and efficiency against
one GPU, TIGER's test metrics per run (a second 1-GPU seed gives the run-to-run noise), and sharded SpecGR++ inference.
GPU counts without a run are left out, not invented.

    python experiments/ddp_scaling.py --root /path/to/unpacked --json results/ddp_scaling_4gpu.json

--root holds what the script packs: devresults/ddp/ and devruns/<run>/<dataset>/{tiger,specgr_pp}/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# name -> (GPUs, seed), as the GPU script names them
RUNS = {"g1s42": (1, 42), "g1s43": (1, 43), "g2s42": (2, 42), "g4s42": (4, 42)}
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _tiger(run_dir: Path, res: Path, name: str) -> dict | None:
    info = _read(run_dir / "tiger" / "tiger_train_info.json")
    if info is None:
        return None
    out = {"rows_per_s": info["rows_per_s"], "train_s": info["train_s"], "val_s": info["val_s"],
           "wall_s": info["wall_s"], "steps": info["steps"], "global_batch": info["train_config"]["batch_size"],
           "cuda_graphs": info["cuda_graphs"], "world_size": info["world_size"], "gpu": info["gpu"],
           "lr": info["lr"], "best_valid_subset": info["best"]["overall"] if info["best"] else None,
           "best_valid_full": (info["best_full_valid"] or {}).get("overall")}
    for w in (50, 100):
        r = _read(res / f"{name}_tiger_test_beam{w}.json")
        if r is not None:
            out[f"test_beam{w}"] = {g: {m: r[g][m] for m in METRICS} for g in ("overall", "in_sample")}
    return out


def _specgr_pp(run_dir: Path) -> dict | None:
    st = _read(run_dir / "specgr_pp" / "stage.json")
    if st is None:
        return None
    info, out = st["info"], {}
    for stage in ("stage1", "stage2"):
        s = info[stage]
        train_only = s["steps"] / s["train_only_steps_per_s"]
        out[stage] = {"steps": s["steps"], "epochs": s["epochs"], "train_time_s": s["train_time_s"],
                      "val_time_s": s["val_time_s"], "train_only_s": train_only,
                      "rows_per_s": info["n_train_rows"] * s["epochs"] / train_only, "world_size": s["world_size"],
                      "best_valid_drafter": (s.get("best_val") or {}).get("overall")}
    out["batch_sizes_per_gpu"] = {k: info["config"][k] for k in ("emb_batch_size", "gen_batch_size", "ft_batch_size")
                                  if k in info["config"]}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="folder the GPU script's files were unpacked into")
    p.add_argument("--dataset", default="amazon2018-game")
    p.add_argument("--json", required=True, help="output file")
    p.add_argument("--not-run", default=None, help="what the run left out, and why (kept in the JSON)")
    p.add_argument("--note", default=None, help="how the runs were placed on the machine (kept in the JSON)")
    a = p.parse_args(argv)
    root = Path(a.root)
    res = root / "devresults" / "ddp"
    runs = {}
    for name, (gpus, seed) in RUNS.items():
        d = root / "devruns" / name / a.dataset
        runs[name] = {"gpus": gpus, "seed": seed, "tiger": _tiger(d, res, name), "specgr_pp": _specgr_pp(d)}

    def speedup(get) -> dict | None:
        """{"1": rate, "2": ..., "speedup": {"2": x, ...}, "efficiency": {"2": x / 2, ...}} over the seed-42 runs."""
        rates = {str(g): get(runs[name]) for name, (g, seed) in RUNS.items() if seed == 42}
        rates = {g: v for g, v in rates.items() if v is not None}
        if "1" not in rates or len(rates) < 2:
            return None
        more = [g for g in rates if g != "1"]
        return {**rates, "speedup": {g: rates[g] / rates["1"] for g in more},
                "efficiency": {g: rates[g] / rates["1"] / int(g) for g in more}}

    def pick(*keys):
        def get(r):
            for k in keys:
                r = None if r is None else r.get(k)
            return r
        return get

    scaling = {"tiger": speedup(pick("tiger", "rows_per_s")),
               "specgr_pp_stage1": speedup(pick("specgr_pp", "stage1", "rows_per_s")),
               "specgr_pp_stage2": speedup(pick("specgr_pp", "stage2", "rows_per_s"))}
    infer = {}
    for n in (1, 2, 4):
        r = _read(res / f"infer_specgr++_g{n}.json")
        if r is not None:
            infer[str(n)] = {"recs_per_s": r["recs_per_s"], "n_rows": r["n_rows"], "device": r["device"],
                             "world_size": r.get("world_size", 1), "rank_seconds": r.get("rank_seconds"),
                             "overall": {m: r["overall"][m] for m in METRICS}}
    more = [g for g in infer if g != "1"]
    if "1" in infer and more:
        infer["speedup"] = {g: infer[g]["recs_per_s"] / infer["1"]["recs_per_s"] for g in more}
        infer["same_metrics"] = all(infer[g]["overall"] == infer["1"]["overall"] for g in more)
    gpus = sorted({r["tiger"]["gpu"] for r in runs.values() if r["tiger"]})
    out = {"dataset": a.dataset, "preset": a.dataset, "script": "scripts/gpu/41_ddp_scaling.sh", "gpu_models": gpus,
           "nccl_env": {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"},
           "runs": runs, "scaling": scaling, "inference_specgr++": infer, "not_run": a.not_run,
           "note": a.note}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
