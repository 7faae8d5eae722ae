#!/usr/bin/env python
"""Forward-inference benchmark: rnnbook vs torch.nn vs Keras 3 (torch backend).

Usage::

    python bench/bench_rnn.py [--quick] [--json results.json]
                              [--cells lstm,gru,simplernn] [--configs 0,2]
                              [--last] [--no-keras] [--no-torch] [--no-rnnbook]
                              [--threads N] [--clock wall|cpu]

For every (batch, time, features, units) configuration and every cell type the
script

1. draws one set of random float32 weights in *Keras* order/shapes,
2. loads them into an ``rnnbook`` layer (``set_weights``), a Keras 3 layer
   (``set_weights``) and the matching ``torch.nn`` module (converted with the
   ``rnnbook.utils.torch_weights``),
3. checks that the three outputs agree (``atol=1e-4``) on the benchmark input,
4. times forward inference (float32, CPU) of each library, **interleaved**: each
   repeat times every library once, one after the other, so that a change in the
   machine's load hits all of them alike; it reports the median seconds per call
   and, for rnnbook/torch and rnnbook/keras, the median of the per-repeat ratios.

torch runs inside ``torch.inference_mode()``; the Keras layer is called eagerly
inside ``torch.inference_mode()`` (falling back to ``torch.no_grad()`` if Keras
refuses inference tensors). ``rnnbook`` is called on NumPy arrays.

All three libraries live in the same process. NumPy's BLAS thread pool and
torch's intra-op pool (OpenMP) spin-wait for a while after work finishes and
slow each other down, so the script sleeps ``--switch-sleep`` seconds (0.25 by
default) whenever it switches from one library to another.

Keras must use the torch backend; the script sets ``KERAS_BACKEND=torch``
before importing Keras (an already-set different value is an error).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

if os.environ.get("KERAS_BACKEND", "torch") != "torch":
    sys.exit(
        f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}; this benchmark needs "
        "KERAS_BACKEND=torch (or unset)."
    )
os.environ["KERAS_BACKEND"] = "torch"


def _threads_from_argv(argv):
    """``--threads N`` as an int, read before NumPy and torch start their thread pools (None: their default)."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return None


THREADS = _threads_from_argv(sys.argv)
if THREADS is not None:  # OpenBLAS reads these when NumPy loads it; torch's pool is set below
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

if THREADS is not None:
    torch.set_num_threads(THREADS)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

# (batch, time, features, units)
CONFIGS = [
    (64, 100, 64, 128),
    (64, 100, 128, 512),
    (32, 28, 28, 64),
    (1, 1000, 32, 64),
]
CELLS = ["LSTM", "GRU", "SimpleRNN"]
LIBS = ["rnnbook", "torch", "keras"]
ATOL = 1e-4


# --------------------------------------------------------------------------
# Weight conversions: Keras order/shapes -> torch.nn parameters. They live in
# the library (rnnbook.utils, tested against torch.nn in
# tests/parity/test_torch_parity.py); the benchmark uses them as a user would.
# --------------------------------------------------------------------------
def keras_to_torch(cell, weights):
    """torch.nn state_dict arrays for Keras-layout ``weights`` of ``cell``."""
    from rnnbook.utils import torch_weights
    return torch_weights(cell, *weights)


N_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def make_keras_weights(cell, features, units, rng):
    """Random float32 weights in Keras order/shapes for ``cell``."""
    g = N_GATES[cell]
    scale = 1.0 / np.sqrt(units)
    kernel = rng.uniform(-scale, scale, (features, g * units))
    recurrent = rng.uniform(-scale, scale, (units, g * units))
    if cell == "GRU":
        bias = rng.uniform(-scale, scale, (2, g * units))
    else:
        bias = rng.uniform(-scale, scale, (g * units,))
    return [a.astype(np.float32) for a in (kernel, recurrent, bias)]


def load_torch_params(module, params):
    with torch.no_grad():
        for name, value in params.items():
            p = getattr(module, name)
            if tuple(p.shape) != value.shape:
                raise ValueError(
                    f"torch param {name}: shape {tuple(p.shape)} != "
                    f"converted {value.shape}"
                )
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))


# --------------------------------------------------------------------------
# Library wrappers: each returns (callable_taking_nothing, output_as_numpy_fn)
# --------------------------------------------------------------------------


