#!/usr/bin/env bash
# Training throughput of pggan and of the PyTorch reference (bench/pytorch_pggan.py) on the same GPU,
# same configuration, side by side.
#   bench/run_gpu.sh PATH/TO/pggan [bench flags...]
# e.g. bench/run_gpu.sh target/release/pggan --resolution 64 --minibatch 16 --steps 20 --warmup 3
# Needs python3 with torch (CUDA build). Flags go to both: --resolution --fmap-base --fmap-max --latent
# --minibatch --steps --warmup --levels. PYTHON overrides the interpreter, DEVICE=cpu the torch device,
# MODE the torch arithmetic (pytorch_pggan.py --mode: fp32, the default, tf32 or autocast).
set -euo pipefail
if [[ $# -lt 1 || ! -x "$1" ]]; then
    echo "usage: $0 PATH/TO/pggan [--resolution R --fmap-base N --fmap-max N --latent N --minibatch N --steps N --warmup N --levels A,B]" >&2
    exit 2
fi
pggan=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== pggan (wgpu)" >&2
"$pggan" bench train "$@" --json >"$out/pggan.json"
echo "== PyTorch" >&2
"${PYTHON:-python3}" "$here/pytorch_pggan.py" "$@" --device "${DEVICE:-cuda}" --mode "${MODE:-fp32}" --json >"$out/torch.json"

"${PYTHON:-python3}" - "$out/pggan.json" "$out/torch.json" <<'PY'
import json, sys
ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
for name, r in (("pggan", ours), ("PyTorch", ref)):
    a = r["adapter"]
    print(f"{name:8}: {a['name']} ({a['backend']})")
print("config  :", ", ".join(f"{k} {v}" for k, v in ours["config"].items()))
print(f"{'resolution':>10} {'alpha':>6} {'pggan img/s':>12} {'torch img/s':>12} {'pggan/torch':>12} {'pggan ms':>10} {'torch ms':>10}")
theirs = {row["resolution"]: row for row in ref["rows"]}
for row in ours["rows"]:
    t = theirs[row["resolution"]]
    print(f"{row['resolution']:>10} {row['alpha']:>6.2f} {row['images_per_s']:>12.2f} {t['images_per_s']:>12.2f} "
          f"{row['images_per_s'] / t['images_per_s']:>11.2f}x {row['ms_per_step']:>10.2f} {t['ms_per_step']:>10.2f}")
PY
