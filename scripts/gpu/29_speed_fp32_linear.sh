#!/usr/bin/env bash
# Release 8, GPU call 2 (1 H100): TIGER.fp32_linear (linear layers: bf16 inputs, fp32 outputs, --fp32-linear)
# against the bf16 default, eager and compiled + graphed: agreement with the one-user reference and speed; then the
# GPU test of the switch. Carry: the Games data of 22_speed_graph.sh (no old code).
source scripts/gpu/common.sh
export BENCH_RELEASE=release8
timeout 300 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  fp32lin_eager="--fp32-linear" \
  eager="" \
  fp32lin_compile_graph="--fp32-linear --compile --cuda-graph" 2>&1 | grep "agreement\|Error\|error"
echo "== bf16 $(( $(date +%s) - t0 )) s"
timeout 200 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" compile_graph="--compile --cuda-graph" 2>&1 \
  | grep "agreement\|Error\|error"
echo "== tests $(( $(date +%s) - t0 )) s"
timeout 90 python3 -m pytest -q -m gpu tests/test_tiger.py 2>&1 | tail -3
echo "== end $(( $(date +%s) - t0 )) s"