def build_torch(cell, features, units, weights, x_np, last_only):
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[cell]
    kwargs = dict(input_size=features, hidden_size=units, batch_first=True)
    if cell == "SimpleRNN":
        kwargs["nonlinearity"] = "tanh"
    mod = cls(**kwargs).float().eval()
    load_torch_params(mod, keras_to_torch(cell, weights))
    x = torch.from_numpy(x_np)

    def fwd():
        with torch.inference_mode():
            out = mod(x)[0]
            return out[:, -1] if last_only else out

    return fwd, lambda out: out.detach().numpy()


def build_keras(cell, features, units, weights, x_np, last_only):
    import keras

    cls = getattr(keras.layers, cell)
    kwargs = dict(return_sequences=not last_only)
    if cell == "GRU":
        kwargs["reset_after"] = True
    layer = cls(units, **kwargs)
    x = torch.from_numpy(x_np)
    layer(x[:, :1])  # build outside inference mode (creates variables)
    layer.set_weights(weights)

    def call_inference():
        with torch.inference_mode():
            return layer(x)

    def call_no_grad():
        with torch.no_grad():
            return layer(x)

    fwd = call_inference
    try:
        call_inference()
    except Exception as e:  # pragma: no cover - depends on keras version
        print(f"  [keras] inference_mode failed ({type(e).__name__}: {e}); "
              "using torch.no_grad()")
        fwd = call_no_grad
    return fwd, lambda out: keras.ops.convert_to_numpy(out)


def build_rnnbook(cell, features, units, weights, x_np, last_only):
    import rnnbook as rb

    cls = getattr(rb.layers, cell)
    kwargs = dict(return_sequences=not last_only)
    if cell == "GRU":
        kwargs["reset_after"] = True
    layer = cls(units, **kwargs)
    layer(x_np[:, :1])  # build (Keras semantics: weights exist after 1st call)
    layer.set_weights(weights)
    got = [np.asarray(w) for w in layer.get_weights()]
    for a, b in zip(got, weights):
        if a.shape != b.shape or not np.array_equal(a, b):
            raise AssertionError(
                f"rnnbook {cell}.get_weights() does not return what "
                f"set_weights() received (shapes {[w.shape for w in got]} vs "
                f"{[w.shape for w in weights]})"
            )

    def fwd():
        return layer(x_np)

    return fwd, lambda out: np.asarray(out)


BUILDERS = {"rnnbook": build_rnnbook, "torch": build_torch, "keras": build_keras}


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def time_fn(fn, repeats, warmup, min_repeat_s):
    """Median seconds per call.

    After ``warmup`` calls, the number of calls per repeat (``inner``) is
    chosen so that one repeat lasts at least ``min_repeat_s``; each of
    ``repeats`` repeats is timed with perf_counter and divided by ``inner``.
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    inner = max(1, int(np.ceil(min_repeat_s / max(one, 1e-9))))
    inner = min(inner, 1000)
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        per_call.append((time.perf_counter() - t0) / inner)
    return {
        "median_s": statistics.median(per_call),
        "min_s": min(per_call),
        "max_s": max(per_call),
        "repeats": repeats,
        "inner": inner,
        "all_s": per_call,
    }


def time_interleaved(fns, repeats, warmup, min_repeat_s, switch_sleep=0.25, clock=time.perf_counter):
    """``{name: time_fn-like record}`` for the callables ``fns``, timed in turns.

    Every repeat times each callable once (``inner`` calls, sized per callable
    as in ``time_fn``), sleeping ``switch_sleep`` seconds before each, so that
    the ratio of two callables can be read repeat by repeat (``ratio``).
    ``clock=time.process_time`` counts the CPU time of the process instead of
    wall time: with one thread per library, time the process waited for a core
    taken by other work is then left out.
    """
    inner = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        inner[name] = min(1000, max(1, int(np.ceil(min_repeat_s / max(one, 1e-9)))))
    per_call = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(switch_sleep)
            t0 = clock()
            for _ in range(inner[name]):
                fn()
            per_call[name].append((clock() - t0) / inner[name])
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
                   "repeats": repeats, "inner": inner[name], "all_s": v}
            for name, v in per_call.items()}


def ratio(times, a, b):
    """Median over repeats of ``a``'s time over ``b``'s in the same repeat (None if either is missing)."""
    if a not in times or b not in times:
        return None
    return statistics.median(x / y for x, y in zip(times[a]["all_s"], times[b]["all_s"]))


# --------------------------------------------------------------------------
# Environment info
# --------------------------------------------------------------------------


def lstm_kernel():
    """Which steps rnnbook's float32 LSTM runs: the compiled kernel (and on how many threads) or the NumPy passes."""
    try:
        from rnnbook import compiled, ops
    except ImportError:
        return "rnnbook not importable"
    why = compiled.reason('lstm', np.zeros((1, 2, 1), np.float32), ops.tanh)
    if why is not None:
        return f"NumPy passes: {why}"
    return f"compiled (numba, {compiled.library()} products, up to {compiled.threads()} threads)"


