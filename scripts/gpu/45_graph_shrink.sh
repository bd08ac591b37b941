#!/usr/bin/env bash
# Release 20 (1 GPU): the graphed SpecGR loop that also shrinks (GraphedRecommender(shrink=True), the new default:
# once a batch's live users fit B/2, B/4, ... rows, its later rounds run on a chain of graphs of that size) against
# early exit alone (--graph-no-shrink, release 19's default), compiled, one process per PART (bench_many).
#   PART=1: the GPU tests of the graphed loop; valid rows at γ -2.2 and SpecGR_Aux at its paper-rule point (γ -2.6),
#           both ways; issue 15's setting (test rows, γ -1.4) with the new default and 256 reference rows
#   PART=2: issue 15's setting twice more each way, alternating; the tuned point (δ100 β30 γ -1.6) both ways; the
#           valid γ grid (-1.4, -1.8, -2.6, -3.0, -4.0, -inf) with shrinking
#           and where the time goes: valid rows at γ -1.8 and -2.2, both ways, with --phase-times (GPU time per phase)
#   PART=3: the phase times alone (in release 20's first version, calls 1-4, PART=2 did not run them)
#   PART=4: the compiled encoder (--compile-encoder, TIGER.compile_encoder) against the encoder eager, alternating:
#           issue 15's setting (256 reference rows with it), valid γ -2.2 and SpecGR_Aux γ -2.6, and its GPU test
# Files of the first version (moves to fewer rows run eagerly, calls 1-4) are results/speed/*release20_v1_*.json.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43, 44).
source scripts/gpu/common.sh
export BENCH_RELEASE=release20
D=devresults/graph_shrink; rm -rf $D; mkdir -p $D
run() { OUT=$D timeout "$1" python3 scripts/gpu/bench_many.py "$BENCH_GAMES --compile --cuda-graph" "${@:2}" 2>&1 \
  | grep -v "^W1\|warn"; }
V="--split valid --ref-rows 16"
case ${PART:-1} in
1)
  timeout 180 python3 -m pytest -q -m gpu tests/test_speculate.py -k "graphed or shrink" 2>&1 | tail -5
  echo "== tests $(( $(date +%s) - t0 )) s"
  run 400 valid_2.2_shrink="$V --gamma -2.2" valid_2.2_exit="$V --gamma -2.2 --graph-no-shrink" \
    aux_2.6_shrink="$V --drafter aux --gamma -2.6" aux_2.6_exit="$V --drafter aux --gamma -2.6 --graph-no-shrink" \
    official_shrink="--ref-rows 256" ;;
2)
  T="--ref-rows 16" TU="--ref-rows 16 --delta 100 --gamma -1.6"
  run 560 official_shrink_2="$T" official_exit_2="$T --graph-no-shrink" official_shrink_3="$T" \
    official_exit_3="$T --graph-no-shrink" tuned_shrink="$TU" tuned_exit="$TU --graph-no-shrink" \
    valid_1.4_shrink="$V --gamma -1.4" valid_1.8_shrink="$V --gamma -1.8" valid_2.6_shrink="$V --gamma -2.6" \
    valid_3.0_shrink="$V --gamma -3.0" valid_4.0_shrink="$V --gamma -4.0" valid_inf_shrink="$V --gamma=-inf" \
    valid_2.2_shrink_phases="$V --phase-times --gamma -2.2" valid_2.2_exit_phases="$V --phase-times --gamma -2.2 \
    --graph-no-shrink" valid_1.8_shrink_phases="$V --phase-times --gamma -1.8" \
    valid_1.8_exit_phases="$V --phase-times --gamma -1.8 --graph-no-shrink" ;;
3)
  P="$V --phase-times"
  run 500 valid_2.2_shrink_phases="$P --gamma -2.2" valid_2.2_exit_phases="$P --gamma -2.2 --graph-no-shrink" \
    valid_1.8_shrink_phases="$P --gamma -1.8" valid_1.8_exit_phases="$P --gamma -1.8 --graph-no-shrink"
  ;;
4)
  timeout 100 python3 -m pytest -q -m gpu tests/test_tiger.py -k compiled 2>&1 | tail -3
  E="--compile-encoder"
  run 440 official_enc="$E --ref-rows 256" official_noenc="--ref-rows 16" official_enc_2="$E --ref-rows 16" \
    official_noenc_2="--ref-rows 16" valid_2.2_enc="$V $E --gamma -2.2" valid_2.2_noenc="$V --gamma -2.2" \
    aux_2.6_enc="$V $E --drafter aux --gamma -2.6" aux_2.6_noenc="$V --drafter aux --gamma -2.6" ;;
esac
for f in $D/*phases.json; do [ -e "$f" ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['batched']
print(sys.argv[1].split('_', 3)[-1], {k: round(v, 2) for k, v in d['phase_ms_per_batch'].items()})" $f; done
pack graph_shrink_part${PART:-1} $D/*.json
echo "== end $(( $(date +%s) - t0 )) s"
