#!/usr/bin/env bash
# Release 6, GPU call 4 (1 H100): issue 15's benchmark, the previous code and the current one in the same run.
# Current: the beam's next decoder step is computed once per round and shared by the beam step and the verifier
# (specgr.models.beam.beam_advance): the first digit after a draft's beam prefix is read from it, not decoded per draft.
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game, and the previous commit's specgr/ and
# benchmarks/ in .carry/old/ (git worktree of HEAD; copied).
source scripts/gpu/common.sh
B="benchmarks/bench_speculate.py $BENCH_GAMES"
run() { bench "$OUT" "$@"; }
run before env PYTHONPATH=$PWD/.carry/old python3 .carry/old/$B
run after python3 $B
run before_again env PYTHONPATH=$PWD/.carry/old python3 .carry/old/$B
run after_again python3 $B
run after_tuned python3 $B --delta 100 --beta 30 --gamma -1.6
run after_aux python3 $B --drafter aux
