#!/usr/bin/env bash
# GPU call 4b (4 GPUs, right after 04_upload.sh): the SpecGR tables on the new TIGER, the speed benchmarks, controls.
#   0: Games: SpecGR++ on the new TIGER -> (waits for lane 1) export, tune on valid, evaluate on test
#   1: Games: aux drafter + SASRec -> speed: bench_speculate (shipped checkpoint), catalog-size benchmark
#   2: Beauty (timestamp): TIGER, SpecGR++ -> (waits for lane 3) export, tune, evaluate
#   3: Beauty: aux + SASRec -> controls (SASRec on Beauty LOO, beam vs exact) -> training benchmark -> ablations
source scripts/gpu/common.sh
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
G="$P --dataset amazon2018-game --preset amazon2018-game"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty"
waitfor() { while [ ! -f "$1" ]; do sleep 5; done; }
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
lane 0 games timeout 575 bash -c "$G --stages sid,tiger,specgr_pp; while [ ! -f devresults/.games_aux ]; do sleep 5; done; \
  $G --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate" &
lane 1 speed timeout 575 bash -c "$G --stages sid,aux,sasrec; touch devresults/.games_aux; \
  $BS --json devresults/bench_speculate_h100.json --profile-dir devresults/prof; \
  $BS --delta 100 --beta 30 --gamma -1.6 --json devresults/bench_speculate_h100_tuned.json; \
  $BS --drafter aux --json devresults/bench_speculate_h100_aux.json; \
  python3 benchmarks/bench_catalog_size.py --json devresults/bench_catalog_size.json" &
lane 2 beauty timeout 575 bash -c "$B --stages sid,tiger,specgr_pp; while [ ! -f devresults/.beauty_aux ]; do sleep 5; done; \
  $B --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate" &
lane 3 controls timeout 575 bash -c "$B --stages sid,aux,sasrec; touch devresults/.beauty_aux; \
  python3 experiments/controls.py sasrec --data-root devdata/processed --dataset amazon2014-beauty-loo \
    --preset amazon2014-beauty-loo --runs devruns --results devresults; \
  python3 experiments/controls.py beam-vs-exact --data-root devdata/processed --dataset amazon2018-game \
    --tiger devruns/amazon2018-game/tiger --rows 1000 --results devresults; \
  python3 benchmarks/bench_train_tiger.py --data-root devdata/processed --legacy-src .carry/legacy \
    --batch-sizes 256 2048 --steps 500 --warm 100 --legacy-steps 200 --json devresults/bench_train_tiger.json; \
  python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed \
    --results devresults --runs devruns --only rqkmeans_mpnet_12k,rqkmeans_12k" &
wait
grep -h "^\[\|rows/s\|recs/s\|SASRec\|beam vs\|Error\|error:" devresults/lane_*.log | grep -v "it/s\|running\|done in\|up to date" | tail -40
pack call5 devresults devruns/*/*/stage.json devruns/*/*/tiger_train_info.json devruns/*/export/bundle/config.json \
  devruns/*/pipeline_log.json
ls -la "$OUT"
