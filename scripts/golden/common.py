"""Shared pieces of bitspike's golden-fixture scripts (llm.c test_gpt2-style tests).

A golden script builds an independent PyTorch float64 implementation of a model, runs
one train-mode forward and backward and five AdamW steps on one batch, and writes a
safetensors fixture that `tests/golden.rs` replays through bitspike (f32, on the GPU)
and compares. Python is a development tool only: the fixtures are committed and
`cargo test` never runs Python.

What this module provides:

* `setup()`: float64 everywhere, deterministic algorithms, one CPU thread.
* `Gen`: a seeded generator whose values are float32 numbers (drawn in float32, then
  cast to float64), so the f32 fixture holds exactly the values the reference used.
* `margins`: near-threshold reporting. Every threshold op of a reference (LIF fire,
  weight sign, binary-map threshold, ternary spikes, ...) calls
  `margins.record(input, threshold)`; the smallest |input - threshold| seen over all
  recorded forwards is the fixture's `min_margin`. A margin far above float32 rounding
  (~1e-6 relative for the O(1) quantities compared with thresholds here) means bitspike's
  f32 forward takes exactly the same discrete decisions as the float64 reference.
* `lif()`: SpikingJelly's MultiStepLIFNode (step_mode 'm', backend 'torch') written out:
  tau 2, decay_input, v_th 1, hard reset to 0 (or soft reset), detach_reset=True, Sigmoid
  surrogate with alpha 4. Autograd of this loop is exactly docs/models.md section 1's BPTT.
* `decays()`, `make_adamw()`: torch.optim.AdamW with bitspike's parameter groups (weight
  decay on tensors of rank > 1 whose name does not end in `.bias`, the rule of
  `decays()` in src/nn/store.rs), betas (0.9, 0.999), eps 1e-8 (bitspike's `AdamW`
  default in src/ops/optim.rs), no gradient clipping.
* `run_golden()`: the forward/backward/5-step protocol, `write_fixture()`: the format.

Fixture format (safetensors, every tensor float32):
  <state_dict name>          every entry bitspike's `nn::init_state(&cfg, seed)` has for
                             the config, same names and reference shapes (the initial
                             weights, the ones `--weights` loads)
  golden.images [B,C,H,W], golden.labels [B] (class index as float)
  golden.logits [B,classes]  combined logits of the first train-mode forward (mean of
                             the heads, bitspike's `combine_heads`)
  golden.loss [1]            mean over heads of CE(head, y) (no smoothing, no teacher)
  golden.grad.<name>         d loss / d parameter for every trainable parameter
  golden.losses [5]          loss of each of 5 AdamW steps on the same batch (forward,
                             backward, update; losses[0] == loss)
  metadata: config (bitspike ModelConfig JSON), lr, weight_decay, beta1, beta2, eps,
            rate_reg, min_margin (all five forwards), min_margin_rel, min_margin_first
            (the first forward, which logits, loss and gradients come from), script
"""

import json
import math
import os

import numpy as np
import torch

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8
STEPS = 5


def setup():
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


class Gen:
    """Seeded values that are exactly representable in float32."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def _t(self, a):
        return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.float64)

    def normal(self, shape, std=1.0, mean=0.0):
        return self._t(self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
                       + np.float32(mean))

    def uniform(self, shape, lo=0.0, hi=1.0):
        return self._t(self.rng.uniform(lo, hi, size=shape).astype(np.float32))

    def integers(self, n, high):
        return self.rng.integers(0, high, size=n)


def f32(t):
    """Round a float64 tensor to the nearest float32 value (kept as float64)."""
    return t.detach().to(torch.float32).to(torch.float64)


class Margins:
    """Smallest distance of any threshold op's input to its threshold."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.min_abs = math.inf
        self.first_abs = math.inf  # over the first forward only (logits, loss, grads)
        self.min_rel = math.inf
        self.where = None
        self.exact_ties = 0
        self.enabled = True

    def record(self, x, threshold, name="?"):
        if not self.enabled:
            return
        x = x.detach()
        if torch.is_tensor(threshold):
            threshold = threshold.detach()
        d = (x - threshold).abs()
        # Exact ties only arise where both sides are computed exactly (integer scores,
        # dyadic membranes), which float32 reproduces bit for bit: not a risk, skipped.
        self.exact_ties += int((d == 0).sum())
        d = d[d > 0]
        if d.numel() == 0:
            return
        m = d.min().item()
        # Relative to the size of the quantities compared (float32 rounding scales with it).
        scale = max(abs(float(threshold)) if not torch.is_tensor(threshold)
                    else threshold.abs().max().item(),
                    x.abs().max().item(), 1e-30)
        if m < self.min_abs:
            self.min_abs = m
            self.where = name
        self.min_rel = min(self.min_rel, m / scale)

    def report(self, label=""):
        print(f"{label}min margin {self.min_abs:.3e} (relative {self.min_rel:.3e}) at "
              f"{self.where}; {self.exact_ties} exact ties skipped")


margins = Margins()


