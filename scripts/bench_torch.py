"""Times bitspike's presets in PyTorch, the reference a user would otherwise run: the same
models, batch and T as `bitspike bench model`, forward and training step in interleaved
rounds, printed the way bitspike prints them, so the two can be read side by side.

    pip install torch spikingjelly     # (and cupy on CUDA, for SpikingJelly's fast LIF)
    python3 scripts/bench_torch.py --models spikformer-2-64,bestformer-2-64 --batch 32
    python3 scripts/bench_torch.py --device cuda --batch 64 --lif spikingjelly

The models are scripts/golden/transformers.py's independent PyTorch implementation of
docs/models.md (the one the golden gradient tests are checked against), run in float32:
binary weights through their straight-through estimator as the published code does,
every other op in plain PyTorch. A preset's configuration comes from `bitspike info
--model PRESET --json`, so build bitspike first (`cargo build --release`).

What is timed, per preset (each a median over interleaved rounds of at least
--min-time seconds in all):
  forward     a forward without autograd (BatchNorm on batch statistics, the only mode
              the reference implements; bitspike's `forward` uses running statistics,
              the same work);
  train_step  forward, the heads' cross-entropy, backward, one AdamW step.
The LIF neuron is the reference's loop over T (`--lif golden`, SpikingJelly's 'torch'
backend written out) or SpikingJelly's own MultiStepLIFNode (`--lif spikingjelly`), on
its CuPy backend when the device is CUDA and CuPy is installed.

--json prints one object per line with bitspike's keys (kernel, shape, seconds, rate,
unit, ratio, ratio_to), the kernel prefixed `torch:`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "golden"))
import common as C  # noqa: E402
import transformers as T  # noqa: E402


def preset_config(bitspike, preset):
    out = subprocess.run([bitspike, "info", "--model", preset, "--json"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("{") and '"config"' in line:
            return json.loads(line)["config"]
    raise SystemExit(f"`{bitspike} info --model {preset} --json` printed no config")


def spikingjelly_lif(device):
    """A drop-in for the reference's `lif(x [T, ...], tau, v_th, soft, alpha, name)`."""
    from spikingjelly.activation_based import neuron, surrogate

    backend = "torch"
    if device.type == "cuda":
        try:
            import cupy  # noqa: F401
            backend = "cupy"
        except ImportError:
            pass
    nodes = {}

    def lif(x, tau=2.0, v_th=1.0, soft=False, alpha=4.0, name="lif"):
        key = (tau, v_th, soft, alpha)
        if key not in nodes:
            nodes[key] = neuron.LIFNode(
                tau=tau, v_threshold=v_th, v_reset=None if soft else 0.0,
                decay_input=True, detach_reset=True,
                surrogate_function=surrogate.Sigmoid(alpha=alpha), step_mode="m",
                backend=backend).to(device)
        node = nodes[key]
        node.reset()
        return node(x)

    return lif, backend


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(runs, device, min_time, min_rounds=3):
    """Median seconds of each run, timed once per round until `min_time` has passed."""
    for run in runs:  # warm-up (allocator, CuPy kernels)
        run()
    sync(device)
    times = [[] for _ in runs]
    start = time.perf_counter()
    while len(times[0]) < min_rounds or time.perf_counter() - start < min_time:
        for i, run in enumerate(runs):
            t0 = time.perf_counter()
            run()
            sync(device)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def report(kernel, shape, seconds, images, ratio, ratio_to, as_json):
    rate = images / seconds
    if as_json:
        print(json.dumps({"kernel": kernel, "shape": shape, "seconds": seconds,
                          "rate": rate, "unit": "images/s", "ratio": ratio,
                          "ratio_to": ratio_to}))
    else:
        tail = f"   {ratio:.2f}x {ratio_to}" if ratio is not None else ""
        print(f"{kernel:<40} {shape:<18} {seconds * 1e3:>10.3f} ms {rate:>10.1f} images/s{tail}")


def bench(preset, args, device):
    cfg = preset_config(args.bitspike, preset)
    if cfg["arch"] not in ("spikformer", "bestformer"):
        raise SystemExit(f"{preset}: only the transformer presets have a PyTorch model here")
    params = T.init_params(cfg, C.Gen(1))
    params = {n: (v.detach().to(device, torch.float32).requires_grad_(v.requires_grad), k)
              for n, (v, k) in params.items()}
    net = T.Net(cfg, params)
    trainable = [v for v, k in params.values() if k in T.TRAINABLE]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    s, b = cfg["image_size"], args.batch
    images = torch.rand(b, cfg["in_channels"], s, s, device=device) * 2 - 1
    labels = torch.arange(b, device=device) % cfg["classes"]

    def forward():
        with torch.no_grad():
            net.forward(images)

    def train_step():
        heads = net.forward(images)
        loss = sum(torch.nn.functional.cross_entropy(h, labels) for h in heads) / len(heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    fwd, step = time_interleaved([forward, train_step], device, args.min_time)
    shape = f"{b}x{cfg['time_steps']}x{s}x{s}"
    report(f"torch:{preset}/forward", shape, fwd, b, None, None, args.json)
    report(f"torch:{preset}/train_step", shape, step, b, fwd / step, "forward", args.json)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="spikformer-4-384,bestformer-4-384",
                    help="presets, comma-separated (transformers only)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads for PyTorch (0: PyTorch's default)")
    ap.add_argument("--min-time", type=float, default=3.0,
                    help="seconds of timed rounds per preset")
    ap.add_argument("--lif", choices=["golden", "spikingjelly"], default="golden")
    ap.add_argument("--bitspike", default=os.path.join(ROOT, "target", "release", "bitspike"),
                    help="the bitspike binary that reports the presets' configurations")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # The reference records near-threshold margins for the golden fixtures; not here.
    C.margins.record = lambda *a, **k: None
    backend = "torch (the reference's loop)"
    if args.lif == "spikingjelly":
        T.lif, backend = spikingjelly_lif(device)
    if not args.json:
        print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads, "
              f"LIF backend {backend}")
    for preset in args.models.split(","):
        bench(preset.strip(), args, device)


if __name__ == "__main__":
    main()
