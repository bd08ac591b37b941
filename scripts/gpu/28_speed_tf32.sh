#!/usr/bin/env bash
# Release 8, GPU call 1 (1 H100): fp32 activations with TF32 matmuls (--fp32 --tf32) against the bf16 default, both
# compiled + graphed: does agreement with the one-user reference reach 0.875 at >= 20,000 recs/s? One process per
# precision (Dynamo's recompile limit; docs/RESULTS.md §4). Carry: the Games data of 22_speed_graph.sh (no old code).
source scripts/gpu/common.sh
export BENCH_RELEASE=release8
timeout 330 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  tf32_compile_graph="--fp32 --tf32 --compile --cuda-graph" \
  tf32_compile_graph_aux="--fp32 --tf32 --compile --cuda-graph --drafter aux" \
  tf32_compile_graph_tuned="--fp32 --tf32 --compile --cuda-graph --delta 100 --beta 30 --gamma -1.6" \
  tf32_eager="--fp32 --tf32" 2>&1 | grep "agreement\|Error\|error"
echo "== bf16 $(( $(date +%s) - t0 )) s"
timeout 240 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" bf16_compile_graph="--compile --cuda-graph" 2>&1 \
  | grep "agreement\|Error\|error"
echo "== end $(( $(date +%s) - t0 )) s"
