#!/usr/bin/env bash
# Release 9, GPU calls 1-4 and 5 (1 GPU; re-run on the same warm machine until both lanes end: finished stages are
# skipped, a cut TIGER resumes from its last.pt): the amazon2014-beauty pipeline twice, side by side on one GPU, tuned
# on valid, test once. Lane "base": the preset as it is (the same-call baseline); lane "text": one change, a TIGER that
# reads each history item's MiniLM title embedding (tiger.text_dim=384, docs/METHOD.md §9). Every other stage (aux,
# SASRec, tuning) runs on the same preset and seeds in both lanes. Calls 1-4 tuned without the unseen floor
# (the code had no floor then; now: --set tune.unseen_floor=0); call 5 with the floor, cut after both TIGERs when the
# session's device time ran out. Each lane's process may hold at most 45% of the GPU's memory: in calls 2 and 3 one
# lane's tune or evaluate stage ran out of memory while the other's allocator cache held 62 GB. Both lanes name
# tiger.text_dim, since the preset reads item texts now (it did not when this ran).
# Carry (.carry, here): python scripts/gpu/carry.py pack --data-root data/processed --datasets amazon2014-beauty
#   --embeddings amazon2014-beauty:sentence-transformers/all-MiniLM-L6-v2
#   --tokenizers amazon2014-beauty/rqkmeans_tokenizer.pt, and the sid stage's record (specgr pipeline --dataset
#   amazon2014-beauty --preset amazon2014-beauty --stages sid --data-root data/processed --runs R) in .carry/runs/.
source scripts/gpu/common.sh
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
beauty() {  # beauty LANE OVERRIDES...
  local name=$1; shift
  mkdir -p "devruns/$name" "devresults/$name"
  [ -d .carry/runs ] && cp -r --update=none .carry/runs/. "devruns/$name/"
  lane 0 "$name" timeout "${T:-555}" python3 -c "import sys, torch; torch.cuda.set_per_process_memory_fraction(0.45)
from specgr.cli import main; sys.exit(main(sys.argv[1:]))" pipeline --data-root devdata/processed \
    --runs "devruns/$name" --results "devresults/$name" --dataset amazon2014-beauty --preset amazon2014-beauty \
    --set tune.on_edge=warn tune.max_widen=8 "$@" --stages sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate
}
beauty base tiger.text_dim=0 &
beauty text tiger.text_dim=384 &
wait
for name in base text; do
  echo "== $name"; grep -h "^\[\|Error\|error:" "devresults/lane_$name.log" | grep -v "it/s\|up to date" | tail -25
done
pack state devresults devruns/*/amazon2014-beauty/*/stage.json devruns/*/amazon2014-beauty/tiger/tiger_train_info.json \
  devruns/*/amazon2014-beauty/pipeline_log.json
[ -d devruns/text/amazon2014-beauty/export/bundle ] && pack bundle_text devruns/text/amazon2014-beauty/export/bundle
ls -la "$OUT"
