#!/usr/bin/env bash
# Release 4, GPU call 1 (2 GPUs): Games TIGER with the Beauty LOO winners, one change at a time (one run per card).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game amazon2014-beauty-loo
source scripts/gpu/common.sh
X="python3 experiments/run_tiger.py experiments/tiger_games.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 games_d01 timeout ${T0:-575} $X --only dropout_01 &
lane 1 games_d01_rqk timeout ${T1:-575} $X --only dropout_01_rqkmeans_c256 &
wait
grep -h "test R@\|Error\|error:" devresults/lane_*.log | tail -20
pack call1 devresults devruns/*/*/*/tiger_train_info.json
ls -la "$OUT"
