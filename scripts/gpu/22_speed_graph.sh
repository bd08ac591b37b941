#!/usr/bin/env bash
# Release 7, GPU call 1 (1 H100): issue 15's benchmark, the previous code and the current one in the same call.
# Current: the output projection in fp32 at inference (TIGER._logits), and --cuda-graph: the batched loop and the beam
# search each replayed as one CUDA graph per batch (specgr.speculate.graphed.GraphedRecommender).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game --embeddings
# amazon2018-game:sentence-transformers/all-MiniLM-L6-v2, and the previous commit's specgr/ and benchmarks/ in
# .carry/old/ (git worktree of HEAD; copied).
source scripts/gpu/common.sh
python3 -m pytest -q -m gpu tests/test_speculate.py tests/test_scoring.py tests/test_tiger.py 2>&1 | tail -4
B="benchmarks/bench_speculate.py $BENCH_GAMES"
run() { bench "$OUT" "$@"; }
run before env PYTHONPATH=$PWD/.carry/old python3 .carry/old/$B
run after python3 $B
run graph python3 $B --cuda-graph
run graph_aux python3 $B --cuda-graph --drafter aux
run graph_tuned python3 $B --cuda-graph --delta 100 --beta 30 --gamma -1.6
run before_again env PYTHONPATH=$PWD/.carry/old python3 .carry/old/$B
run after_again python3 $B
run graph_again python3 $B --cuda-graph
run after_aux python3 $B --drafter aux
run after_tuned python3 $B --delta 100 --beta 30 --gamma -1.6
echo "total $(( $(date +%s) - t0 )) s"
