#!/usr/bin/env bash
# Release 4, GPU call 3 (2 GPUs), right after 11_beauty_tune.sh on the same warm machine.
#   0: Beauty (timestamp): evaluate every method on test, once, with the values tuned in call 2
#   1: speculation benchmarks on 20,000 Games test rows: static shapes, fp32, both
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game
source scripts/gpu/common.sh
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty --set tune.on_edge=warn tune.max_widen=8"
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
lane 0 beauty_eval timeout ${T0:-575} $B --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate &
lane 1 speed timeout ${T1:-575} bash -c "$BS --json devresults/bench_speculate_h100.json; \
  $BS --static --json devresults/bench_speculate_h100_static.json; \
  $BS --fp32 --json devresults/bench_speculate_h100_fp32.json; \
  $BS --static --fp32 --json devresults/bench_speculate_h100_static_fp32.json" &
wait
grep -h "^\[\|recs_per_s\|agreement\|Error\|error:" devresults/lane_beauty_eval.log devresults/lane_speed.log | grep -v "it/s\|running\|up to date" | tail -40
pack call3 devresults/amazon2014-beauty devresults/bench_speculate_h100*.json devresults/lane_beauty_eval.log \
  devresults/lane_speed.log devruns/amazon2014-beauty/pipeline_log.json
ls -la "$OUT"
