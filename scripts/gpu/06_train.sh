#!/usr/bin/env bash
# Release 3, GPU call 1 (2 GPUs), two lanes; call 2 (07_evaluate.sh) follows on the same warm machine.
#   0: speculation benchmarks (small-key attention; the aux-drafter one failed here for want of the embeddings)
#      -> Beauty (timestamp) TIGER, dropout 0.1 -> Beauty SpecGR++
#   1: Beauty LOO, the full-budget recipe with dropout 0.1
# (The Games SpecGR_Aux evaluation first ran here too, and failed: the aux drafter reads the item embeddings, which
# did not fit this call's 64 MiB; 08_speed_games.sh ran it.)
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game amazon2014-beauty \
#   amazon2014-beauty-loo
source scripts/gpu/common.sh
P="python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults"
B="$P --dataset amazon2014-beauty --preset amazon2014-beauty"  # dropout 0.1: the preset
X="python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed --results devresults --runs devruns"
BS="python3 benchmarks/bench_speculate.py --checkpoint checkpoints/amazon2018-game --data-root devdata/processed \
  --rows 20000 --batch-size 1024 --device cuda --latency-users 0"
mkdir -p devdata/processed/amazon2018-game/sid
cp -n checkpoints/amazon2018-game/sid_tokenizer.pt devdata/processed/amazon2018-game/sid/rqvae_tokenizer.pt
lane 0 speed_beauty timeout ${T0:-570} bash -c "$BS --json devresults/bench_speculate_h100.json --profile-dir devresults/prof; \
  $BS --drafter aux --json devresults/bench_speculate_h100_aux.json; $B --stages sid,tiger,specgr_pp" &
lane 1 loo timeout ${T1:-570} $X --only dropout_01 &
wait
grep -h "^\[\|rows/s\|recs/s\|R@50\|Error\|error:" devresults/lane_*.log | grep -v "it/s\|running\|up to date" | tail -30
pack call1 devresults devruns/*/*/stage.json devruns/*/*/tiger_train_info.json devruns/*/pipeline_log.json
pack call1_beauty devruns/amazon2014-beauty/tiger/config.json devruns/amazon2014-beauty/tiger/tiger.pt
ls -la "$OUT"
