#!/usr/bin/env bash
# The main job on the embedded defaults: default head, bundled sample speech, shipped weights, headless Blender.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/python -m blender_addon animate --add-head \
  --audio engine/assets/sample_speech.wav --emotion happy --intensity 0.6 --captions \
  --render out/demo.mp4 --save out/demo.blend "$@"
echo "wrote out/demo.blend and out/demo.mp4"
