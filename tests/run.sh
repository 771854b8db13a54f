#!/usr/bin/env bash
# Installs whatever is missing (Debian, as root), then runs every test: native on the Vulkan
# adapter (lavapipe when there is no GPU), data-parallel training under mpirun (the mpi feature,
# over Open MPI), the cooperative-matrix kernels on a newer lavapipe that has them
# (tests/lavapipe_coop.sh), the wasm API in headless Chromium through WebGPU, and the
# page end to end (tests/e2e/page.mjs) with checkpoints moving between the page and the native CLI.
# The native tests run exported ONNX models in onnxruntime and read TensorBoard files back with
# TensorBoard's reader: tests/requirements.txt, in the virtual environment target/pyenv.
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
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Debian's python3 has no venv (nor ensurepip) without python3-venv.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
# The mpi feature (tests/mpi.rs): Open MPI's launcher and development files, and libclang, with which
# the mpi crate generates its bindings.
command -v mpirun >/dev/null || missing+=(openmpi-bin)
dpkg -s libopenmpi-dev >/dev/null 2>&1 || missing+=(libopenmpi-dev)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
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

if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "== installing playwright-core into tests/e2e (it drives the system's Chromium; no browser download)"
  (cd tests/e2e && npm install --no-save --no-audit --no-fund --loglevel=error playwright-core@1)
fi

# Recreated whenever tests/requirements.txt changes, so it holds exactly the pinned set.
PYENV=target/pyenv
if ! cmp -s tests/requirements.txt "$PYENV/requirements.txt"; then
  echo "== installing the tests' Python packages into $PYENV (tests/requirements.txt)"
  rm -rf "$PYENV"
  python3 -m venv "$PYENV"
  "$PYENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$PYENV/requirements.txt"
fi

echo "== formatting, the README's size and lints (rustfmt, clippy natively without and with the mpi feature, and for wasm32)"
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
cargo fmt --check
# The README is read in five minutes: at most 25,000 bytes (tests/docs.rs checks it too, with its links).
readme_bytes=$(wc -c < README.md)
[ "$readme_bytes" -lt 25000 ] || { echo "README.md is $readme_bytes bytes, over 25,000: move details to docs/" >&2; exit 1; }
cargo clippy --release --all-targets -- -D warnings
# The mpi feature's code (src/train/mpi.rs, tests/mpi.rs).
cargo clippy --release --all-targets --features mpi -- -D warnings
# src/web.rs and tests/web.rs build only for the browser.
cargo clippy --release --lib --tests --target wasm32-unknown-unknown -- -D warnings

# The native tests run the mpi feature's build: it adds tests/mpi.rs (mpirun -n 1, 2 and 3), and
# started without a launcher the binary is the plain one (it never initialises MPI), so every other
# test runs what a build without the feature runs. The end-to-end part below uses a build without it.
echo "== native tests, data-parallel training under mpirun included (cargo test --release --features mpi)"
cargo test --release --features mpi -- --nocapture 2>&1 | grep -v 'XDG_RUNTIME_DIR'
# The system's lavapipe has no cooperative matrices; Mesa 26's has (8x8x8, f16 x f16 + f32), unpacked
# into target/lavapipe-coop by tests/lavapipe_coop.sh. On it the cooperative kernels run against their
# references (PGGAN_EXPECT_COOP makes the test fail if the adapter has none), and the mixed-precision
# step and two-colour training run their convolutions on them (mixed picks them where listed).
echo "== cooperative-matrix kernels, mixed step and training on Mesa 26's lavapipe (tests/lavapipe_coop.sh)"
PGGAN_EXPECT_COOP=1 tests/lavapipe_coop.sh cargo test --release --features mpi --test kernels --test step --test train \
  -- --nocapture cooperative mixed 2>&1 | grep -v 'XDG_RUNTIME_DIR' | tee target/lavapipe-coop-tests.log
# The name filter must have found the tests it is for (a renamed test would leave it matching none).
# The log lies beside target/lavapipe-coop, not in it: tee opens it before the script creates (or,
# on a first fetch, empties) that folder.
for t in cooperative_kernels_run_where_the_adapter_lists_them_else_refuse \
  cooperative_convolution_that_fails_its_check_gives_way_to_f16 gpu_step_in_mixed_precision_matches_the_reference_step \
  learns_two_flat_colours_in_mixed_precision; do
  grep -q "^test $t \.\.\. ok$" target/lavapipe-coop-tests.log || { echo "$t did not run on Mesa 26's lavapipe" >&2; exit 1; }
done
echo "== browser tests (wasm-pack test --headless --chrome --release -- --test web)"
# Exactly as a user types it: .cargo/config.toml sets the runner's time limit, and wasm-pack finds
# the system's chromedriver on PATH.
wasm-pack test --headless --chrome --release -- --test web

echo "== the page end to end (tests/e2e/page.mjs), checkpoints between the page and the CLI"
# --no-opt: wasm-opt would be downloaded from GitHub.
wasm-pack build --target web --release --no-opt
# Without the mpi feature: the page's checkpoints go through the plain build, so a build without
# MPI is tested end to end too (train, generate, resume).
cargo build --release
pggan() { target/release/pggan "$@" 2>&1 | { grep -v 'XDG_RUNTIME_DIR' || true; }; }
e2e=target/e2e
rm -rf "$e2e" && mkdir -p "$e2e"
tiny=(--max-res 8 --fmap-base 16 --fmap-max 8 --latent 8 --minibatch 4 --phase-kimg 0.02 --tick-kimg 0.008
  --checkpoint-ticks 1 --grid 2 --cache "$e2e/cache" --quiet)
# A native checkpoint for the page to resume and sample.
pggan train "${tiny[@]}" --total-kimg 0.024 --seed 5 --out "$e2e/native"
PGGAN_NATIVE_CHECKPOINT="$e2e/native/000-emoji-8/checkpoint.safetensors" node tests/e2e/page.mjs
# The page's checkpoint and exported generator, natively: images from both, then more training.
pggan generate --checkpoint "$e2e/page.safetensors" --count 2 --out "$e2e/gen"
pggan generate --checkpoint "$e2e/page-generator.safetensors" --count 2 --out "$e2e/gen-export"
cmp "$e2e/gen/000000.png" "$e2e/gen-export/000000.png"
# A checkpoint file that is not a run folder's own continues as a new run under --out, here 40
# images past where the page saved it (the run's last step is a tick: the log's last line).
total=$(awk -v k="$(cat "$e2e/page-kimg.txt")" 'BEGIN { printf "%g", k + 0.04 }')
pggan train --resume "$e2e/page.safetensors" --out "$e2e/page-runs" --total-kimg "$total" --cache "$e2e/cache" --quiet
tail -n 1 "$e2e/page-runs/000-emoji-8/log.jsonl" | grep -q "\"kimg\":$total,"
echo "== all tests passed; screenshots in $e2e: desktop.png, phone.png, screenshot.png, screenshot-native.png"
