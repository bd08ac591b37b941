# Sourced after common.sh by the scripts that run whole pipelines side by side, one per card, each in its own process
# session so it outlives a call (34_presets_floor.sh, 35_beauty_tune_rows.sh): call the script again on the same warm
# machine until every lane has ended; each call waits up to T s and brings back what has finished. Every lane sets
# tune.on_edge=warn tune.max_widen=8: where the preset's own tuning (4 widenings, then an error) ends, this ends
# identically; where it would stop with an error, this records the edge in tune.json instead.
# Scripts set LANES (the lane names) before calling start: with more lanes than GPUs, lanes share cards and each
# process may hold at most 45% of a card's memory; otherwise the whole card. CAP=<fraction> overrides.
# AFTER (optional): a command each lane runs on its card once its pipeline has ended well, @NAME@ = the lane's name
# (e.g. an experiment on the lane's bundle); its output goes to devresults/after_NAME.log, and the lane's rc file is
# written after it.
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
NGPU=$(nvidia-smi -L | wc -l)
I=0
start() {  # start NAME DATASET OVERRIDES...: launch one pipeline in its own session, once per machine
  local name=$1 ds=$2; shift 2
  local gpu=$(( I % NGPU )); I=$(( I + 1 ))
  local n_lanes=$(echo ${LANES:-$name} | wc -w)
  local cap=${CAP:-1.0}; [ -z "${CAP:-}" ] && [ "$n_lanes" -gt "$NGPU" ] && cap=0.45  # shared cards: 45% each
  [ -e "devresults/$name.started" ] && return
  mkdir -p "devruns/$name" "devresults/$name"
  [ -d .carry/runs ] && cp -rn .carry/runs/. "devruns/$name/"
  touch "devresults/$name.started"
  CUDA_VISIBLE_DEVICES=$gpu setsid nohup bash -c 'python3 -c "import sys, torch
torch.cuda.is_available() and torch.cuda.set_per_process_memory_fraction($0)
from specgr.cli import main; sys.exit(main(sys.argv[1:]))" "${@:4}"; rc=$?
[ $rc = 0 ] && [ -n "$3" ] && bash -c "$3" > "devresults/after_$2.log" 2>&1; echo $rc > "devresults/$2.rc"' \
    "$cap" "$gpu" "$name" "${AFTER//@NAME@/$name}" pipeline --data-root devdata/processed --runs "devruns/$name" \
    --results "devresults/$name" \
    --dataset "$ds" --preset "$ds" --set tune.on_edge=warn tune.max_widen=8 "$@" \
    --stages "${STAGES:-sid,tiger,specgr_pp,aux,sasrec,export,tune,evaluate}" \
    > "devresults/lane_$name.log" 2>&1 < /dev/null &
  echo "started $name on GPU $gpu"
}
finish_lanes() {  # finish_lanes NAME...: wait until every lane has an rc (or T s passed), report, pack into $OUT
  while [ $(( $(date +%s) - t0 )) -lt "${T:-560}" ]; do
    local done_all=1 n; for n in "$@"; do [ -e "devresults/$n.rc" ] || done_all=0; done
    [ $done_all = 1 ] && break
    sleep 10
  done
  for n in "$@"; do
    echo "== $n rc=$(cat "devresults/$n.rc" 2>/dev/null || echo running)"
    grep -h "^\[\|Error\|error:" "devresults/lane_$n.log" | grep -v "it/s\|up to date" | tail -12
    [ -e "devresults/after_$n.log" ] && tail -2 "devresults/after_$n.log"  # AFTER's end: the rc is the pipeline's
  done
  pack state devresults/*/ devresults/lane_*.log devresults/after_*.log devruns/*/*/*/stage.json devruns/*/*/tiger/tiger_train_info.json \
    devruns/*/*/pipeline_log.json
  ls -la "$OUT"
}
