#!/usr/bin/env bash
# Release 3, GPU call 5 (1 GPU): Beauty LOO, dropout 0.1 + RQ-KMeans ids at a 25k-step schedule (MiniLM and mpnet),
# two trainings side by side on one card (each leaves most of an H100 idle).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2014-beauty-loo
source scripts/gpu/common.sh
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
( timeout 480 $X --only dropout_01_rqkmeans_25k > devresults/loo_a.log 2>&1; pack call5a devresults/amazon2014-beauty-loo ) &
( timeout 480 $X --only dropout_01_rqkmeans_mpnet_25k > devresults/loo_b.log 2>&1; pack call5b devresults/amazon2014-beauty-loo ) &
wait
grep -h "test R@\|Error" devresults/loo_*.log
ls -la "$OUT"
