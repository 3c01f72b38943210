#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ASan + UBSan) and runs each under ctest: its
# regression inputs, then WAFER_FUZZ_SECONDS of fuzzing (default 30) from its seeds, or
# WAFER_FUZZ_RUNS inputs; WAFER_FUZZ_SEED fixes the random seed (fuzz/run_harness.sh).
# Usage: scripts/fuzz.sh [BUILD_DIR] (default build-fuzz); WAFER_FUZZ_SECONDS=600 for a long run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-fuzz}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DWAFER_FUZZ=ON -DBUILD_TESTING=OFF -DWAFER_MPI=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target wafer_fuzz
# One harness at a time: each is one process on one core, and the output stays readable.
(cd "$dir" && ctest -L fuzz -V)
