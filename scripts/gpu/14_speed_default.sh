#!/usr/bin/env bash
# Release 4, GPU call 5 (1 GPU): the quick-start benchmark with the final code (static shapes by default on CUDA),
# and the compacting loop beside it in the same run.
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game
source scripts/gpu/common.sh
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
$BS --json devresults/bench_speculate_h100.json > devresults/speed.log 2>&1
$BS --compact --json devresults/bench_speculate_h100_compact.json >> devresults/speed.log 2>&1
grep -h "recs_per_s\|agreement\|compacts\|Error" devresults/speed.log
pack call5 devresults/bench_speculate_h100*.json devresults/speed.log
