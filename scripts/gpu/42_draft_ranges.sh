#!/usr/bin/env bash
# Release 17 (1 GPU): guided rounds drafting from the prefixes' item ranges (SpecGRConfig.draft_ranges) against the
# catalog scan. PHASE=catalog: benchmarks/bench_catalog_size.py, 10^3-10^6 synthetic items, eager with the three
# settings, then CUDA-graphed with auto and off. PHASE=games: issue 15's benchmark (compiled + graphed) with the scan
# and with ranges, alternating, for both drafters; then the graph test of the ranges path.
# Carry: .carry/processed/amazon2018-game (python scripts/gpu/carry.py pack --datasets amazon2018-game).
source scripts/gpu/common.sh
D=devresults/ranges; mkdir -p $D
if [ "${PHASE:-catalog}" = catalog ]; then
  echo "== catalog, eager $(( $(date +%s) - t0 )) s"
  timeout 280 python3 benchmarks/bench_catalog_size.py --draft-ranges auto on off --json $D/bench_catalog_size.json
  echo "== catalog, graphed $(( $(date +%s) - t0 )) s"
  timeout 240 python3 benchmarks/bench_catalog_size.py --draft-ranges auto off --cuda-graph \
    --json $D/bench_catalog_size_graph.json
else
  i=0
  for run in ${RUNS:-off on off on aux_off aux_on}; do
    i=$((i + 1)); mode=${run#aux_}; extra=""; [ "$mode" != "$run" ] && extra="--drafter aux"
    bench $D "release17_${i}_$run" timeout 240 python3 benchmarks/bench_speculate.py $BENCH_GAMES \
      --ref-rows 16 --compile --cuda-graph --draft-ranges $mode $extra
  done
  [ -n "${TESTS:-}" ] && timeout 120 python3 -m pytest -q -m gpu tests/test_speculate.py -k graphed 2>&1 | tail -3
fi
cp $D/*.json "$OUT"/ 2>/dev/null
echo "== end $(( $(date +%s) - t0 )) s"
