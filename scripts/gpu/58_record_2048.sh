#!/usr/bin/env bash
# Release 28, call 1 (one H100): 57_record_2048.sh again with a limit that fits. Issue 15's run of record on the
# current default code with 2,048 one-user reference rows (not 256) and the phase times. Release 27's call 6 ran
# past 370 s; the estimate here is model load + compiling ~2 min, the timed runs ~1 min, the reference ~2.5 min.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-57).
source scripts/gpu/common.sh
D=devresults/record_2048; rm -rf $D; mkdir -p $D
bench $D release28_official_2048_h100 timeout 560 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile \
  --compile-encoder --cuda-graph --ref-rows 2048 --no-eager-reference --phase-times
echo "== done $(( $(date +%s) - t0 )) s"; tail -4 $D/*.log | quiet | sed "s#$PWD#.#g"
cp $D/*.json $OUT/
