#!/usr/bin/env bash
# Release 23 (1 GPU): the compiled decoder no longer falls back to eager decoding past Dynamo's recompile limit
# (`TIGER.compile_decoder` raises it to 64), the one-user reference runs in the batched loop's inference mode (its
# no-grad tensors recompiled every structure), and bench_speculate.py also measures the agreement with the reference
# run eagerly (`reference_eager_agreement`). The kernel profile's per-phase GPU time counts each kernel once.
#   PART=1: issue 15's three operating points in one process (as release 22's call 1: test split, 256 reference rows,
#           --compile --compile-encoder --cuda-graph), the run of record with --phase-times; Dynamo's recompilations
#           logged: does any run still meet the limit?
#   PART=2: scripts/gpu/47_kernel_profile.py on this code: per-phase GPU time (`ranges`) that sums to the batch
#   PART=3: the GPU tests of the changed code (tiger, speculate), then the rest of the GPU tests
#   PART=4: the run of record again (256 reference rows), now with the lists' item sets compared too
#           (`reference_same_sets`, `reference_overlap`, and the same for the eager reference)
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-49).
source scripts/gpu/common.sh
export BENCH_RELEASE=release23
D=devresults/recompile_limit; rm -rf $D; mkdir -p $D
FLAGS="--compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  OUT=$D TORCH_LOGS=recompiles timeout 585 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" \
    official="--ref-rows 256 --phase-times" tuned="--delta 100 --gamma -1.6 --ref-rows 256" \
    aux="--drafter aux --ref-rows 256" > $D/run.log 2>&1
  grep "^official\|^tuned\|^aux\|Error\|error" $D/run.log | cut -c1-400
  echo "== recompilations per function, and limits met:"
  grep -o "Recompiling function [a-z_]*\|hit config.recompile_limit.*" $D/run.log | sort | uniq -c
  grep -v "^W1\|Online softmax\|split the reduction\|important use case\|softmax\.$\|^$" $D/run.log \
    | grep "Recompiling function\|recompile_limit" | cut -c1-200 > $D/recompiles.txt
  cp $D/*.json $D/recompiles.txt $OUT/ ;;
2)
  timeout 500 python3 scripts/gpu/47_kernel_profile.py $D 2>&1 | quiet | tail -40
  cp $D/kernel_profile.json $OUT/kernel_profile_release23.json ;;
3)
  timeout 300 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 | tail -4
  echo "== tests of the changed code $(( $(date +%s) - t0 )) s"
  timeout 270 python3 -m pytest -q -m gpu tests --ignore tests/test_tiger.py --ignore tests/test_speculate.py \
    2>&1 | tail -6 ;;
4)
  OUT=$D timeout 500 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" sets="--ref-rows 256" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
esac
echo "== end $(( $(date +%s) - t0 )) s"
