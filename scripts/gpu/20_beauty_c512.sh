#!/usr/bin/env bash
# Release 6, GPU calls 3.. (1 GPU; re-run on the same warm machine until it ends: finished stages are skipped, a cut
# TIGER resumes from its last.pt): the amazon2014-beauty pipeline on its preset with one change, RQ-KMeans codebook
# 512 (the change that won on Beauty LOO valid, docs/RESULTS.md §2.1), tuned on valid, test once.
# Carry (.carry, here): the C = 512 ids built here on the CPU into a copy of the processed dataset
#   (specgr pipeline --dataset amazon2014-beauty --preset amazon2014-beauty --stages sid --data-root D --runs R), then
#   python scripts/gpu/carry.py pack --data-root D --datasets amazon2014-beauty --embeddings
#   amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2 --tokenizers amazon2014-beauty/rqkmeans_tokenizer.pt
# and R/amazon2014-beauty copied to .carry/runs/ (the sid stage's record), so the GPU skips that stage.
source scripts/gpu/common.sh
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
[ -d .carry/runs ] && cp -r --update=none .carry/runs/. devruns/
lane 0 beauty timeout ${T:-570} python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns \
  --results devresults --dataset amazon2014-beauty --preset amazon2014-beauty \
  --set tune.on_edge=warn tune.max_widen=8 --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate
grep -h "^\[\|Error\|error:" devresults/lane_beauty.log | grep -v "it/s\|up to date" | tail -30
pack state devresults devruns/amazon2014-beauty/*/stage.json devruns/amazon2014-beauty/tiger/tiger_train_info.json \
  devruns/amazon2014-beauty/pipeline_log.json
ls -la "$OUT"