def env_info():
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "rnnbook_lstm_kernel": lstm_kernel(),
    }
    try:
        info["sched_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if var in os.environ:
            info[var] = os.environ[var]
    # NumPy build-time BLAS (always available in NumPy >= 1.25 / 2.x)
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy_blas_build"] = {
            k: blas.get(k) for k in ("name", "version", "openblas configuration")
            if k in blas
        }
    except Exception:
        pass
    # Runtime thread pools (only if threadpoolctl is installed)
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "num_threads",
                                     "version", "threading_layer", "prefix")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed (skipped)"
    return info


def print_env(info):
    print("Environment")
    for k, v in info.items():
        if k == "threadpools" and isinstance(v, list):
            print("  threadpools:")
            for p in v:
                print(f"    {p}")
        else:
            print(f"  {k}: {v}")
    print()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def fmt_s(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:8.1f}us"
    if s < 1:
        return f"{s * 1e3:8.2f}ms"
    return f"{s:8.3f}s "


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats / shorter timing windows")
    p.add_argument("--json", metavar="PATH", help="write results as JSON")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per measurement (default 7, quick 3)")
    p.add_argument("--warmup", type=int, default=None,
                   help="warm-up calls (default 2, quick 1)")
    p.add_argument("--min-repeat-s", type=float, default=None,
                   help="min duration of one repeat; fast calls are looped "
                        "(default 0.05, quick 0.02)")
    p.add_argument("--switch-sleep", type=float, default=0.25,
                   help="seconds to sleep before each library's turn")
    p.add_argument("--cells", default=",".join(CELLS),
                   help="comma list of LSTM,GRU,SimpleRNN (case-insensitive)")
    p.add_argument("--configs", default=None,
                   help="comma list of config indices into "
                        + ", ".join(f"{i}={c}" for i, c in enumerate(CONFIGS)))
    p.add_argument("--last", action="store_true",
                   help="return_sequences=False (compare/time last output only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and torch (default: their own, "
                        "all cores); read before they start")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall time, or the process's CPU time (meaningful with "
                        "--threads 1 on a machine busy with other work)")
    for lib in LIBS:
        p.add_argument(f"--no-{lib}", action="store_true", help=f"skip {lib}")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.min_repeat_s is None:
        args.min_repeat_s = 0.02 if args.quick else 0.05
    by_lower = {c.lower(): c for c in CELLS}
    try:
        args.cells = [by_lower[c.strip().lower()] for c in args.cells.split(",")
                      if c.strip()]
    except KeyError as e:
        p.error(f"unknown cell {e}; choose from {CELLS}")
    if args.configs is None:
        args.configs = list(CONFIGS)
    else:
        args.configs = [CONFIGS[int(i)] for i in args.configs.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    libs = [lib for lib in LIBS if not getattr(args, f"no_{lib}")]

    if "rnnbook" in libs:
        try:
            import rnnbook  # noqa: F401
        except ModuleNotFoundError as e:
            if e.name != "rnnbook":
                raise
            print("WARNING: rnnbook is not importable (is it installed, e.g. "
                  "`pip install -e .`?). Benchmarking torch and keras only.\n")
            libs.remove("rnnbook")
    if "keras" in libs:
        import keras

        assert keras.backend.backend() == "torch", keras.backend.backend()

    info = env_info()
    try:
        import keras

        info["keras"] = keras.__version__
    except ImportError:
        pass
    try:
        import rnnbook

        info["rnnbook"] = getattr(rnnbook, "__version__", "?")
    except ImportError:
        pass
    info.update(quick=args.quick, repeats=args.repeats, warmup=args.warmup,
                min_repeat_s=args.min_repeat_s, switch_sleep=args.switch_sleep,
                return_sequences=not args.last, libs=libs, clock=args.clock,
                threads=args.threads, load_average=os.getloadavg())
    print_env(info)

    results = []
    failures = []
    rng = np.random.default_rng(args.seed)
    for (B, T, F, U) in args.configs:
        for cell in args.cells:
            tag = f"{cell:9s} B={B:<3d} T={T:<4d} F={F:<3d} U={U:<3d}"
            print(f"{tag} ...", flush=True)
            rec = {"cell": cell, "batch": B, "time": T, "features": F,
                   "units": U, "times": {}, "max_abs_diff": {}, "error": None}
            try:
                weights = make_keras_weights(cell, F, U, rng)
                x = rng.standard_normal((B, T, F)).astype(np.float32)
                fns, outs = {}, {}
                for lib in libs:
                    fwd, to_np = BUILDERS[lib](cell, F, U, weights, x, args.last)
                    fns[lib] = fwd
                    outs[lib] = to_np(fwd())
                    assert outs[lib].dtype == np.float32, (lib, outs[lib].dtype)
                # correctness: every library against the first one
                ref_lib = "torch" if "torch" in outs else libs[0]
                ref = outs[ref_lib]
                for lib in libs:
                    if lib == ref_lib:
                        continue
                    if outs[lib].shape != ref.shape:
                        raise AssertionError(
                            f"{lib} output shape {outs[lib].shape} != "
                            f"{ref_lib} {ref.shape}")
                    d = float(np.max(np.abs(outs[lib] - ref)))
                    rec["max_abs_diff"][f"{lib}-vs-{ref_lib}"] = d
                    if not d <= ATOL:
                        raise AssertionError(
                            f"{lib} vs {ref_lib}: max |diff| = {d:.3g} > {ATOL}")
                # timing, the libraries in turns within every repeat
                rec["times"] = time_interleaved(
                    fns, args.repeats, args.warmup, args.min_repeat_s,
                    args.switch_sleep, CLOCKS[args.clock])
                for lib in libs:
                    print(f"    {lib:8s} {fmt_s(rec['times'][lib]['median_s'])}"
                          f"  (x{rec['times'][lib]['inner']} calls/repeat)",
                          flush=True)
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {e}"
                failures.append((tag, rec["error"]))
                print(f"    FAILED: {rec['error']}")
                traceback.print_exc(limit=4)
            rec["ratio_rnnbook_torch"] = ratio(rec["times"], "rnnbook", "torch")
            rec["ratio_rnnbook_keras"] = ratio(rec["times"], "rnnbook", "keras")
            results.append(rec)

    # table
    print()
    hdr = (f"{'cell':9s} {'B':>4s} {'T':>5s} {'F':>4s} {'U':>4s} | "
           f"{'rnnbook':>10s} {'torch':>10s} {'keras':>10s} | "
           f"{'rb/torch':>8s} {'rb/keras':>8s} | max|diff|")
    print("Median seconds per forward call (float32, CPU)")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        t = {k: v["median_s"] for k, v in r["times"].items()}
        diff = max(r["max_abs_diff"].values()) if r["max_abs_diff"] else None
        line = (f"{r['cell']:9s} {r['batch']:4d} {r['time']:5d} "
                f"{r['features']:4d} {r['units']:4d} | "
                f"{fmt_s(t.get('rnnbook')):>10s} {fmt_s(t.get('torch')):>10s} "
                f"{fmt_s(t.get('keras')):>10s} | "
                f"{fmt_ratio(r['ratio_rnnbook_torch']):>8s} "
                f"{fmt_ratio(r['ratio_rnnbook_keras']):>8s} | "
                f"{'-' if diff is None else f'{diff:.1e}'}")
        if r["error"]:
            line += f"  ERROR: {r['error'][:80]}"
        print(line)
    print("(ratios: median over repeats of rnnbook's time over the peer's in the same repeat; > 1: rnnbook "
          "is slower)")

    if args.json:
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"env": info, "atol": ATOL, "results": results}, f,
                      indent=2)
        print(f"\nwrote {args.json}")

    if failures:
        print(f"\n{len(failures)} configuration(s) FAILED:")
        for tag, err in failures:
            print(f"  {tag}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
