#!/usr/bin/env bash
# Run pipeline stages on the lent GPU (device tool) over processed data prepared here on the CPU.
#   bash scripts/gpu/pipeline.sh PRESET STAGES [--set k=v ...]
# Inputs: .carry/processed/<dataset>/ (and optionally .carry/restore/*.tgz.part* from an earlier call).
# State lives in devdata/ devruns/ devresults/ (not carried, so a warm machine keeps it between calls).
# Outputs under $OUT: the log and a split tarball of the light stage outputs (no Lightning optimizer checkpoints).
set -o pipefail
preset=$1; stages=$2; shift 2
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/gpu.txt"
mkdir -p devdata/processed
for d in .carry/processed/*; do [ -d "devdata/processed/$(basename $d)" ] || cp -r "$d" devdata/processed/; done
if ls .carry/restore/*.part* >/dev/null 2>&1 && [ ! -f devruns/.restored ]; then
  cat .carry/restore/*.part* | tar xzf - && mkdir -p devruns && touch devruns/.restored && echo "restored earlier outputs"
fi
t0=$(date +%s)
python3 -m specgr.cli pipeline --preset "$preset" --data-root devdata/processed --runs devruns \
  --results devresults --stages "$stages" "$@" 2>&1 \
  | grep --line-buffered -v "it/s\]\|Tip\|TPU available\|LOCAL_RANK\|GPU available\|Seed set\|num_workers\|LeafSpec\|^\s*warn" \
  | tee -a "$OUT/pipeline_${preset}.log"
rc=$?
echo "pipeline rc=$rc wall=$(( $(date +%s) - t0 )) s" | tee -a "$OUT/pipeline_${preset}.log"
# what comes back: results, the exported bundle, stage records (model weights other than the bundle stay there)
tar czf - devresults devruns/*/export/bundle devruns/*/*/stage.json devruns/*/*/info.json \
  devruns/*/tiger/tiger_train_info.json devruns/*/pipeline_log.json devdata/processed/*/sid/*.json 2>/dev/null \
  | split -b 15M - "$OUT/state_${preset}.tgz.part"
ls -la "$OUT"
exit $rc
