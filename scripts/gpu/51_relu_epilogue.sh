#!/usr/bin/env bash
# Release 24 (1 GPU): the feed-forward's ReLU in its first GEMM's epilogue (`TIGER.relu_epilogue`, on by default),
# against a separate ReLU kernel (`--no-relu-epilogue`, release 23's decoding).
#   PART=1: issue 15's setting (test split, --compile --compile-encoder --cuda-graph), speed only (--ref-rows 0):
#           epilogue on and off, alternating, two runs each, in one process
#   PART=2: scripts/gpu/51_ff_attention_micro.py (the feed-forward and the cross-attention alone), the GPU tests of
#           the changed code, then the kernel profile (scripts/gpu/47_kernel_profile.py) on this code
#   PART=4: decoding's cross-attention in cuDNN's kernel (`TIGER.cudnn_cross_attention`, on by default) against the
#           memory-efficient kernel (`--no-cudnn-cross-attention`), as PART=1, then that GPU test
#   PART=3: issue 15's three operating points in one process, 256 reference rows each (the run of record), as
#           release 23's call 1
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-50).
source scripts/gpu/common.sh
export BENCH_RELEASE=release24
D=devresults/relu_epilogue; rm -rf $D; mkdir -p $D
FLAGS="--compile --compile-encoder --cuda-graph"
case ${PART:-1} in
1)
  OUT=$D timeout 580 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS --ref-rows 0" epilogue_1="" \
    separate_1="--no-relu-epilogue" epilogue_2="" separate_2="--no-relu-epilogue" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
2)
  timeout 150 python3 scripts/gpu/51_ff_attention_micro.py $D/ff_attention_micro.json 2>&1 | quiet | cut -c1-300
  echo "== micro $(( $(date +%s) - t0 )) s"
  timeout 250 python3 -m pytest -q -m gpu tests/test_tiger.py tests/test_speculate.py 2>&1 | tail -4
  echo "== tests $(( $(date +%s) - t0 )) s"
  timeout 200 python3 scripts/gpu/47_kernel_profile.py $D 2>&1 | quiet | tail -30
  cp $D/ff_attention_micro.json $OUT/
  cp $D/kernel_profile.json $OUT/kernel_profile_release24.json ;;
4)
  OUT=$D timeout 420 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS --ref-rows 0" cudnn_1="" \
    efficient_1="--no-cudnn-cross-attention" cudnn_2="" efficient_2="--no-cudnn-cross-attention" 2>&1 | quiet
  timeout 120 python3 -m pytest -q -m gpu tests/test_tiger.py -k "cudnn or relu_epilogue" 2>&1 | tail -3
  cp $D/*.json $OUT/ ;;
3)
  OUT=$D timeout 585 python3 scripts/gpu/bench_many.py "$BENCH_GAMES $FLAGS" \
    official="--ref-rows 256 --phase-times" tuned="--delta 100 --gamma -1.6 --ref-rows 256" \
    aux="--drafter aux --ref-rows 256" 2>&1 | quiet
  cp $D/*.json $OUT/ ;;
esac
echo "== end $(( $(date +%s) - t0 )) s"
