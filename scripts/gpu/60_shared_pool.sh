#!/usr/bin/env bash
# Release 28, call 4 (one H100): GraphedRecommender now captures every history width into one memory pool. The
# loop's GPU tests (graphed lists equal the eager loop's, also by length and back), then call 3's pair again, speed
# and the memory the graphs hold: by length (four widths) against the default batches (one width).
# Call 4 ran it on the shared-pool commit: 8 GPU tests failed; the one read alone (call 5) failed on an assertion
# of the test itself (its histories were never cut), and with that mended all 9 passed (call 6). The pool saved
# beam search's memory only, so the change was reverted (docs/RESULTS.md §4, release 28).
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-59).
source scripts/gpu/common.sh
timeout 200 python3 -m pytest -q -m gpu tests/test_speculate.py 2>&1 | quiet | tail -4
export BENCH_RELEASE=release28 OUT_KEEP=$OUT OUT=devresults/shared_pool; rm -rf $OUT; mkdir -p $OUT
BASE="$BENCH_GAMES --compile --compile-encoder --cuda-graph --no-eager-reference --ref-rows 0"
timeout 330 python3 scripts/gpu/bench_many.py "$BASE" pool_plain="" pool_by_length="--by-length" 2>&1 | quiet \
  | grep -v "^ *$" | tail -6
echo "== done $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf $OUT_KEEP/shared_pool.tgz *.json
