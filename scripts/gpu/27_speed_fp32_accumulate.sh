#!/usr/bin/env bash
# Release 7, GPU call 6 (1 H100): bf16 matmuls with fp32-only reductions (--fp32-accumulate) against the default, eager
# and compiled + graphed, one process: does the agreement with the one-user reference rise? Carry: as 22_speed_graph.sh.
source scripts/gpu/common.sh
python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  acc_eager="--fp32-accumulate" \
  acc_eager_default="" \
  acc_compile_graph="--compile --cuda-graph --fp32-accumulate" \
  acc_compile_graph_default="--compile --cuda-graph" 2>&1 | grep -v "[Ww]arn\|softmax\|split the reduction\|important use\|^$"
