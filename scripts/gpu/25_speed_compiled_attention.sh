#!/usr/bin/env bash
# Release 7, GPU call 4 (1 H100): compiled decoding with its own small-key attention (broadcast products that Inductor
# fuses, TIGER._sdpa), compiled + graphed at the quick-start, tuned and SpecGR_Aux settings, and the eager graphed run
# as the anchor of calls 1-4. All runs in one process, so Inductor compiles each decoder structure once.
# Carry: as 22_speed_graph.sh.
source scripts/gpu/common.sh
python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 | tail -3
python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  cattn_graph="--compile --cuda-graph" \
  graph_call4="--cuda-graph" \
  cattn_graph_tuned="--compile --cuda-graph --delta 100 --beta 30 --gamma -1.6" \
  cattn_graph_aux="--compile --cuda-graph --drafter aux" \
  cattn_graph_again="--compile --cuda-graph" \
  cattn="--compile"
