#!/usr/bin/env bash
# Every GPU measurement in one run (about 5 minutes expected on an H100/H200; TOTAL, 420 s, at
# most), with a pggan binary built elsewhere (no cargo on the GPU machine) and python3 with a CUDA
# build of torch:
#   bench/run_gpu_all.sh PATH/TO/pggan [OUTDIR]
# Steps, in this order (of priority), each under its own time limit, cut to what is left of TOTAL (a
# step that would get under 5 s is skipped, 15 s are kept for the table); a failing, slow or skipped
# step does not stop the others:
#  1. precision: `pggan bench precision` (text and JSON): the adapter's features (shader-f16, the
#     cooperative-matrix configurations), what `auto` resolves to, the f16 kernels, the 16x16x16
#     cooperative-matrix (tensor-core) product and the convolution on cooperative matrices against
#     their f64 references.
#  2. `pggan bench train --precision f32` and `mixed`, 4..64, minibatch 16, 10 timed steps after 2,
#     with the official networks (fmap-base 8192, fmap-max 512, latent 512) and the default run's
#     (fmap-base 2048, fmap-max 128, latent 128).
#  3. bench/pytorch_pggan.py at the same configurations in its three modes: fp32 (TF32 off), tf32
#     (torch's shipped defaults: TF32 in cuDNN convolutions) and autocast (float16 autocast).
#  4. `pggan bench kernels --precision f32`, `mixed`, and `mixed` with PGGAN_MIXED_CONV=f16 (the
#     convolutions on f16 arithmetic instead of cooperative matrices): GFLOP/s of the conv and dense
#     passes, batch 16, 5 timed runs each.
#  5. selftest: every kernel and the training step against the f64 references on this GPU.
#  6. `pggan bench quality --precision f32` and `mixed` at the same budget: the emoji set to 32x32,
#     4 kimg per phase (7 phases, 28 kimg; about 30-60 s each by the H100's step rates with these
#     small networks), SWD of 2048 images per side.
#  7. the table (python3, JSON only; missing files show as "-"): images/s per resolution and network,
#     pggan f32 and mixed (with the kernel mixed ran on: the reports' "layers") beside torch's three
#     modes, with pggan's best over torch's default (tf32)
#     and over torch's best; the kernels' GFLOP/s (f32, mixed with its kernel named, f16) as % of
#     the fp32 and the fp16 tensor-core peaks (H100/H200 SXM: 67 and 989 TFLOP/s dense;
#     PEAK_FP32_TFLOPS and PEAK_TC_TFLOPS override them); the quality runs' time and SWD side by side.
# OUTDIR (default $OUT, else ./gpu-all-out) receives precision.txt, precision.json, selftest.txt,
# kernels_{f32,mixed,mixed_f16}.json, train_{official,default}_{f32,mixed}.json,
# torch_{official,default}_{fp32,tf32,autocast}.json, quality_{f32,mixed}.json, table.txt and
# summary.txt (each step's exit status and seconds, then the table). The exit status is that of
# step 1: 0 only when the tensor-core path ran and passed.
# Environment: PYTHON, the interpreter with torch for step 5 (default python3); DEVICE, torch's device
# (default cuda); TOTAL, the seconds of the whole run (default 420); QUICK=1, tiny shapes for a test
# of the script itself on any adapter (resolution 8, a few channels, one step; quality at 4x4).
set -uo pipefail
if [[ $# -lt 1 || ! -x "$1" ]]; then
    echo "usage: $0 PATH/TO/pggan [OUTDIR]" >&2
    exit 2
fi
pggan=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=${2:-${OUT:-gpu-all-out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
total=${TOTAL:-420}
reserve=15
# NVIDIA's Vulkan driver where the machine keeps it outside the loader's search path.
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [[ -z "${VK_DRIVER_FILES:-}" && -f $nv_icd ]]; then
    export VK_DRIVER_FILES=$nv_icd
fi
export PYTHONUNBUFFERED=1

# The configurations: the networks (label, flags) and the shared settings of steps 3 to 6.
if [[ ${QUICK:-0} == 1 ]]; then
    nets=(official "--fmap-base 32 --fmap-max 16 --latent 16" default "--fmap-base 16 --fmap-max 8 --latent 8")
    train_flags="--resolution 8 --minibatch 4 --steps 1 --warmup 0"
    kernels_flags="--batch 1 --max-channels 8 --reps 1"
    quality_flags="--resolution 4 --phase-kimg 0.016 --swd-images 16"
else
    nets=(official "--fmap-base 8192 --fmap-max 512 --latent 512" default "--fmap-base 2048 --fmap-max 128 --latent 128")
    train_flags="--resolution 64 --minibatch 16 --steps 10 --warmup 2"
    kernels_flags="--reps 5"
    quality_flags="--resolution 32 --phase-kimg 4 --swd-images 2048"
fi
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT

summary=$out/summary.txt
: >"$summary"
exec 3>&2
deadline=$((SECONDS + total))
# step NAME SECONDS COMMAND...: runs it under a time limit, cut to what is left of TOTAL; its output
# goes where the caller sends it, the step's start and its summary line to the terminal (and the
# summary line to summary.txt).
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((deadline - reserve - SECONDS))
    if ((left < 5)); then
        echo "$name: skipped: ${total} s budget spent" | tee -a "$summary" >&3
        return 125
    fi
    ((limit > left)) && limit=$left
    local start=$SECONDS
    echo "== $name (limit ${limit}s)" >&3
    timeout --kill-after=5 "$limit" "$@"
    local rc=$?
    local what="exit $rc"
    ((rc == 124 || rc == 137)) && what="timed out (exit $rc)"
    echo "$name: $what after $((SECONDS - start)) s" | tee -a "$summary" >&3
    return $rc
}

{
    nvidia-smi -L 2>/dev/null || true
    echo "binary: $pggan"
    echo "torch: $python --device $device; ${total} s budget; QUICK=${QUICK:-0}"
} | tee -a "$summary" >&3

# In order of priority: what a slow GPU cuts (TOTAL spent) comes last. The limits are caps (they add
# up to more than TOTAL; a fast GPU needs far less of each).
# 1: the precision report (its exit status is the script's).
step "precision" 35 "$pggan" bench precision 2>&1 | tee "$out/precision.txt"
precision_rc=${PIPESTATUS[0]}
step "precision json" 25 "$pggan" bench precision --json >"$out/precision.json"
# 2: the training step, f32 and mixed.
for ((i = 0; i < ${#nets[@]}; i += 2)); do
    for p in f32 mixed; do
        # shellcheck disable=SC2086
        step "bench train ${nets[i]} $p" 30 "$pggan" bench train --precision $p ${nets[i + 1]} $train_flags \
            --json >"$out/train_${nets[i]}_$p.json"
    done
done
# 3: PyTorch at the same configurations.
for ((i = 0; i < ${#nets[@]}; i += 2)); do
    for mode in fp32 tf32 autocast; do
        # shellcheck disable=SC2086
        step "torch ${nets[i]} $mode" 25 "$python" "$here/pytorch_pggan.py" --mode $mode --device "$device" \
            ${nets[i + 1]} $train_flags --json >"$out/torch_${nets[i]}_$mode.json"
    done
done
# 4: the kernels in f32, mixed (the cooperative convolution where listed), and mixed with the
# convolution on f16 arithmetic instead (PGGAN_MIXED_CONV=f16), to compare the two.
for p in f32 mixed; do
    # shellcheck disable=SC2086
    step "bench kernels $p" 25 "$pggan" bench kernels --precision $p $kernels_flags --json >"$out/kernels_$p.json"
done
# shellcheck disable=SC2086
PGGAN_MIXED_CONV=f16 step "bench kernels mixed, f16 convolutions" 25 "$pggan" bench kernels --precision mixed \
    $kernels_flags --json >"$out/kernels_mixed_f16.json"
# 5: every kernel and the step against the f64 references.
step "selftest" 30 "$pggan" selftest 2>&1 | tee "$out/selftest.txt"
# 6: quality at one budget, f32 and mixed.
for p in f32 mixed; do
    # shellcheck disable=SC2086
    step "bench quality $p" 45 "$pggan" bench quality --precision $p $quality_flags --cache "$cache" \
        --json >"$out/quality_$p.json"
done

# 7: the table; python3 reads only JSON (no torch needed).
echo "== table" >&3
PEAK_FP32_TFLOPS=${PEAK_FP32_TFLOPS:-67} PEAK_TC_TFLOPS=${PEAK_TC_TFLOPS:-989} \
    timeout 30 python3 - "$out" "${nets[0]}" "${nets[2]}" <<'PY' >"$out/table.txt" 2>&1
import json, os, sys

out, nets = sys.argv[1], sys.argv[2:]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception:
        return None


def cell(v, fmt="{:.1f}", width=10):
    """v right-aligned in width; fmt None: 3 significant digits below 100, none after the point above."""
    if v is not None and fmt is None:
        fmt = "{:.0f}" if abs(v) >= 100 else "{:.3g}"
    return f"{'-' if v is None else fmt.format(v):>{width}}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


prec = load("precision.json")
if prec:
    a = prec.get("adapter", {})
    print(f"adapter: {a.get('name')} ({a.get('backend')}); shader-f16 {prec.get('shader_f16')}, "
          f"{len(prec.get('cooperative_matrix') or [])} cooperative-matrix configurations, auto {prec.get('auto')}, "
          f"checks {'passed' if prec.get('ok') else 'not all run and passed'}")

# Training step.
for net in nets:
    runs = {
        "pggan f32": load(f"train_{net}_f32.json"), "pggan mixed": load(f"train_{net}_mixed.json"),
        "torch fp32": load(f"torch_{net}_fp32.json"), "torch tf32": load(f"torch_{net}_tf32.json"),
        "torch autocast": load(f"torch_{net}_autocast.json"),
    }
    cfg = next((r["config"] for r in runs.values() if r), None)
    print()
    if cfg is None:
        print(f"== training step, {net} networks: no results")
        continue
    print(f"== training step, {net} networks (fmap-base {cfg['fmap_base']}, fmap-max {cfg['fmap_max']}, "
          f"latent {cfg['latent']}), minibatch {cfg['minibatch']}, {cfg['steps']} steps after {cfg['warmup']}: images/s")
    torch_run = next((r for k, r in runs.items() if k.startswith("torch") and r), None)
    if torch_run:
        print(f"torch: {torch_run['adapter']['name']}, {torch_run['adapter']['backend'].split(' (')[0]}")
    if runs["pggan mixed"]:
        print(f"pggan mixed: {runs['pggan mixed'].get('layers', '?')}")
    rows = {k: {row["resolution"]: row for row in (r or {}).get("rows", [])} for k, r in runs.items()}
    resolutions = sorted({res for r in rows.values() for res in r})
    head = (f"{'res':>5} {'alpha':>5} " + " ".join(f"{k:>14}" for k in runs)
            + f" {'best/tf32':>10} {'best/best':>10}")
    print(head)
    for res in resolutions:
        ips = {k: rows[k].get(res, {}).get("images_per_s") for k in runs}
        alpha = next(rows[k][res]["alpha"] for k in runs if res in rows[k])
        ours = [v for k, v in ips.items() if k.startswith("pggan") and v is not None]
        theirs = [v for k, v in ips.items() if k.startswith("torch") and v is not None]
        best = max(ours) if ours else None
        print(f"{res:>5} {alpha:>5.2f} " + " ".join(cell(ips[k], width=14) for k in runs)
              + cell(ratio(best, ips["torch tf32"]), "{:.2f}x") + " "
              + cell(ratio(best, max(theirs) if theirs else None), "{:.2f}x"))
print("best/tf32: pggan's faster precision over torch's default (TF32 convolutions); best/best: over "
      "torch's fastest mode")

# Kernels.
peak32, peaktc = float(os.environ["PEAK_FP32_TFLOPS"]), float(os.environ["PEAK_TC_TFLOPS"])
k32, kmx, kf16 = load("kernels_f32.json"), load("kernels_mixed.json"), load("kernels_mixed_f16.json")
print()
print(f"== bench kernels, GFLOP/s; peaks: fp32 {peak32:g} TFLOP/s (no tensor cores), fp16 tensor core "
      f"{peaktc:g} TFLOP/s dense (H100/H200 SXM)")


def key(row):
    s = row["shape"]
    shape = (f"dense {s['batch']}x{s['cin']}->{s['cout']}" if s["k"] == 0
             else f"conv{s['k']}x{s['k']} {s['batch']}x{s['cin']}->{s['cout']} @{s['res']}")
    return row["pass"], shape


mixed_rows = {key(r): r for r in (kmx or {}).get("rows", [])}
f16_rows = {key(r): r for r in (kf16 or {}).get("rows", [])}
f32_rows = {key(r): r for r in (k32 or {}).get("rows", [])}
keys = list(f32_rows) + [k for k in mixed_rows if k not in f32_rows]
print("mixed: the kernel mixed training runs (named); f16: mixed with PGGAN_MIXED_CONV=f16 (conv+f16)")
print(f"{'pass':<16} {'shape':<28}{'f32':>10}{'%fp32':>7}{'mixed':>10}{'kernel':>13}{'%fp32':>7}{'%tc':>7}"
      f"{'mixed/f32':>10}{'f16':>10}{'f16/f32':>9}")
for k in keys:
    a = f32_rows.get(k, {}).get("gflops")
    b = mixed_rows.get(k, {}).get("gflops")
    c = f16_rows.get(k, {}).get("gflops")
    name = mixed_rows.get(k, {}).get("kernel") or "-"
    pct = lambda v, peak: None if v is None else 100 * v / (peak * 1e3)
    print(f"{k[0]:<16} {k[1]:<28}{cell(a, None)}{cell(pct(a, peak32), '{:.2f}', 7)}{cell(b, None)}{name:>13}"
          f"{cell(pct(b, peak32), '{:.2f}', 7)}{cell(pct(b, peaktc), '{:.2f}', 7)}{cell(ratio(b, a), '{:.2f}x')}"
          f"{cell(c, None)}{cell(ratio(c, a), '{:.2f}x', 9)}")
if not keys:
    print("no results")

# Quality.
q = {p: load(f"quality_{p}.json") for p in ("f32", "mixed")}
print()
cfg = next((r["config"] for r in q.values() if r), None)
if cfg is None:
    print("== bench quality: no results")
else:
    kimg = next(r["result"]["kimg"] for r in q.values() if r)
    print(f"== bench quality: emoji to {cfg['net']['max_res']}x{cfg['net']['max_res']}, "
          f"{cfg['schedule']['phase_kimg']} kimg per phase ({kimg:g} kimg), fmap-base {cfg['net']['fmap_base']}, "
          f"fmap-max {cfg['net']['fmap_max']}, latent {cfg['net']['latent']}, seed {cfg['seed']}")
    res = {p: (r or {}).get("result") or {} for p, r in q.items()}
    if q["mixed"]:
        print(f"mixed: {q['mixed'].get('layers', '?')}")
    print(f"{'':<18} {'f32':>10} {'mixed':>10}")
    print(f"{'seconds':<18}" + "".join(" " + cell(res[p].get("seconds")) for p in q))
    print(f"{'images/s':<18}" + "".join(" " + cell(res[p].get("images_per_second")) for p in q))
    swd = {p: dict((str(l), d) for l, d in (res[p].get("swd") or {}).get("levels", [])) for p in q}
    for level in sorted({l for s in swd.values() for l in s}, key=int, reverse=True):
        print(f"{'SWD x1e3 ' + level + 'x' + level:<18}" + "".join(" " + cell(swd[p].get(level), "{:.2f}") for p in q))
    avg = {p: (res[p].get("swd") or {}).get("average") for p in q}
    print(f"{'SWD x1e3 average':<18}" + "".join(" " + cell(avg[p], "{:.2f}") for p in q))
PY
echo "table: exit $?" >>"$summary"
cat "$out/table.txt" >>"$summary"

echo "== summary" >&3
cat "$summary"
exit "$precision_rc"
