#!/usr/bin/env python
"""GPU benchmark: rnnbook's cuDNN LSTM/GRU vs torch.nn on CUDA vs rnnbook's CuPy loop.

Usage::

    python bench/bench_gpu.py [--quick] [--out gpu_bench.md] [--repeats N] [--warmup N]
                              [--cells lstm,gru] [--configs 0,2] [--no-torch] [--no-loop]

For every (batch, time, features, units) configuration and cell (float32, return_sequences=True):

* forward: one call of the layer (rnnbook: no tape; torch: ``torch.no_grad()``);
* train: one training step's forward and backward: rnnbook under ``rb.GradientTape`` with the gradients of the
  summed outputs w.r.t. every weight; torch ``out.sum().backward()`` (parameter gradients);

for three implementations: rnnbook with cuDNN (``use_cudnn='auto'``, checked to really take cuDNN), rnnbook's CuPy
loop (``use_cudnn=False``) and ``torch.nn.LSTM``/``GRU`` on CUDA (cuDNN; TF32 off on both sides: rnnbook asks
cuDNN for FMA math, torch gets ``allow_tf32=False``). All three get the same weights (``rnnbook.utils``
converters); their outputs are compared once before timing.

Each timed call is bracketed by device synchronisations (``cp.cuda.Device().synchronize()``,
``torch.cuda.synchronize()``); after warm-up calls, the median of ``--repeats`` calls is reported, in a markdown
table with the ratios rnnbook-cuDNN/torch and CuPy-loop/torch (below 1: faster than torch).

Without CuPy or a usable GPU the script says so and exits with status 0. It exits with status 1 when a
measurement failed or outputs disagreed (the table still prints)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))   # the repo, uninstalled

# (batch, time, features, units)
CONFIGS = [(64, 100, 128, 512), (256, 200, 256, 1024), (32, 28, 28, 64)]
QUICK_CONFIGS = [(32, 28, 28, 64)]
CELLS = ['LSTM', 'GRU']
IMPLS = ['rnnbook-cudnn', 'cupy-loop', 'torch']
ATOL = 1e-4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help=f'one small shape {QUICK_CONFIGS[0]}, fewer repeats')
    p.add_argument('--out', metavar='PATH', help='also write the markdown table (and environment) to PATH')
    p.add_argument('--repeats', type=int, default=None, help='timed calls per measurement (default 10, quick 5)')
    p.add_argument('--warmup', type=int, default=None, help='untimed calls first (default 3, quick 2)')
    p.add_argument('--cells', default='lstm,gru', help='comma list of lstm,gru')
    p.add_argument('--configs', default=None,
                   help='comma list of config indices into ' + ', '.join(f'{i}={c}' for i, c in enumerate(CONFIGS)))
    p.add_argument('--no-torch', action='store_true', help='skip torch')
    p.add_argument('--no-loop', action='store_true', help="skip rnnbook's CuPy loop")
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    a.repeats = a.repeats or (5 if a.quick else 10)
    a.warmup = a.warmup if a.warmup is not None else (2 if a.quick else 3)
    by_lower = {c.lower(): c for c in CELLS}
    try:
        a.cells = [by_lower[c.strip().lower()] for c in a.cells.split(',') if c.strip()]
    except KeyError as e:
        p.error(f'unknown cell {e}; choose from {CELLS}')
    if a.configs is not None: a.configs = [CONFIGS[int(i)] for i in a.configs.split(',')]
    else: a.configs = QUICK_CONFIGS if a.quick else CONFIGS
    return a


def gpu_or_exit():
    "CuPy with a usable device, or a message and exit status 0."
    try:
        import cupy as cp
    except ImportError as e:
        print(f'bench_gpu: CuPy is not installed ({e}); nothing to benchmark (needs `pip install rnnbook[gpu]` '
              'and a CUDA GPU).')
        sys.exit(0)
    try:
        if cp.cuda.runtime.getDeviceCount() < 1: raise RuntimeError('no CUDA device')
        cp.cuda.Device(0).use()
        cp.zeros(1).sum().item()
    except Exception as e:  # noqa: BLE001 - any CUDA failure means no usable GPU
        print(f'bench_gpu: no usable CUDA device ({type(e).__name__}: {e}); nothing to benchmark.')
        sys.exit(0)
    return cp


def load_torch(args):
    if args.no_torch: return None, 'skipped (--no-torch)'
    try:
        import torch
    except ImportError as e:
        return None, f'not installed ({e})'
    if not torch.cuda.is_available(): return None, f'{torch.__version__} without CUDA'
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    return torch, f'{torch.__version__} (cuDNN {torch.backends.cudnn.version()})'


def keras_weights(cell, F, U, rng):
    g = {'LSTM': 4, 'GRU': 3}[cell]
    s = 1 / np.sqrt(U)
    bias = rng.uniform(-s, s, (2, g * U) if cell == 'GRU' else (g * U,))
    return [rng.uniform(-s, s, (F, g * U)).astype(np.float32), rng.uniform(-s, s, (U, g * U)).astype(np.float32),
            bias.astype(np.float32)]


# ---- implementations: each gives (forward, train_step, output_as_numpy) -------------------------------------------

def build_rnnbook(cell, weights, x_np, cp, use_cudnn):
    import rnnbook as rb
    import rnnbook.recurrent
    kw = dict(return_sequences=True, use_cudnn='auto' if use_cudnn else False)
    if cell == 'GRU': kw['reset_after'] = True
    layer = getattr(rb.layers, cell)(weights[1].shape[0], **kw)
    x = cp.asarray(x_np)
    layer(x[:, :2])                                         # built on the GPU
    layer.set_weights(weights)
    why = rnnbook.recurrent.cudnn_reason(layer, x)
    if use_cudnn and why is not None: raise RuntimeError(f'rnnbook does not take cuDNN here: {why}')
    if not use_cudnn and why is None: raise RuntimeError('use_cudnn=False still takes cuDNN')
    params = list(layer.trainable_weights)

    def forward():
        return layer(x)

    def train():
        with rb.GradientTape() as tape:
            loss = rb.ops.sum(layer(x))
        return tape.gradient(loss, params)

    return forward, train, lambda out: cp.asnumpy(rb.backend.unwrap(out))


def build_torch(torch, cell, weights, x_np):
    import rnnbook as rb
    from rnnbook.utils import torch_weights
    F, U = weights[0].shape[0], weights[1].shape[0]
    m = getattr(torch.nn, cell)(F, U, batch_first=True).cuda().float()
    with torch.no_grad():
        for name, value in torch_weights(cell, *weights).items():
            getattr(m, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    x = torch.from_numpy(x_np).cuda()

    def forward():
        with torch.no_grad():
            return m(x)[0]

    def train():
        m.zero_grad(set_to_none=True)
        m(x)[0].sum().backward()
        return [p.grad for p in m.parameters()]

    return forward, train, lambda out: out.detach().cpu().numpy()


def timed(fn, sync, repeats, warmup):
    "Median seconds of one synchronised call, after `warmup` calls."
    for _ in range(warmup): fn()
    sync()
    ts = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def fmt_s(s):
    if s is None: return '-'
    return f'{s * 1e6:.0f} µs' if s < 1e-3 else f'{s * 1e3:.2f} ms' if s < 1 else f'{s:.3f} s'


def ratio(a, b): return '-' if a is None or b is None else f'{a / b:.2f}x'


def main(argv=None):
    args = parse_args(argv)
    cp = gpu_or_exit()
    import rnnbook as rb
    import rnnbook.cudnn
    torch, torch_info = load_torch(args)
    cudnn_why = rnnbook.cudnn.library_reason()
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props['name'].decode() if isinstance(props['name'], bytes) else str(props['name'])
    env = {'device': name, 'python': sys.version.split()[0], 'platform': platform.platform(),
           'numpy': np.__version__, 'cupy': cp.__version__, 'cuda runtime': cp.cuda.runtime.runtimeGetVersion(),
           'cudnn (rnnbook)': cudnn_why or f'{rnnbook.cudnn.version()} ({rnnbook.cudnn.library().path})',
           'torch': torch_info, 'repeats': args.repeats, 'warmup': args.warmup, 'dtype': 'float32'}
    print('Environment')
    for k, v in env.items(): print(f'  {k}: {v}')
    print(flush=True)
    if cudnn_why: print(f'WARNING: cuDNN cannot be loaded, the rnnbook-cudnn column will fail: {cudnn_why}\n')

    sync_cp = lambda: cp.cuda.Device().synchronize()
    sync_torch = (lambda: torch.cuda.synchronize()) if torch is not None else None
    rows, failures = [], []
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    for (B, T, F, U) in args.configs:
        for cell in args.cells:
            weights = keras_weights(cell, F, U, rng)
            x = rng.standard_normal((B, T, F)).astype(np.float32)
            impls = {}
            for impl in IMPLS:
                if impl == 'torch' and torch is None: continue
                if impl == 'cupy-loop' and args.no_loop: continue
                try:
                    if impl == 'torch': impls[impl] = build_torch(torch, cell, weights, x) + (sync_torch,)
                    else: impls[impl] = build_rnnbook(cell, weights, x, cp, impl == 'rnnbook-cudnn') + (sync_cp,)
                except Exception as e:  # noqa: BLE001 - report and go on with the others
                    failures.append(f'{cell} {(B, T, F, U)} {impl}: build failed: {type(e).__name__}: {e}')
                    traceback.print_exc()
            outs = {}
            for impl, (fwd, _, to_np, _) in impls.items():
                try: outs[impl] = to_np(fwd())
                except Exception as e:  # noqa: BLE001
                    failures.append(f'{cell} {(B, T, F, U)} {impl}: forward failed: {type(e).__name__}: {e}')
                    traceback.print_exc()
            ref = 'torch' if 'torch' in outs else next(iter(outs), None)
            for impl, out in outs.items():
                diff = float(np.max(np.abs(out - outs[ref])))
                if diff > ATOL: failures.append(f'{cell} {(B, T, F, U)}: {impl} differs from {ref} by {diff:.2e}')
            for mode in ('forward', 'train'):
                times = {}
                for impl, (fwd, train, _, sync) in impls.items():
                    if impl not in outs: continue
                    tag = f'{cell:4s} {mode:7s} B={B:<3d} T={T:<3d} F={F:<3d} U={U:<4d} {impl:13s}'
                    try:
                        times[impl] = timed(fwd if mode == 'forward' else train, sync, args.repeats, args.warmup)
                        print(f'{tag} {fmt_s(times[impl]):>10s}', flush=True)
                    except Exception as e:  # noqa: BLE001
                        failures.append(f'{tag}: {type(e).__name__}: {e}')
                        traceback.print_exc()
                    if cp is not None: cp.get_default_memory_pool().free_all_blocks()
                rows.append((cell, mode, B, T, F, U, times))
            del impls, outs
            cp.get_default_memory_pool().free_all_blocks()
            if torch is not None: torch.cuda.empty_cache()

    header = ('| cell | mode | batch | time | features | units | rnnbook cuDNN | CuPy loop | torch (cuDNN) '
              '| rnnbook-cuDNN / torch | CuPy-loop / torch |')
    lines = [f'GPU: {name}; float32, return_sequences=True; median of {args.repeats} synchronised calls after '
             f'{args.warmup} warm-up calls; train = forward + backward (gradients of every weight).', '',
             header, '|' + '---|' * (header.count('|') - 1)]
    for cell, mode, B, T, F, U, t in rows:
        c, l, th = t.get('rnnbook-cudnn'), t.get('cupy-loop'), t.get('torch')
        lines.append(f'| {cell} | {mode} | {B} | {T} | {F} | {U} | {fmt_s(c)} | {fmt_s(l)} | {fmt_s(th)} | '
                     f'{ratio(c, th)} | {ratio(l, th)} |')
    table = '\n'.join(lines)
    print('\n' + table + '\n')
    print(f'total benchmark time: {time.perf_counter() - t_start:.1f} s')
    if failures:
        print('\nFAILURES:')
        for f in failures: print('  ' + f)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write('# rnnbook GPU benchmark\n\n' + table + '\n\n## Environment\n\n')
            f.writelines(f'- {k}: {v}\n' for k, v in env.items())
            if failures: f.write('\n## Failures\n\n' + ''.join(f'- {x}\n' for x in failures))
        print(f'wrote {args.out}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
