# Sourced by the GPU harness scripts: environment, data unpacking, and a helper that tars results into $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # never NVLink multicast
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" devdata devruns devresults
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/gpu.txt"
# a later call of a script whose pipelines outlive a call (lanes.sh and 41_ddp_scaling.sh mark each started lane):
# they are reading devdata, so it is not unpacked again
started() { compgen -G "devresults/*.started" > /dev/null || compgen -G "devresults/*/*.started" > /dev/null; }
[ -d .carry/processed ] && ! started && python3 scripts/gpu/carry.py unpack
# pack DEST.tgz PATHS...: what comes back (files under $OUT, 16 MiB each at most)
pack() { local f=$1; shift; tar czf - "$@" 2>/dev/null | split -b 15M -d - "$OUT/$f.part"; }
t0=$(date +%s)
# lane GPU NAME CMD...: run CMD on one GPU, its output in devresults/${LANE_LOG:-lane}_NAME.log, and say when it ended
lane() { local gpu=$1 name=$2; shift 2; ( export CUDA_VISIBLE_DEVICES=$gpu; "$@" ) \
  > "devresults/${LANE_LOG:-lane}_$name.log" 2>&1; local rc=$?; echo "lane $name done at $(( $(date +%s) - t0 )) s rc=$rc"; }
# issue 15's benchmark setting: the shipped checkpoint, the first 20,000 Games test rows, batches of 1,024
BENCH_GAMES="--checkpoint checkpoints/amazon2018-game --data-root devdata/processed --rows 20000 --batch-size 1024
  --device cuda --latency-users 0"
# quiet: a filter for compiled runs' logs, without torch's and Inductor's warnings (pytest's summary line, which counts
# warnings, stays: release 25's filter dropped it)
quiet() { grep -v "^W1\|Warning:\|warnings\.warn\|Online softmax\|split the reduction\|important use case\|softmax\.$\|^$"; }
# bench DIR NAME CMD...: one bench_speculate.py run -> DIR/bench_speculate_h100_NAME.json (log: DIR/NAME.log), one line
bench() { local dir=$1 name=$2; shift 2; echo "== $name $(( $(date +%s) - t0 )) s"
  "$@" --json "$dir/bench_speculate_h100_$name.json" > "$dir/$name.log" 2>&1 || tail -5 "$dir/$name.log"
  python3 scripts/gpu/bench_many.py --summary "$dir/bench_speculate_h100_$name.json"; }
