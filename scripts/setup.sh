#!/usr/bin/env bash
# One idempotent set-up shared by the demo and the test command: system packages, then a pinned venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_apt=0
for bin in espeak-ng flite festival text2wave ffmpeg; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
[ -e /usr/share/festival/voices/english/kal_diphone ] || need_apt=1
[ -e /usr/share/festival/voices/english/ked_diphone ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  echo "[setup] installing system packages (espeak-ng, flite, festival, voices, ffmpeg)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    espeak-ng libespeak-ng1 espeak-ng-data flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
    ffmpeg libsndfile1 >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.dualface-deps
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing pinned Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
