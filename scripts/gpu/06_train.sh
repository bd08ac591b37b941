#!/usr/bin/env bash
# Release 3, GPU call 1 (4 GPUs): the trainings, four lanes in parallel, one per GPU. Call 2 (07_evaluate.sh) follows
# on the same warm machine and finds the outputs in devruns/.
#   0: Games TIGER, the recipe with dropout 0.1 (torch.compile)
#   1: speculation benchmarks (small-key attention), then the Games aux drafter and SASRec
#   2: Beauty LOO, the full-budget recipe with dropout 0.1
#   3: Beauty (timestamp) TIGER with dropout 0.1, then Beauty SASRec
# Carry: python scripts/gpu/carry.py pack --datasets amazon2018-game amazon2014-beauty amazon2014-beauty-loo \
#          --embeddings amazon2018-game:sentence-transformers/all-MiniLM-L6-v2
source scripts/gpu/common.sh
t0=$(date +%s)
lane() { local gpu=$1 name=$2; shift 2; ( export CUDA_VISIBLE_DEVICES=$gpu; "$@" ) > "devresults/lane_$name.log" 2>&1; \
  local rc=$?; echo "lane $name done at $(( $(date +%s) - t0 )) s rc=$rc"; }
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
D01="--set tiger.dropout=0.1 tiger_train.compile=true"
G="$P --dataset amazon2018-game --preset amazon2018-game $D01"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty $D01"
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
mkdir -p devdata/processed/amazon2018-game/sid
cp -n checkpoints/amazon2018-game/sid_tokenizer.pt devdata/processed/amazon2018-game/sid/rqvae_tokenizer.pt
lane 0 games timeout ${T0:-560} $G --stages sid,tiger &
lane 1 speed timeout ${T1:-560} bash -c "$BS --json devresults/bench_speculate_h100.json --profile-dir devresults/prof; \
  $BS --drafter aux --json devresults/bench_speculate_h100_aux.json; $G --stages sid,aux,sasrec" &
lane 2 loo timeout ${T2:-560} $X --only dropout_01 &
lane 3 beauty timeout ${T3:-560} $B --stages sid,tiger,sasrec &
wait
grep -h "^\[\|rows/s\|recs/s\|Error\|error:" devresults/lane_*.log | grep -v "it/s\|running\|up to date" | tail -30
pack call1 devresults devruns/*/*/stage.json devruns/*/*/tiger_train_info.json devruns/*/pipeline_log.json \
  devruns/*/tiger/config.json
ls -la "$OUT"
