#!/usr/bin/env bash
# Release 3, GPU call 4 (1 GPU): the speculation benchmarks after prefix reuse and chunked log-probs, then Games
# SpecGR_Aux on the whole test split (the second Games TIGER + the aux drafter, knobs tuned on valid).
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game --embeddings \
#   amazon2018-game:sentence-transformers/all-MiniLM-L6-v2 (test rows only); .carry/gbundle as for 06_train.sh.
source scripts/gpu/common.sh
cp -n checkpoints/amazon2018-game/sid_tokenizer.pt .carry/gbundle/sid_tokenizer.pt
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
EV="python3 experiments/eval_subset.py --checkpoint .carry/gbundle --data-root devdata/processed --rows 1000000 \
  --device cuda --batch-size 1024 --tune results/amazon2018-game/tune.json --out devresults/amazon2018-game --both"
timeout 150 $BS --json devresults/bench_speculate_h100.json --profile-dir devresults/prof 2>&1 | grep -v "it/s" | tail -4; pack call4 devresults
timeout 200 $EV --methods specgr-aux:fair drafter-aux specgr-aux:paper specgr-aux:vnew 2>&1 | grep "R@50\|Error"; pack call4 devresults
timeout 90 $BS --drafter aux --json devresults/bench_speculate_h100_aux.json 2>&1 | grep -v "it/s" | tail -2; pack call4 devresults
timeout 90 $BS --delta 100 --beta 30 --gamma -1.6 --json devresults/bench_speculate_h100_tuned.json 2>&1 | grep -v "it/s" | tail -2
pack call4 devresults
ls -la "$OUT"
