#!/usr/bin/env bash
# Release 4, GPU call 2 (2 GPUs); call 3 (12_beauty_evaluate.sh) follows on the same warm machine.
#   0: Beauty (timestamp): SpecGR++ and aux drafter on release 3's TIGER -> export -> tune (two passes, R@50 + N@50)
#   1: Beauty: SASRec -> Beauty LOO: dropout 0.1 + RQ-KMeans at a 25k-step schedule
# Carry (.carry, here):
#   python scripts/gpu/carry.py pack --datasets amazon2014-beauty amazon2014-beauty-loo \
#     --tokenizers amazon2014-beauty/rqvae_tokenizer.pt --embeddings amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2
#   plus .carry/runs/amazon2014-beauty/{sid,tiger}: release 3's stage records and its TIGER (carry.py half)
source scripts/gpu/common.sh
cp -rn .carry/runs/. devruns/
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty --set tune.on_edge=warn tune.max_widen=8"
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 beauty timeout ${T0:-575} bash -c "$B --stages sid,tiger,specgr_pp,aux; \
  while [ ! -f devresults/.beauty_sasrec ]; do sleep 5; done; $B --stages sid,tiger,specgr_pp,aux,sasrec,export,tune" &
lane 1 sasrec_loo timeout ${T1:-575} bash -c "$B --stages sid,tiger,sasrec; touch devresults/.beauty_sasrec; \
  $X --only dropout_01_rqkmeans_25k" &
wait
grep -h "^\[\|Error\|error:" devresults/lane_*.log | grep -v "it/s\|running\|up to date" | tail -30
pack call2 devresults devruns/*/*/stage.json devruns/*/pipeline_log.json
ls -la "$OUT"
