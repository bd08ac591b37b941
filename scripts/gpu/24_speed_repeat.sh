#!/usr/bin/env bash
# Release 7, GPU call 3 (1 H100): repeats of call 2's graphed runs and the tuned operating point compiled + graphed
# (call 2 hit its time limit there). Carry: as 22_speed_graph.sh.
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed --rows 20000
   --batch-size 1024 --device cuda --latency-users 0"
run() { local name=$1; shift; echo "== $name $(( $(date +%s) - t0 )) s"; "$@" --json "$OUT/bench_speculate_h100_$name.json" \
  > "$OUT/$name.log" 2>&1 || tail -5 "$OUT/$name.log"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(d[k]['recs_per_s']) for k in ('batched', 'tiger_beam')}, 'agreement', d['reference_agreement'], 'acceptance', round(d['batched']['acceptance_rate'], 3))" "$OUT/bench_speculate_h100_$name.json"; }
run graph_again python3 $B --cuda-graph
run compile_graph_tuned python3 $B --compile --cuda-graph --delta 100 --beta 30 --gamma -1.6
run compile_graph_again python3 $B --compile --cuda-graph
echo "total $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf speed.tgz *.json && rm -f *.log gpu.txt && mkdir -p j && mv bench_*.json j/
