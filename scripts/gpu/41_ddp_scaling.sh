#!/usr/bin/env bash
# Issue 18 (the multi-GPU run), on a 2-GPU machine: the Games preset's training stages on 1 and 2 GPUs (same preset,
# same global batch, same seed; a second 1-GPU seed for the run-to-run noise), TIGER's test metrics for each, and
# SpecGR++ batch inference sharded over 1 and 2 GPUs. experiments/ddp_scaling.py turns what comes back into
# results/ddp_scaling.json. NCCL settings: common.sh's (NVLink multicast off), nothing else.
#   PHASE=ddp   bash scripts/gpu/41_ddp_scaling.sh   # call 1: the 2-GPU run (TIGER, then both SpecGR++ stages)
#   PHASE=one   bash scripts/gpu/41_ddp_scaling.sh   # call 2: two 1-GPU runs side by side (seeds 42, 43), in the
#                                                    # background; call again with PHASE=one until both have ended
#   PHASE=infer bash scripts/gpu/41_ddp_scaling.sh   # sharded SpecGR++ inference on 1 and 2 GPUs
# Carry: .carry/processed/amazon2018-game (with its RQ-KMeans ids). State stays in devruns/ devresults/ (warm machine).
# As run (release 15, one 2-GPU H200 machine, docs/RESULTS.md §5): call 1 PHASE=ddp (505 s); call 2 PHASE=one T=570;
# call 3 PHASE=one T=400, then PHASE=infer, then `python3 -m pytest -m gpu tests/test_tiger_train.py -k two_gpu`.
source scripts/gpu/common.sh
DS=amazon2018-game
ARGS="--dataset $DS --preset $DS --data-root devdata/processed"
RUN="python3 -m torch.distributed.run --standalone"
DDP_SETS="tiger_train.devices=2 tiger_train.num_nodes=1 tiger_train.strategy=ddp"
# the SpecGR++ batch sizes are per device (docs/DISTRIBUTED.md): half of them on each of 2 GPUs keeps the global batch
PP_HALF="specgr_pp.emb_batch_size=512 specgr_pp.gen_batch_size=512 specgr_pp.ft_batch_size=512"
mkdir -p devresults/ddp
say() { echo "== $* $(( $(date +%s) - t0 )) s"; }
# tiger_test NAME: TIGER's test metrics at beam widths 50 and 100 (the preset's evaluation width)
tiger_test() { for w in 50 100; do python3 scripts/gpu/tiger_eval.py "devruns/$1/$DS/tiger" "devdata/processed/$DS" \
  "devresults/ddp/$1_tiger_test_beam$w.json" --beams $w 2>&1 | tail -1; done; }
# one_gpu NAME SEED: a 1-GPU lane on the card CUDA_VISIBLE_DEVICES names (run in its own session)
one_gpu() {
  local name=$1 seed=$2 sets="tiger_train.seed=$2 specgr_pp.seed=$2"
  python3 -m specgr.cli train tiger $ARGS --runs "devruns/$name" --set $sets &&
  python3 -m specgr.cli train specgr++ $ARGS --runs "devruns/$name" --set $sets && tiger_test "$name"
}
export -f one_gpu tiger_test; export DS ARGS

if [ ! -e devruns/sid.done ]; then  # the ids once (one process), copied into every run root
  python3 -m specgr.cli sid $ARGS --runs devruns/sid > devresults/ddp/sid.log 2>&1 || tail -5 devresults/ddp/sid.log
  for r in g2s42 g1s42 g1s43; do mkdir -p "devruns/$r" && cp -rn devruns/sid/. "devruns/$r/"; done
  touch devruns/sid.done
fi

case "$PHASE" in
ddp)
  say "2-GPU TIGER"
  $RUN --nproc_per_node 2 -m specgr.cli train tiger $ARGS --runs devruns/g2s42 --devices 2 --strategy ddp \
    > devresults/ddp/g2s42_tiger.log 2>&1; echo "rc=$?"; grep -v "it/s" devresults/ddp/g2s42_tiger.log | tail -3
  say "2-GPU SpecGR++"
  $RUN --nproc_per_node 2 -m specgr.cli train specgr++ $ARGS --runs devruns/g2s42 --devices 2 --strategy ddp \
    --set $DDP_SETS $PP_HALF > devresults/ddp/g2s42_pp.log 2>&1; echo "rc=$?"
  grep -v "it/s" devresults/ddp/g2s42_pp.log | tail -3
  say "TIGER test"; tiger_test g2s42
  ;;
one)
  for lane in "0 g1s42 42" "1 g1s43 43"; do set -- $lane
    [ -e "devresults/ddp/$2.started" ] && continue
    touch "devresults/ddp/$2.started"
    CUDA_VISIBLE_DEVICES=$1 setsid nohup bash -c "one_gpu $2 $3 > devresults/ddp/$2.log 2>&1; echo \$? > \
      devresults/ddp/$2.rc" < /dev/null > /dev/null 2>&1 &
  done
  while [ $(( $(date +%s) - t0 )) -lt "${T:-560}" ]; do
    [ -e devresults/ddp/g1s42.rc ] && [ -e devresults/ddp/g1s43.rc ] && break; sleep 10; done
  for n in g1s42 g1s43; do echo "$n rc=$(cat devresults/ddp/$n.rc 2>/dev/null || echo running)"
    grep -v "it/s" "devresults/ddp/$n.log" | tail -2; done
  ;;
infer)
  for n in 1 2; do say "SpecGR++ inference on $n GPU(s)"
    $RUN --nproc_per_node $n -m specgr.cli evaluate --method specgr++ --checkpoint checkpoints/$DS \
      --data-root devdata/processed --split test --batch-size 1024 --json "devresults/ddp/infer_specgr++_g$n.json" \
      > "devresults/ddp/infer_g$n.log" 2>&1; echo "rc=$?"; tail -4 "devresults/ddp/infer_g$n.log"
  done
  ;;
*) echo "PHASE must be ddp, one or infer"; exit 2 ;;
esac
pack ddp devresults/ddp devruns/*/$DS/*/stage.json devruns/*/$DS/tiger/tiger_train_info.json devruns/*/$DS/tiger/logs
ls -la "$OUT"
