#!/usr/bin/env bash
# GPU call 3 (4 GPUs): four lanes in parallel, one per GPU.
#   0: training benchmark (+ torch.compile variant), then the speculation benchmark after the first fixes
#   1: Beauty LOO, the full-budget recipe            2: Games TIGER through the pipeline (preset amazon2018-game)
#   3: Beauty LOO, previous recipe + ablation rows
source scripts/gpu/common.sh
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
lane 0 bench timeout ${T0:-565} bash -c "python3 -m pytest -q -m gpu tests/test_train_buckets.py 2>&1 | tail -3; \
  python3 benchmarks/bench_train_tiger.py --data-root devdata/processed --legacy-src .carry/legacy --batch-sizes 256 2048 \
    --steps 500 --warm 100 --legacy-steps 200 --json devresults/bench_train_tiger.json; \
  python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
    --rows 20000 --batch-size 1024 --device cuda --latency-users 0 --profile-dir devresults/prof \
    --json devresults/bench_speculate_fix1.json" &
lane 1 recipe timeout ${T1:-560} $X --only recipe &
lane 2 games timeout ${T2:-560} python3 -m specgr.cli pipeline --dataset amazon2018-game --preset amazon2018-game \
  --data-root devdata/processed --runs devruns --results devresults --stages sid,tiger &
lane 3 ablations timeout ${T3:-560} $X --only ${RUNS3:-previous,steps_12k,layers_4_12k,dropout_01_12k} &
wait
grep -h "^\[\|rows/s\|passed\|failed\|Error" devresults/lane_*.log | grep -v "it/s" | tail -30
pack call3 devresults devruns/amazon2018-game/tiger/tiger_train_info.json devruns/amazon2018-game/*/stage.json
pack call3_tiger devruns/amazon2018-game/tiger/config.json devruns/amazon2018-game/tiger/tiger.pt \
  devruns/amazon2018-game/tiger/sids.npz
ls -la "$OUT"
