#!/usr/bin/env bash
# GPU call 2 (same machine, right after call 1): RQ-VAE semantic ids for Beauty, and one Beauty LOO TIGER run with
# the reference recipe at batch 256 as a first quality check of the new trainer.
source scripts/gpu/common.sh
for d in amazon2014-beauty-loo amazon2014-beauty; do
  python3 experiments/build_sids.py --data-root devdata/processed --dataset $d --name rqvae --method rqvae \
    --codebook-size 256 2>&1 | tail -1
done
echo "sids done $(( $(date +%s) - t0 )) s"
timeout ${BUDGET:-420} python3 experiments/run_tiger.py experiments/tiger_beauty_loo.yaml --data-root devdata/processed \
  --results devresults --runs devruns --only ${RUNS:-check_b256} 2>&1 | grep -v "Warning\|warn" | tail -5
echo "beauty check done $(( $(date +%s) - t0 )) s"
pack call2 devresults devdata/processed/amazon2014-beauty-loo/sid devdata/processed/amazon2014-beauty/sid
ls -la "$OUT"
