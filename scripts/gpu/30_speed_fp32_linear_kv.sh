#!/usr/bin/env bash
# Release 8, GPU call 3 (1 H100): TIGER.fp32_linear with the cross-attention keys/values cast once per user (not in
# every decoder pass), compiled + graphed, against the bf16 default in the same call; the agreement of eager bf16 and
# eager fp32_linear on 256 reference rows (64 leave one list = 0.016); the switch's GPU test. Carry: as 29.
source scripts/gpu/common.sh
export BENCH_RELEASE=release8
timeout 290 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  fp32lin_eager_ref256="--fp32-linear --ref-rows 256" \
  eager_ref256="--ref-rows 256" \
  fp32lin_kv_compile_graph="--fp32-linear --compile --cuda-graph" 2>&1 | grep "agreement\|Error\|error"
echo "== bf16 $(( $(date +%s) - t0 )) s"
timeout 190 python3 scripts/gpu/bench_many.py "$BENCH_GAMES" compile_graph_call3="--compile --cuda-graph" 2>&1 \
  | grep "agreement\|Error\|error"
echo "== tests $(( $(date +%s) - t0 )) s"
timeout 100 python3 -m pytest -q -m gpu tests/test_tiger.py -k fp32_linear 2>&1 | tail -3
echo "== end $(( $(date +%s) - t0 )) s"
