#!/usr/bin/env bash
# Release 11, GPU call 3 (1 H100): issue 15's benchmark (the shipped checkpoint, the first 20,000 Games test rows,
# δ50 β30 γ−1.4 K50, compiled + graphed bf16) at batch sizes 4,096 and 1,024, one process each (one compiled
# model per process: Dynamo's recompile limit). Question: does a larger batch change the ratio to beam search, which
# every earlier release measured at batch 1,024 only? 16 reference rows (speed, not agreement, is the question here).
# Carry: .carry/processed/amazon2018-game of scripts/gpu/34_presets_floor.sh (the whole .carry no longer fits).
# As run: one H100, 274 s; 20,553 vs beam 36,079 recs/s at 4,096, 20,429 vs 37,313 at 1,024 (docs/RESULTS.md §4).
source scripts/gpu/common.sh
D=devresults/speed; mkdir -p $D
for bs in 4096 1024; do  # the first process compiles (2-3 min); the second reuses Inductor's cache
  limit=170; [ $bs = 4096 ] && limit=300
  bench $D batch$bs timeout $limit python3 benchmarks/bench_speculate.py $BENCH_GAMES --ref-rows 16 --compile \
    --cuda-graph --batch-size $bs
  pack speed $D
done
echo "== end $(( $(date +%s) - t0 )) s"
