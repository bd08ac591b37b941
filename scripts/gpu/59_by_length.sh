#!/usr/bin/env bash
# Release 28, call 3 (one H100): batches of similar history lengths, cut to their width (`--by-length`,
# recommend_rows(by_length=True)), against the default batches in row order at the full width. Issue 15's setting,
# one process (bench_many: Inductor compiles once), alternating twice; the first pair with 256 reference rows (the
# reference runs at the full width in both), the second speed only; phase times in all four.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-58).
source scripts/gpu/common.sh
export BENCH_RELEASE=release28 OUT_KEEP=$OUT OUT=devresults/by_length; rm -rf $OUT; mkdir -p $OUT
BASE="$BENCH_GAMES --compile --compile-encoder --cuda-graph --no-eager-reference --phase-times"
timeout 540 python3 scripts/gpu/bench_many.py "$BASE" plain="--ref-rows 256" by_length="--ref-rows 256 --by-length" \
  plain_2="--ref-rows 0" by_length_2="--ref-rows 0 --by-length" 2>&1 | quiet | grep -v "^ *$" | tail -12
echo "== done $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf $OUT_KEEP/by_length.tgz *.json
