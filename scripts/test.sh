#!/usr/bin/env bash
# The test command: set up the machine (idempotent), build, run the whole suite under ctest,
# then build again with AddressSanitizer + UndefinedBehaviorSanitizer and run it once more. The
# parallel engine's tests launch mpirun (OpenMPI, 1 thread per rank, --oversubscribe).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# ctest runs two test processes at once on 2 cores, so idle OpenMP workers sleep rather than spin.
export OMP_WAIT_POLICY=PASSIVE
bash scripts/build.sh build
(cd build && ctest -j2 --output-on-failure)
bash scripts/build.sh build-asan -DWAFER_SANITIZE=ON -DWAFER_NATIVE=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -j2 --output-on-failure -LE 'mpi|multihost')
# The mpirun tests: OpenMPI keeps allocations alive until exit by design, so leak reports would
# be its own; every other check of the sanitizers stays on. The multi-host tests run once, in
# the optimised build: they test what crosses the network (timeouts measured in seconds), and
# the same code paths run under the sanitizers in the single-host mpirun tests.
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest -j2 --output-on-failure -L mpi)
# The file loaders under libFuzzer (fuzz/): each harness replays its regression inputs, then
# fuzzes for WAFER_FUZZ_SECONDS (20 here; scripts/fuzz.sh alone defaults to 30).
WAFER_FUZZ_SECONDS=${WAFER_FUZZ_SECONDS:-20} bash scripts/fuzz.sh build-fuzz
