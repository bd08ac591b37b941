#!/usr/bin/env bash
# Release 5, GPU call 5 (1 GPU, a fresh machine): the amazon2018-game pipeline's tune and evaluate stages on the models
# trained in calls 1-3 (scripts/gpu/16_games_beauty.sh), restored from what those calls brought back.
# Carry (.carry, here): python scripts/gpu/carry.py pack --datasets amazon2018-game --embeddings
#   amazon2018-game:sentence-transformers/all-MiniLM-L6-v2 --tokenizers amazon2018-game/rqkmeans_tokenizer.pt
# and .carry/restore/games.tgz.part* (devruns/amazon2018-game: export/bundle, sasrec.pt, every stage.json).
# As run (release 5, calls 5-7): the tune stage finished here; the export that follows it needs the tiger stage's
# directory, which was not restored, so call 7 ran the evaluate stage alone on the same warm machine:
#   python3 scripts/gpu/evaluate_restored.py amazon2018-game
source scripts/gpu/common.sh
cat .carry/restore/games.tgz.part* | tar xzf - && echo "restored"
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
timeout ${T:-570} python3 -m specgr.cli pipeline --data-root devdata/processed --runs devruns --results devresults \
  --dataset amazon2018-game --preset amazon2018-game --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate \
  > devresults/games_eval.log 2>&1
echo "rc=$?"
grep -h "^\[\|Error\|error:\|  [a-z].* test " devresults/games_eval.log | grep -v "it/s" | tail -40
pack state devresults/amazon2018-game devresults/games_eval.log devruns/amazon2018-game/*/stage.json \
  devruns/amazon2018-game/pipeline_log.json
