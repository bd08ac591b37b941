#!/usr/bin/env bash
# Release 12, GPU calls 1..N (a 4-GPU machine, one lane per card; call again on the same warm machine until every lane
# has ended, as scripts/gpu/lanes.sh says). Is the learned re-ranker's Beauty test gain (docs/RESULTS.md §3.0e, one
# bundle, CPU) more than one run's luck? Four Beauty preset models, every training seed moved by 0..3, each trained
# up to its bundle (sid, TIGER, SpecGR++, text drafter, export: no SASRec, tuning or test of the pipeline), then
# experiments/rerank_ceiling.py on that bundle on its card: valid rows as the pipeline tunes on, test once.
# Carry: .carry/processed/amazon2014-beauty and .carry/runs (the whole .carry does not fit the transfer limit).
# As run: calls 1-2 on a 4-GPU H200 machine (T = 545, 420): the four bundles were built, but every re-ranking stopped
# on a device mismatch (the semantic ids stayed on the CPU; fixed in experiments/rerank_ceiling.py since); call 3 ran
# the fixed script on the four bundles by hand, one per card (docs/RESULTS.md §3.0e). 889 device-seconds in all.
source scripts/gpu/common.sh
export STAGES=${STAGES:-sid,tiger,specgr_pp,aux,export}
export AFTER=${AFTER:-"python3 experiments/rerank_ceiling.py --bundle devruns/@NAME@/amazon2014-beauty/export/bundle \
  --data-root devdata/processed --drafter aux --valid-rows 8192 --test --device cuda --out devresults/@NAME@/rerank"}
source scripts/gpu/lanes.sh
seed() { echo "tiger_train.seed=$((42 + $1)) specgr_pp.seed=$1 aux_train.seed=$((42 + $1))"; }
LANES="rerank_seed0 rerank_seed1 rerank_seed2 rerank_seed3"
for i in 0 1 2 3; do start "rerank_seed$i" amazon2014-beauty $(seed $i); done
finish_lanes $LANES
