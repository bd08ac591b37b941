"""Evaluate a trained TIGER run directory (constrained beam search) with the shared evaluator.

    python scripts/gpu/tiger_eval.py devruns/amazon2014-beauty-loo/tiger devdata/processed/amazon2014-beauty-loo out.json
"""

import sys

from specgr.data.processed import ProcessedDataset
from specgr.evaluate import evaluate, write_json
from specgr.models.tiger import load_tiger
from specgr.speculate import TigerOnly
from specgr.utils import resolve_device

run, data, out = sys.argv[1:4]
dev = resolve_device("auto")
ds = ProcessedDataset.load(data)
model, sids = load_tiger(run, ds=ds)
rec = TigerOnly(model, sids, num_beams=50, device=dev)
r = evaluate(lambda h, hl: rec.recommend(h, hl, k=50).items, ds.rows("test"), ds.n_in_sample, "tiger", ds.name, "test",
             batch_size=1024, device=dev, params={"num_beams": 50, "constrained": True})
write_json(r, out)
print({g: {k: round(v, 4) for k, v in r[g].items()} for g in ("overall",)}, r["recs_per_s"])
