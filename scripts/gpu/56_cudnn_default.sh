#!/usr/bin/env bash
# Release 27: should cuDNN's cross-attention be TIGER's default? (55_agreement_rows.sh: it agrees with the reference
# as well as the memory-efficient kernel on 2,048 rows.) What it costs or saves where no CUDA graph replays the loop
# (eager) and where one does (issue 15's setting), each pair alternating in one process, speed only, each run naming
# its kernel; then the GPU tests of TIGER and the loop. Call 2 ran this with cuDNN as a trial default in TIGER, so
# the tests ran with it (one failed); the trial default was reverted (eager was slower).
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-55).
source scripts/gpu/common.sh
export BENCH_RELEASE=release27
D=devresults/cudnn_default; rm -rf $D; mkdir -p $D
OUT=$D timeout 150 python3 scripts/gpu/bench_many.py "$BENCH_GAMES --ref-rows 0" \
  eager_efficient_1="--no-cudnn-cross-attention" eager_cudnn_1="--cudnn-cross-attention" \
  eager_efficient_2="--no-cudnn-cross-attention" eager_cudnn_2="--cudnn-cross-attention" 2>&1 | quiet
echo "== graphed $(( $(date +%s) - t0 )) s"
OUT=$D timeout 300 python3 scripts/gpu/bench_many.py "$BENCH_GAMES --ref-rows 0 --compile --compile-encoder \
  --cuda-graph" graph_efficient_1="--no-cudnn-cross-attention" graph_cudnn_1="--cudnn-cross-attention" \
  graph_efficient_2="--no-cudnn-cross-attention" graph_cudnn_2="--cudnn-cross-attention" 2>&1 | quiet
cp $D/*.json $OUT/
echo "== tests $(( $(date +%s) - t0 )) s"
timeout $(( 590 - $(date +%s) + t0 )) python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 \
  | tail -4
