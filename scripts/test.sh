#!/usr/bin/env bash
# The test command: set up the machine (idempotent), build, run the whole suite under ctest,
# then build again with AddressSanitizer + UndefinedBehaviorSanitizer and run it once more. The
# parallel engine's tests launch mpirun (OpenMPI, 1 thread per rank, --oversubscribe).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase prints how long it took, so a slow CI run shows where its minutes went.
start=$SECONDS
timed() {
  local t0=$SECONDS
  "$@"
  echo "test.sh: '$*' took $((SECONDS - t0)) s ($((SECONDS - start)) s in all)"
}
timed bash scripts/setup.sh
# ctest runs two test processes at once on 2 cores, so idle OpenMP workers sleep rather than spin.
export OMP_WAIT_POLICY=PASSIVE
timed bash scripts/build.sh build
(cd build && timed ctest -j2 --output-on-failure)
timed bash scripts/build.sh build-asan -DWAFER_SANITIZE=ON -DWAFER_NATIVE=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 timed ctest -j2 --output-on-failure -LE 'mpi|multihost')
# The mpirun tests: OpenMPI keeps allocations alive until exit by design, so leak reports would
# be its own; every other check of the sanitizers stays on. The multi-host tests run once, in
# the optimised build: they test what crosses the network (timeouts measured in seconds), and
# the same code paths run under the sanitizers in the single-host mpirun tests.
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 timed ctest -j2 --output-on-failure -L mpi)
# The file loaders under libFuzzer (fuzz/): each harness replays its regression inputs, then
# fuzzes for 15 s from a fixed random seed, so every run tries the same inputs in the same order;
# scripts/fuzz.sh alone fuzzes from fresh seeds, which is how new findings are made.
WAFER_FUZZ_SEED=${WAFER_FUZZ_SEED:-1} WAFER_FUZZ_SECONDS=${WAFER_FUZZ_SECONDS:-15} timed bash scripts/fuzz.sh build-fuzz
