#!/usr/bin/env bash
# Release 21 (1 GPU): the verifier's decoder passes fused further, measured against release 20's code.
#   1. V without a scan kernel (`length_normalized`);
#   2. verification passes return no cache, and read their parent beam's cache rows inside the compiled pass
#      (`TIGER._decode(past_rows=..., want_cache=False)`);
#   3. the token log-probs compiled with the decoder (`TIGER._token_logprobs`: one fused reduction per chunk);
#   4. the beam cache reordered by one flat row index (`reorder_cache`; beam search's code too).
#   PART=1: the GPU tests of the changed code, then scripts/gpu/47_kernel_profile.py on it (call 1 of release 21 ran
#           that profile on release 20's code)
#   PART=2: issue 15's benchmark, release 20's code (./prev: `git archive a0ed69c specgr benchmarks scripts`, untracked,
#           carried beside) in one process, then this code in another (256 reference rows), both --compile
#           --compile-encoder --cuda-graph; then in the second process valid γ -2.2 and SpecGR_Aux γ -2.6
#   PART=3: change 2 alone, backwards: ./prev holds this code with change 2 undone (scoring.py copies each draft's
#           parent cache rows again, `past = [(k[flat], v[flat]) ...]`, and decoder_token_logprobs asks for the cache);
#           issue 15's benchmark twice in one process (call 5 ran this as an inline command, the same runs)
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-46).
source scripts/gpu/common.sh
export BENCH_RELEASE=release21
D=devresults/fused_verify; rm -rf $D; mkdir -p $D
FLAGS="--compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  timeout 240 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_scoring.py tests/test_beam.py \
    tests/test_speculate.py 2>&1 | tail -4
  echo "== tests $(( $(date +%s) - t0 )) s"
  timeout 330 python3 scripts/gpu/47_kernel_profile.py $D 2>&1 | quiet | tail -70
  cp $D/kernel_profile.json $OUT/kernel_profile_release21.json ;;
2)
  V="--split valid --ref-rows 16"
  PREV="${BENCH_GAMES//checkpoints\//../checkpoints/}"
  (cd prev && PYTHONPATH=$PWD OUT=../$D BENCH_RELEASE=release21_prev timeout 280 python3 scripts/gpu/bench_many.py \
    "${PREV//devdata/../devdata} $FLAGS" official="--ref-rows 16" official_2="--ref-rows 16" 2>&1 | quiet)
  echo "== prev $(( $(date +%s) - t0 )) s"
  OUT=$D timeout 290 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" official="--ref-rows 256" \
    official_2="--ref-rows 16" valid_2.2="$V --gamma -2.2" aux_2.6="$V --drafter aux --gamma -2.6" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
3)
  PREV="${BENCH_GAMES//checkpoints\//../checkpoints/}"
  (cd prev && PYTHONPATH=$PWD OUT=../$D BENCH_RELEASE=release21_no_past_rows timeout 280 python3 \
    scripts/gpu/bench_many.py "${PREV//devdata/../devdata} $FLAGS" official="--ref-rows 16" official_2="--ref-rows 16" \
    2>&1 | quiet)
  cp $D/*.json $OUT/ ;;
esac
echo "== end $(( $(date +%s) - t0 )) s"
