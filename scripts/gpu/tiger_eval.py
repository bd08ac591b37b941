"""Evaluate a trained TIGER run directory (constrained beam search) with the shared evaluator.

    python scripts/gpu/tiger_eval.py devruns/amazon2014-beauty-loo/tiger devdata/processed/amazon2014-beauty-loo out.json
    python scripts/gpu/tiger_eval.py RUN DATA out.json --split valid --beams 100   # a wider beam, on valid
"""

import argparse

from specgr.data.processed import ProcessedDataset
from specgr.evaluate import evaluate, write_json
from specgr.models.tiger import load_tiger
from specgr.speculate import TigerOnly
from specgr.utils import resolve_device

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("run")
p.add_argument("data")
p.add_argument("out")
p.add_argument("--split", default="test", choices=("valid", "test"))
p.add_argument("--beams", type=int, default=50, help="beam width (>= K = 50)")
a = p.parse_args()
dev = resolve_device("auto")
ds = ProcessedDataset.load(a.data)
model, sids = load_tiger(a.run, ds=ds)
rec = TigerOnly(model, sids, num_beams=a.beams, device=dev)
r = evaluate(lambda h, hl: rec.recommend(h, hl, k=50).items, ds.rows(a.split), ds.n_in_sample, "tiger", ds.name,
             a.split, batch_size=1024, device=dev, params={"num_beams": a.beams, "constrained": True})
write_json(r, a.out)
print(a.split, a.beams, {g: round(r[g]["recall@50"], 4) for g in ("overall", "in_sample")},
      {g: round(r["overall"][g], 4) for g in ("recall@10", "ndcg@10", "ndcg@50")}, round(r["recs_per_s"]))
