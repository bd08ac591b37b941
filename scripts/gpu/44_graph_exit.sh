#!/usr/bin/env bash
# Release 19 (1 GPU): the graphed SpecGR loop with early exit (GraphedRecommender(early_exit=True), the new default:
# a graph per phase, a batch stops after the round where its last user finished) against the one-graph loop that
# runs every round (--graph-no-exit), compiled, one process per PART (bench_many: Inductor compiles each shape once).
#   PART=1: the GPU tests of the graphed loop; issue 15's setting (test rows, γ -1.4) both ways; valid rows at γ = -inf
#           (every draft accepted: every batch stops after round 1, the bound of docs/RESULTS.md §4, release 19)
#   PART=2: valid rows at γ -2.2 and -3.0, and SpecGR_Aux at its paper-rule point (γ -2.6), both ways
#   PART=3: issue 15's setting twice more each way, alternating; the tuned point (δ100 β30 γ -1.6) both ways; the rest
#           of the valid γ grid (-1.4, -1.8, -2.6, -4.0) both ways
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43).
source scripts/gpu/common.sh
export BENCH_RELEASE=release19
D=devresults/graph_exit; mkdir -p $D
run() { OUT=$D timeout "$1" python3 scripts/gpu/bench_many.py "$BENCH_GAMES --compile --cuda-graph" "${@:2}" 2>&1 \
  | grep -v "^W1\|warn"; }
V="--split valid --ref-rows 16"
case ${PART:-1} in
1)
  timeout 150 python3 -m pytest -q -m gpu tests/test_speculate.py -k graphed 2>&1 | tail -3
  echo "== tests $(( $(date +%s) - t0 )) s"
  run 420 official_exit="--ref-rows 256" official_whole="--graph-no-exit --ref-rows 16" \
    valid_inf_exit="$V --gamma=-inf" valid_inf_whole="$V --gamma=-inf --graph-no-exit" ;;
2)
  run 560 valid_2.2_exit="$V --gamma -2.2" valid_2.2_whole="$V --gamma -2.2 --graph-no-exit" \
    valid_3.0_exit="$V --gamma -3.0" valid_3.0_whole="$V --gamma -3.0 --graph-no-exit" \
    aux_2.6_exit="$V --drafter aux --gamma -2.6" aux_2.6_whole="$V --drafter aux --gamma -2.6 --graph-no-exit" ;;
3)
  T="--ref-rows 16" TU="--ref-rows 16 --delta 100 --gamma -1.6"
  run 560 official_exit_2="$T" official_whole_2="$T --graph-no-exit" official_exit_3="$T" \
    official_whole_3="$T --graph-no-exit" tuned_exit="$TU" tuned_whole="$TU --graph-no-exit" \
    valid_1.4_exit="$V --gamma -1.4" valid_1.4_whole="$V --gamma -1.4 --graph-no-exit" \
    valid_1.8_exit="$V --gamma -1.8" valid_1.8_whole="$V --gamma -1.8 --graph-no-exit" \
    valid_2.6_exit="$V --gamma -2.6" valid_2.6_whole="$V --gamma -2.6 --graph-no-exit" \
    valid_4.0_exit="$V --gamma -4.0" valid_4.0_whole="$V --gamma -4.0 --graph-no-exit" ;;
esac
pack graph_exit_part${PART:-1} $D/*.json
echo "== end $(( $(date +%s) - t0 )) s"
