#!/usr/bin/env bash
# Release 7, GPU call 2 (1 H100): where the GPU time goes now (torch.profiler, eager), then torch.compile of the decoder
# pass (TIGER.compile_decoder, --compile) alone and under CUDA graphs, against the graphed run of call 1, same call.
# Carry: as 22_speed_graph.sh (no old code needed).
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed --rows 20000
   --batch-size 1024 --device cuda --latency-users 0"
R=devresults/speed; mkdir -p $R
run() { local name=$1; shift; echo "== $name $(( $(date +%s) - t0 )) s"; "$@" --json "$R/bench_speculate_h100_$name.json" \
  > "$R/$name.log" 2>&1 || tail -5 "$R/$name.log"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(d[k]['recs_per_s']) for k in ('batched', 'tiger_beam')}, 'agreement', d['reference_agreement'], 'acceptance', round(d['batched']['acceptance_rate'], 3))" "$R/bench_speculate_h100_$name.json"; }
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
