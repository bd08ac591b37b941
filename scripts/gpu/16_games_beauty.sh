#!/usr/bin/env bash
# Release 5, GPU calls 1.. (1 GPU, two jobs side by side on it; re-run on the same warm machine until both finish:
# finished stages are skipped, a cut TIGER resumes from its last.pt):
#   games:  the amazon2018-game pipeline on its preset (the release-4 TIGER recipe: dropout 0.1, RQ-KMeans C = 256)
#   beauty: the amazon2014-beauty pipeline on its preset (RQ-KMeans TIGER), tuned on valid, test once
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game amazon2014-beauty --embeddings
#   amazon2018-game:sentence-transformers/all-MiniLM-L6-v2 amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2
#   --tokenizers amazon2018-game/rqkmeans_tokenizer.pt amazon2014-beauty/rqkmeans_tokenizer.pt
# and the sid stage run here on the CPU under .carry/runs/ (its stage.json), so the GPU skips it.
#   G_STAGES / B_STAGES: the stages of each job this call; T: each job's time limit (s)
source scripts/gpu/common.sh
[ -d .carry/runs ] && mkdir -p devruns && cp -rn .carry/runs/. devruns/
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
G_STAGES=${G_STAGES:-sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate}
B_STAGES=${B_STAGES:-sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate}
[ "$G_STAGES" != none ] && lane 0 games timeout ${T:-560} $P --dataset amazon2018-game --preset amazon2018-game \
  --stages "$G_STAGES" &
[ "$B_STAGES" != none ] && lane 0 beauty timeout ${T:-560} $P --dataset amazon2014-beauty --preset amazon2014-beauty \
  --set tune.on_edge=warn tune.max_widen=8 --stages "$B_STAGES" &
wait
grep -h "^\[\|Error\|error:\|step \|best" devresults/lane_games.log devresults/lane_beauty.log 2>/dev/null \
  | grep -v "it/s\|up to date" | tail -40
pack state devresults/amazon2018-game devresults/amazon2014-beauty devresults/lane_*.log devruns/*/export/bundle \
  devruns/*/*/stage.json devruns/*/tiger/tiger_train_info.json devruns/*/pipeline_log.json
ls -la "$OUT"
