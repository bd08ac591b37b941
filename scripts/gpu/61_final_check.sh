#!/usr/bin/env bash
# Release 28, call 7 (one H100): the final code. The loop's GPU tests, then one --by-length run of issue 15's setting
# (speed only), whose warm-up now captures every width from a real batch of it (bench_speculate.warm_up_batches).
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-60).
source scripts/gpu/common.sh
timeout 100 python3 -m pytest -q -m gpu tests/test_speculate.py 2>&1 | quiet | tail -2
D=devresults/final; rm -rf $D; mkdir -p $D
bench $D release28_final_by_length timeout 200 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile \
  --compile-encoder --cuda-graph --ref-rows 0 --by-length
echo "== done $(( $(date +%s) - t0 )) s"
cp $D/*.json $OUT/
