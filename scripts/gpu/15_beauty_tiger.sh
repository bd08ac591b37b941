#!/usr/bin/env bash
# Release 4, GPU call 6 (1 GPU): Beauty (timestamp) TIGER with RQ-KMeans ids (one change from the preset).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2014-beauty
source scripts/gpu/common.sh
python3 experiments/run_tiger.py experiments/tiger_beauty.yaml --data-root devdata/processed --results devresults \
  --runs devruns --only rqkmeans > devresults/beauty_tiger.log 2>&1
grep -h "test R@\|Error" devresults/beauty_tiger.log
pack call6 devresults devruns/*/*/*/tiger_train_info.json
