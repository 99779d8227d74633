#!/usr/bin/env bash
# The main job on the embedded defaults: the bundled sample speech on the complete DualFace head (eyes,
# teeth, tongue, skull; blinks, gaze and head motion), shipped weights, headless Blender, a three-quarter
# portrait with captions (scripts/demo.py builds the scene, then runs the headless command on it).
# Extra options go to the headless command, e.g. `bash scripts/demo.sh --resolution 512x512 --layers none`;
# `--frames docs/img` also saves a few frames as PNGs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
started=$(date +%s)
.venv/bin/python scripts/demo.py --out out --text-file engine/assets/sample_speech.script.txt "$@"
echo "wrote out/demo.blend and out/demo.mp4 in $(( $(date +%s) - started )) s"
