#!/usr/bin/env bash
# Release 30 (one H100): issue 15's runs of record on the final code of release 29 (one memory pool, beam states let
# go after capture; row order, the default). Release 28's run of record predates both changes.
#   PART=1: the quick-start point with 2,048 one-user reference rows and the phase times (as 58_record_2048.sh)
#   PART=2: the tuned point (δ100 β30 γ−1.6) and SpecGR_Aux in one process, 256 reference rows each (as release 25)
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-66).
source scripts/gpu/common.sh
export BENCH_RELEASE=release30
D=devresults/record_final; rm -rf $D; mkdir -p $D
FLAGS="--compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  bench $D release30_official_2048 timeout 560 python3 benchmarks/bench_speculate.py $BENCH_GAMES $FLAGS \
    --ref-rows 2048 --no-eager-reference --phase-times ;;
2)
  OUT=$D timeout 560 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS --no-eager-reference" \
    tuned="--delta 100 --gamma -1.6 --ref-rows 256" aux="--drafter aux --ref-rows 256" > $D/run.log 2>&1
  grep "^tuned\|^aux\|Error\|error" $D/run.log | cut -c1-400 ;;
esac
echo "== done $(( $(date +%s) - t0 )) s"; tail -4 $D/*.log | quiet | sed "s#$PWD#.#g"
cp $D/*.json $OUT/
