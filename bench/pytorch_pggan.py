#!/usr/bin/env python3
"""PyTorch reference for `pggan bench train`: the same PG-GAN networks and WGAN-GP training step,
timed the same way, printed in the same format.

Networks (Karras et al. 2018, Table 2; DESIGN.md; src/nn/arch.rs): equalized learning rate (weights
N(0,1), scaled at run time by gain / sqrt(fan_in)), pixelnorm, leaky ReLU 0.2, minibatch stddev
(groups of 4), nearest upsampling and 2x2 average pooling, toRGB / fromRGB 1x1 convolutions, fade-in
with alpha.
Step (src/train/step.rs): D step on E[D(fake)] - E[D(real)] + lambda E[(|grad D(xhat)| - gamma)^2] /
gamma^2 + drift E[D(real)^2], the penalty's weight gradient by double backward
(torch.autograd.grad with create_graph=True); Adam (lr 1e-3, betas (0, 0.99), eps 1e-8) on D's active
layers; then the G step on -E[D(G(z))] and Adam on G's active layers; then the EMA of G (0.999).
torch.optim.Adam puts eps after the bias correction of v, TensorFlow (and pggan) before it: the
arithmetic per element is the same.

Inputs (reals uniform in [-1, 1], latents N(0,1), penalty mix U(0,1)) are drawn once per resolution,
as in pggan, so the figure is the step alone. Usage:
  python3 bench/pytorch_pggan.py --resolution 64 --minibatch 16 --steps 10 --warmup 2 --device cuda

--mode sets the arithmetic (recorded as "mode" in the JSON):
  fp32      full f32, as `pggan bench train --precision f32` computes: TF32 off in convolutions
            (torch.backends.cudnn.allow_tf32) and matrix products (torch.backends.cuda.matmul.allow_tf32).
            The default, and the figures of bench/README.md's history.
  tf32      torch's defaults as shipped: TF32 allowed in cuDNN's convolutions, not in matmuls (so the
            dense layers stay f32). On the CPU there is no TF32: the same arithmetic as fp32.
  autocast  torch.autocast with float16 on CUDA around the forward passes of G and D (the penalty's D
            run at xhat included), the closest to `--precision mixed`: convolutions and linear layers
            take f16 operands (on tensor cores), the bias adds that follow promote back to f32 (the
            biases are f32), pixelnorm's pow and rsqrt run in f32 as autocast lists them; the
            gradients, the penalty's double backward (torch.autograd.grad with create_graph=True,
            taken outside the autocast block as PyTorch's AMP examples do) and the backward passes
            run each op in the dtype its forward op ran in. Master weights, Adam and the EMA stay f32.
            No GradScaler: pggan's mixed step scales no loss either, and the equalized learning rate
            and pixelnorm keep activations and gradients near unit scale, so the work per step is
            the same; a scaler would add its unscale and inf check (a few foreach kernels) and the
            extra scaling of the penalty's gradient. On the CPU autocast runs in bfloat16 (CPU
            autocast's type; a note says so on stderr and "autocast_dtype" in the JSON).
"""

import argparse
import contextlib
import json
import sys
import math
import time

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)
LRELU = 0.2


def res_of(level):
    return 2 << level


