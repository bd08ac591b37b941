#!/usr/bin/env bash
# Release 17 (1 GPU): guided rounds drafting from the prefixes' item ranges (SpecGRConfig.draft_ranges) against the
# catalog scan. PHASES has catalog and/or games. catalog: benchmarks/bench_catalog_size.py, 10^3-10^6 synthetic
# items, eager, by cost (auto), ranges always (on) and the scan (off); with GRAPH=1 also CUDA-graphed, auto and off.
# games: issue 15's benchmark (compiled + graphed), one process per entry of RUNS: off | on | auto (16 reference
# rows), auto256 (256 reference rows: the benchmark of record), aux_<mode> (SpecGR_Aux; needs the MiniLM embeddings
# carried); TESTS=1 then runs the GPU graph tests.
# Carry: .carry/processed/amazon2018-game (python scripts/gpu/carry.py pack --datasets amazon2018-game).
source scripts/gpu/common.sh
D=devresults/ranges; mkdir -p $D
if [[ "${PHASES:-catalog}" == *catalog* ]]; then
  echo "== catalog, eager $(( $(date +%s) - t0 )) s"
  timeout 280 python3 benchmarks/bench_catalog_size.py --draft-ranges auto on off --json $D/bench_catalog_size.json
  if [ -n "${GRAPH:-}" ]; then
    echo "== catalog, graphed $(( $(date +%s) - t0 )) s"
    timeout 240 python3 benchmarks/bench_catalog_size.py --draft-ranges auto off --cuda-graph \
      --json $D/bench_catalog_size_graph.json
  fi
fi
if [[ "${PHASES:-}" == *games* ]]; then
  i=${FIRST:-0}
  for run in ${RUNS:-off auto off auto}; do
    i=$((i + 1)); mode=${run#aux_}; extra="--ref-rows 16"; [ "$mode" != "$run" ] && extra="$extra --drafter aux"
    [ "$mode" = auto256 ] && mode=auto extra="--ref-rows 256"
    bench $D "release17_${i}_$run" timeout 300 python3 benchmarks/bench_speculate.py $BENCH_GAMES --compile \
      --cuda-graph --draft-ranges $mode $extra
  done
  [ -n "${TESTS:-}" ] && timeout 120 python3 -m pytest -q -m gpu tests/test_speculate.py -k graphed 2>&1 | tail -3
fi
cp $D/*.json "$OUT"/ 2>/dev/null
echo "== end $(( $(date +%s) - t0 )) s"
