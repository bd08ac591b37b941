#!/usr/bin/env bash
# Release 27, call 6 (one H100): issue 15's run of record on the current default code, with 2,048 reference rows
# instead of 256 (55_agreement_rows.sh measured that on H200s, three processes at once) and the phase times.
# Call 6 ran past the 370 s limit below (model load, compiling, the timed runs and 2,048 one-user reference rows
# alone on one H100): nothing was written, and no device time was left to run it again. bench_speculate.py now writes
# the timed runs' results before the reference starts; a rerun also needs a longer limit.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-56).
source scripts/gpu/common.sh
D=devresults/record_2048; rm -rf $D; mkdir -p $D
bench $D release27_official_2048_h100 timeout 370 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile \
  --compile-encoder --cuda-graph --ref-rows 2048 --no-eager-reference --phase-times
cp $D/*.json $OUT/
