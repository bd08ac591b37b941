#!/usr/bin/env bash
# Release 22 (1 GPU): release 21's change 2 undone (guided drafts copy their parent beam's cache rows again before the
# verification pass; `TIGER._decode` lost its `past_rows`), which release 21 measured as no gain; issue 15's three
# operating points re-measured on this code in one process, each with 256 reference rows (the repeat with 16).
#   PART=1: the run of record (δ50 β30 γ -1.4), a repeat, the tuned point (δ100 β30 γ -1.6) and SpecGR_Aux (δ50 β30
#           γ -1.4), test split, --compile --compile-encoder --cuda-graph
#   PART=2: the GPU tests of the changed code (tiger, scoring, beam, speculate), then the rest of the GPU tests
#   PART=3: scripts/gpu/47_kernel_profile.py on this code (its kernel kinds classified in the corrected order)
#   PART=4: the run of record's setting three times in one process, 64 reference rows each, with the differing rows
#           listed (`reference_differing_rows`): do repeats flip the same near-ties?
#   PART=5: call 1's first two runs again (256, then 16 reference rows) with Dynamo's recompilations logged: does the
#           second run hit the recompile limit (and decode some shapes eagerly)?
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-48).
source scripts/gpu/common.sh
export BENCH_RELEASE=release22
D=devresults/copy_parent_cache; rm -rf $D; mkdir -p $D
FLAGS="--compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  OUT=$D timeout 560 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" official="--ref-rows 256" \
    official_2="--ref-rows 16" tuned="--delta 100 --gamma -1.6 --ref-rows 256" aux="--drafter aux --ref-rows 256" \
    2>&1 | quiet
  cp $D/*.json $OUT/ ;;
2)
  timeout 280 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_scoring.py tests/test_beam.py \
    tests/test_speculate.py 2>&1 | tail -4
  echo "== tests of the changed code $(( $(date +%s) - t0 )) s"
  timeout 290 python3 -m pytest -q -m gpu tests --ignore tests/test_tiger.py --ignore tests/test_scoring.py \
    --ignore tests/test_beam.py --ignore tests/test_speculate.py 2>&1 | tail -6 ;;
3)
  timeout 400 python3 scripts/gpu/47_kernel_profile.py $D 2>&1 | quiet | tail -40
  cp $D/kernel_profile.json $OUT/kernel_profile_release22.json ;;
4)
  OUT=$D timeout 500 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" repeat_1="--ref-rows 64" \
    repeat_2="--ref-rows 64" repeat_3="--ref-rows 64" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
5)
  OUT=$D TORCH_LOGS=recompiles timeout 500 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" \
    limit_1="--ref-rows 256" limit_2="--ref-rows 16" > $D/recompiles.log 2>&1
  grep -v "^W1\|Online softmax\|split the reduction\|important use case\|softmax\.$\|^$" $D/recompiles.log \
    | grep -i "recompil\|limit\|^limit_" | cut -c1-300 | sort | uniq -c | sort -rn | head -40
  cp $D/*.json $D/recompiles.log $OUT/ ;;
esac
echo "== end $(( $(date +%s) - t0 )) s"
