#!/usr/bin/env python
"""Forward-inference benchmark of the wrapper layers: rnnbook vs torch.nn vs Keras 3 (torch backend).

Usage::

    python bench/bench_wrappers.py [--quick] [--json results.json] [--cases bidi,masked,convlstm,td]

Cases (each checks that the libraries agree before timing, then prints median seconds per call and the
ratios rnnbook/torch and rnnbook/keras; all libraries run in one process, float32, CPU):

* ``bidi``     Bidirectional(LSTM(U, return_sequences=True)) vs ``torch.nn.LSTM(bidirectional=True)``
               (weights through ``rnnbook.utils.torch_module``) vs ``keras.layers.Bidirectional``;
* ``masked``   Embedding(mask_zero=True) -> LSTM(U) on right-padded ids, the mask flowing by itself, vs
               ``nn.Embedding`` + ``pack_padded_sequence`` + ``nn.LSTM`` vs the same Keras chain;
* ``convlstm`` ConvLSTM2D(F, 3, padding='same', return_sequences=True) vs ``keras.layers.ConvLSTM2D``
               (PyTorch has no ConvLSTM);
* ``td``       TimeDistributed(Dense(U)) vs ``torch.nn.Linear`` on (B, T, F) vs ``keras.layers.TimeDistributed``.

Machines are noisy: read the ratios, measured in the same run, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

if os.environ.get("KERAS_BACKEND", "torch") != "torch":
    sys.exit("this benchmark needs KERAS_BACKEND=torch (or unset)")
os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from bench_rnn import time_fn  # noqa: E402  (same timing as the recurrent-layer benchmark)

ATOL = 1e-4


def median_time(fn, repeats):
    return time_fn(fn, repeats, warmup=1, min_repeat_s=0.05)["median_s"]


def knp(x):
    import keras
    return keras.ops.convert_to_numpy(x)


def randomize(klayer, seed=0):
    rng = np.random.default_rng(seed)
    klayer.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32") for w in klayer.get_weights()])


# ---- cases: each returns {lib: (fn, to_numpy)} ------------------------------------------------------------------
def case_bidi(B, T, F, U):
    import keras
    x = np.random.default_rng(1).standard_normal((B, T, F)).astype("float32")
    k = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True))
    k.build(x.shape)
    randomize(k)
    r = rb.layers.Bidirectional(rb.layers.LSTM(U, return_sequences=True))
    r.build(x.shape)
    r.set_weights(k.get_weights())
    m = rb.utils.torch_module(r).eval()
    xt = torch.from_numpy(x)

    def tfwd():
        with torch.inference_mode():
            return m(xt)[0]

    def kfwd():
        with torch.no_grad():
            return k(xt)

    return {"rnnbook": (lambda: r(x), np.asarray), "torch": (tfwd, lambda o: o.numpy()), "keras": (kfwd, knp)}


def case_masked(B, T, F, U, vocab=1000):
    import keras
    rng = np.random.default_rng(2)
    lengths = np.sort(rng.integers(T // 4, T + 1, B))[::-1].copy()
    lengths[0] = T
    ids = rng.integers(1, vocab, (B, T)) * (np.arange(T)[None] < lengths[:, None])
    ke, kl = keras.layers.Embedding(vocab, F, mask_zero=True), keras.layers.LSTM(U)
    ke.build(ids.shape)
    kl.build((B, T, F))
    randomize(ke)
    randomize(kl, 1)
    re, rl = rb.layers.Embedding(vocab, F, mask_zero=True), rb.layers.LSTM(U)
    re.build(ids.shape)
    rl.build((B, T, F))
    re.set_weights(ke.get_weights())
    rl.set_weights(kl.get_weights())
    te = torch.nn.Embedding(vocab, F)
    with torch.no_grad():
        te.weight.copy_(torch.from_numpy(re.get_weights()[0]))
    tl = rb.utils.torch_module(rl).eval()
    ids_t, len_t = torch.from_numpy(ids), torch.from_numpy(lengths)

    def tfwd():
        with torch.inference_mode():
            packed = torch.nn.utils.rnn.pack_padded_sequence(te(ids_t), len_t, batch_first=True)
            return tl(packed)[1][0][0]

    def kfwd():
        with torch.no_grad():
            return kl(ke(ids_t))

    return {"rnnbook": (lambda: rl(re(ids)), np.asarray), "torch": (tfwd, lambda o: o.numpy()), "keras": (kfwd, knp)}


def case_convlstm(B, T, S, C, Fi):
    import keras
    x = np.random.default_rng(3).standard_normal((B, T, S, S, C)).astype("float32")
    k = keras.layers.ConvLSTM2D(Fi, 3, padding="same", return_sequences=True)
    k.build(x.shape)
    randomize(k)
    r = rb.layers.ConvLSTM2D(Fi, 3, padding="same", return_sequences=True)
    r.build(x.shape)
    r.set_weights(k.get_weights())
    xt = torch.from_numpy(x)

    def kfwd():
        with torch.no_grad():
            return k(xt)

    return {"rnnbook": (lambda: r(x), np.asarray), "keras": (kfwd, knp)}


def case_td(B, T, F, U):
    import keras
    x = np.random.default_rng(4).standard_normal((B, T, F)).astype("float32")
    k = keras.layers.TimeDistributed(keras.layers.Dense(U))
    k.build(x.shape)
    randomize(k)
    r = rb.layers.TimeDistributed(rb.layers.Dense(U))
    r.build(x.shape)
    r.set_weights(k.get_weights())
    lin = torch.nn.Linear(F, U)
    W, b = r.get_weights()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W.T.copy()))
        lin.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x)

    def tfwd():
        with torch.inference_mode():
            return lin(xt)

    def kfwd():
        with torch.no_grad():
            return k(xt)

    return {"rnnbook": (lambda: r(x), np.asarray), "torch": (tfwd, lambda o: o.numpy()), "keras": (kfwd, knp)}


CASES = {
    "bidi": (case_bidi, [(32, 50, 64, 128), (64, 100, 64, 128)], "B,T,F,U"),
    "masked": (case_masked, [(64, 100, 64, 128)], "B,T,F,U"),
    "convlstm": (case_convlstm, [(4, 10, 32, 3, 16), (8, 8, 16, 8, 32)], "B,T,S,C,F"),
    "td": (case_td, [(64, 100, 128, 256)], "B,T,F,U"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="first configuration of each case, 5 repeats")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    repeats = 5 if a.quick else a.repeats
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"rnnbook {rb.__version__}; median of {repeats} repeats\n")
    results = []
    for name in a.cases.split(","):
        build, configs, labels = CASES[name]
        for cfg in configs[:1] if a.quick else configs:
            libs = build(*cfg)
            outs = {lib: conv(fn()) for lib, (fn, conv) in libs.items()}
            err = max(float(np.abs(outs["rnnbook"] - o).max()) for o in outs.values())
            if err > ATOL:
                raise AssertionError(f"{name} {cfg}: libraries disagree by {err:.2e}")
            times = {}
            for lib, (fn, _) in libs.items():
                time.sleep(0.25)   # let the other library's thread pool go idle
                times[lib] = median_time(fn, repeats)
            row = {"case": name, labels: cfg, **{f"{lib}_s": t for lib, t in times.items()},
                   **{f"rnnbook/{lib}": times["rnnbook"] / t for lib, t in times.items() if lib != "rnnbook"},
                   "max_abs_diff": err}
            results.append(row)
            ratios = "  ".join(f"rnnbook/{lib} {times['rnnbook'] / t:5.2f}" for lib, t in times.items()
                               if lib != "rnnbook")
            ms = "  ".join(f"{lib} {t * 1e3:8.2f} ms" for lib, t in times.items())
            print(f"{name:9s} {labels}={cfg}:  {ms}   {ratios}   (agree to {err:.1e})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
