#!/usr/bin/env bash
# Release 29, call 1 (one H100): GraphedRecommender shares one memory pool between its captures again (release 28,
# call 4) and now lets go of the beam states between phases once a capture is done, so that the next width's capture
# can reuse them. The loop's GPU tests (graphed lists equal the eager loop's; each capture replayed again after the
# other), then release 28 call 3's first pair: row order against by length, 256 reference rows each, speed and the
# memory the graphs hold (`held_gib_after_warmup`; release 28: 4.73 / 17.57 GiB SpecGR++, 2.64 / 10.57 beam search).
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-61).
source scripts/gpu/common.sh
timeout 200 python3 -m pytest -q -m gpu tests/test_speculate.py 2>&1 | quiet | tail -4
export BENCH_RELEASE=release29 OUT_KEEP=$OUT OUT=devresults/pool_release; rm -rf $OUT; mkdir -p $OUT
BASE="$BENCH_GAMES --compile --compile-encoder --cuda-graph --no-eager-reference --phase-times --ref-rows 256"
timeout 400 python3 scripts/gpu/bench_many.py "$BASE" plain="" by_length="--by-length" 2>&1 | quiet \
  | grep -v "^ *$" | tail -6
echo "== done $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf $OUT_KEEP/pool_release.tgz *.json
