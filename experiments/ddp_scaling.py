"""results/ddp_scaling.json from the multi-GPU run (scripts/gpu/41_ddp_scaling.sh): training throughput of TIGER and
both SpecGR++ stages on 1 and 2 GPUs (same preset, same global batch, same seed), scaling efficiency against one GPU,
TIGER's test metrics per run (a second 1-GPU seed gives the run-to-run noise), and sharded SpecGR++ inference.

    python experiments/ddp_scaling.py --root /path/to/unpacked --json results/ddp_scaling.json \
        --not-run "4 GPUs: no 4-GPU machine was lent"

--root holds what the script packs: devresults/ddp/ and devruns/<run>/<dataset>/{tiger,specgr_pp}/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RUNS = {"g1s42": (1, 42), "g1s43": (1, 43), "g2s42": (2, 42)}  # name -> (GPUs, seed), as the GPU script names them
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
    a = p.parse_args(argv)
    root = Path(a.root)
    res = root / "devresults" / "ddp"
    runs = {}
    for name, (gpus, seed) in RUNS.items():
        d = root / "devruns" / name / a.dataset
        runs[name] = {"gpus": gpus, "seed": seed, "tiger": _tiger(d, res, name), "specgr_pp": _specgr_pp(d)}

    def speedup(get) -> dict | None:
        one, two = get(runs["g1s42"]), get(runs["g2s42"])
        if one is None or two is None:
            return None
        return {"1": one, "2": two, "speedup": two / one, "efficiency": two / one / 2}

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
    for n in (1, 2):
        r = _read(res / f"infer_specgr++_g{n}.json")
        if r is not None:
            infer[str(n)] = {"recs_per_s": r["recs_per_s"], "n_rows": r["n_rows"], "device": r["device"],
                             "world_size": r.get("world_size", 1), "overall": {m: r["overall"][m] for m in METRICS}}
    if len(infer) == 2:
        infer["speedup"] = infer["2"]["recs_per_s"] / infer["1"]["recs_per_s"]
        infer["same_metrics"] = infer["1"]["overall"] == infer["2"]["overall"]
    out = {"dataset": a.dataset, "preset": a.dataset, "script": "scripts/gpu/41_ddp_scaling.sh",
           "nccl_env": {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"},
           "runs": runs, "scaling": scaling, "inference_specgr++": infer, "not_run": a.not_run}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
