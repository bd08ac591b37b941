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
# (docs/RESULTS.md §3.0c).
# Every lane sets tune.on_edge=warn tune.max_widen=8: where the preset's own tuning (4 widenings, then an error) ends,
# this ends identically; where it would stop with an error, this records the edge in tune.json instead.
# With fewer than 4 GPUs, lanes share cards and each process may hold at most 45% of a card's memory.
# Carry (.carry, here): python scripts/gpu/carry.py pack --data-root data/processed --datasets amazon2018-game
#   --embeddings amazon2018-game:sentence-transformers/all-MiniLM-L6-v2
#   --tokenizers amazon2018-game/rqkmeans_tokenizer.pt
#   (only the preset's sid/rqkmeans.npz kept), the Beauty carry of scripts/gpu/33_beauty_text.sh beside it, and each
#   dataset's sid-stage record (specgr pipeline --stages sid --data-root devdata/processed --runs .carry/runs).
ls devresults/*.started > /dev/null 2>&1 && SKIP_UNPACK=1  # a later call: the lanes are reading devdata
source scripts/gpu/common.sh
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
NGPU=$(nvidia-smi -L | wc -l)
CAP=1.0; [ "$NGPU" -lt 4 ] && CAP=0.45
I=0
start() {  # start NAME DATASET OVERRIDES...: launch one pipeline in its own session, once per machine
  local name=$1 ds=$2; shift 2
  local gpu=$(( I % NGPU )); I=$(( I + 1 ))
  [ -e "devresults/$name.started" ] && return
  mkdir -p "devruns/$name" "devresults/$name"
  [ -d .carry/runs ] && cp -rn .carry/runs/. "devruns/$name/"
  touch "devresults/$name.started"
  CUDA_VISIBLE_DEVICES=$gpu setsid nohup bash -c 'python3 -c "import sys, torch
torch.cuda.is_available() and torch.cuda.set_per_process_memory_fraction($0)
from specgr.cli import main; sys.exit(main(sys.argv[1:]))" "${@:3}"; echo $? > "devresults/$2.rc"' \
    "$CAP" "$gpu" "$name" pipeline --data-root devdata/processed --runs "devruns/$name" --results "devresults/$name" \
    --dataset "$ds" --preset "$ds" --set tune.on_edge=warn tune.max_widen=8 "$@" \
    --stages "${STAGES:-sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate}" \
    > "devresults/lane_$name.log" 2>&1 < /dev/null &
  echo "started $name on GPU $gpu"
}
LANES="beauty beauty_seed games games_text"
start beauty amazon2014-beauty
start beauty_seed amazon2014-beauty tiger_train.seed=43 specgr_pp.seed=1 aux_train.seed=43 sasrec_train.seed=43
start games amazon2018-game
start games_text amazon2018-game tiger.text_dim=384
while [ $(( $(date +%s) - t0 )) -lt "${T:-560}" ]; do
  done_all=1; for n in $LANES; do [ -e "devresults/$n.rc" ] || done_all=0; done
  [ $done_all = 1 ] && break
  sleep 10
done
for n in $LANES; do
  echo "== $n rc=$(cat "devresults/$n.rc" 2>/dev/null || echo running)"
  grep -h "^\[\|Error\|error:" "devresults/lane_$n.log" | grep -v "it/s\|up to date" | tail -12
done
pack state devresults/*/ devresults/lane_*.log devruns/*/*/*/stage.json devruns/*/*/tiger/tiger_train_info.json \
  devruns/*/*/pipeline_log.json
ls -la "$OUT"
