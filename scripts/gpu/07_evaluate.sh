#!/usr/bin/env bash
# Release 3, GPU call 2 (4 GPUs), right after 06_train.sh on the same warm machine: the SpecGR tables on the new TIGERs.
#   0: Games: SpecGR++ (from the new TIGER) -> export, tune on valid, evaluate on test
#   1: Beauty LOO: dropout 0.1 with the 768-d all-mpnet-base-v2 semantic ids (RQ-KMeans)
#   2: Beauty: SpecGR++ -> (waits for lane 3) export, tune, evaluate
#   3: Beauty: aux drafter -> Beauty LOO: dropout 0.1 with MiniLM RQ-KMeans ids (the tokenizer half of lane 1's change)
# Carry: python scripts/gpu/carry.py pack --datasets amazon2014-beauty --tokenizers amazon2014-beauty/rqvae_tokenizer.pt \
#          --embeddings amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2
source scripts/gpu/common.sh
t0=$(date +%s)
lane() { local gpu=$1 name=$2; shift 2; ( export CUDA_VISIBLE_DEVICES=$gpu; "$@" ) > "devresults/lane2_$name.log" 2>&1; \
  local rc=$?; echo "lane $name done at $(( $(date +%s) - t0 )) s rc=$rc"; }
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
D01="--set tiger.dropout=0.1 tiger_train.compile=true"
G="$P --dataset amazon2018-game --preset amazon2018-game $D01"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty $D01"
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 games timeout ${T0:-565} $G --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate &
lane 1 loo timeout ${T1:-565} $X --only dropout_01_rqkmeans_mpnet &
lane 2 beauty timeout ${T2:-565} bash -c "$B --stages sid,tiger,specgr_pp; while [ ! -f devresults/.beauty_aux ]; do sleep 5; done; \
  $B --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate" &
lane 3 aux timeout ${T3:-565} bash -c "$B --stages sid,aux; touch devresults/.beauty_aux; $X --only dropout_01_rqkmeans" &
wait
grep -h "^\[\|rows/s\|Error\|error:" devresults/lane2_*.log | grep -v "it/s\|running\|up to date" | tail -30
pack call2 devresults devruns/*/*/stage.json devruns/*/*/tiger_train_info.json devruns/*/pipeline_log.json \
  devruns/*/export/bundle/config.json
pack call2_games devruns/amazon2018-game/tiger/config.json devruns/amazon2018-game/tiger/tiger.pt \
  devruns/amazon2018-game/tiger/sids.npz
ls -la "$OUT"
