"""Run TIGER training experiments listed in a YAML file (runs as data): train, then score the test split once.

    python experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root data/processed \
        --results results --runs runs/experiments [--only recipe,layers_4]

The YAML has `dataset` (a processed folder), `base` (sections `tiger_preset`, `tiger`, `tiger_train`, `sid`) and
`runs: {name: overrides}`; a run's overrides are merged into `base` section by section. `sid` names a semantic-id file
`<dataset>/sid/<sid>.npz` (built by `specgr sid` or by experiments/build_sids.py). Each run writes
`<results>/<dataset>/experiments/<file stem>/<name>.json`: its merged config, the test metrics (constrained beam
search, width max(50, K)), the best validation, the whole-valid score of the best checkpoint, the validation history
with per-digit valid losses, the per-digit train-loss log, steps, batch and GPU-minutes. A finished run is skipped.

    python experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --promote

--promote picks, among the finished runs of the file, the one with the best whole-valid R@10 (valid only: test is
never looked at to choose) and writes its test result to `<results>/<dataset>/tiger.json`, naming its source.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import yaml


def merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def run_one(name: str, spec: dict, dataset: str, data_root: Path, runs_root: Path, out: Path) -> dict:
    from specgr.config import from_dict
    from specgr.data.processed import ProcessedDataset
    from specgr.evaluate import evaluate, write_json
    from specgr.models.tiger import tiger_preset
    from specgr.sid.semantic_ids import SemanticIDs
    from specgr.speculate import TigerOnly
    from specgr.train.tiger import TigerTrainConfig, train_tiger

    ds = ProcessedDataset.load(data_root / dataset)
    sids = SemanticIDs.load(ds.path / "sid" / f"{spec.get('sid', 'rqvae')}.npz")
    mc = tiger_preset(spec.get("tiger_preset", "tiger"))
    mc = from_dict(type(mc), {**mc.to_dict(), **spec.get("tiger", {})})
    tc = from_dict(TigerTrainConfig, spec.get("tiger_train", {}))
    t = time.perf_counter()
    model, info = train_tiger(ds, sids, mc, tc, out_dir=runs_root / name)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    rec = TigerOnly(model, sids, num_beams=50, device=dev)
    r = evaluate(lambda h, hl: rec.recommend(h, hl, k=50).items, ds.rows("test"), ds.n_in_sample, f"tiger:{name}",
                 dataset, "test", batch_size=1024, device=dev, progress=False)
    keep = ("wall_s", "wall_s_all_runs", "train_s", "val_s", "graph_capture_s", "steps", "epochs", "rows_per_s",
            "steps_per_s", "n_params", "device", "gpu", "buckets", "best", "best_full_valid", "val_history", "train_log",
            "lr")
    gpu_min = info.get("wall_s_all_runs", info["wall_s"]) / 60  # a resumed run: the loops of all of its calls
    res = {"name": name, "dataset": dataset, "spec": spec, "test": {g: r[g] for g in ("overall", "in_sample", "unseen")},
           "test_rows": r["n_rows"], "batch_size": tc.batch_size, "gpu_minutes": gpu_min,
           "total_minutes": (time.perf_counter() - t) / 60, "train": {k: info.get(k) for k in keep}}
    write_json(res, out)
    o = r["overall"]
    print(f"[{name}] test R@5 {o['recall@5']:.4f} N@5 {o['ndcg@5']:.4f} R@10 {o['recall@10']:.4f} "
          f"N@10 {o['ndcg@10']:.4f} R@50 {o['recall@50']:.4f} | in-sample R@50 {r['in_sample']['recall@50']:.4f} | "
          f"{info['steps']} steps, {gpu_min:.1f} GPU-min", flush=True)
    return res


def promote(doc: dict, stem: str, results: Path) -> dict:
    """The finished run with the best whole-valid R@10 (then N@10) -> <results>/<dataset>/tiger.json."""
    import json

    from specgr.evaluate import write_json

    found = []
    for n in doc["runs"]:
        f = results / doc["dataset"] / "experiments" / stem / f"{n}.json"
        if f.exists():
            r = json.loads(f.read_text())
            v = ((r.get("train") or {}).get("best_full_valid") or {}).get("overall")
            if v:  # runs from before whole-valid scoring cannot be compared on valid
                found.append(((v["recall@10"], v["ndcg@10"]), n, f, r))
    if not found:
        raise ValueError(f"no finished run of {stem} has a whole-valid score. Fix: run some first (drop --promote).")
    (vr, vn), name, f, r = max(found, key=lambda x: x[0])
    out = {"method": "tiger", "dataset": doc["dataset"], "split": "test", **r["test"], "n_rows": r["test_rows"],
           "device": r["train"].get("gpu"), "source": f.as_posix(), "chosen_by": "whole-valid recall@10, then ndcg@10",
           "valid": {"recall@10": vr, "ndcg@10": vn},
           "params": {"num_beams": 50, "constrained": True, "exclude_history": False, "recipe": r["spec"],
                      "train_steps": r["train"]["steps"], "gpu_minutes": round(r["gpu_minutes"], 2)}}
    write_json(out, results / doc["dataset"] / "tiger.json")
    print(f"promoted {name} (whole-valid R@10 {vr:.4f}, N@10 {vn:.4f}) to {results / doc['dataset'] / 'tiger.json'}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="experiment YAML")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--results", default="results")
    ap.add_argument("--runs", default="runs/experiments")
    ap.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    ap.add_argument("--promote", action="store_true",
                    help="train nothing: write the best finished run on valid to <results>/<dataset>/tiger.json")
    a = ap.parse_args(argv)
    doc = yaml.safe_load(Path(a.spec).read_text())
    unknown = set(doc) - {"dataset", "base", "runs", "note"}
    if unknown:
        raise ValueError(f"{a.spec}: unknown keys {sorted(unknown)}")
    stem = Path(a.spec).stem
    if a.promote:
        promote(doc, stem, Path(a.results))
        return 0
    names = a.only.split(",") if a.only else list(doc["runs"])
    for n in names:
        if n not in doc["runs"]:
            raise ValueError(f"{a.spec}: no run {n!r}; have {list(doc['runs'])}")
    for n in names:
        out = Path(a.results) / doc["dataset"] / "experiments" / stem / f"{n}.json"
        if out.exists():
            print(f"[{n}] done already: {out}")
            continue
        run_one(n, merged(doc["base"], doc["runs"][n] or {}), doc["dataset"], Path(a.data_root),
                Path(a.runs) / doc["dataset"] / stem, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
