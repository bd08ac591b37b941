#!/usr/bin/env bash
# Release 8, GPU call 6 (1 H100): speed against γ on 20,000 valid rows (acceptance, rounds and recall@50 beside it):
# the compacting loop (finished users leave the batch) and the static one (they are masked, every round runs), eager;
# then compiled + graphed (static) at γ -1.4 and -3.0. Where does early exit make SpecGR++ faster than beam search?
# Carry: as 29.
source scripts/gpu/common.sh
export BENCH_RELEASE=release8
V="$BENCH_GAMES --split valid --ref-rows 16"
timeout 260 python3 scripts/gpu/bench_many.py "$V" \
  gamma_valid_compact_1.4="--compact --gamma -1.4" gamma_valid_static_1.4="--static --gamma -1.4" \
  gamma_valid_compact_2.2="--compact --gamma -2.2" gamma_valid_static_2.2="--static --gamma -2.2" \
  gamma_valid_compact_3.0="--compact --gamma -3.0" gamma_valid_static_3.0="--static --gamma -3.0" \
  gamma_valid_compact_4.0="--compact --gamma -4.0" gamma_valid_static_4.0="--static --gamma -4.0" 2>&1 \
  | grep "agreement\|Error\|error"
echo "== compiled $(( $(date +%s) - t0 )) s"
timeout 250 python3 scripts/gpu/bench_many.py "$V" \
  gamma_valid_compile_graph_1.4="--compile --cuda-graph --gamma -1.4" \
  gamma_valid_compile_graph_3.0="--compile --cuda-graph --gamma -3.0" 2>&1 | grep "agreement\|Error\|error"
echo "== end $(( $(date +%s) - t0 )) s"
