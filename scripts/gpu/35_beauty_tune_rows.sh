#!/usr/bin/env bash
# Release 11, GPU calls 1..N (a 4-GPU machine, one pipeline per card; call again on the same warm machine until every
# lane has ended: the lanes run in their own process sessions, so they outlive a call, and each call waits up to T s
# and brings back what has finished). Four Beauty pipelines on the preset, each tuned on 8,192 valid rows instead of
# the preset's 2,048 (tune.valid_rows=8192: release 10 missed Beauty by 0.00007 of N@50, while the tuning objective's
# noise on 2,048 rows is larger than every margin it resolved), and tested once:
#   beauty:       the preset, the run of record unless label smoothing wins on valid
#   beauty_ls:    one change, TIGER trained with label smoothing 0.1 (issue 14's optional item; it lends probability
#                 to codes no training target had, which is what a new item's likelihood lacks)
#   beauty_seed, beauty_ls_seed: the same two with every training seed moved by one (run-to-run spread; label
#                 smoothing is adopted only if it raises SpecGR_Aux fair's valid objective under both seeds)
# Lanes, tuning switches and what each call brings back: scripts/gpu/lanes.sh.
# Carry (.carry, here): that of scripts/gpu/34_presets_floor.sh. With release 11's results in the tree the whole
# .carry no longer fits the transfer limit: carry .carry/processed/amazon2014-beauty and .carry/runs instead.
# As run: calls 1-2 on a 4-GPU H200 machine (T = 560, 575; 1,190 device-s); the machine went back, idle, before a
# third call. beauty and beauty_ls had ended; beauty_ls_seed was evaluating (its TIGER, tuning and part of its test
# files came back) and beauty_seed tuning (its TIGER record came back) (docs/RESULTS.md §3.0d).
source scripts/gpu/common.sh
source scripts/gpu/lanes.sh
LANES="beauty beauty_ls beauty_seed beauty_ls_seed"
SEED1="tiger_train.seed=43 specgr_pp.seed=1 aux_train.seed=43 sasrec_train.seed=43"
start beauty amazon2014-beauty tune.valid_rows=8192
start beauty_ls amazon2014-beauty tune.valid_rows=8192 tiger_train.label_smoothing=0.1
start beauty_seed amazon2014-beauty tune.valid_rows=8192 $SEED1
start beauty_ls_seed amazon2014-beauty tune.valid_rows=8192 tiger_train.label_smoothing=0.1 $SEED1
finish_lanes $LANES
