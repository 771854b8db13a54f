#!/usr/bin/env bash
# Every GPU measurement of the mixed-precision groundwork in one run (a few minutes on a GPU; 7.5 at most),
# with a pggan binary built elsewhere (no cargo needed on the GPU machine):
#   bench/run_gpu_mixed.sh PATH/TO/pggan [OUTDIR]
# 1. precision: the adapter's features (shader-f16, the cooperative-matrix configurations it lists),
#    what `auto` resolves to, the f16 dense product and the 16x16x16 cooperative-matrix (tensor-core)
#    product against their f64 references (`pggan bench precision`, text and JSON);
# 2. selftest: every kernel and the training step against the f64 references on this GPU, the
#    feature kernels included where the adapter has them;
# 3. `bench kernels` (GFLOP/s of the f32 conv and dense passes), the training step with the official
#    channels in f32 and with mixed-precision layer GEMMs (`bench train --precision`), and the step
#    beside PyTorch's (bench/run_gpu.sh) at 64x64 with the default run's networks.
# Each step has its own time limit and a failing step does not stop the others; the exit status is
# that of step 1 (0 only when the tensor-core path ran and passed). OUTDIR (default $OUT, else
# ./gpu-mixed-out) receives eight files: precision.txt, precision.json, selftest.txt, kernels.json,
# train_f32.json, train_mixed.json, train.txt and summary.txt. PYTHON picks the interpreter with
# torch for step 3.
set -uo pipefail
if [[ $# -lt 1 || ! -x "$1" ]]; then
    echo "usage: $0 PATH/TO/pggan [OUTDIR]" >&2
    exit 2
fi
pggan=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=${2:-${OUT:-gpu-mixed-out}}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
# NVIDIA's Vulkan driver where the machine keeps it outside the loader's search path.
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [[ -z "${VK_DRIVER_FILES:-}" && -f $nv_icd ]]; then
    export VK_DRIVER_FILES=$nv_icd
fi

summary=$out/summary.txt
: >"$summary"
# step NAME SECONDS COMMAND...: runs it under a time limit, output to the terminal and the log.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s)" >&2
    timeout --kill-after=5 "$limit" "$@"
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$summary" >&2
    return $rc
}

{ nvidia-smi -L 2>/dev/null || true; echo "binary: $pggan"; } | tee -a "$summary" >&2

step "precision" 60 "$pggan" bench precision 2>&1 | tee "$out/precision.txt"
precision_rc=${PIPESTATUS[0]}
step "precision json" 30 "$pggan" bench precision --json >"$out/precision.json"
step "selftest" 60 "$pggan" selftest 2>&1 | tee "$out/selftest.txt"
step "bench kernels" 60 "$pggan" bench kernels --reps 5 --json >"$out/kernels.json"
# The training step with mixed-precision layer GEMMs (f16 operands, f32 sums), official channels,
# beside the same in f32 (train_f32.json): 4..64.
step "bench train f32" 60 "$pggan" bench train --precision f32 --json >"$out/train_f32.json"
step "bench train mixed" 60 "$pggan" bench train --precision mixed --json >"$out/train_mixed.json"
step "train vs PyTorch" 120 "$here/run_gpu.sh" "$pggan" --resolution 64 --fmap-base 2048 --fmap-max 128 \
    --latent 128 --minibatch 16 --steps 10 --warmup 2 2>&1 | tee "$out/train.txt"

echo "== summary" >&2
cat "$summary" >&2
exit "$precision_rc"
