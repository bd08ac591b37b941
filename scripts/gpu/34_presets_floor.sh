#!/usr/bin/env bash
# Release 10, GPU calls 1..N (a 4-GPU machine, one pipeline per card; call again on the same warm machine until every
# lane has ended: the lanes run in their own process sessions, so they outlive a call, and each call waits up to T s
# and brings back what has finished). Four pipelines, each tuned on valid and tested once, every stage on the
# current presets, which since release 9 tune the fair variant under the unseen floor (tune.unseen_floor = 0.5):
#   beauty:       amazon2014-beauty on its preset (TIGER with item texts): the run of record for issue 14
#   beauty_seed:  the same with every training seed moved by one (TIGER, SpecGR++, aux, SASRec): run-to-run spread
#   games:        amazon2018-game on its preset: issue 14's Games row under the floor (release 5 ran before it)
#   games_text:   the same with one change, a TIGER that reads item texts (tiger.text_dim=384); valid decides
# As run: calls 1-3 on a 4-GPU H200 machine (T = 560, 570, 540); every lane ended during call 3
# (docs/RESULTS.md §3.0c). The lane code, unchanged, moved to scripts/gpu/lanes.sh in release 11.
# Carry (.carry, here): python scripts/gpu/carry.py pack --data-root data/processed --datasets amazon2018-game
#   --embeddings amazon2018-game:sentence-transformers/all-MiniLM-L6-v2
#   --tokenizers amazon2018-game/rqkmeans_tokenizer.pt
#   (only the preset's sid/rqkmeans.npz kept), the Beauty carry of scripts/gpu/33_beauty_text.sh beside it, and each
#   dataset's sid-stage record (specgr pipeline --stages sid --data-root devdata/processed --runs .carry/runs).
source scripts/gpu/common.sh
source scripts/gpu/lanes.sh
LANES="beauty beauty_seed games games_text"
start beauty amazon2014-beauty
start beauty_seed amazon2014-beauty tiger_train.seed=43 specgr_pp.seed=1 aux_train.seed=43 sasrec_train.seed=43
start games amazon2018-game
start games_text amazon2018-game tiger.text_dim=384
finish_lanes $LANES
