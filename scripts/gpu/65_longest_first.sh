#!/usr/bin/env bash
# Release 29, call 4 (one H100): 64_by_length_2048.sh again, with batches by length now taken longest first
# (`specgr.batching.length_batches`). Call 3 (shortest first, the benchmark alone in its process) left 0.821 of the
# 2,048 lists equal to the reference's, the rows with long histories most often different; call 1, where the row-order
# run came first in the same process, 0.891 on 256 rows, as in row order. So: do Inductor's dynamic kernels keep the
# shapes they first saw?
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-64).
source scripts/gpu/common.sh
D=devresults/longest_first; rm -rf $D; mkdir -p $D
bench $D release29_by_length_2048_longest_first timeout 480 python3 benchmarks/bench_speculate.py $BENCH_GAMES \
  --compile --compile-encoder --cuda-graph --ref-rows 2048 --no-eager-reference --phase-times --by-length
echo "== done $(( $(date +%s) - t0 )) s"; tail -4 $D/*.log | quiet | sed "s#$PWD#.#g"
cp $D/*.json $OUT/
