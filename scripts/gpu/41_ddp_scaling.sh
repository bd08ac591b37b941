#!/usr/bin/env bash
# Issue 18 (the multi-GPU run): the Games preset's training stages on 1, 2 (and 4) GPUs (same preset, same global
# batch, same seed; a second 1-GPU seed for the run-to-run noise), TIGER's test metrics for each, and SpecGR++ batch
# inference sharded over the GPUs. experiments/ddp_scaling.py turns what comes back into results/ddp_scaling*.json.
# NCCL settings: common.sh's (NVLink multicast off), nothing else.
#   PHASE=ddp NGPU=2 bash scripts/gpu/41_ddp_scaling.sh   # the NGPU-GPU run g<NGPU>s42 (TIGER, both SpecGR++ stages,
#                                                         # TIGER's test metrics), alone on the machine
#   PHASE=one LANES="0:g1s42:42 1:g1s43:43" bash ...      # runs side by side in the background, one per GPU set
#                                                         # (GPUS:NAME:SEED; "2,3:g2s42:42" is a 2-GPU lane); call
#                                                         # again with PHASE=one until every lane has ended
#   PHASE=infer NS="1 2" bash ...                         # sharded SpecGR++ inference on each GPU count of NS
# Carry: .carry/processed/amazon2018-game (with its RQ-KMeans ids). State stays in devruns/ devresults/ (warm machine).
# As run, release 15 (one 2-GPU H200 machine, docs/RESULTS.md §5): call 1 PHASE=ddp (505 s); call 2 PHASE=one T=570;
# call 3 PHASE=one T=400, then PHASE=infer, then `python3 -m pytest -m gpu tests/test_tiger_train.py -k two_gpu`.
# Release 16 (one 4-GPU machine): PHASE=ddp NGPU=4; then PHASE=one LANES="0:g1s42:42 1:g1s43:43 2,3:g2s42:42"
# (two calls); then PHASE=infer NS="1 2 4" and the GPU tests.
source scripts/gpu/common.sh
DS=amazon2018-game
ARGS="--dataset $DS --preset $DS --data-root devdata/processed"
mkdir -p devresults/ddp
say() { echo "== $* $(( $(date +%s) - t0 )) s"; }
# tiger_test NAME: TIGER's test metrics at beam widths 50 and 100 (the preset's evaluation width)
tiger_test() { for w in 50 100; do python3 scripts/gpu/tiger_eval.py "devruns/$1/$DS/tiger" "devdata/processed/$DS" \
  "devresults/ddp/$1_tiger_test_beam$w.json" --beams $w 2>&1 | tail -1; done; }
# train_run NAME SEED N: TIGER, then both SpecGR++ stages, on the N visible GPUs (torchrun when N > 1), then TIGER's
# test metrics. The SpecGR++ batch sizes are per device (docs/DISTRIBUTED.md): 1,024 / N each keeps the global batch.
train_run() {
  local name=$1 n=$3 run="python3 -m specgr.cli" dist="" sets="tiger_train.seed=$2 specgr_pp.seed=$2"
  if [ "$n" -gt 1 ]; then
    local b=$(( 1024 / n ))
    run="python3 -m torch.distributed.run --standalone --nproc_per_node $n -m specgr.cli"
    dist="--devices $n --strategy ddp"
    sets="$sets tiger_train.devices=$n tiger_train.num_nodes=1 tiger_train.strategy=ddp"
    sets="$sets specgr_pp.emb_batch_size=$b specgr_pp.gen_batch_size=$b specgr_pp.ft_batch_size=$b"
  fi
  say "$name: TIGER on $n GPU(s)"
  $run train tiger $ARGS --runs "devruns/$name" $dist --set $sets > "devresults/ddp/${name}_tiger.log" 2>&1 || return 1
  say "$name: SpecGR++ on $n GPU(s)"
  $run train specgr++ $ARGS --runs "devruns/$name" $dist --set $sets > "devresults/ddp/${name}_pp.log" 2>&1 || return 1
  say "$name: TIGER test"; tiger_test "$name"
}
export -f train_run tiger_test say; export DS ARGS t0

if [ ! -e devruns/sid.done ]; then  # the ids once (one process), copied into every run root
  python3 -m specgr.cli sid $ARGS --runs devruns/sid > devresults/ddp/sid.log 2>&1 || tail -5 devresults/ddp/sid.log
  for r in g4s42 g2s42 g1s42 g1s43; do mkdir -p "devruns/$r" && cp -rn devruns/sid/. "devruns/$r/"; done
  touch devruns/sid.done
fi

case "$PHASE" in
ddp)
  n=${NGPU:-2}; train_run "g${n}s42" 42 "$n"; echo "rc=$?"
  for f in devresults/ddp/g${n}s42_tiger.log devresults/ddp/g${n}s42_pp.log; do grep -v "it/s" "$f" | tail -3; done
  ;;
one)
  LANES=${LANES:-"0:g1s42:42 1:g1s43:43"}
  for lane in $LANES; do IFS=: read -r gpus name seed <<< "$lane"
    [ -e "devresults/ddp/$name.started" ] && continue
    touch "devresults/ddp/$name.started"
    n=$(tr ',' '\n' <<< "$gpus" | wc -l)
    CUDA_VISIBLE_DEVICES=$gpus setsid nohup bash -c "train_run $name $seed $n > devresults/ddp/$name.log 2>&1; \
      echo \$? > devresults/ddp/$name.rc" < /dev/null > /dev/null 2>&1 &
  done
  names=$(for lane in $LANES; do cut -d: -f2 <<< "$lane"; done)
  while [ $(( $(date +%s) - t0 )) -lt "${T:-560}" ]; do
    left=0; for n in $names; do [ -e "devresults/ddp/$n.rc" ] || left=1; done; [ $left = 0 ] && break; sleep 10; done
  for n in $names; do echo "$n rc=$(cat devresults/ddp/$n.rc 2>/dev/null || echo running)"
    tail -2 "devresults/ddp/$n.log"; done
  ;;
infer)
  for n in ${NS:-1 2}; do say "SpecGR++ inference on $n GPU(s)"
    python3 -m torch.distributed.run --standalone --nproc_per_node $n -m specgr.cli evaluate --method specgr++ \
      --checkpoint checkpoints/$DS --data-root devdata/processed --split test --batch-size 1024 \
      --json "devresults/ddp/infer_specgr++_g$n.json" > "devresults/ddp/infer_g$n.log" 2>&1; echo "rc=$?"
    tail -4 "devresults/ddp/infer_g$n.log"
  done
  ;;
*) echo "PHASE must be ddp, one or infer"; exit 2 ;;
esac
pack ddp devresults/ddp devruns/*/$DS/*/stage.json devruns/*/$DS/tiger/tiger_train_info.json devruns/*/$DS/tiger/logs
ls -la "$OUT"
