#!/usr/bin/env bash
# Release 4, GPU call 4 (1 GPU): static shapes (SpecGRConfig(compact=False)) at the tuned operating point and with the
# aux drafter, each beside the compacting default in the same run.
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game \
#   --embeddings amazon2018-game:sentence-transformers/all-MiniLM-L6-v2
source scripts/gpu/common.sh
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
T="--delta 100 --beta 30 --gamma -1.6"
$BS $T --json devresults/bench_speculate_h100_tuned.json > devresults/speed.log 2>&1
$BS $T --static --json devresults/bench_speculate_h100_tuned_static.json >> devresults/speed.log 2>&1
$BS --drafter aux --json devresults/bench_speculate_h100_aux.json >> devresults/speed.log 2>&1
$BS --drafter aux --static --json devresults/bench_speculate_h100_aux_static.json >> devresults/speed.log 2>&1
grep -h "recs_per_s\|agreement\|Error" devresults/speed.log
pack call4 devresults/bench_speculate_h100*.json devresults/speed.log
