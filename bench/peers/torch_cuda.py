"""PyTorch (cuDNN) peer for the GPU benchmark, run by bench/peers/torch.ts.

Reads a JSON job on stdin: {"forward": [layer], "step": [layer], "resnet": [layer]},
each layer {"name", "config"} with convbn's normalized config (codegen/config.ts), and
writes JSON results on stdout. Float32, TF32 off, cudnn.benchmark on (cuDNN picks
its fastest algorithm per shape, as our tuner does). Times come from CUDA events
around a number of repetitions long enough to amortise launch costs.

Modes, each the same function and gradients as convbn's:
  train   conv -> batch_norm with batch statistics (running stats updated)
  eval    conv -> batch_norm with running statistics (two ops, autograd keeps z)
  tune    the paper's fold on the fly: W' = W s, b' = (b - mean) s + beta, conv(x, W', b')
  deploy  conv(x, W', b') with W', b' stored as the parameters
Memory held for backward: the bytes of the tensors autograd saves (parameters not
counted, each storage once), read with saved_tensors_hooks.
"""
import json
import sys

import torch
import torch.nn.functional as F

MODES = ["train", "eval", "tune", "deploy"]


def conv_args(c):
    if c["padTop"] != c["padBottom"] or c["padLeft"] != c["padRight"]:
        raise ValueError("asymmetric padding has no torch.nn.functional.conv2d form")
    return dict(stride=(c["strideH"], c["strideW"]), padding=(c["padTop"], c["padLeft"]),
                dilation=(c["dilationH"], c["dilationW"]), groups=c["groups"])


def out_hw(c):
    h = (c["H"] + c["padTop"] + c["padBottom"] - c["dilationH"] * (c["kH"] - 1) - 1) // c["strideH"] + 1
    w = (c["W"] + c["padLeft"] + c["padRight"] - c["dilationW"] * (c["kW"] - 1) - 1) // c["strideW"] + 1
    return h, w


class Layer:
    def __init__(self, c, seed):
        g = torch.Generator(device="cuda").manual_seed(seed)
        dev = dict(device="cuda", dtype=torch.float32)
        fan = c["Cin"] // c["groups"] * c["kH"] * c["kW"]
        self.c = c
        self.args = conv_args(c)
        self.x = torch.rand(c["N"], c["Cin"], c["H"], c["W"], generator=g, **dev) - 0.5
        oh, ow = out_hw(c)
        self.gy = torch.rand(c["N"], c["Cout"], oh, ow, generator=g, **dev) - 0.5
        shape = (c["Cout"], c["Cin"] // c["groups"], c["kH"], c["kW"])
        self.weight = ((torch.rand(*shape, generator=g, **dev) - 0.5) * 2 / fan ** 0.5).requires_grad_()
        self.bias = (torch.rand(c["Cout"], generator=g, **dev) - 0.5).requires_grad_() if c["bias"] else None
        self.gamma = (torch.rand(c["Cout"], generator=g, **dev) + 0.5).requires_grad_()
        self.beta = (torch.rand(c["Cout"], generator=g, **dev) - 0.5).requires_grad_()
        self.mean = torch.rand(c["Cout"], generator=g, **dev) - 0.5
        self.var = torch.rand(c["Cout"], generator=g, **dev) + 0.5
        with torch.no_grad():
            s = self.gamma / torch.sqrt(self.var + c["eps"])
            b = self.bias if self.bias is not None else torch.zeros_like(self.beta)
            self.folded_weight = (self.weight * s.view(-1, 1, 1, 1)).clone().requires_grad_()
            self.folded_bias = ((b - self.mean) * s + self.beta).clone().requires_grad_()
        self.params = [t for t in (self.weight, self.bias, self.gamma, self.beta, self.folded_weight, self.folded_bias, self.mean, self.var)
                       if t is not None]

    def forward(self, mode, x):
        c = self.c
        if mode == "deploy":
            return F.conv2d(x, self.folded_weight, self.folded_bias, **self.args)
        if mode == "tune":
            s = self.gamma / torch.sqrt(self.var + c["eps"])
            b = self.bias if self.bias is not None else 0
            return F.conv2d(x, self.weight * s.view(-1, 1, 1, 1), (b - self.mean) * s + self.beta, **self.args)
        z = F.conv2d(x, self.weight, self.bias, **self.args)
        return F.batch_norm(z, self.mean, self.var, self.gamma, self.beta, training=mode == "train",
                            momentum=c["momentum"], eps=c["eps"])

    def inputs_for(self, mode):
        if mode == "deploy":
            return [self.x, self.folded_weight, self.folded_bias]
        return [t for t in (self.x, self.weight, self.bias, self.gamma, self.beta) if t is not None]

    def step(self, mode):
        """Forward and backward, every gradient (x, W, bias, gamma, beta), as torch.autograd.grad."""
        x = self.x.detach().requires_grad_()
        y = self.forward(mode, x)
        inputs = [x] + self.inputs_for(mode)[1:]
        return torch.autograd.grad(y, inputs, self.gy)

    def held_bytes(self, mode):
        """Bytes autograd keeps between this mode's forward and backward (parameters not counted)."""
        params = {t.data_ptr() for t in self.params}
        seen = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:
                seen[ptr] = t.untyped_storage().nbytes()
            return t

        x = self.x.detach().requires_grad_()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = self.forward(mode, x)
        del y
        return sum(seen.values())


def timed(fn, min_ms=20.0):
    """Median ms of one call: repetitions sized so one timed batch lasts at least min_ms."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    reps = max(1, min(1000, int(min_ms / max(start.elapsed_time(end), 1e-3))))
    samples = []
    for _ in range(7):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    samples.sort()
    return {"median": samples[len(samples) // 2], "min": samples[0], "max": samples[-1], "reps": reps}


def peak_step_bytes(layer, mode):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    grads = layer.step(mode)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del grads
    return peak


def main():
    job = json.load(sys.stdin)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "cudnn": torch.backends.cudnn.version(), "forward": {}, "step": {}, "resnet": {}}
    for i, item in enumerate(job.get("forward", [])):
        layer = Layer(item["config"], 100 + i)
        with torch.no_grad():
            out["forward"][item["name"]] = timed(lambda: layer.forward("deploy", layer.x))
    for section in ("step", "resnet"):
        for i, item in enumerate(job.get(section, [])):
            layer = Layer(item["config"], 200 + i)
            row = {}
            for mode in MODES:
                row[mode] = {"time": timed(lambda: layer.step(mode)), "held": layer.held_bytes(mode),
                             "peak": peak_step_bytes(layer, mode)}
            out[section][item["name"]] = row
            del layer
            torch.cuda.empty_cache()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
