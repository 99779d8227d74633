#!/usr/bin/env bash
# Retrain the shipped weights from nothing: the corpus, the three training stages, the evaluation.
# Every stage resumes after an interruption (run the script again); finished stages are skipped.
# About 3.7 hours on 2 cores for the budgets below (corpora, three stages, the closure detector). Set DEVICE=cuda on a GPU machine.
#   bash scripts/train_shipped.sh            # -> runs/recipe/stage3/best.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python
DATA=${DATA:-data/corpus_v2}
DATA3=${DATA3:-data/corpus_v3}  # two more corpora of the same recipe, for the closure detector
DATA4=${DATA4:-data/corpus_v4}
OUT=${OUT:-runs/recipe}
DEVICE=${DEVICE:-auto}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ ! -d "$DATA" ]; then
  echo "[recipe] corpus: 2.5 h of TTS speech, seed 1 -> $DATA"
  $py -m engine.data.synth --hours 2.5 --out "$DATA" --workers "${WORKERS:-2}" --augment-prob 0.5 --seed 1 --quiet
fi

# stage NAME CONFIG MINUTES [INIT]: train one stage unless it finished; resume it if it was interrupted.
stage() {
  local name=$1 config=$2 minutes=$3 init=${4:-}
  local dir="$OUT/$name"
  if [ -f "$dir/.finished" ]; then echo "[recipe] $name: done"; return; fi
  local args=(--config "$config" --data "$DATA" --out "$dir" --seed 0 --device "$DEVICE" --max-minutes "$minutes" --threads 1 --no-progress)
  if [ -f "$dir/checkpoint.safetensors" ]; then
    args+=(--resume)
  elif [ -n "$init" ]; then
    args+=(--init "$init")
  fi
  echo "[recipe] $name: $config, $minutes min"
  $py -m engine.train "${args[@]}"
  touch "$dir/.finished"
}

stage stage1 configs/default.json 40
stage stage2 configs/finetune_captions.json 17 "$OUT/stage1/best.safetensors"
stage stage3 configs/voices_finetune.json 105 "$OUT/stage2/best.safetensors"

# the closure detector (engine.closure): trained on its own, on every training clip of three corpora
# (the voice corpus and two more of the same recipe, 3 h and 6 h)
for extra in "3 7 $DATA3" "6 13 $DATA4"; do
  read -r hours seed folder <<<"$extra"
  if [ ! -d "$folder" ]; then
    echo "[recipe] detector corpus: $hours h, seed $seed -> $folder"
    $py -m engine.data.synth --hours "$hours" --out "$folder" --workers "${WORKERS:-2}" --augment-prob 0.5 --seed "$seed" --quiet
  fi
done
if [ ! -f "$OUT/closure_detector.npz" ]; then
  echo "[recipe] closure detector: 25 min"
  $py -m engine.closure.train --data "$DATA" --data "$DATA3" --data "$DATA4" --view train --test test_voices \
    --out "$OUT/closure_detector.npz" --minutes 25 --seed 0
fi

$py -m engine.eval --protocol unseen-engine --data "$DATA" \
  --run "recipe=$OUT/stage3/best.safetensors@test_voices#$OUT/closure_detector.npz" --max-clips 60 --json "$OUT/eval_test_voices.json"
echo "[recipe] weights: $OUT/stage3/best.safetensors (copy it and its .json beside weights/ to ship it)"
echo "[recipe] closure detector: $OUT/closure_detector.npz (copy it to engine/assets/closure_detector.npz)"
