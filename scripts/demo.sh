#!/usr/bin/env bash
# The demo (README: `make demo`): set everything up and run the main job on the recorded BOE
# samples with the smoke profile.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/bootstrap.sh
export BOEFLOW_PROFILE=smoke
boeflow services start
boeflow models smoke >/dev/null
boeflow models info
python -m boeflow_ops.demo "$@"
