#!/usr/bin/env bash
# Release 27: the batched loop's agreement with its one-user reference on 2,048 rows instead of 256, to tell whether
# cuDNN's cross-attention (TIGER.cudnn_cross_attention, with release 26's one-query fix) really agrees less than the
# default memory-efficient kernel (release 26: 0.871 against 0.895 on 256 rows) or whether that is the spread of a
# small sample; and the same check in fp32 (no bf16 autocast), where only the loop's own exactness is left.
# Issue 15's setting throughout (test split, --compile --compile-encoder --cuda-graph, the epilogue on by default).
# One 2-GPU host: three processes at once (default and fp32 share card 0, cuDNN has card 1), so their recs/s are
# not this release's speed numbers; the agreement does not depend on what else runs.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-54).
source scripts/gpu/common.sh
export BENCH_RELEASE=release27
D=devresults/agreement_rows; rm -rf $D; mkdir -p $D
BASE="$BENCH_GAMES --compile --compile-encoder --cuda-graph --no-eager-reference --threads 10"
lane 0 default bench $D official_default_2048 timeout 540 python3 benchmarks/bench_speculate.py $BASE --ref-rows 2048 &
lane 0 fp32 bench $D official_fp32_1024 timeout 540 python3 benchmarks/bench_speculate.py $BASE --ref-rows 1024 \
  --fp32 &
lane 1 cudnn bench $D official_cudnn_2048 timeout 540 python3 benchmarks/bench_speculate.py $BASE --ref-rows 2048 \
  --cudnn-cross-attention &
wait
for f in devresults/lane_*.log; do echo "== $f"; tail -3 "$f" | cut -c1-400; done
for f in $D/*.log; do echo "== $f"; quiet < "$f" | tail -4 | cut -c1-300; done
cp $D/*.json $OUT/ 2>/dev/null; ls $OUT
