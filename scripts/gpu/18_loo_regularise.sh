#!/usr/bin/env bash
# Release 5, GPU call 6 (2 GPUs, one run each): Beauty LOO TIGER, two regularisers one change each from the preset
# (experiments/tiger_beauty_loo.yaml: dropout_01_rqkmeans_ls01, rqkmeans_dropout_02).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2014-beauty-loo (sid rqkmeans.npz only)
source scripts/gpu/common.sh
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 ls01 timeout ${T:-575} $X --only dropout_01_rqkmeans_ls01 &
lane 1 d02 timeout ${T:-575} $X --only rqkmeans_dropout_02 &
wait
grep -h "test R@\|Error\|error:" devresults/lane_*.log | tail -10
pack call6 devresults
