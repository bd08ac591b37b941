#!/usr/bin/env bash
# Release 7, GPU call 2 (1 H100): where the GPU time goes now (torch.profiler, eager), then torch.compile of the decoder
# pass (TIGER.compile_decoder, --compile) alone and under CUDA graphs, against the graphed run of call 1, same call.
# Carry: as 22_speed_graph.sh (no old code needed).
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py $BENCH_GAMES"
R=devresults/speed; mkdir -p $R
run() { bench "$R" "$@"; }
run profile python3 $B --profile-dir $R/profile
python3 -c "import json; d=json.load(open('$R/bench_speculate_h100_profile.json')); [print(k, {a: round(b, 2) for a, b in v.items()}) for k, v in d['profile'].items()]"
run graph python3 $B --cuda-graph
run compile python3 $B --compile
run compile_graph python3 $B --compile --cuda-graph
run compile_graph_aux python3 $B --compile --cuda-graph --drafter aux
run compile_graph_tuned python3 $B --compile --cuda-graph --delta 100 --beta 30 --gamma -1.6
run graph_again python3 $B --cuda-graph
run compile_graph_again python3 $B --compile --cuda-graph
echo "total $(( $(date +%s) - t0 )) s"
pack speed $R
