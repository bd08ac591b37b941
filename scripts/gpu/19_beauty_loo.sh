#!/usr/bin/env bash
# Release 6, GPU calls 1.. (4 GPUs; re-run on the same warm machine until every lane ends: finished stages and runs are
# skipped, a cut TIGER resumes from its last.pt):
#   GPU 0: the amazon2014-beauty pipeline on its preset (the Beauty LOO TIGER recipe: batch 256, 50k steps, dropout 0.2)
#   GPU 1: Beauty LOO rqkmeans_dropout_02_c512          (experiments/tiger_beauty_loo.yaml)
#   GPU 2: the Beauty pipeline's aux and sasrec stages (they do not depend on TIGER), then Beauty LOO rqkmeans_dropout_03
#   GPU 3: Beauty LOO rqkmeans_dropout_02_75k
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2014-beauty amazon2014-beauty-loo --embeddings
#   amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2 --tokenizers amazon2014-beauty/rqkmeans_tokenizer.pt
# (sid files other than rqkmeans.npz / rqkmeans_c512.npz removed) and the Beauty sid stage run here on the CPU under
# .carry/runs/ (its stage.json), so the GPU skips it.  T: each lane's time limit (s)
source scripts/gpu/common.sh
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
[ -d .carry/runs ] && cp -rn .carry/runs/. devruns/
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults --dataset amazon2014-beauty --preset amazon2014-beauty --set tune.on_edge=warn tune.max_widen=8"
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns/loo"
T=${T:-570}
lane 0 beauty timeout $T $P --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate &
lane 1 c512 timeout $T $X --only rqkmeans_dropout_02_c512 &
( lane 2 beauty_aux timeout $T $P --stages aux,sasrec; \
  lane 2 d03 timeout $(( T - $(date +%s) + t0 )) $X --only rqkmeans_dropout_03 ) &
lane 3 s75k timeout $T $X --only rqkmeans_dropout_02_75k &
wait
grep -h "^\[\|Error\|error:\|test R@\|best" devresults/lane_*.log 2>/dev/null | grep -v "it/s\|up to date" | tail -40
pack state devresults devruns/amazon2014-beauty/*/stage.json devruns/amazon2014-beauty/tiger/tiger_train_info.json \
  devruns/amazon2014-beauty/pipeline_log.json
pack bundle devruns/amazon2014-beauty/export/bundle
ls -la "$OUT"
