#!/usr/bin/env bash
# Release 14, GPU call 1 (1 GPU): how much of SpecGR's time is verification? experiments/speed_floor.py times, in one
# process, compiled + graphed: the loop, the loop with a free verifier, beam search at width K and at width β. Then
# issue 15's benchmark with a phase profile of the compiled (not graphed) loop.
# Carry: .carry/processed/amazon2018-game (python scripts/gpu/carry.py pack --datasets amazon2018-game).
# As run: one H100, 321 s; free verification 38,936 recs/s vs beam search 36,836 (docs/RESULTS.md §4, release 14).
source scripts/gpu/common.sh
D=devresults/speed; mkdir -p $D
echo "== floor $(( $(date +%s) - t0 )) s"
timeout 330 python3 experiments/speed_floor.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --json $D/speed_floor_release14.json 2>&1 | grep -v Warning | tail -12
bench $D release14_profile timeout 200 python3 benchmarks/bench_speculate.py $BENCH_GAMES --ref-rows 16 --compile \
  --cuda-graph --profile-dir $D/profile_release14
cp $D/*.json $D/profile_release14/profile_speculate.txt "$OUT"/ 2>/dev/null
echo "== end $(( $(date +%s) - t0 )) s"