class SigmoidSpike(torch.autograd.Function):
    """Heaviside(x >= 0) forward, Sigmoid surrogate alpha * sg * (1 - sg) backward."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return g * ctx.alpha * sg * (1 - sg), None


def lif(x, tau=2.0, v_th=1.0, soft=False, alpha=4.0, name="lif"):
    """SpikingJelly MultiStepLIFNode over x [T, ...] (time first), detach_reset=True,
    decay_input=True, v_reset 0 (hard) or None (soft, V starts at 0)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        margins.record(h, v_th, name)
        s = SigmoidSpike.apply(h - v_th, alpha)
        sd = s.detach()
        v = h - v_th * sd if soft else h * (1 - sd)
        out.append(s)
    return torch.stack(out)


def decays(name, p):
    return p.dim() > 1 and not name.endswith(".bias")


def make_adamw(named_params, lr, weight_decay):
    dec = [p for n, p in named_params if decays(n, p)]
    nodec = [p for n, p in named_params if not decays(n, p)]
    return torch.optim.AdamW(
        [{"params": dec, "weight_decay": weight_decay},
         {"params": nodec, "weight_decay": 0.0}],
        lr=lr, betas=(BETA1, BETA2), eps=EPS, foreach=False)


def head_loss(heads, labels):
    """bitspike's Trainer without a teacher, label smoothing 0: mean over heads of CE."""
    return sum(torch.nn.functional.cross_entropy(h, labels) for h in heads) / len(heads)


def run_golden(forward, named_params, images, labels, lr, weight_decay, steps=STEPS,
               extra_loss=None):
    """forward(images) -> list of head logits [B, classes] (train mode). Returns a dict of
    logits, loss, grads (by name), losses. `extra_loss(heads)` adds e.g. a rate term."""
    opt = make_adamw(named_params, lr, weight_decay)
    margins.reset()
    out = {}
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        heads = forward(images)
        loss = head_loss(heads, labels)
        if extra_loss is not None:
            loss = loss + extra_loss(heads)
        loss.backward()
        if step == 0:
            out["logits"] = (sum(heads) / len(heads)).detach().clone()
            out["loss"] = loss.detach().clone()
            out["grads"] = {n: p.grad.detach().clone() for n, p in named_params}
            margins.first_abs = margins.min_abs
            margins.report("first forward: ")
        losses.append(loss.item())
        opt.step()
    margins.report(f"all {steps} forwards: ")
    print("losses", losses)
    out["losses"] = torch.tensor(losses)
    return out


def _np32(t):
    if torch.is_tensor(t):
        t = t.detach().cpu().numpy()
    # np.array, not np.ascontiguousarray, which turns a 0-d tensor (num_batches_tracked)
    # into shape [1].
    return np.array(t, dtype=np.float32, order="C")


def write_fixture(path, state_dict, images, labels, result, config, lr, weight_decay,
                  rate_reg=0.0, script=""):
    """state_dict: name -> tensor (initial values, reference names and shapes);
    result: run_golden's dict; config: the bitspike ModelConfig as a dict."""
    from safetensors.numpy import save_file

    tensors = {n: _np32(t) for n, t in state_dict.items()}
    tensors["golden.images"] = _np32(images)
    tensors["golden.labels"] = _np32(labels)
    tensors["golden.logits"] = _np32(result["logits"])
    tensors["golden.loss"] = _np32(result["loss"]).reshape(1)
    for n, g in result["grads"].items():
        tensors[f"golden.grad.{n}"] = _np32(g)
    tensors["golden.losses"] = _np32(result["losses"])
    meta = {
        "config": json.dumps(config),
        "lr": repr(float(lr)),
        "weight_decay": repr(float(weight_decay)),
        "beta1": repr(BETA1),
        "beta2": repr(BETA2),
        "eps": repr(EPS),
        "rate_reg": repr(float(rate_reg)),
        "min_margin": repr(float(margins.min_abs)),
        "min_margin_rel": repr(float(margins.min_rel)),
        "min_margin_first": repr(float(margins.first_abs)),
        "script": script,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def check_lif_against_spikingjelly():
    """`lif` against SpikingJelly's LIFNode (step_mode 'm', torch backend) in float64:
    spikes equal, input gradients within 1e-12 (hard reset v_th 1 and 0.5, soft reset)."""
    from spikingjelly.activation_based import neuron, surrogate

    torch.manual_seed(0)
    x = (torch.randn(4, 1000) * 1.5 + 0.5).requires_grad_(True)
    for soft, v_th in [(False, 1.0), (True, 1.0), (False, 0.5)]:
        node = neuron.LIFNode(tau=2.0, v_threshold=v_th, v_reset=None if soft else 0.0,
                              detach_reset=True, step_mode="m",
                              surrogate_function=surrogate.Sigmoid(alpha=4.0))
        s1 = node(x)
        g = torch.randn_like(s1)
        (d1,) = torch.autograd.grad((s1 * g).sum(), x)
        s2 = lif(x, v_th=v_th, soft=soft)
        (d2,) = torch.autograd.grad((s2 * g).sum(), x)
        assert torch.equal(s1, s2), "spikes differ from SpikingJelly"
        assert (d1 - d2).abs().max() < 1e-12, "gradients differ from SpikingJelly"
    print("lif matches SpikingJelly's LIFNode (hard v_th 1 and 0.5, soft)")
