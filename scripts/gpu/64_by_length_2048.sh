#!/usr/bin/env bash
# Release 29, call 3 (one H100): issue 15's setting by length (`--by-length`) on the final code, with 2,048 one-user
# reference rows like release 28's run of record in row order (58_record_2048.sh: 0.903), and the phase times.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-63).
source scripts/gpu/common.sh
D=devresults/by_length_2048; rm -rf $D; mkdir -p $D
bench $D release29_by_length_2048 timeout 540 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile \
  --compile-encoder --cuda-graph --ref-rows 2048 --no-eager-reference --phase-times --by-length
echo "== done $(( $(date +%s) - t0 )) s"; tail -4 $D/*.log | quiet | sed "s#$PWD#.#g"
cp $D/*.json $OUT/
