#!/usr/bin/env bash
# Release 13, GPU calls 1..N (a 2-GPU machine, one pipeline per card; call again on the same warm machine until both
# lanes have ended, as scripts/gpu/lanes.sh says). Both presets end to end on the current code, whose tune stage adds
# the "learned" variant (SpecGRConfig.final_weights: the final list ranked by weights over the drafter score, V, the
# new flag and the digit log-probs, fitted on valid rows outside the tuning rows), beside paper, vnew and fair:
#   beauty: amazon2014-beauty on its preset, tuned on 8,192 valid rows (as release 11's run of record)
#   games:  amazon2018-game on its preset
# Two lanes, not four: four lanes on one host slowed each stage by up to 2.3x (release 10's Games lane against the
# same stages alone on one H100). Call 1 also runs the GPU tests on the second card while the lanes start.
# Carry: .carry/processed and .carry/runs (both datasets: fits the transfer limit once the tree lost its screenshot).
source scripts/gpu/common.sh
source scripts/gpu/lanes.sh
LANES="beauty games"
FIRST=0; [ -e devresults/beauty.started ] || FIRST=1
start beauty amazon2014-beauty tune.valid_rows=8192
start games amazon2018-game
if [ $FIRST = 1 ]; then
  CUDA_VISIBLE_DEVICES=1 python3 -m pytest -q -m gpu tests 2>&1 | tail -3 | tee devresults/gpu_tests.log
fi
finish_lanes $LANES
