#!/usr/bin/env python
"""Conv1D / Conv2D benchmark: rnnbook vs torch.nn (Conv1d/Conv2d) vs Keras 3 (torch backend), in one run.

Usage::

    python bench/bench_conv.py [--quick] [--json results.json] [--configs 0,2]
                               [--repeats N] [--min-repeat-s S] [--clock wall|cpu]

For every configuration (layer, batch, spatial size, channels, filters, kernel, padding) the script

1. draws one set of random float32 weights in *Keras* layout (kernel ``(*k, C, F)``, bias ``(F,)``),
2. loads them into an ``rnnbook`` layer and a Keras 3 layer (``set_weights``) and into ``torch.nn.Conv1d/2d``
   (kernel transposed to torch's ``(F, C, *k)``; torch gets the input channels first, its own layout, converted
   once before timing, as a torch user's data would already be),
3. checks that the three outputs agree (``atol=1e-4``),
4. times, median seconds per call (``--clock cpu``: CPU seconds of the process instead of elapsed ones):
   * ``forward``: inference (torch and Keras inside ``torch.inference_mode()``, rnnbook on NumPy arrays);
   * ``train``: one training step, forward + loss ``mean(y**2)`` + gradients of kernel and bias + an SGD update
     (rnnbook under ``rb.GradientTape``, torch and Keras with torch autograd),
5. prints the ratios rnnbook/torch and rnnbook/keras (below 1: rnnbook is faster).

All three libraries live in one process; the script sleeps ``--switch-sleep`` seconds between libraries so that the
BLAS and OpenMP thread pools stop spinning before the next one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

if os.environ.get("KERAS_BACKEND", "torch") != "torch":
    sys.exit(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}; this benchmark needs KERAS_BACKEND=torch (or unset).")
os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import torch  # noqa: E402

# (layer, batch, spatial size, channels C, filters F, kernel size, padding)
CONFIGS = [
    ("Conv1D", 32, (100,), 64, 64, 3, "same"),
    ("Conv1D", 64, (200,), 32, 128, 5, "valid"),
    ("Conv2D", 32, (28, 28), 1, 32, 3, "valid"),
    ("Conv2D", 16, (32, 32), 16, 32, 3, "same"),
    ("Conv2D", 8, (64, 64), 32, 64, 3, "same"),
]
LIBS = ["rnnbook", "torch", "keras"]
MODES = ["forward", "train"]
ATOL = 1e-4
LR = 1e-3


def torch_kernel(kernel):
    "Keras' `(*k, C, F)` kernel as torch's `(F, C, *k)`."
    rank = kernel.ndim - 2
    return np.ascontiguousarray(kernel.transpose((rank + 1, rank) + tuple(range(rank))))


def build_torch(name, weights, x, padding):
    kernel, bias = weights
    rank = kernel.ndim - 2
    cls = torch.nn.Conv1d if rank == 1 else torch.nn.Conv2d
    F, C = kernel.shape[-1], kernel.shape[-2]
    mod = cls(C, F, kernel.shape[:-2], padding=padding).float()
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(torch_kernel(kernel)))
        mod.bias.copy_(torch.from_numpy(bias))
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))          # (N, C, *S): torch's layout

    def forward():
        with torch.inference_mode():
            return mod(xt)

    def train():
        mod.zero_grad(set_to_none=True)
        loss = mod(xt).square().mean()
        loss.backward()
        with torch.no_grad():
            for p in mod.parameters():
                p -= LR * p.grad
        return loss

    return forward, train, lambda y: np.moveaxis(y.detach().numpy(), 1, -1)


def build_keras(name, weights, x, padding):
    import keras
    layer = getattr(keras.layers, name)(weights[0].shape[-1], weights[0].shape[:-2], padding=padding)
    xt = torch.from_numpy(x)
    layer(xt[:1])
    layer.set_weights(weights)

    def forward():
        with torch.inference_mode():
            return layer(xt)

    def train():
        for v in layer.trainable_weights:
            v.value.grad = None
        loss = layer(xt).square().mean()
        loss.backward()
        with torch.no_grad():
            for v in layer.trainable_weights:
                p = v.value                                                      # the torch Parameter
                p -= LR * p.grad
        return loss

    return forward, train, lambda y: keras.ops.convert_to_numpy(y)


def build_rnnbook(name, weights, x, padding):
    import rnnbook as rb
    from rnnbook import conv_layers
    layer = getattr(conv_layers, name)(weights[0].shape[-1], weights[0].shape[:-2], padding=padding)
    layer(x[:1])
    layer.set_weights(weights)

    def forward():
        return layer(x)

    def train():
        with rb.GradientTape() as tape:
            loss = rb.ops.mean(rb.ops.square(layer(x)))
        grads = tape.gradient(loss, layer.trainable_weights)
        for v, g in zip(layer.trainable_weights, grads):
            v.assign(v.value - LR * g)
        return loss

    return forward, train, lambda y: np.asarray(y)


BUILDERS = {"rnnbook": build_rnnbook, "torch": build_torch, "keras": build_keras}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_fn(fn, repeats, warmup, min_repeat_s, clock=time.perf_counter):
    "Median seconds per call: after `warmup` calls, `repeats` repeats of `inner` calls lasting >= `min_repeat_s`."
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    inner = min(1000, max(1, int(np.ceil(min_repeat_s / max(time.perf_counter() - t0, 1e-9)))))
    per_call = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(inner):
            fn()
        per_call.append((clock() - t0) / inner)
    return {"median_s": statistics.median(per_call), "min_s": min(per_call), "repeats": repeats, "inner": inner}


def fmt_s(s):
    return f"{s * 1e3:9.2f}ms" if s < 1 else f"{s:9.3f}s "


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats / shorter timing windows")
    p.add_argument("--json", metavar="PATH", help="write results as JSON")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 2, quick 1)")
    p.add_argument("--min-repeat-s", type=float, default=None, help="min duration of one repeat (0.1, quick 0.02)")
    p.add_argument("--switch-sleep", type=float, default=0.25, help="seconds to sleep when switching library")
    p.add_argument("--configs", default=None,
                   help="comma list of indices into " + ", ".join(f"{i}={c}" for i, c in enumerate(CONFIGS)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: elapsed time (default); cpu: this process's CPU time (all its threads), which time "
                        "spent waiting for a core on a loaded machine does not inflate")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.warmup = args.warmup or (1 if args.quick else 2)
    args.min_repeat_s = args.min_repeat_s or (0.02 if args.quick else 0.1)
    args.configs = CONFIGS if args.configs is None else [CONFIGS[int(i)] for i in args.configs.split(",")]
    return args


def run_config(config, args, rng):
    name, B, S, C, F, k, padding = config
    rank = len(S)
    kernel = rng.uniform(-0.1, 0.1, (k,) * rank + (C, F)).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, (F,)).astype(np.float32)
    x = rng.standard_normal((B,) + S + (C,)).astype(np.float32)
    fns, outs = {}, {}
    for lib in LIBS:
        forward, train, to_np = BUILDERS[lib](name, [kernel, bias], x, padding)
        fns[lib] = {"forward": forward, "train": train}
        outs[lib] = to_np(forward())
    diffs = {lib: float(np.max(np.abs(outs[lib] - outs["torch"]))) for lib in LIBS}
    bad = {lib: d for lib, d in diffs.items() if d > ATOL}
    if bad:
        raise AssertionError(f"outputs differ from torch's: {bad}")
    times = {mode: {} for mode in MODES}
    for mode in MODES:
        for lib in LIBS:
            time.sleep(args.switch_sleep)
            times[mode][lib] = time_fn(fns[lib][mode], args.repeats, args.warmup, args.min_repeat_s,
                                       CLOCKS[args.clock])
    return {"config": config, "max_abs_diff": diffs, "times": times}


def main(argv=None):
    args = parse_args(argv)
    import keras
    assert keras.backend.backend() == "torch", keras.backend.backend()
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "numpy": np.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "keras": keras.__version__, "repeats": args.repeats, "min_repeat_s": args.min_repeat_s,
            "clock": args.clock}
    print("Environment: " + ", ".join(f"{k}={v}" for k, v in info.items()) + "\n")
    rng = np.random.default_rng(args.seed)
    results = []
    header = f"{'config':44s} {'mode':8s}" + "".join(f"{lib:>12s}" for lib in LIBS) + "   rb/torch   rb/keras"
    print(header)
    for config in args.configs:
        name, B, S, C, F, k, padding = config
        tag = f"{name} B={B} S={'x'.join(map(str, S))} C={C} F={F} k={k} {padding}"
        rec = run_config(config, args, rng)
        results.append(rec)
        for mode in MODES:
            t = {lib: rec["times"][mode][lib]["median_s"] for lib in LIBS}
            rec["times"][mode]["ratios"] = {"rnnbook/torch": t["rnnbook"] / t["torch"],
                                            "rnnbook/keras": t["rnnbook"] / t["keras"]}
            print(f"{tag:44s} {mode:8s}" + "".join(f"{fmt_s(t[lib]):>12s}" for lib in LIBS)
                  + f"   {t['rnnbook'] / t['torch']:7.2f}x   {t['rnnbook'] / t['keras']:7.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": info, "results": results}, f, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
