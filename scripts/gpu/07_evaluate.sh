#!/usr/bin/env bash
# Release 3, GPU call 2 (2 GPUs), right after 06_train.sh on the same warm machine.
#   0: Beauty: aux drafter -> export, tune on valid, evaluate on test (TIGER and SpecGR++ of call 1)
#   1: Beauty: SASRec -> Beauty LOO: dropout 0.1 with the 768-d all-mpnet-base-v2 semantic ids (RQ-KMeans)
# Carry (.carry2, here): python scripts/gpu/carry.py pack --carry .carry2 --datasets amazon2014-beauty \
#   --tokenizers amazon2014-beauty/rqvae_tokenizer.pt --embeddings amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2
LANE_LOG=lane2  # call 1 logs stay beside these
source scripts/gpu/common.sh
python3 scripts/gpu/carry.py unpack --carry .carry2
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty"  # dropout 0.1: the preset
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 beauty timeout ${T0:-570} bash -c "$B --stages sid,tiger,specgr_pp,aux; touch devresults/.beauty_aux; \
  while [ ! -f devresults/.beauty_sasrec ]; do sleep 5; done; $B --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate" &
lane 1 sasrec_loo timeout ${T1:-570} bash -c "$B --stages sid,sasrec; touch devresults/.beauty_sasrec; \
  $X --only dropout_01_rqkmeans_mpnet" &
wait
grep -h "^\[\|rows/s\|Error\|error:" devresults/lane2_*.log | grep -v "it/s\|running\|up to date" | tail -30
pack call2 devresults devruns/*/*/stage.json devruns/*/*/tiger_train_info.json devruns/*/pipeline_log.json \
  devruns/*/export/bundle/config.json
ls -la "$OUT"
