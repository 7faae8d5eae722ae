#!/usr/bin/env python
"""One training step (forward + backward + Adam update) of a recurrent layer: rnnbook vs torch vs Keras 3.

Usage::

    python bench/bench_train.py [--quick] [--cells LSTM,GRU,SimpleRNN] [--configs 0,1] [--json out.json]
                                [--threads N] [--clock wall|cpu]

For each (batch, time, features, units) configuration (``CONFIGS`` below: 0 and 1 are the shapes of issue 19's
targets) and each cell, the three libraries start from the same weights and the same batch, take one step of
``loss = mean((layer(x) - y)**2)`` with ``Adam(1e-3)`` (return_sequences=True), and the script checks that the
updated weights agree (atol 1e-4) before timing the step. rnnbook runs ``rb.GradientTape`` +
``rb.optimizers.Adam``; torch ``nn.LSTM/GRU/RNN`` + ``torch.optim.Adam`` (CPU, float32); Keras a one-layer
``Sequential`` compiled with ``adam``/``mse`` and ``train_on_batch`` (torch backend). The libraries are timed in
turns within every repeat (``bench_rnn.time_interleaved``); the medians of the repeats and the medians of the
per-repeat ratios rnnbook/torch and rnnbook/keras are printed: machines are noisy, so read ratios, not times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
if os.environ["KERAS_BACKEND"] != "torch":
    sys.exit("this benchmark needs KERAS_BACKEND=torch (or unset)")

from bench_rnn import THREADS, CLOCKS, time_interleaved, ratio, make_keras_weights, load_torch_params, lstm_kernel  # noqa: E402,I001
import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402

LR = 1e-3
# (batch, time, features, units); 0 and 1 are the shapes of the training targets of issue 19
CONFIGS = [(64, 100, 64, 128), (32, 50, 32, 256), (64, 100, 128, 512), (32, 28, 28, 64)]


def rnnbook_step(cell, units, weights, x, y):
    kw = {"reset_after": True} if cell == "GRU" else {}
    layer = getattr(rb.layers, cell)(units, return_sequences=True, **kw)
    layer.build(x.shape)
    layer.set_weights(weights)
    opt = rb.optimizers.Adam(LR)

    def step():
        with rb.GradientTape() as tape:
            loss = rb.ops.mean(rb.ops.square(layer(x) - y))
        grads = tape.gradient(loss, layer.trainable_weights)
        opt.apply_gradients(zip(grads, layer.trainable_weights))
    return step, lambda: layer.get_weights()


def torch_step(cell, units, weights, x, y):
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[cell]
    mod = cls(x.shape[-1], units, batch_first=True)
    load_torch_params(mod, rb.utils.torch_weights(cell, *weights))
    # Keras adds epsilon to sqrt(v) before bias correction, torch after: this eps makes the first step identical
    opt = torch.optim.Adam(mod.parameters(), lr=LR, eps=1e-7 / np.sqrt(1 - 0.999))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = ((mod(xt)[0] - yt) ** 2).mean()
        loss.backward()
        opt.step()

    def weights_now():
        sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
        return rb.utils.keras_weights(cell, sd)
    return step, weights_now


def keras_step(cell, units, weights, x, y):
    import keras
    kw = {"reset_after": True} if cell == "GRU" else {}
    model = keras.Sequential([keras.Input(x.shape[1:]), getattr(keras.layers, cell)(units, return_sequences=True, **kw)])
    model.layers[0].set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="mse")
    return (lambda: model.train_on_batch(x, y)), (lambda: model.layers[0].get_weights())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-repeat-s", type=float, default=0.05,
                   help="each repeat runs a library's step back to back for at least this long (its first step "
                        "after the switch sleep is the cold one)")
    p.add_argument("--cells", default="LSTM,GRU,SimpleRNN")
    p.add_argument("--configs", default=None, help="comma list of indices into " + ", ".join(
        f"{i}={c}" for i, c in enumerate(CONFIGS)))
    p.add_argument("--no-keras", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--threads", type=int, default=THREADS,
                   help="threads for NumPy's BLAS and torch (read before they start, see bench_rnn.py)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall or process CPU time")
    a = p.parse_args(argv)
    configs = [CONFIGS[int(i)] for i in a.configs.split(",")] if a.configs else CONFIGS
    repeats = 3 if a.quick else a.repeats
    builders = {"rnnbook": rnnbook_step, "torch": torch_step}
    if not a.no_keras:
        builders["keras"] = keras_step
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{a.clock} clock, load average {os.getloadavg()[0]:.1f}; LSTM kernel: {lstm_kernel()}; "
          f"one Adam step of mean((layer(x) - y)^2); median of {repeats}, libraries in turns, "
          "ratios: median of the per-repeat ratios\n")
    rows = []
    for B, T, F, U in configs:
        for cell in a.cells.split(","):
            rng = np.random.default_rng(0)
            weights = make_keras_weights(cell, F, U, rng)
            x = rng.standard_normal((B, T, F)).astype("float32")
            y = rng.standard_normal((B, T, U)).astype("float32")
            steps = {lib: build(cell, U, [w.copy() for w in weights], x, y) for lib, build in builders.items()}
            after = {}
            for lib, (step, get) in steps.items():
                step()
                after[lib] = get()
            # torch keeps two bias vectors and Adam moves each by about the learning rate, so only its kernels
            # are compared; Keras (one bias, same update rule) must agree on every weight
            errs = {lib: max(float(np.abs(np.asarray(a_) - np.asarray(b_)).max())
                             for a_, b_ in list(zip(after["rnnbook"], after[lib]))[:2 if lib == "torch" else 3])
                    for lib in after if lib != "rnnbook"}
            err = max(errs.values())
            if err > 1e-4:
                raise AssertionError(f"{cell} {(B, T, F, U)}: weights after one step differ by {errs}")
            timed = time_interleaved({lib: step for lib, (step, _) in steps.items()}, repeats, warmup=1,
                                     min_repeat_s=a.min_repeat_s, clock=CLOCKS[a.clock])
            times = {lib: t["median_s"] for lib, t in timed.items()}
            ratios = {f"rnnbook/{lib}": ratio(timed, "rnnbook", lib) for lib in times if lib != "rnnbook"}
            rows.append({"cell": cell, "B": B, "T": T, "F": F, "U": U, **{f"{k}_s": v for k, v in times.items()},
                         **ratios, "weights_agree_to": err})
            print(f"{cell:9s} B={B:3d} T={T:4d} F={F:4d} U={U:4d}  " +
                  "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in times.items()) + "   " +
                  "  ".join(f"{k} {v:5.2f}" for k, v in ratios.items()) + f"   (agree to {err:.1e})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
