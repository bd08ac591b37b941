#!/usr/bin/env bash
# Releases 24-25: two CUDA kernels for decoding, each a switch of TIGER (both opt-in at the end of release 24, whose
# calls 1-5 ran at commits where they were on by default, so the flags below name what each call ran; the epilogue on
# by default since release 25, so the settings without it below say --no-relu-epilogue):
#   `--relu-epilogue`         the feed-forward's ReLU in its first GEMM's epilogue (TIGER.relu_epilogue)
#   `--cudnn-cross-attention` decoding's cross-attention in cuDNN's kernel (TIGER.cudnn_cross_attention)
# Issue 15's setting throughout (test split, --compile --compile-encoder --cuda-graph).
#   PART=1: speed only (--ref-rows 0): the epilogue on and off, alternating, two runs each, in one process
#   PART=2: scripts/gpu/51_ff_attention_micro.py (the feed-forward and the cross-attention alone), the GPU tests of
#           the changed code, then the kernel profile (scripts/gpu/47_kernel_profile.py) with the epilogue on
#   PART=3: speed only: cuDNN's cross-attention on and off (epilogue on), alternating, two runs each; its GPU tests
#   PART=4: issue 15's three operating points with both on, in one process: 256 reference rows for the official
#           point, 64 for the others (to fit the device time left)
#   PART=5: the official point with the epilogue only: which switch lowers the agreement? (call 5 ran it with 128
#           reference rows and `timeout 280`, the device time left, and ran out before writing its result)
#   PART=6: the same with cuDNN's cross-attention only (release 25 ran PART=5 and 6 as PART=7)
#   PART=7 (release 25, 4 GPUs, one lane each, at once; --kind nvidia-h100-x4): PART=5 and PART=6 with 256 reference
#           rows each, and the tuned and SpecGR_Aux points with the epilogue only (256 reference rows each); then, on
#           the cuDNN lane, the GPU tests of both switches (ran on 4 H200s)
#   PART=8 (release 25, one H100): the run of record with the epilogue on by default: issue 15's three operating points
#           in one process, 256 reference rows each (as release 23's 50_recompile_limit.sh PART=4)
#   PART=9 (release 25): the GPU tests of the model and the speculation loops, with the epilogue on by default
#   PART=10 (release 25, one H100): cuDNN's attention (and the epilogue) without CUDA graphs, compiled, 256 reference
#           rows: do the graphs or the compiled passes make cuDNN's lists depend on the batch?
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-50).
source scripts/gpu/common.sh
export BENCH_RELEASE=release24
D=devresults/relu_epilogue; rm -rf $D; mkdir -p $D
BASE="$BENCH_GAMES --compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  OUT=$D timeout 580 python3 scripts/gpu/bench_many.py "$BASE --ref-rows 0" epilogue_1="--relu-epilogue" \
    separate_1="--no-relu-epilogue" epilogue_2="--relu-epilogue" separate_2="--no-relu-epilogue" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
2)
  timeout 150 python3 scripts/gpu/51_ff_attention_micro.py $D/ff_attention_micro.json 2>&1 | quiet | cut -c1-300
  echo "== micro $(( $(date +%s) - t0 )) s"
  timeout 250 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 | tail -4
  echo "== tests $(( $(date +%s) - t0 )) s"
  RELU_EPILOGUE=1 timeout 200 python3 scripts/gpu/47_kernel_profile.py $D 2>&1 | quiet | tail -30
  cp $D/ff_attention_micro.json $OUT/
  cp $D/kernel_profile.json $OUT/kernel_profile_release24.json ;;
3)
  OUT=$D timeout 420 python3 scripts/gpu/bench_many.py "$BASE --ref-rows 0 --relu-epilogue" \
    cudnn_1="--cudnn-cross-attention" efficient_1="" cudnn_2="--cudnn-cross-attention" efficient_2="" 2>&1 | quiet
  timeout 120 python3 -m pytest -q -m gpu tests/test_tiger.py -k "cudnn or relu_epilogue" 2>&1 | tail -3
  cp $D/*.json $OUT/ ;;
4)
  OUT=$D timeout 540 python3 scripts/gpu/bench_many.py "$BASE --relu-epilogue --cudnn-cross-attention" \
    official="--ref-rows 256 --phase-times" tuned="--delta 100 --gamma -1.6 --ref-rows 64" \
    aux="--drafter aux --ref-rows 64" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
5)
  OUT=$D timeout 585 python3 scripts/gpu/bench_many.py "$BASE" official_epilogue="--ref-rows 256 --relu-epilogue" \
    2>&1 | quiet
  cp $D/*.json $OUT/ ;;
6)
  OUT=$D timeout 585 python3 scripts/gpu/bench_many.py "$BASE" \
    official_cudnn="--ref-rows 256 --cudnn-cross-attention --no-relu-epilogue" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
7)
  export BENCH_RELEASE=release25
  bm() { OUT=$D timeout ${T:-570} python3 scripts/gpu/bench_many.py "$BASE" "$@"; }
  lane 0 epilogue bm official_epilogue="--ref-rows 256 --relu-epilogue" &
  lane 1 cudnn bash -c "$(declare -f bm); BASE='$BASE' D=$D T=420 bm official_cudnn='--ref-rows 256 \
    --cudnn-cross-attention --no-relu-epilogue'; timeout 140 python3 -m pytest -q -m gpu tests/test_tiger.py \
    -k 'cudnn or relu_epilogue' 2>&1 | tail -3" &
  lane 2 tuned bm tuned_epilogue="--delta 100 --gamma -1.6 --ref-rows 256 --relu-epilogue" &
  lane 3 aux bm aux_epilogue="--drafter aux --ref-rows 256 --relu-epilogue" &
  wait
  for f in devresults/lane_*.log; do echo "== $f"; quiet < $f | tail -6 | cut -c1-600; done
  cp $D/*.json $OUT/ ;;
8)
  export BENCH_RELEASE=release25
  OUT=$D timeout 585 python3 scripts/gpu/bench_many.py "$BASE" official="--ref-rows 256 --phase-times" \
    tuned="--delta 100 --gamma -1.6 --ref-rows 256" aux="--drafter aux --ref-rows 256" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
10)
  export BENCH_RELEASE=release25
  OUT=$D timeout 585 python3 scripts/gpu/bench_many.py "$BENCH_GAMES --compile --compile-encoder" \
    official_cudnn_ungraphed="--ref-rows 256 --cudnn-cross-attention" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
9)
  timeout 400 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 | tail -4 ;;
esac
echo "== end $(( $(date +%s) - t0 )) s"
