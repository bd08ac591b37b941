"""The evaluate stage on models restored from an earlier call, without re-running the export stage.

    python3 scripts/gpu/evaluate_restored.py amazon2018-game

The export stage, re-run after tuning to record the tuned values in the bundle, needs the tiger / specgr_pp / aux stage
directories; a fresh machine restored from what an earlier call brought back has only the bundle, SASRec and the
stage records (scripts/gpu/17_games_evaluate.sh). The stage hashes come from those records; the tuned values from
devresults/<dataset>/tune.json, as the pipeline passes them. (Release 5, call 7. Since then the export stage rewrites
the tuned values in a bundle in place when its weights are unchanged, so `specgr pipeline` runs on such a machine.)
"""

import json
import sys

from specgr.pipeline import Pipeline, load_pipeline_config

ds = sys.argv[1]
p = Pipeline(load_pipeline_config(ds, dataset=ds), data_root="devdata/processed", run_root="devruns",
             results_root="devresults")
for n in ("sid", "tiger", "specgr_pp", "aux", "sasrec", "export", "tune"):
    p.hashes[n] = json.load(open(f"devruns/{ds}/{n}/stage.json"))["hash"]
p.stage_evaluate(json.load(open(f"devresults/{ds}/tune.json"))["best"])
