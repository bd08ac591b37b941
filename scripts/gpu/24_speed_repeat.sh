#!/usr/bin/env bash
# Release 7, GPU call 3 (1 H100): repeats of call 2's graphed runs and the tuned operating point compiled + graphed
# (call 2 hit its time limit there). Carry: as 22_speed_graph.sh.
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py $BENCH_GAMES"
run() { bench "$OUT" "$@"; }
run graph_again python3 $B --cuda-graph
run compile_graph_tuned python3 $B --compile --cuda-graph --delta 100 --beta 30 --gamma -1.6
run compile_graph_again python3 $B --compile --cuda-graph
echo "total $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf speed.tgz *.json && rm -f *.log gpu.txt && mkdir -p j && mv bench_*.json j/