class Layer(torch.nn.Module):
    """A conv (k x k, 'same' padding) or dense layer with the equalized-LR scale, bias, leaky ReLU.
    With down, a 2x2 average pool comes between the conv and the bias (the official D's
    conv2d_downscale2d with fused_scale=True: the bias and the leaky ReLU act on the pooled map)."""

    def __init__(self, kind, inputs, outputs, gain, slope, k=3, bias=None, down=False):
        super().__init__()
        self.kind, self.k, self.slope, self.down = kind, k, slope, down
        shape = (outputs, inputs, k, k) if kind == "conv" else (outputs, inputs)
        fan_in = inputs * (k * k if kind == "conv" else 1)
        self.scale = gain / math.sqrt(fan_in)
        self.weight = torch.nn.Parameter(torch.randn(shape))
        self.bias = torch.nn.Parameter(torch.zeros(outputs if bias is None else bias))

    def forward(self, x):
        w = self.weight * self.scale
        if self.kind == "conv":
            y = F.conv2d(x, w, padding=self.k // 2)
            if self.down:
                y = F.avg_pool2d(y, 2)
            y = y + self.bias.view(1, -1, 1, 1)
        else:
            y = F.linear(x, w)
            if y.shape[1] != self.bias.shape[0]:
                # G's latent dense: one bias per map of its 4x4 output.
                y = y.view(y.shape[0], self.bias.shape[0], 4, 4) + self.bias.view(1, -1, 1, 1)
            else:
                y = y + self.bias
        return y if self.slope == 1.0 else F.leaky_relu(y, self.slope)


def pixelnorm(x):
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def mbstd(x, group=4):
    """One extra map: per group (sample m with m+M, m+2M, ...) the std over the group, averaged."""
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.view(g, n // g, c, h, w)
    std = torch.sqrt(((y - y.mean(dim=0)) ** 2).mean(dim=0) + 1e-8).mean(dim=(1, 2, 3))
    s = std.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([x, s], dim=1)


class Config:
    def __init__(self, max_res, fmap_base, fmap_max, latent, channels=3):
        self.max_res, self.fmap_base, self.fmap_max = max_res, fmap_base, fmap_max
        self.latent, self.channels = latent, channels
        self.levels = int(math.log2(max_res)) - 1

    def nf(self, stage):
        return min(self.fmap_base >> stage, self.fmap_max)


class Generator(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.blocks = torch.nn.ModuleList()
        self.torgb = torch.nn.ModuleList()
        for level in range(1, cfg.levels + 1):
            maps = cfg.nf(level)
            if level == 1:
                first = Layer("dense", cfg.latent, maps * 16, SQRT2 / 4, LRELU, bias=maps)
            else:
                first = Layer("conv", cfg.nf(level - 1), maps, SQRT2, LRELU)
            self.blocks.append(torch.nn.ModuleList([first, Layer("conv", maps, maps, SQRT2, LRELU)]))
            self.torgb.append(Layer("conv", maps, cfg.channels, 1.0, 1.0, k=1))

    def forward(self, z, level, alpha):
        h, h_prev = pixelnorm(z), None
        for lev in range(1, level + 1):
            if lev > 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            for layer in self.blocks[lev - 1]:
                h = pixelnorm(layer(h))
            if lev == level - 1:
                h_prev = h
        images = self.torgb[level - 1](h)
        if level > 1 and alpha < 1.0:
            old = F.interpolate(self.torgb[level - 2](h_prev), scale_factor=2, mode="nearest")
            images = torch.lerp(old, images, alpha)
        return images

    def active(self, level):
        return [p for lev in range(1, level + 1) for m in (self.blocks[lev - 1], self.torgb[lev - 1])
                for p in m.parameters()]


class Discriminator(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.fromrgb = torch.nn.ModuleList()
        self.blocks = torch.nn.ModuleList()
        for level in range(1, cfg.levels + 1):
            maps = cfg.nf(level)
            self.fromrgb.append(Layer("conv", cfg.channels, maps, SQRT2, LRELU, k=1))
            if level == 1:
                self.blocks.append(torch.nn.ModuleList([
                    Layer("conv", maps + 1, maps, SQRT2, LRELU),
                    Layer("dense", maps * 16, cfg.nf(0), SQRT2, LRELU),
                    Layer("dense", cfg.nf(0), 1, 1.0, 1.0),
                ]))
            else:
                self.blocks.append(torch.nn.ModuleList([
                    Layer("conv", maps, maps, SQRT2, LRELU),
                    Layer("conv", maps, cfg.nf(level - 1), SQRT2, LRELU, down=True),
                ]))

    def forward(self, x, level, alpha):
        h = self.fromrgb[level - 1](x)
        for lev in range(level, 1, -1):
            for layer in self.blocks[lev - 1]:
                h = layer(h)
            if lev == level and alpha < 1.0:
                h = torch.lerp(self.fromrgb[lev - 2](F.avg_pool2d(x, 2)), h, alpha)
        conv, dense0, dense1 = self.blocks[0]
        h = conv(mbstd(h))
        return dense1(dense0(h.flatten(1)))

    def active(self, level):
        return [p for lev in range(1, level + 1) for m in (self.fromrgb[lev - 1], self.blocks[lev - 1])
                for p in m.parameters()]


def train_step(g, d, g_ema, opt_g, opt_d, inputs, level, alpha, amp=contextlib.nullcontext,
               lam=10.0, gamma=1.0, drift=0.001):
    """One step; `amp` makes the context of the forward passes (autocast in --mode autocast, else
    nothing: the same ops in the same order as the f32 step)."""
    reals, z_d, z_g, mix = inputs
    d_params, g_params = d.active(level), g.active(level)
    # D step.
    opt_d.zero_grad(set_to_none=True)
    with torch.no_grad(), amp():
        fake = g(z_d, level, alpha)
    with amp():
        real_scores = d(reals, level, alpha)
        fake_scores = d(fake, level, alpha)
        xhat = (reals + mix.view(-1, 1, 1, 1) * (fake - reals)).requires_grad_(True)
        xhat_scores = d(xhat, level, alpha)
    # Gradients outside the autocast block: each backward op runs in its forward op's dtype. Under
    # autocast the scores, fake and grad are f32 already (the last layers' bias adds promote).
    (grad,) = torch.autograd.grad(xhat_scores.sum(), xhat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)
    loss_d = (fake_scores.mean() - real_scores.mean() + lam * ((norm - gamma) ** 2).mean() / gamma**2
              + drift * (real_scores**2).mean())
    loss_d.backward(inputs=d_params)
    opt_d.step()
    # G step.
    opt_g.zero_grad(set_to_none=True)
    with amp():
        loss_g = -d(g(z_g, level, alpha), level, alpha).mean()
    loss_g.backward(inputs=g_params)
    opt_g.step()
    # EMA of G's active layers.
    with torch.no_grad():
        ema_params = g_ema.active(level)
        torch._foreach_lerp_(ema_params, g_params, 1.0 - 0.999)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--fmap-base", type=int, default=8192)
    ap.add_argument("--fmap-max", type=int, default=512)
    ap.add_argument("--latent", type=int, default=512)
    ap.add_argument("--minibatch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--levels", type=str, default="", help="resolutions to time, comma-separated")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--mode", choices=["fp32", "tf32", "autocast"], default="fp32",
                    help="fp32: TF32 off; tf32: torch's defaults (TF32 in cuDNN convolutions); "
                         "autocast: f16 autocast of the forward passes (bfloat16 on the CPU)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    cfg = Config(a.resolution, a.fmap_base, a.fmap_max, a.latent)
    if a.resolution < 4 or a.resolution & (a.resolution - 1):
        ap.error("--resolution must be a power of two from 4")
    if a.minibatch % min(4, a.minibatch):
        ap.error("--minibatch must be a multiple of the minibatch-stddev group size 4")
    resolutions = [int(r) for r in a.levels.split(",") if r] or [res_of(l) for l in range(1, cfg.levels + 1)]
    for r in resolutions:
        if r < 4 or r > a.resolution or r & (r - 1):
            ap.error(f"resolution {r} in --levels is not a power of two from 4 to --resolution {a.resolution}")

    # fp32 and autocast: full f32 outside what autocast casts, as pggan computes, no TF32 in matrix
    # products or convolutions. tf32: torch's shipped defaults, set explicitly (TF32 in cuDNN's
    # convolutions, not in matmuls).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = a.mode == "tf32"
    torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device; use --device cpu")
    autocast_dtype = None
    amp = contextlib.nullcontext
    if a.mode == "autocast":
        # CUDA: float16 (tensor cores). CPU autocast's type is bfloat16.
        autocast_dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
        if dev.type == "cpu":
            print("note: --mode autocast on the CPU runs in bfloat16 (CPU autocast), not float16",
                  file=sys.stderr)

        def amp():
            return torch.autocast(device_type=dev.type, dtype=autocast_dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    adapter = {"name": name, "backend": f"PyTorch {torch.__version__} ({dev.type}, {a.mode})", "device_type": dev.type}
    precision = {
        "mode": a.mode,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "autocast_dtype": None if autocast_dtype is None else str(autocast_dtype).removeprefix("torch."),
        "grad_scaler": False,
    }

    torch.manual_seed(1)
    g, d = Generator(cfg).to(dev), Discriminator(cfg).to(dev)
    g_ema = Generator(cfg).to(dev)
    g_ema.load_state_dict(g.state_dict())
    adam = dict(lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), **adam), torch.optim.Adam(d.parameters(), **adam)

    if not a.json:
        print(f"adapter: {name} ({adapter['backend']})")
        print(f"train: resolution {a.resolution}, fmap-base {a.fmap_base}, fmap-max {a.fmap_max}, latent {a.latent}, "
              f"minibatch {a.minibatch}, {a.steps} steps after {a.warmup} warm-up")
        print("mode: " + ", ".join(f"{k} {v}" for k, v in precision.items()))
        print(f"{'resolution':>10} {'alpha':>6} {'images/s':>12} {'ms/step':>12} {'buffers/step':>14}")
    rows = []
    n = a.minibatch
    for res in resolutions:
        level = int(math.log2(res)) - 1
        alpha = 0.5 if level > 1 else 1.0
        inputs = (
            torch.rand(n, cfg.channels, res, res, device=dev) * 2 - 1,
            torch.randn(n, cfg.latent, device=dev),
            torch.randn(n, cfg.latent, device=dev),
            torch.rand(n, device=dev),
        )

        def run(steps):
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                train_step(g, d, g_ema, opt_g, opt_d, inputs, level, alpha, amp)
            sync()
            return time.perf_counter() - start

        run(a.warmup)
        secs = run(a.steps)
        row = {"resolution": res, "alpha": alpha, "images_per_s": n * a.steps / secs,
               "ms_per_step": 1e3 * secs / a.steps}
        rows.append(row)
        if not a.json:
            print(f"{res:>10} {alpha:>6.2f} {row['images_per_s']:>12.2f} {row['ms_per_step']:>12.2f} {'-':>14}",
                  flush=True)
    if a.json:
        print(json.dumps({
            "bench": "train", "adapter": adapter,
            "config": {"resolution": a.resolution, "fmap_base": a.fmap_base, "fmap_max": a.fmap_max,
                       "latent": a.latent, "minibatch": a.minibatch, "steps": a.steps, "warmup": a.warmup,
                       "mode": a.mode},
            "mode": a.mode, "precision": precision,
            "rows": rows,
        }))


if __name__ == "__main__":
    main()
