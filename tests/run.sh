#!/usr/bin/env bash
# Installs whatever is missing (Debian, as root), then runs every test: native on the Vulkan
# adapter (lavapipe when there is no GPU) and in headless Chromium through WebGPU.
# Idempotent: with everything installed it goes straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_PACK_VERSION=0.15.1
# wasm-bindgen-cli must equal the wasm-bindgen crate's version in Cargo.lock.
WASM_BINDGEN_VERSION=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')

missing=()
[ -n "$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null)" ] || missing+=(mesa-vulkan-drivers)
ldconfig -p | grep -q 'libvulkan.so.1 ' || missing+=(libvulkan1)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  echo "== installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install --quiet --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if [ "$(wasm-pack --version 2>/dev/null)" != "wasm-pack $WASM_PACK_VERSION" ]; then
  echo "== installing wasm-pack $WASM_PACK_VERSION"
  cargo install --quiet --force wasm-pack --version "$WASM_PACK_VERSION"
fi

echo "== native tests (cargo test --release)"
cargo test --release -- --nocapture 2>&1 | grep -v 'XDG_RUNTIME_DIR'
echo "== browser tests (wasm-pack test --headless --chrome)"
CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome --release -- --test web
