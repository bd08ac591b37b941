"""Re-tune one SpecGR variant of a finished run under the unseen floor, re-using the points its tuning scored.

    python experiments/replay_floor.py --bundle RUN/export/bundle --tune RESULTS/tune.json \
        --data-root devdata/processed --preset amazon2014-beauty --set tune.on_edge=warn tune.max_widen=8 \
        --drafter aux --variant fair --out results/amazon2014-beauty/text_tiger/floor_replay

A run tuned before `tune.unseen_floor` existed has already scored many settings on its valid rows (tune.json's
table; GPU, bf16). This runs the pipeline's coordinate search (specgr.tune, the preset's TuneConfig) for one drafter and
variant with the floor, reads each point's valid result from that table where it was scored there, and scores only
the new points here (this machine's device; on a CPU, fp32). Then the chosen setting and every drafter alone are
scored on test once, history excluded (the tuning protocol). Writes <out>/replay.json (the floor, the search, which
points were new) and one result file per method.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def table_results(tune: dict, drafter: str, variant: str, knobs: list[str]) -> dict:
    """{knob values: result} of the points tune.json's table holds for this drafter and variant."""
    from specgr.evaluate import GROUPS

    out = {}
    for row in tune["table"]:
        if row["drafter"] != drafter or row["variant"] != variant:
            continue
        key = tuple(float(row[k]) for k in knobs)
        # "<group>_<metric>@K" columns (flatten_result); not "unseen_share", which is no metric of a group
        r = {g: {c[len(g) + 1:]: v for c, v in row.items() if c.startswith(g + "_") and "@" in c} for g in GROUPS}
        out[key] = {**r, "source": "table"}
    return out


def main(argv=None):
    from specgr.bundle import Bundle
    from specgr.evaluate import evaluate, write_json
    from specgr.pipeline import VARIANTS, load_pipeline_config, variant_config
    from specgr.recommenders import make_recommender
    from specgr.train.tiger import valid_rows_subset
    from specgr.tune import coordinate_search, metric_fn, with_unseen_floor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--tune", required=True, help="the run's tune.json")
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--preset", required=True)
    ap.add_argument("--set", nargs="*", default=None, metavar="SECTION.KEY=VALUE")
    ap.add_argument("--drafter", default="aux", choices=["encoder", "aux", "knn"])
    ap.add_argument("--variant", default="fair")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    cfg = load_pipeline_config(a.preset, a.set)
    tc, base = cfg.tune_cfg(), cfg.specgr_cfg()
    tune = json.loads(Path(a.tune).read_text())
    b = Bundle.load(a.bundle, data_root=a.data_root, device=a.device)
    method = {"encoder": "specgr++", "aux": "specgr-aux", "knn": "specgr-knn"}[a.drafter]
    knobs = list(VARIANTS[a.variant][1])
    rows = valid_rows_subset(b.ds, tune["valid_rows"], seed=0)  # the pipeline's tune rows (Pipeline.valid_subset)

    def run(m, split_rows, split, c=None, tag=None):
        fn = make_recommender(b, m, c, exclude_history=tc.exclude_history)
        p = {**(c.to_dict() if c is not None else {}), "exclude_history": tc.exclude_history}
        return evaluate(fn, split_rows, b.ds.n_in_sample, tag or m, b.ds.name, split, batch_size=a.batch_size,
                        device=a.device, params=p, progress=False)

    alone = {d: run(f"drafter-{d}", rows, "valid")["unseen"]["recall@50"] for d in b.available_drafters}
    floor = tc.unseen_floor * max(alone.values())
    cache, new = table_results(tune, a.drafter, a.variant, knobs), []

    def score(c):
        key = tuple(float(getattr(c, k)) for k in knobs)
        if key not in cache:
            t = time.perf_counter()
            cache[key] = {**run(method, rows, "valid", c), "source": a.device}
            new.append({**dict(zip(knobs, key)), "seconds": time.perf_counter() - t})
            print(f"new point {dict(zip(knobs, key))}: {time.perf_counter() - t:.0f} s", flush=True)
        return cache[key]

    metric = metric_fn(tc.metric)
    best, rec = coordinate_search(score, variant_config(base, a.variant, a.drafter), knobs,
                                  metric=with_unseen_floor(metric, floor), grids=tc.grids, max_widen=tc.max_widen,
                                  on_edge=tc.on_edge, passes=tc.passes)
    chosen = {k: getattr(best, k) for k in knobs}
    print(f"chosen {chosen}; valid unseen R@50 {rec['best_result']['unseen']['recall@50']:.4f} (floor {floor:.4f})")
    out = Path(a.out)
    record = {"bundle": a.bundle, "tune": a.tune, "drafter": a.drafter, "variant": a.variant, "valid_rows": len(rows),
              "unseen_floor": {"ratio": tc.unseen_floor, "drafter_alone": alone, "value": floor},
              "chosen": chosen, "config": best.to_dict(), "choices": rec["choices"],
              "valid_best": {g: rec["best_result"][g] for g in ("overall", "in_sample", "unseen")},
              "points_new": new, "points_from_table": sum(v["source"] == "table" for v in cache.values()),
              "device": a.device}
    write_json(record, out / "replay.json")
    test = b.ds.rows("test")
    for m, c in [(f"{method}_{a.variant}_floor_nohist", best),
                 *((f"drafter-{d}_nohist", None) for d in b.available_drafters)]:
        t = time.perf_counter()
        r = run(method if c is not None else m.replace("_nohist", ""), test, "test", c, tag=m)
        write_json(r, out / f"{m}.json")
        print(f"{m}: R@50 {r['overall']['recall@50']:.4f} N@50 {r['overall']['ndcg@50']:.4f} in "
              f"{r['in_sample']['recall@50']:.4f} unseen {r['unseen']['recall@50']:.4f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
