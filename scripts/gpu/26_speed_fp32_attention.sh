#!/usr/bin/env bash
# Release 7, GPU call 5 (1 H100): small-key attention in fp32 in every inference path (eager: fp32 batched matmuls;
# compiled: the fused broadcast products of call 4), against the previous commit's bf16 eager attention in the same
# call; then graphed and compiled + graphed runs in one process (the reference falls back to eager decoding when
# Dynamo's recompile limit is hit; with fp32 attention in both paths its lists stay comparable), and the GPU tests.
# Carry: as 22_speed_graph.sh, with the previous commit's specgr/ and benchmarks/ in .carry/old/.
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py $BENCH_GAMES"
echo "== before (bf16 small-key attention)"
env PYTHONPATH=$PWD/.carry/old python3 .carry/old/$B --json $OUT/bench_speculate_h100_release7_fp32attn_before.json \
  > $OUT/before.log 2>&1; grep -A2 '"batched"\|agreement' $OUT/before.log | grep 'recs_per_s\|agreement'
python3 scripts/gpu/bench_many.py "$BENCH_GAMES" \
  fp32attn_after="" \
  fp32attn_graph="--cuda-graph" \
  fp32attn_compile_graph="--compile --cuda-graph" \
  fp32attn_compile_graph_again="--compile --cuda-graph" \
  fp32attn_compile_graph_tuned="--compile --cuda-graph --delta 100 --beta 30 --gamma -1.6" \
  fp32attn_compile_graph_aux="--compile --cuda-graph --drafter aux"
python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py tests/test_scoring.py 2>&1 | tail -2
rm -f $OUT/*.log
