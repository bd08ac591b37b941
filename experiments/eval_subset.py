"""Score methods on a fixed seeded subset of a split, every method on the same rows (CPU-sized evaluations).

    python experiments/eval_subset.py --checkpoint DIR --rows 4096 --out results/amazon2018-game/test_subset4096 \
        --tune results/amazon2018-game/tune.json --methods drafter-aux tiger specgr-aux:paper specgr-aux:fair

A method is a name of specgr.recommenders.METHODS (specgr-* with the checkpoint's SpecGR defaults, or those of
--defaults), or `specgr-aux:VARIANT` / `specgr++:VARIANT` with the tuned knobs of that variant from a tune.json
(specgr.pipeline's tune stage). Each is scored with history items excluded (`_nohist`)
and, with --both, also allowed. Writes one JSON per method and protocol (the shared results schema).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    from specgr.bundle import Bundle
    from specgr.evaluate import evaluate, write_json
    from specgr.recommenders import make_recommender
    from specgr.speculate import SpecGRConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", default=None)
    ap.add_argument("--defaults", default=None, help="a bundle config.json whose SpecGR defaults replace the checkpoint's "
                    "(e.g. an earlier version of it) for the plain specgr-* methods")
    ap.add_argument("--methods", nargs="+", required=True)
    ap.add_argument("--both", action="store_true", help="also score with history items allowed")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    b = Bundle.load(a.checkpoint, data_root=a.data_root, device=a.device)
    rows = b.ds.rows(a.split)
    idx = np.sort(np.random.default_rng(a.seed).choice(len(rows), min(a.rows, len(rows)), replace=False))
    rows = rows.subset(idx)
    best = json.loads(Path(a.tune).read_text())["best"] if a.tune else {}
    if a.defaults:
        b.specgr_defaults = json.loads(Path(a.defaults).read_text())["config"]["specgr_defaults"]
    for m in a.methods:
        method, _, variant = m.partition(":")
        cfg = None
        if variant:
            drafter = {"specgr++": "encoder", "specgr-aux": "aux", "specgr-knn": "knn"}[method]
            cfg = SpecGRConfig(**best[drafter][variant])
        for excl in ((True, False) if a.both else (True,)):
            name = m.replace(":", "_") + ("_nohist" if excl else "")
            f = Path(a.out) / f"{name}.json"
            if f.exists():
                continue
            fn = make_recommender(b, method, cfg, exclude_history=excl)
            r = evaluate(fn, rows, b.ds.n_in_sample, name, b.ds.name, a.split, batch_size=a.batch_size,
                         device=a.device, progress=False,
                         params={**(cfg.to_dict() if cfg else {}), "exclude_history": excl, "variant": variant,
                                 "rows": f"{a.split} subset of {len(idx)} (seed {a.seed})"})
            write_json(r, f)
            o = r["overall"]
            print(f"{name:<28} R@50 {o['recall@50']:.4f} N@50 {o['ndcg@50']:.4f} in {r['in_sample']['recall@50']:.4f} "
                  f"unseen {r['unseen']['recall@50']:.4f} ({r['recs_per_s']:.1f} rec/s)", flush=True)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
