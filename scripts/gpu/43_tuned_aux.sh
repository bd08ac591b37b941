#!/usr/bin/env bash
# Release 18 (1 GPU): issue 15's benchmark (compiled + graphed) at the tuned point (δ100 β30 γ−1.6) and with the
# SpecGR_Aux drafter, on the current code: guided rounds drafting from the prefixes' item ranges by default (auto),
# against the catalog scan (off), one process per entry of RUNS (<setting>_<mode>: setting aux | tuned, mode
# auto | off; auto runs check 256 reference rows, off runs 16).
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (the aux drafter's item vectors):
#   python scripts/gpu/carry.py pack --datasets amazon2018-game \
#       --embeddings amazon2018-game:sentence-transformers/all-MiniLM-L6-v2
source scripts/gpu/common.sh
D=devresults/tuned_aux; mkdir -p $D
for run in ${RUNS:-aux_auto aux_off tuned_auto tuned_off}; do
  setting=${run%_*} mode=${run#*_} refs=16
  case $setting in aux) extra="--drafter aux" ;; tuned) extra="--delta 100 --beta 30 --gamma -1.6" ;; esac
  [ "$mode" = auto ] && refs=256
  bench $D "release18_$run" timeout 280 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile --cuda-graph \
    --draft-ranges $mode --ref-rows $refs $extra
done
cp $D/*.json "$OUT"/ 2>/dev/null
echo "== end $(( $(date +%s) - t0 )) s"
