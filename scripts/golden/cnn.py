"""Golden fixtures for bitspike's spiking CNNs (src/nn/cnn.rs): spiking VGG and spiking
ResNet, each with float weights, QP-SNN's 4-bit ReScaW weights and Q-SNN (binary weights
with a power-of-two scale, 8-bit ends, the Q-SNN neuron with its 8-bit membrane).

An independent PyTorch float64 implementation written from docs/models.md (sections 1 and 6)
and the papers' reference code, not from bitspike's Rust; bitspike's sources were read
only for parameter names and shapes, the presets' layer order, which layers are
quantized, and the conventions listed below. Usage (from the repository root):

    python3 scripts/golden/cnn.py            # writes tests/golden/spiking-*.safetensors
    python3 scripts/golden/cnn.py --search   # also tries seeds, keeps the best margins

Semantics (docs/models.md):
* Layout time first [T, B, ...]; T is folded into the batch for convs and BatchNorm only,
  never for a neuron. BatchNorm (training mode) normalizes per channel over T*B*H*W with
  the biased batch variance, eps 1e-5 (torch.nn.BatchNorm2d).
* Float and 4-bit CNNs: SpikingJelly's MultiStepLIFNode (tau 2, v_th 1, decay_input,
  hard reset to 0, detach_reset, Sigmoid surrogate alpha 4): `common.lif`.
* Q-SNN neuron (Wenjie-Wei/Q-SNN LIFSpike + ZIF): H = 0.5 V + X, S = H > 1 (strict),
  M = H (1 - S) (hard reset, NOT detached, as in the reference's `mem = (1 - spike) *
  mem`), triangle surrogate max(0, 1 - |H - 1|); the membrane kept for the next step is
  u_q = quant_8(tanh(M)), u_q = alpha round(tanh(M) / alpha * 127) / 127 with alpha =
  max |tanh(M)| (straight-through: d u_q / d tanh(M) = 1).
* ReScaW (QP-SNN): gamma = mean|W| per output channel (detached), W~ = clamp(W / gamma,
  -1, 1), Q = gamma (round((W~ + 1) n) / n - 1), n = (2^b - 1) / 2, round
  straight-through (so dQ/dW = 1 where |W| <= gamma, 0 where the clamp is active).
* Q-SNN binary weights: w_hat = (w - mean_o) / std_o (unbiased), w_b = sign(w_hat)
  with the identity straight-through (gradient through the normalization, as
  BESTformer), times s = 2^round(log2(mean_o |w_hat|)) per output channel (constant:
  round has no gradient). First conv and head: 8-bit ReScaW.
* Q-SNN loss: mean_t CE(out_t, y) + lambda mean_layers (rate - 0.5)^2, lambda = 5e-3
  (docs/models.md section 6, the value the paper and `bitspike train --rate-reg` docs use).
  The float and 4-bit models: CE of the time-averaged output.

Choices where docs/models.md is silent (bitspike's, documented in src/nn/cnn.rs):
* Direct encoding: the (normalized) image is repeated over T into the first conv.
* Convs are 3x3, stride 1, padding 1, no bias; each conv -> BN -> neuron; max-pool
  (3, 2, 1) after the neuron of the layers `pool_after` lists (a ResNet's stem or a
  block's conv2, i.e. after the block's output neuron). Pool ties go to the first maximum
  in window order (row by row), as PyTorch's CPU max_pool2d; padding never wins.
* ResNet basic block: s1 = N(BN1(conv1(x))), out = N(BN2(conv2(s1)) + shortcut(x)),
  shortcut = identity, or 1x1 conv + BN when the width changes (no strided convs: the
  max-pools downsample). The 1x1 shortcut is quantized/binarized like the inner convs.
* Head: Linear(sum_{H,W} mean_T s) on the last layer's (pooled) spikes; in Q-SNN one
  head per time step, Linear(sum_{H,W} s_t); combined logits = mean of the heads.
* 4-bit (WeightMode::Quantized): every conv, shortcut and the head are 4-bit ReScaW
  (bitspike quantizes a CNN's first conv and head too).
* Q-SNN membrane: 2^(8-1) - 1 = 127 levels each side of 0, round half to even, alpha is
  the maximum over the whole layer at that step (all of B, C, H, W).
* Q-SNN's 8-bit first conv and head use the same ReScaW quantizer with b = 8 (docs/models.md
  says only "8-bit"). Its power-of-two scale sits in front of a BatchNorm everywhere, so
  it cancels up to BN's eps: the fixtures exercise it (every other output channel of a
  binary layer is drawn heavy-tailed so that its scale is 1/2, not 1) but cannot tell a
  wrong scale from the right one.
* Firing-rate regularizer: one rate per conv layer's neuron (VGG layers; ResNet stem,
  every conv1 neuron and every block-output neuron), rate = mean of its spikes over
  T, B, C, H, W (before any pool).

Inputs: VGG, 4 CIFAR-10 test images of distinct classes (2x2-averaged to 16x16, RGB,
normalized), T 4; ResNet, 4 MNIST test digits (padded to 32x32, 2x2-averaged to 16x16),
T 3. Weights uniform +-1/sqrt(fan_in), BN affine parameters random, head N(0, 0.03);
AdamW lr 2e-3, weight decay 0.05. `--search N` tries seeds 1..N per fixture and keeps
the one with the largest min_margin (the SEEDS table); `--f32` runs this same reference
in float32 and prints how far f32 rounding alone moves each compared quantity (about
1e-7 for logits and losses, 1e-6..2e-5 for the worst gradient: no decision flips).

Near-threshold report: `common.margins` records every LIF/Q-SNN fire decision, every
ReScaW rounding boundary and clamp edge, every sign and every power-of-two rounding
boundary; the membrane quantizer's rounding boundaries are tracked separately
(`membrane margin`): a flip there moves one membrane by alpha/127 (about 0.008) and
cannot change any other decision by itself unless that neuron is as close to the
threshold, so they are reported, not optimized.
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Gen, margins  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "tests", "golden")

QSNN_RATE_REG = 5e-3
LR = 2e-3
WEIGHT_DECAY = 0.05
QSNN_LEVELS = 127.0  # 8-bit membrane
END_BITS = 8  # Q-SNN's first conv and head

membrane_margins = common.Margins()


# ----------------------------------------------------------------------------- data

def cifar_images(rng, b):
    """b CIFAR-10 test images of distinct classes, 2x2-averaged to 16x16, normalized."""
    from PIL import Image

    root = os.path.join(DATA, "cifar10-jpg", "test")
    classes = sorted(os.listdir(root))
    labels = rng.permutation(len(classes))[:b]
    imgs = []
    for c in labels:
        idx = int(rng.integers(0, 1000))
        im = np.asarray(Image.open(os.path.join(root, classes[c], f"{idx:04d}.jpg"))
                        .convert("RGB"), dtype=np.float32) / np.float32(255)
        im = im.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3), dtype=np.float32)
        imgs.append(im.transpose(2, 0, 1))
    x = np.stack(imgs).astype(np.float32)
    mean = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)
    x = ((x - mean) / std).astype(np.float32)
    return torch.from_numpy(x).to(torch.float64), torch.from_numpy(labels.astype(np.int64))


def mnist_images(rng, b):
    """b MNIST test images, zero-padded to 32x32 (LeNet's frame) and 2x2-averaged to
    16x16, normalized with MNIST's mean/std."""
    with gzip.open(os.path.join(DATA, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(DATA, "mnist", "t10k-labels-idx1-ubyte.gz")) as f:
        lab = np.frombuffer(f.read(), np.uint8, offset=8)
    idx = rng.choice(len(raw), size=b, replace=False)
    x = np.zeros((b, 32, 32), np.float32)
    x[:, 2:30, 2:30] = raw[idx].astype(np.float32) / np.float32(255)
    x = x.reshape(b, 16, 2, 16, 2).mean(axis=(2, 4), dtype=np.float32)
    x = ((x - np.float32(0.1307)) / np.float32(0.3081)).astype(np.float32)[:, None]
    return torch.from_numpy(x).to(torch.float64), torch.from_numpy(lab[idx].astype(np.int64))


# ---------------------------------------------------------------- model structure

def conv_layers(cfg):
    """(conv name, bn prefix, c_in, c_out, pool) in forward order (bitspike's names)."""
    c, pools = cfg["channels"], set(cfg["pool_after"])
    if cfg["arch"] == "spiking-resnet":
        out = [("stem.conv.weight", "stem.bn", cfg["in_channels"], c[0], 0 in pools)]
        for j in range((len(c) - 1) // 2):
            i1, i2 = 1 + 2 * j, 2 + 2 * j
            out.append((f"blocks.{j}.conv1.weight", f"blocks.{j}.bn1", c[i1 - 1], c[i1], False))
            out.append((f"blocks.{j}.conv2.weight", f"blocks.{j}.bn2", c[i1], c[i2], i2 in pools))
        return out
    return [(f"features.{i}.conv.weight", f"features.{i}.bn",
             cfg["in_channels"] if i == 0 else c[i - 1], c[i], i in pools)
            for i in range(len(c))]


def shortcut(cfg, j):
    c = cfg["channels"]
    c_in, c_out = c[2 * j], c[2 + 2 * j]
    return (f"blocks.{j}.shortcut", f"blocks.{j}.shortcut_bn", c_in, c_out) if c_in != c_out else None


def init_state(cfg, gen):
    """Initial state dict (reference names/shapes), values exactly float32."""
    sd = {}

    def bn(prefix, ch):
        # Non-trivial affine parameters so every gradient path is exercised and the layers
        # fire at realistic rates.
        sd[f"{prefix}.weight"] = gen.uniform([ch], 0.8, 1.6)
        sd[f"{prefix}.bias"] = gen.normal([ch], 0.2, 0.3)
        sd[f"{prefix}.running_mean"] = torch.zeros(ch)
        sd[f"{prefix}.running_var"] = torch.ones(ch)
        sd[f"{prefix}.num_batches_tracked"] = torch.zeros(())

    def conv(shape, binary):
        bound = 1.0 / np.sqrt(np.prod(shape[1:]))
        w = gen.uniform(shape, -bound, bound)
        if binary and cfg["weights"] == "qsnn":
            # Every other output channel heavy-tailed (40 % large weights, the rest 20x
            # smaller): mean|w_hat| ~ 0.5, so its power-of-two scale is 1/2, while
            # Gaussian- or uniform-like channels (mean|w_hat| ~ 0.8) always get 1.
            big = gen.uniform(shape) < 0.4
            w[1::2] = common.f32(torch.where(big, w, w * 0.05))[1::2]
        return w

    for i, (w, b, ci, co, _) in enumerate(conv_layers(cfg)):
        sd[w] = conv([co, ci, 3, 3], i > 0)
        bn(b, co)
        if cfg["arch"] == "spiking-resnet" and i >= 2 and i % 2 == 0:
            sc = shortcut(cfg, (i - 2) // 2)
            if sc:
                sd[f"{sc[0]}.weight"] = conv([sc[3], sc[2], 1, 1], True)
                bn(sc[1], sc[3])
    last = cfg["channels"][-1]
    sd["head.weight"] = gen.normal([cfg["classes"], last], 0.03)
    sd["head.bias"] = gen.normal([cfg["classes"]], 0.02)
    return sd


def trainable(name):
    return not (name.endswith("running_mean") or name.endswith("running_var")
                or name.endswith("num_batches_tracked"))


# ------------------------------------------------------------ weight quantizers

class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # half to even

    @staticmethod
    def backward(ctx, g):
        return g


def rescaw(w, bits, name):
    """QP-SNN ReScaW, per output channel, straight-through round."""
    shape = w.shape
    flat = w.reshape(shape[0], -1)
    gamma = flat.abs().mean(dim=1, keepdim=True).detach()
    r = flat / gamma
    margins.record(r.abs(), 1.0, f"{name} clamp")
    wt = torch.clamp(r, -1.0, 1.0)
    n = (2 ** bits - 1) / 2
    x = (wt + 1) * n
    inner = (x > 0) & (x < 2 * n)  # clamped values sit on integer codes
    xi = x.detach()[inner]
    margins.record(xi, torch.floor(xi) + 0.5, f"{name} code")
    q = gamma * (RoundSTE.apply(x) / n - 1)
    return q.reshape(shape)


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        return g


def qsnn_binary(w, name):
    """BESTformer binarization with Q-SNN's power-of-two scale per output channel."""
    shape = w.shape
    flat = w.reshape(shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=True, keepdim=True)
    w_hat = (flat - mean) / std
    margins.record(w_hat, 0.0, f"{name} sign")
    wb = SignSTE.apply(w_hat)
    l2 = torch.log2(w_hat.detach().abs().mean(dim=1, keepdim=True))
    margins.record(l2, torch.floor(l2) + 0.5, f"{name} pow2")
    s = torch.exp2(torch.round(l2))
    return (s * wb).reshape(shape)


def effective_weight(cfg, name, w, end):
    mode = cfg["weights"]
    if mode == "float":
        return w
    if mode == "quantized":
        return rescaw(w, cfg["weight_bits"], name)
    if mode == "qsnn":
        return rescaw(w, END_BITS, name) if end else qsnn_binary(w, name)
    raise ValueError(mode)


# ------------------------------------------------------------------ neurons etc.

class TriangleSpike(torch.autograd.Function):
    """S = x > 0 forward; Q-SNN's ZIF surrogate max(0, gamma - |x|) / gamma^2, gamma 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.clamp(1.0 - x.abs(), min=0.0)


def qsnn_neuron(x, name):
    """Q-SNN neuron over x [T, ...] with the 8-bit membrane (straight-through)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = 0.5 * v + x[t]
        margins.record(h, 1.0, name)
        s = TriangleSpike.apply(h - 1.0)
        m = h * (1 - s)  # hard reset, gradient through the spike (not detached)
        u = torch.tanh(m)
        alpha = u.detach().abs().max()
        y = (u.detach() / alpha).clamp(-1, 1) * QSNN_LEVELS
        membrane_margins.record(y, torch.floor(y) + 0.5, name)
        q = torch.round(y) * alpha / QSNN_LEVELS
        v = u + (q - u).detach()
        out.append(s)
    return torch.stack(out)


def batch_norm(x, w, b, eps=1e-5):
    """Training-mode BN over [N, C, H, W] per channel (N = T*B), biased variance."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)


def max_pool(x):
    """MaxPool2d(3, 2, 1) on [N, C, H, W]; ties to the first maximum in window order."""
    n, c, h, w = x.shape
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = F.pad(x, (1, 1, 1, 1), value=-float("inf"))
    win = xp.unfold(2, 3, 2).unfold(3, 3, 2)[:, :, :ho, :wo].reshape(n, c, ho, wo, 9)
    wd = win.detach()
    best = wd[..., 0]
    arg = torch.zeros_like(best, dtype=torch.long)
    for k in range(1, 9):
        better = wd[..., k] > best
        best = torch.where(better, wd[..., k], best)
        arg = torch.where(better, torch.full_like(arg, k), arg)
    return torch.gather(win, 4, arg.unsqueeze(-1)).squeeze(-1)


class Net:
    def __init__(self, cfg, params):
        self.cfg = cfg
        self.p = params
        self.t = cfg["time_steps"]
        self.rates = []

    def neuron(self, y, name):
        """y [T*B, C, H, W] -> spikes, same shape (time unfolded for the neuron)."""
        t = self.t
        yt = y.reshape(t, -1, *y.shape[1:])
        if self.cfg["weights"] == "qsnn":
            s = qsnn_neuron(yt, f"{name} neuron")
        else:
            s = common.lif(yt, name=f"{name} neuron")
        self.rates.append(s.mean())
        return s.reshape(y.shape)

    def conv_bn(self, x, conv, bn, end=False, k1=False):
        w = effective_weight(self.cfg, conv, self.p[conv], end)
        z = F.conv2d(x, w, padding=0 if k1 else 1)
        return batch_norm(z, self.p[f"{bn}.weight"], self.p[f"{bn}.bias"])

    def forward(self, images):
        cfg, t = self.cfg, self.t
        self.rates = []
        b = images.shape[0]
        x = images.unsqueeze(0).expand(t, *images.shape).reshape(t * b, *images.shape[1:])
        layers = conv_layers(cfg)
        if cfg["arch"] == "spiking-resnet":
            conv, bn, _, _, pool = layers[0]
            x = self.neuron(self.conv_bn(x, conv, bn, end=True), conv)
            if pool:
                x = max_pool(x)
            for j in range((len(layers) - 1) // 2):
                (c1, b1, _, _, _), (c2, b2, _, _, pool) = layers[1 + 2 * j], layers[2 + 2 * j]
                s1 = self.neuron(self.conv_bn(x, c1, b1), c1)
                sc = shortcut(cfg, j)
                res = x if sc is None else self.conv_bn(x, f"{sc[0]}.weight", sc[1], k1=True)
                x = self.neuron(self.conv_bn(s1, c2, b2) + res, c2)
                if pool:
                    x = max_pool(x)
        else:
            for i, (conv, bn, _, _, pool) in enumerate(layers):
                x = self.neuron(self.conv_bn(x, conv, bn, end=(i == 0)), conv)
                if pool:
                    x = max_pool(x)
        feat = x.reshape(t, b, *x.shape[1:]).sum(dim=(3, 4))  # [T, B, C]: sum over H, W
        w = effective_weight(cfg, "head.weight", self.p["head.weight"], True)
        bias = self.p["head.bias"]
        if cfg["weights"] == "qsnn":
            return [feat[i] @ w.t() + bias for i in range(t)]
        return [feat.mean(dim=0) @ w.t() + bias]

    def rate_loss(self, lam):
        return lam * sum((r - 0.5) ** 2 for r in self.rates) / len(self.rates)


# ------------------------------------------------------------------ fixtures

def make_config(arch, mode, channels, pool_after, t, c_in, size):
    return {
        "arch": arch, "depth": len(channels), "dim": channels[-1], "heads": 1,
        "mlp_ratio": 1, "time_steps": t, "in_channels": c_in, "image_size": size,
        "patch_size": 1, "classes": 10, "attention": "ssa", "weights": mode,
        "weight_bits": 4, "channels": channels, "pool_after": pool_after,
    }


FAMILIES = {
    "spiking-vgg": dict(arch="spiking-vgg", channels=[8, 16, 16], pool_after=[0, 1, 2],
                        t=4, c_in=3, size=16, batch=4, data=cifar_images),
    "spiking-resnet": dict(arch="spiking-resnet", channels=[8, 8, 8, 16, 16],
                           pool_after=[0, 2], t=3, c_in=1, size=16, batch=4,
                           data=mnist_images),
}
MODES = {"float": "float", "4bit": "quantized", "qsnn": "qsnn"}

# Seeds chosen by `--search 400` (the largest min_margin of seeds 1..400).
SEEDS = {
    "spiking-vgg-float": 56, "spiking-vgg-4bit": 377, "spiking-vgg-qsnn": 12,
    "spiking-resnet-float": 188, "spiking-resnet-4bit": 193, "spiking-resnet-qsnn": 310,
}


def run(family, mode_key, seed, write=False, quiet=False, dtype=torch.float64):
    fam = FAMILIES[family]
    mode = MODES[mode_key]
    cfg = make_config(fam["arch"], mode, fam["channels"], fam["pool_after"], fam["t"],
                      fam["c_in"], fam["size"])
    gen = Gen(seed)
    images, labels = fam["data"](gen.rng, fam["batch"])
    sd = init_state(cfg, gen)
    if dtype != torch.float64:  # the f32 sensitivity check (--f32)
        images = images.to(dtype)
        sd = {n: v.to(dtype) for n, v in sd.items()}
    params = {n: v.clone().requires_grad_(True) for n, v in sd.items() if trainable(n)}
    named = [(n, params[n]) for n in sd if trainable(n)]
    net = Net(cfg, params)
    rate_reg = QSNN_RATE_REG if mode == "qsnn" else 0.0
    extra = (lambda heads: net.rate_loss(rate_reg)) if rate_reg > 0 else None
    membrane_margins.reset()
    stdout = sys.stdout
    if quiet:
        sys.stdout = open(os.devnull, "w")
    try:
        result = common.run_golden(net.forward, named, images, labels, LR, WEIGHT_DECAY,
                                   extra_loss=extra)
    finally:
        if quiet:
            sys.stdout.close()
            sys.stdout = stdout
    rates = [round(r.item(), 3) for r in net.rates]
    info = dict(min_margin=margins.min_abs, rel=margins.min_rel, where=margins.where,
                membrane=membrane_margins.min_abs if mode == "qsnn" else None,
                rates=rates, losses=result["losses"].tolist(), result=result)
    if write:
        name = f"{family}-{mode_key}"
        path = os.path.join(OUT, f"{name}.safetensors")
        common.write_fixture(path, sd, images, labels.to(torch.float64), result, cfg, LR,
                             WEIGHT_DECAY, rate_reg=rate_reg,
                             script=f"scripts/golden/cnn.py (seed {seed})")
        print(f"{name}: seed {seed}, min margin {info['min_margin']:.3e} "
              f"(rel {info['rel']:.3e}) at {info['where']}, membrane margin "
              f"{info['membrane']}, rates {rates}, losses {info['losses']}")
    return info


def f32_check(family, mode_key, seed):
    """Run the same reference in float32: how far f32 rounding alone moves each output
    (a flipped spike shows up as a jump far above ~1e-6)."""
    a = run(family, mode_key, seed, quiet=True)["result"]
    torch.set_default_dtype(torch.float32)
    try:
        b = run(family, mode_key, seed, quiet=True, dtype=torch.float32)["result"]
    finally:
        torch.set_default_dtype(torch.float64)

    def rel(x, y):
        return ((x - y.to(x.dtype)).abs().max() / x.abs().max().clamp(min=1e-30)).item()

    worst = max(((rel(g, b["grads"][n]), n) for n, g in a["grads"].items()))
    print(f"  f32 vs f64: logits {rel(a['logits'], b['logits']):.2e}, loss "
          f"{rel(a['loss'], b['loss']):.2e}, worst grad {worst[0]:.2e} ({worst[1]}), "
          f"losses {rel(a['losses'], b['losses']):.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--search", type=int, default=0, help="seeds to try per fixture")
    ap.add_argument("--only", default="")
    ap.add_argument("--f32", action="store_true", help="f32 sensitivity of each fixture")
    ap.add_argument("--dry", action="store_true", help="write nothing")
    args = ap.parse_args()
    common.setup()
    for family in FAMILIES:
        for mode_key in MODES:
            name = f"{family}-{mode_key}"
            if args.only and args.only not in name:
                continue
            seed = SEEDS.get(name, 1)
            if args.search:
                best = None
                for s in range(1, args.search + 1):
                    info = run(family, mode_key, s, quiet=True)
                    print(f"  {name} seed {s}: margin {info['min_margin']:.2e} at "
                          f"{info['where']}, rates {info['rates']}", flush=True)
                    if best is None or info["min_margin"] > best[1]:
                        best = (s, info["min_margin"])
                seed = best[0]
                print(f"{name}: best seed {seed} ({best[1]:.2e})")
            if args.f32:
                f32_check(family, mode_key, seed)
            if not args.dry:
                run(family, mode_key, seed, write=True)


if __name__ == "__main__":
    main()
