#!/usr/bin/env bash
# Configures and builds wafer. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# The default BUILD_DIR is build/ (Release, tuned for this CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
