#!/usr/bin/env bash
# Release 8, GPU call 4 (1 H100): issue 15's benchmark, compiled + graphed bf16 (the fastest setting), with the
# agreement measured on 256 reference rows instead of 64 (call 3: one list of 64 moves it by 0.016); the tuned point
# and SpecGR_Aux likewise. One process: one compiled model precision. Carry: as 29.
source scripts/gpu/common.sh
export BENCH_RELEASE=release8
timeout 570 python3 scripts/gpu/bench_many.py "$BENCH_GAMES --ref-rows 256" \
  compile_graph_ref256="--compile --cuda-graph" \
  compile_graph_ref256_aux="--compile --cuda-graph --drafter aux" \
  compile_graph_ref256_tuned="--compile --cuda-graph --delta 100 --beta 30 --gamma -1.6" 2>&1 \
  | grep "agreement\|Error\|error"
echo "== end $(( $(date +%s) - t0 )) s"
