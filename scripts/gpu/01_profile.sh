#!/usr/bin/env bash
# GPU call 1: GPU tests, the training benchmark (previous vs current trainer, with profiles), the speculation profile.
source scripts/gpu/common.sh
python3 -m pytest -q -m gpu tests/test_train_buckets.py tests/test_tiger.py tests/test_scoring.py 2>&1 | tail -3
python3 benchmarks/bench_train_tiger.py --data-root devdata/processed --legacy-src .carry/legacy \
  --batch-sizes 256 2048 --steps 500 --warm 100 --legacy-steps 200 --profile-dir devresults/prof \
  --json devresults/bench_train_tiger.json 2>&1 | grep -v "^ \|^{\|^}" | tail -20
echo "train bench done $(( $(date +%s) - t0 )) s"
python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0 --profile-dir devresults/prof \
  --json devresults/bench_speculate_before.json 2>&1 | grep -A12 '"batched"' | head -30
echo "spec bench done $(( $(date +%s) - t0 )) s"
pack call1 devresults
ls -la "$OUT"
