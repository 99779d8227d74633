#!/usr/bin/env bash
# The main job on the embedded defaults: default head, bundled sample speech, shipped weights, headless Blender.
# Starts from an empty scene (no startup cube), so the movie is the DualFace head in a portrait close-up.
# Extra options go to the command, e.g. `bash scripts/demo.sh --weights my.safetensors --resolution 512x512`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
started=$(date +%s)
.venv/bin/python -m blender_addon animate --add-head --empty-scene \
  --audio engine/assets/sample_speech.wav --emotion happy --intensity 0.6 --captions \
  --render out/demo.mp4 --save out/demo.blend "$@"
echo "wrote out/demo.blend and out/demo.mp4 in $(( $(date +%s) - started )) s"
