#!/usr/bin/env bash
# One borrowed GPU machine, one call: unpack a carried corpus (engine.data.pack), train the
# unseen-engine folds and the component ablations side by side on the one GPU for MINUTES each,
# run the CUDA benchmark, and leave half-precision checkpoints, logs and the bench report in $OUT.
#
#   here:   python -m engine.data.pack pack --data data/corpus_v2 --out .gpu/corpus.tar.xz
#   there:  PACK=.gpu/corpus.tar.xz MINUTES=6.5 bash scripts/gpu_session.sh
#   here:   bash scripts/gpu_session.sh --restore DIR_WITH_THE_RETURNED_FILES runs/gpu
#
# Every run uses configs/voices_fold_flite.json; the folds and ablations change one or two fields
# (engine.train --set); NAME-seedN repeats a run at another seed. Test it on CPU first:
# DEVICE=cpu MINUTES=0.2 RUNS="fold-flite no-dual-task-seed1".
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PY:-python3}

if [ "${1:-}" = "--restore" ]; then  # back here: unpack the returned bundles into run folders
  src=$2 dest=$3
  mkdir -p "$dest"
  for bundle in "$src"/checkpoints-*.tar "$src"/logs.tar.gz; do tar -xf "$bundle" -C "$dest"; done
  for half in "$dest"/*/best.half.safetensors; do
    $py -m engine.training.transport restore "$half" "$(dirname "$half")/best.safetensors" && rm "$half"
  done
  exit 0
fi

: "${PACK:?set PACK to the corpus pack (python -m engine.data.pack pack ...)}"
OUT=${OUT:-runs/gpu-session}
WORK=${WORK:-/tmp/dualface-gpu}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-6.5}
CONFIG=configs/voices_fold_flite.json
RUNS=${RUNS:-fold-flite fold-flite-seed1 fold-espeak fold-festival no-dual-task no-consistency no-mesh-attention teacher-forcing-only}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK/logs"
started=$(date +%s)

overrides() {  # the config fields a run changes; NAME-seedN runs NAME with seed N
  local name=$1 seed=""
  if [[ $name =~ ^(.+)-seed([0-9]+)$ ]]; then
    name=${BASH_REMATCH[1]}
    seed="--seed ${BASH_REMATCH[2]}"
  fi
  case $name in
    fold-flite) echo "$seed" ;;
    fold-espeak) echo "--set train_split=train-without-espeak --set val_split=val-without-espeak $seed" ;;
    fold-festival) echo "--set train_split=train-without-festival --set val_split=val-without-festival $seed" ;;
    no-dual-task) echo "--set dual_task=false $seed" ;;
    no-consistency) echo "--set consistency=false $seed" ;;
    no-mesh-attention) echo "--set mesh_attention=false $seed" ;;
    teacher-forcing-only) echo "--set teacher_forcing_only=true $seed" ;;
    *) echo "unknown run $1" >&2; return 1 ;;
  esac
}

{
  echo "[gpu] $(date -u) host $(hostname), $(nproc) cores"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $py -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
} | tee "$WORK/logs/session.log"

data=$WORK/corpus
if [ ! -d "$data" ]; then
  $py -m engine.data.pack unpack "$PACK" --out "$data" --workers "$(nproc)" || exit 1
fi
echo "[gpu] corpus unpacked after $(( $(date +%s) - started )) s" | tee -a "$WORK/logs/session.log"

if [ "$DEVICE" = cuda ]; then  # the GPU rows of the README table, on an idle GPU before training
  timeout "${BENCH_SECONDS:-100}" $py -m engine.bench --device cuda --threads 2 --repeats 3 --cli-durations "" \
    --long-seconds 0 --durations 60 --faceformer "" --widths "" --decode-durations "" --naive "" \
    --json "$WORK/logs/bench_cuda.json" >"$WORK/logs/bench_cuda.log" 2>&1 \
    || echo "[gpu] bench failed or ran out of time" | tee -a "$WORK/logs/session.log"
  echo "[gpu] bench done after $(( $(date +%s) - started )) s" | tee -a "$WORK/logs/session.log"
fi

launch() {  # NAME MINUTES [EXTRA...]: one training run in the background; its pid in $pid
  local name=$1 minutes=$2
  shift 2
  extra=$(overrides "$name") || exit 1
  # shellcheck disable=SC2086  # the overrides are separate words
  $py -m engine.train --config "$CONFIG" --data "$data" --out "$WORK/runs/$name" --device "$DEVICE" \
    --max-minutes "$minutes" --threads 1 --no-progress $extra "$@" >>"$WORK/logs/$name.log" 2>&1 &
  pid=$!
}
declare -A pids
for name in $RUNS; do launch "$name" "$MINUTES"; pids[$name]=$pid; done
sleep "${CHECK_AFTER:-75}"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >>"$WORK/logs/session.log" 2>&1
for name in $RUNS; do  # a run that died at once gets one more try in plain fp32 (mixed precision is the new part)
  if ! kill -0 "${pids[$name]}" 2>/dev/null && ! wait "${pids[$name]}"; then
    echo "[gpu] $name failed early; again in fp32" | tee -a "$WORK/logs/session.log"
    rm -rf "$WORK/runs/$name"
    launch "$name" "$(awk "BEGIN{print $MINUTES - ${CHECK_AFTER:-75} / 60}")" --set precision=fp32
    pids[$name]=$pid
  fi
done
failed=0
for name in $RUNS; do wait "${pids[$name]}" || failed=$((failed + 1)); done
echo "[gpu] training done after $(( $(date +%s) - started )) s, $failed run(s) failed" | tee -a "$WORK/logs/session.log"

# half-precision copies, two runs per bundle (the machine returns at most 8 files of 16 MiB)
set -- $RUNS
bundle=0
while [ $# -gt 0 ]; do
  members=()
  for name in "$1" "${2:-}"; do
    [ -n "$name" ] || continue
    dir=$WORK/runs/$name
    if [ -f "$dir/best.safetensors" ]; then
      $py -m engine.training.transport shrink "$dir/best.safetensors" "$dir/best.half.safetensors" >/dev/null \
        && members+=("$name/best.half.safetensors")
    fi
  done
  [ ${#members[@]} -gt 0 ] && tar -cf "$OUT/checkpoints-$bundle.tar" -C "$WORK/runs" "${members[@]}"
  bundle=$((bundle + 1))
  shift; [ $# -gt 0 ] && shift
done
mkdir -p "$WORK/runs/session" && cp "$WORK"/logs/* "$WORK/runs/session/"
# shellcheck disable=SC2046  # one word per file
tar -czf "$OUT/logs.tar.gz" -C "$WORK/runs" session $(cd "$WORK/runs" && ls -d */train_log.jsonl */best.json */config.json 2>/dev/null)
echo "[gpu] done after $(( $(date +%s) - started )) s"
