#!/usr/bin/env bash
# Builds llama.cpp for this machine, once, and prints the folder of its programs (llama-bench,
# llama-perplexity, llama-simple). Its source comes from the npm registry, the one source of
# code this machine reaches: the node-llama-cpp package carries the llama.cpp release it binds
# to as a git bundle (llama/gitRelease.bundle). The build is llama.cpp's own CMake build at its
# defaults for a local machine (GGML_NATIVE: every instruction this CPU has, AMX and VNNI
# included; OpenMP threads; static, so the folder can be renamed), which is how its users build
# it, and its fastest here.
# Usage: bash bench/llama_cpp.sh   (after scripts/setup.sh; about 10 minutes the first time)
set -euo pipefail
cd "$(dirname "$0")/.."
package=node-llama-cpp@3.22.1  # llama.cpp 0.5.0-dev, 2026-09-28
dir=third_party/llama.cpp
bin=$dir/build/bin
need=(llama-bench llama-perplexity llama-simple)
built() { for p in "${need[@]}"; do [ -x "$bin/$p" ] || return 1; done; }
if ! built; then
  echo "llama_cpp.sh: building llama.cpp from $package into $dir (once)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$package" > /dev/null && tar xzf ./*.tgz package/llama/gitRelease.bundle)
  rm -rf "$dir.partial"
  git -c advice.detachedHead=false clone -q "$tmp/package/llama/gitRelease.bundle" "$dir.partial"
  cmake -S "$dir.partial" -B "$dir.partial/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > "$tmp/cmake.log" 2>&1 \
    || { tail -20 "$tmp/cmake.log" >&2; exit 1; }
  cmake --build "$dir.partial/build" -j "$(nproc)" --target "${need[@]}" > "$tmp/build.log" 2>&1 \
    || { tail -30 "$tmp/build.log" >&2; exit 1; }
  rm -rf "$dir" && mv "$dir.partial" "$dir"  # a half-built tree never takes the name
fi
echo "$bin"
