"""Fuzzing the layer constructors and call arguments: valid and invalid values of every argument.

A seeded generator builds a layer from random constructor arguments (most valid, some not), then runs a few
operations on it: calls with random inputs, masks, initial states and `training`, `set_weights` with random
lists, `reset_states`, a config round trip and a call under `rb.GradientTape`; or a small model compiled with
random optimizers/losses/metrics and fed to fit/evaluate/predict/*_on_batch with random (bad) data and
arguments. Every exception must be one
rnnbook raises itself for bad input (a `raise` statement in rnnbook, of a type listed in docs/errors.md), never
an IndexError/KeyError/ZeroDivisionError/... from deep inside NumPy or the library; and after an error the
layer's weights, stateful states and built status are what they were.

The test suite runs `FUZZ_CASES` cases (default 2,000: a few seconds); a long run:

    FUZZ_CASES=10000 .venv/bin/python -m pytest -q -s tests/safety/test_fuzz.py
    FUZZ_SEED=3 .venv/bin/python tests/safety/test_fuzz.py 10000 -v   # another seed; findings with tracebacks
"""
import collections
import os
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np

import rnnbook as rb
from rnnbook import layers as L
from rnnbook.backend import flatten

ROOT = Path(rb.__file__).resolve().parent
N_CASES = int(os.environ.get('FUZZ_CASES', 2000))
SEED = int(os.environ.get('FUZZ_SEED', 20240611))

# the exception types rnnbook raises for bad input (docs/errors.md); UnrecognizedArgumentError is a ValueError
DOCUMENTED = (ValueError, TypeError, AttributeError, NotImplementedError)


class Bad(AssertionError):
    "A finding: an undocumented exception, or a layer changed by a call that failed."


def raised_by_rnnbook(e) -> bool:
    "Whether `e` comes from a `raise` statement in rnnbook itself (not from NumPy or Python deep inside)."
    frames = traceback.extract_tb(e.__traceback__)
    if not frames: return False
    last = frames[-1]
    return Path(last.filename).resolve().parent == ROOT and 'raise' in (last.line or '')


# ---- values ---------------------------------------------------------------------------------------------------

class Gen:
    "Random argument values: `valid` ones most of the time, an invalid one from a pool otherwise."
    def __init__(self, rng, p_bad=0.12):
        self.rng, self.p_bad = rng, p_bad

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def maybe(self, valid, invalid, p=None):
        bad = self.rng.random() < (self.p_bad if p is None else p)
        return (self.pick(invalid), False) if bad and invalid else (self.pick(valid), True)

    def coin(self, p=0.5): return bool(self.rng.random() < p)

    def ints(self, lo, hi): return int(self.rng.integers(lo, hi + 1))


BAD_INTS = [0, -1, 2.5, '3', None, True, [2], float('nan'), float('inf'), 1e3 + 0.5]
BAD_RATES = [1.0, -0.1, 1.5, 'a', None, float('nan'), True, [0.1]]
BAD_BOOLS = ['yes', 1, 0, None, 'False', [], 2.0]
ACTS = ['tanh', 'relu', 'sigmoid', 'linear', None, 'softsign', 'hard_sigmoid', 'elu', 'selu', 'swish', 'gelu',
        'softplus', 'relu6', 'leaky_relu', 'mish', 'softmax', 'exponential', rb.activations.get('tanh')]
BAD_ACTS = ['tahn', 3, [], {'class_name': 'Nope'}, 'TANH ', b'tanh']
INITS = ['glorot_uniform', 'zeros', 'orthogonal', 'ones', 'he_normal', 'lecun_uniform', 'random_normal',
         'truncated_normal', 'glorot_normal', 'identity']
BAD_INITS = ['glorot', 3, {'class_name': 'Nope'}, [], 'Orthogonal2']
REGS = [None, 'l2', 'l1', 'l1_l2']
BAD_REGS = ['l3', 5, {'class_name': 'L9'}]
CONSTRAINTS = [None, 'max_norm', 'non_neg', 'unit_norm', 'min_max_norm']
BAD_CONSTRAINTS = ['maxnorm', 7, {'class_name': 'Nope'}]
SEEDS = [None, 0, 42, np.int64(3)]
BAD_SEEDS = [-1, 'a', 2.5, True, [1]]
DTYPES = [None, 'float32', 'float64']
BAD_DTYPES = ['foo', 3, 'int32', 'bool', 'complex64', 'str']
NAMES = [None, 'layer_a', 'b']
BAD_NAMES = [3, ['a'], b'x']


def common_kwargs(g):
    "Base-layer arguments and an occasional unknown keyword."
    kw = {}
    if g.coin(0.15):
        kw['name'], _ = g.maybe(NAMES, BAD_NAMES)
        if kw['name'] is not None: kw['name'] = f"{kw['name']}_{g.ints(0, 10**9)}" if isinstance(kw['name'], str) else kw['name']
    if g.coin(0.1): kw['dtype'], _ = g.maybe(DTYPES, BAD_DTYPES, p=0.3)
    if g.coin(0.05): kw['trainable'] = g.coin()
    if g.coin(0.03): kw[g.pick(['colour', 'units2', 'return_sequence'])] = 1
    if g.coin(0.04): kw['input_shape'] = g.pick([(None, 3), (4, 3), 'abc', 3, (None, -1), (None, 2.5)])
    if g.coin(0.03): kw['batch_input_shape'] = g.pick([(2, None, 3), 3, 'ab', (None,)])
    return kw


def cell_kwargs(g, kind):
    kw = {}
    kw['units'], _ = g.maybe([1, 2, 3, np.int64(2)], BAD_INTS)
    if g.coin(0.4): kw['activation'], _ = g.maybe(ACTS, BAD_ACTS)
    if kind != 'simple' and g.coin(0.3): kw['recurrent_activation'], _ = g.maybe(ACTS, BAD_ACTS)
    if g.coin(0.3): kw['use_bias'], _ = g.maybe([True, False, np.bool_(False)], BAD_BOOLS)
    for arg in ('kernel_initializer', 'recurrent_initializer', 'bias_initializer'):
        if g.coin(0.1): kw[arg], _ = g.maybe(INITS, BAD_INITS)
    for arg in ('kernel_regularizer', 'recurrent_regularizer', 'bias_regularizer'):
        if g.coin(0.08): kw[arg], _ = g.maybe(REGS, BAD_REGS)
    for arg in ('kernel_constraint', 'recurrent_constraint', 'bias_constraint'):
        if g.coin(0.08): kw[arg], _ = g.maybe(CONSTRAINTS, BAD_CONSTRAINTS)
    if g.coin(0.3): kw['dropout'], _ = g.maybe([0.0, 0, 0.2, 0.5, np.float32(0.1)], BAD_RATES)
    if g.coin(0.3): kw['recurrent_dropout'], _ = g.maybe([0.0, 0.3], BAD_RATES)
    if g.coin(0.3): kw['seed'], _ = g.maybe(SEEDS, BAD_SEEDS)
    if kind == 'gru' and g.coin(0.4): kw['reset_after'], _ = g.maybe([True, False], BAD_BOOLS)
    if kind == 'lstm' and g.coin(0.2): kw['unit_forget_bias'], _ = g.maybe([True, False], BAD_BOOLS)
    if kind in ('gru', 'lstm') and g.coin(0.3): kw['implementation'], _ = g.maybe([1, 2, 0], [3, '2', None, True, -1])
    return kw


def rnn_kwargs(g, builtin=True):
    kw = {}
    for arg in ('return_sequences', 'return_state', 'go_backwards', 'stateful', 'unroll', 'zero_output_for_mask'):
        if arg == 'zero_output_for_mask' and builtin: continue
        if g.coin(0.45 if arg in ('return_sequences', 'return_state') else 0.25):
            kw[arg], _ = g.maybe([True, False], BAD_BOOLS)
    return kw


KINDS = {'simple': (L.SimpleRNN, L.SimpleRNNCell), 'gru': (L.GRU, L.GRUCell), 'lstm': (L.LSTM, L.LSTMCell)}


# ---- layers ---------------------------------------------------------------------------------------------------

class Spec:
    "What a layer family expects: input rank and feature size (for generating inputs), and which ops apply."
    def __init__(self, make, rank, feature=None, ids=False, spatial=(), recurrent=False, channels_first=False):
        self.make, self.rank, self.feature, self.ids = make, rank, feature, ids
        self.spatial, self.recurrent, self.channels_first = spatial, recurrent, channels_first


def gen_layer(g):
    "A `Spec` whose `make()` constructs a layer from random (possibly invalid) arguments."
    family = g.pick(['builtin'] * 5 + ['rnn_cell'] * 2 + ['stacked', 'bidirectional', 'bidirectional',
                     'time_distributed', 'conv_lstm', 'conv_lstm', 'embedding', 'dense', 'dropout', 'masking',
                     'cudnn', 'batchnorm', 'cell'])
    D = g.ints(1, 4)
    if family == 'builtin':
        kind = g.pick(list(KINDS))
        kw = {**cell_kwargs(g, kind), **rnn_kwargs(g), **common_kwargs(g)}
        if kind != 'simple' and g.coin(0.05): kw['use_cudnn'] = g.pick(['auto', False, True, 'sometimes', 1])
        units = kw.pop('units')
        return Spec(lambda: KINDS[kind][0](units, **kw), 3, D, recurrent=True)
    if family == 'rnn_cell':
        kind = g.pick(list(KINDS))
        ckw, rkw = cell_kwargs(g, kind), {**rnn_kwargs(g, builtin=False), **common_kwargs(g)}
        units = ckw.pop('units')
        return Spec(lambda: L.RNN(KINDS[kind][1](units, **ckw), **rkw), 3, D, recurrent=True)
    if family == 'stacked':
        kinds = [g.pick(list(KINDS)) for _ in range(g.ints(1, 3))]
        cks = [cell_kwargs(g, k) for k in kinds]
        rkw = rnn_kwargs(g, builtin=False)
        as_list = g.coin()
        def make():
            cells = [KINDS[k][1](c.pop('units'), **c) for k, c in zip(kinds, [dict(c) for c in cks])]
            return L.RNN(cells if as_list else L.StackedRNNCells(cells), **rkw)
        return Spec(make, 3, D, recurrent=True)
    if family == 'bidirectional':
        kind = g.pick(list(KINDS))
        kw = {**cell_kwargs(g, kind), **rnn_kwargs(g)}
        units = kw.pop('units')
        mode, _ = g.maybe(['concat', 'sum', 'mul', 'ave', None], ['max', 'CONCAT', 3, ''])
        backward = g.coin(0.15)
        def make():
            fw = KINDS[kind][0](units, **kw)
            bw = KINDS[kind][0](units, **{**kw, 'go_backwards': g.coin(0.8)}) if backward else None
            return L.Bidirectional(fw, merge_mode=mode, backward_layer=bw)
        return Spec(make, 3, D, recurrent=True)
    if family == 'time_distributed':
        inner = g.pick(['dense', 'lstm', 'embedding', 'dropout', 'plain'])
        if inner == 'dense':
            u, _ = g.maybe([1, 3], BAD_INTS)
            return Spec(lambda: L.TimeDistributed(L.Dense(u, activation=g.pick(ACTS[:5]))), g.pick([3, 3, 4]), D)
        if inner == 'lstm':
            return Spec(lambda: L.TimeDistributed(L.LSTM(2, return_sequences=g.coin())), 4, D)
        if inner == 'embedding':
            return Spec(lambda: L.TimeDistributed(L.Embedding(5, 2, mask_zero=g.coin())), 3, ids=True)
        if inner == 'dropout':
            return Spec(lambda: L.TimeDistributed(L.Dropout(0.3)), 3, D)
        return Spec(lambda: L.TimeDistributed(g.pick([3, 'dense', None, L.Dense])), 3, D)
    if family == 'conv_lstm':
        rank = g.pick([1, 2])
        cls = {1: L.ConvLSTM1D, 2: L.ConvLSTM2D}[rank]
        kw = {}
        kw['filters'], _ = g.maybe([1, 2], BAD_INTS)
        kw['kernel_size'], _ = g.maybe([1, 2, 3, (2,) * rank, [1] * rank], [0, -1, 'a', (2,) * (rank + 1), None, 2.5])
        if g.coin(0.3): kw['strides'], _ = g.maybe([1, 2], [0, 'a', (1,) * (rank + 1)])
        if g.coin(0.4): kw['padding'], _ = g.maybe(['valid', 'same', 'SAME'], ['full', 3, None])
        if g.coin(0.3): kw['data_format'], _ = g.maybe(['channels_last', 'channels_first', None], ['nhwc', 3])
        if g.coin(0.2): kw['dilation_rate'], _ = g.maybe([1, 2], [0, 'x'])
        if g.coin(0.2): kw['dropout'], _ = g.maybe([0.0, 0.3], BAD_RATES)
        if g.coin(0.2): kw['recurrent_dropout'], _ = g.maybe([0.0, 0.3], BAD_RATES)
        if g.coin(0.2): kw['activation'], _ = g.maybe(ACTS[:6], BAD_ACTS)
        kw.update(rnn_kwargs(g))
        S = tuple(g.ints(1, 5) for _ in range(rank))
        cf = kw.get('data_format') == 'channels_first'
        return Spec(lambda: cls(**kw), rank + 3, g.ints(1, 3), spatial=S, recurrent=True, channels_first=cf)
    if family == 'embedding':
        n, _ = g.maybe([1, 5, 10], BAD_INTS)
        d, _ = g.maybe([1, 3], BAD_INTS)
        mz, _ = g.maybe([True, False], BAD_BOOLS)
        extra = {}
        if g.coin(0.1): extra['weights'] = g.pick([np.ones((n if type(n) is int and n in (1, 5, 10) else 2, 3), 'float32'),
                                                   np.ones((2, 2)), 'w', [np.ones((1, 1))]])
        return Spec(lambda: L.Embedding(n, d, mask_zero=mz, **extra), g.pick([1, 2, 2, 3]), ids=True)
    if family == 'dense':
        u, _ = g.maybe([1, 2, 4], BAD_INTS)
        act, _ = g.maybe(ACTS, BAD_ACTS)
        ub, _ = g.maybe([True, False], BAD_BOOLS)
        return Spec(lambda: L.Dense(u, activation=act, use_bias=ub, **common_kwargs(g)), g.pick([2, 2, 3, 4]), D)
    if family == 'dropout':
        rate, _ = g.maybe([0.0, 0.3, 0.5, 1.0], [-0.1, 1.5, 'a', None])
        ns, _ = g.maybe([None, (None, 1, None), (1, 1, 1)], [(1, 1), 'ab', (0, 1, 1), (2, 5, 7)])
        return Spec(lambda: L.Dropout(rate, noise_shape=ns, seed=g.pick(SEEDS)), 3, D)
    if family == 'masking':
        mv, _ = g.maybe([0.0, 1.0, float('nan'), -1], ['a', None, [0.0], True])
        return Spec(lambda: L.Masking(mv), 3, D)
    if family == 'cudnn':
        cls = g.pick([L.CuDNNLSTM, L.CuDNNGRU])
        units, _ = g.maybe([1, 2], BAD_INTS)
        kw = rnn_kwargs(g)
        if g.coin(0.1): kw[g.pick(['dropout', 'activation', 'unroll'])] = 0.1
        return Spec(lambda: cls(units, **kw), 3, D, recurrent=True)
    if family == 'batchnorm':
        axis, _ = g.maybe([-1, 1, 2], [5, 'a', 1.5, None])
        mom, _ = g.maybe([0.9, 0.99], ['a', None])
        return Spec(lambda: L.BatchNormalization(axis=axis, momentum=mom), 3, D)
    kind = g.pick(list(KINDS))
    kw = cell_kwargs(g, kind)
    units = kw.pop('units')
    return Spec(lambda: KINDS[kind][1](units, **kw), 2, D)


# ---- inputs ---------------------------------------------------------------------------------------------------

WEIRD_DTYPES = ['float16', 'int32', 'int64', 'uint8', 'bool', 'complex64', 'object', 'str']


def gen_input(g, spec, layer):
    "An input for `layer` (mostly valid for its spec; sometimes of a wrong rank, size, dtype or kind)."
    B, T = g.ints(0, 3), g.ints(0, 4)
    if g.coin(0.7): B = max(B, 1)
    if g.coin(0.7): T = max(T, 1)
    rank, D = spec.rank, spec.feature
    if spec.recurrent and getattr(layer, 'stateful', False) and g.coin(0.8):
        states = layer.states if not isinstance(layer, L.Bidirectional) else layer.forward_layer.states
        if states is not None: B = flatten(states)[0].shape[0]
    if spec.ids:
        shape = (B, T, g.ints(1, 3))[:rank] if rank else ()
        hi = 12
        x = g.rng.integers(0, hi, shape)
        r = g.rng.random()
        if r < 0.1: x = x.astype('float64') + (0.5 if g.coin() else 0.0)
        elif r < 0.15: x = x.astype(bool)
        elif r < 0.2: x = -x - 1
        elif r < 0.23: x = np.full(shape, np.nan)
        elif r < 0.26: x = x.astype(str)
        elif r < 0.3: x = x.tolist()
        return x
    if spec.spatial:
        S = spec.spatial if g.coin(0.85) else tuple(g.ints(0, 4) for _ in spec.spatial)
        shape = (B, T) + ((D,) + S if spec.channels_first else S + (D,))
    elif rank == 2:
        shape = (B, D)
    else:
        shape = (B, T) + tuple(g.ints(1, 3) for _ in range(rank - 3)) + (D,)
    r = g.rng.random()
    if r < 0.06: shape = shape[:-1]                                  # rank too low
    elif r < 0.1: shape = shape + (2,)                               # rank too high
    elif r < 0.15: shape = shape[:-1] + (g.ints(0, 5),)              # a different feature size
    x = g.rng.standard_normal(shape)
    dtype = 'float32' if g.coin(0.7) else g.pick(['float64'] + WEIRD_DTYPES)
    x = x.astype(dtype) if dtype not in ('str', 'object') else (x.astype(str) if dtype == 'str' else x.astype(object))
    r = g.rng.random()
    if r < 0.05 and x.size and x.dtype.kind == 'f': x.flat[int(g.rng.integers(x.size))] = g.pick([np.nan, np.inf, -np.inf])
    elif r < 0.08: x = np.asfortranarray(x)
    elif r < 0.11: x = x.copy(); x.setflags(write=False)
    elif r < 0.14 and x.ndim >= 2: x = np.repeat(x, 2, axis=1)[:, ::2]         # non-contiguous view
    elif r < 0.17: x = x.tolist()
    elif r < 0.19: x = g.pick([None, 3.0, 'abc', [], (), {}])
    elif r < 0.22: x = [x, x] if g.coin() else (x,)                             # a nest where one array is expected
    elif r < 0.24: x = {'a': x}
    elif r < 0.26: x = rb.Variable(np.asarray(x, 'float32')) if np.asarray(x).dtype.kind in 'fiub' else x
    return x


def _batch_time(x):
    a = x if isinstance(x, np.ndarray) else None
    if a is None or a.ndim < 2: return 2, 3
    return a.shape[0], a.shape[1]


def gen_mask(g, x):
    B, T = _batch_time(x)
    r = g.rng.random()
    if r < 0.45: return None
    if r < 0.65: return g.rng.random((B, T)) > 0.3
    if r < 0.7: return np.ones((B, T), bool)
    if r < 0.74: return np.zeros((B, T), bool)
    if r < 0.78: return (g.rng.random((B, T)) > 0.5).astype(g.pick(['float32', 'int64', 'uint8']))
    if r < 0.81: return (g.rng.random((B, T)) > 0.5).tolist()
    return g.pick([np.ones((B, T + 1), bool), np.ones((B + 1, T), bool), np.ones((B,), bool), np.ones((B, T, 1), bool),
                   'mask', 3, [np.ones((B, T), bool)], [None], (np.ones((B, T), bool), np.ones((B, T), bool)),
                   np.ones((T, B), bool), np.full((B, T), np.nan), np.array([['a'] * T] * B)])


def gen_initial_state(g, layer, x):
    if g.coin(0.75): return None
    B, _ = _batch_time(x)
    try:
        template = flatten(layer.forward_layer.get_initial_state(B) + layer.backward_layer.get_initial_state(B)) \
            if isinstance(layer, L.Bidirectional) else flatten(layer.get_initial_state(B))
    except Exception:
        template = [np.zeros((B, 2))]
    states = [g.rng.standard_normal(np.shape(s)).astype('float32') for s in template]
    r = g.rng.random()
    if r < 0.5: return states
    if r < 0.6: return states[:-1] if len(states) > 1 else states + states
    if r < 0.7: return [s[..., :-1] if s.shape[-1] > 1 else np.zeros(s.shape[:-1] + (5,)) for s in states]
    if r < 0.75: return [s.astype(g.pick(['float64', 'int32', 'bool'])) for s in states]
    if r < 0.8: return states[0]
    if r < 0.85: return [s[:0] for s in states]
    return g.pick([3, 'state', [None] * len(states), [[s] for s in states], tuple(states), {'h': states[0]}])


def gen_weights(g, layer):
    ws = layer.get_weights()
    r = g.rng.random()
    if r < 0.3: return [w + g.rng.standard_normal(w.shape).astype(w.dtype) * 0.1 for w in ws]
    if r < 0.4: return ws[:-1]
    if r < 0.5: return ws + [np.ones(2)]
    if r < 0.6: return [w.T if w.ndim == 2 else w[..., None] for w in ws]
    if r < 0.65: return [w.astype('int32') for w in ws]
    if r < 0.7: return [w.tolist() for w in ws]
    if r < 0.75: return [np.full(w.shape, np.nan, w.dtype) for w in ws]
    if r < 0.8: return tuple(ws)
    if r < 0.85: return (w for w in ws)
    return g.pick([None, 3, 'weights', [None] * len(ws), [str(i) for i in range(len(ws))], {'a': 1}, np.ones(3),
                   [np.ones(w.shape, object) for w in ws]])


# ---- running --------------------------------------------------------------------------------------------------

def snapshot(layer):
    "Everything an error must leave as it was: built flag, weight values, stateful states."
    states = []
    for l in [layer] + layer._all_sublayers():
        s = l.__dict__.get('states')
        if s is not None: states.append((l, s, [np.array(v.numpy()) for v in flatten(s)]))
    return layer.built, [(w, np.array(w.numpy())) for w in layer.weights], states


def check_unchanged(layer, snap, what):
    built, weights, states = snap
    if layer.built != built: raise Bad(f"{what}: built changed from {built} to {layer.built}")
    if [id(w) for w, _ in weights] != [id(w) for w in layer.weights]:
        raise Bad(f"{what}: the weight list changed ({len(weights)} -> {len(layer.weights)})")
    for w, value in weights:
        if not np.array_equal(w.numpy(), value, equal_nan=True): raise Bad(f"{what}: weight {w.path} changed")
    for l, s, values in states:
        if l.__dict__.get('states') is not s: raise Bad(f"{what}: the states of {l.name} were replaced")
        for v, value in zip(flatten(s), values):
            if not np.array_equal(v.numpy(), value, equal_nan=True): raise Bad(f"{what}: a state of {l.name} changed")


def attempt(fn, layer, what, stats):
    "Run `fn`; an exception must be documented and leave `layer` unchanged. Returns (ok, result)."
    snap = snapshot(layer) if layer is not None else None
    try:
        out = fn()
    except DOCUMENTED as e:
        if not raised_by_rnnbook(e):
            raise Bad(f"{what}: {type(e).__name__} not raised by rnnbook: {e}\n" +
                      ''.join(traceback.format_exception(e)[-6:])) from e
        if isinstance(e, AttributeError) and 'must be stateful' not in str(e):   # the only documented one
            raise Bad(f"{what}: undocumented AttributeError: {e}") from e
        stats['error', type(e).__name__] += 1
        if layer is not None: check_unchanged(layer, snap, what)
        return False, None
    except Exception as e:
        raise Bad(f"{what}: undocumented {type(e).__name__}: {e}\n" + ''.join(traceback.format_exception(e)[-6:])) from e
    stats['ok', what.split('(')[0]] += 1
    return True, out


def check_output(out, layer, x):
    "A successful call returns arrays of numbers (never strings or objects passed through)."
    leaves = flatten(out) if isinstance(out, (list, tuple)) else [out]
    for o in leaves:
        a = np.asarray(rb.to_numpy(o))
        if a.dtype.kind not in 'fiub': raise Bad(f"call returned an array of dtype {a.dtype}")


def call_kwargs(g, layer, x):
    kw = {}
    names, var_kw = type(layer)._call_params()
    if 'mask' in names or var_kw:
        m = gen_mask(g, x)
        if m is not None: kw['mask'] = m
    if 'initial_state' in names:
        s = gen_initial_state(g, layer, x)
        if s is not None: kw['initial_state'] = s
    if 'training' in names or var_kw:
        if g.coin(0.4): kw['training'] = g.pick([True, False, None, 1, 'yes'])
    if 'constants' in names and g.coin(0.03): kw['constants'] = [np.ones((2, 2))]
    return kw


# ---- models: compile / fit / evaluate / predict / *_on_batch -------------------------------------------------

OPTIMIZERS = ['adam', 'sgd', 'rmsprop', 'adagrad', lambda: rb.optimizers.Adam(0.01), lambda: rb.optimizers.SGD(0.1, momentum=0.5)]
BAD_OPTIMIZERS = ['adamw2', 3, None, {'class_name': 'Nope'}, lambda: rb.optimizers.Adam(beta_1=2),
                  lambda: rb.optimizers.SGD(momentum=-1), lambda: rb.optimizers.RMSprop(rho='a'),
                  lambda: rb.optimizers.Adam(learning_rate='fast'), lambda: rb.optimizers.SGD(clipnorm=-1)]
LOSSES = ['mse', 'mae', 'binary_crossentropy', 'categorical_crossentropy', rb.losses.MeanSquaredError(),
          'sparse_categorical_crossentropy']
BAD_LOSSES = ['mse2', 3, None, {'class_name': 'Nope'}, ['mse', 'mae']]
METRICS = [None, ['mae'], ['accuracy'], ['mse', 'mae'], []]
BAD_METRICS = [['acc2'], 'nope', [3], [None]]


def gen_model_case(g, stats):
    "A small model compiled with random (possibly invalid) arguments, then fit/evaluate/predict with random data."
    stateful = g.coin(0.15)
    B0, T, D, out = 4, g.ints(1, 4), g.ints(1, 3), g.ints(1, 3)
    layers = [L.LSTM(3, return_sequences=g.coin(0.3), stateful=stateful, batch_input_shape=(B0, None, D) if stateful else None)]
    if layers[0].return_sequences: layers.append(L.GRU(2))
    if g.coin(0.3): layers.append(L.BatchNormalization())
    layers.append(L.Dense(out))
    model = rb.Sequential(layers)
    model.build((B0, T, D)) if not stateful else None
    def compile_():
        opt, _ = g.maybe(OPTIMIZERS, BAD_OPTIMIZERS, p=0.15)
        loss, _ = g.maybe(LOSSES, BAD_LOSSES, p=0.1)
        metrics, _ = g.maybe(METRICS, BAD_METRICS, p=0.1)
        lw, _ = g.maybe([None, 1.0, 0.5], ['a', [1, 2], -1j], p=0.05)
        model.compile(optimizer=opt() if callable(opt) and not isinstance(opt, rb.losses.Loss) else opt, loss=loss,
                      metrics=metrics, loss_weights=lw)
    ok, _ = attempt(compile_, model, 'compile', stats)
    if not ok: return
    for _ in range(g.ints(1, 3)):
        n = g.pick([B0, 2 * B0, 0, 5, 1]) if not stateful else g.pick([B0, 2 * B0, 3 * B0, 5])
        x = g.rng.standard_normal((n, T, D)).astype('float32')
        if g.coin(0.1): x = x[..., :max(D - 1, 1)] if D > 1 else x[..., None]
        if g.coin(0.05): x = g.pick([None, 'x', x.astype(str), x.tolist()])
        y = g.rng.standard_normal((n, out)).astype('float32')
        r = g.rng.random()
        if r < 0.08: y = y[:, :max(out - 1, 1)] if out > 1 else np.zeros((n, 2))
        elif r < 0.12: y = y[:max(n - 1, 0)]
        elif r < 0.15: y = g.pick([None, 'y', y.astype(str), y.tolist(), [y, y], {'a': y}, np.full((n, out), np.nan)])
        elif r < 0.2: y = g.rng.integers(0, out, (n,))
        kw = {}
        if g.coin(0.3): kw['batch_size'], _ = g.maybe([B0, 2, None, 1], [0, -1, 'a', 2.5, True])
        if stateful and 'batch_size' not in kw: kw['batch_size'] = B0
        op = g.pick(['fit'] * 3 + ['train_on_batch', 'evaluate', 'predict', 'test_on_batch', 'predict_on_batch'])
        if op == 'fit':
            if g.coin(0.3): kw['epochs'], _ = g.maybe([1, 2, 0], [-1, 'a', 1.5])
            if g.coin(0.2): kw['validation_split'], _ = g.maybe([0.25, 0.5], [0, 1, 1.5, 'a', -0.1])
            elif g.coin(0.2):
                vx = x[:2] if isinstance(x, np.ndarray) else x
                vy = g.pick([y[:2] if isinstance(y, np.ndarray) else y, np.zeros((2, out + 1)), 'v', None])
                kw['validation_data'] = g.pick([(vx, vy), (vx,), vx, (vx, vy, np.ones(2)), (vx, vy, np.ones(7))])
            if g.coin(0.15): kw['sample_weight'] = g.pick([np.ones(n), np.ones(n + 1), 'w', np.ones((n, 9)), -np.ones(n)])
            elif g.coin(0.1): kw['class_weight'] = g.pick([{0: 1.0, 1: 2.0}, 'a', {0: 'x'}, [1, 2]])
            if g.coin(0.1): kw['steps_per_epoch'], _ = g.maybe([1, 2], [0, -1, 'a'])
            if g.coin(0.1): kw['callbacks'] = g.pick([[], [3], 'cb', [rb.callbacks.EarlyStopping(patience=0)]])
            if g.coin(0.1): kw['shuffle'] = g.pick([False, True, 'batch'])
            if g.coin(0.1): kw['validation_freq'], _ = g.maybe([1, 2], [0, 'a'])
            if g.coin(0.1): kw['initial_epoch'], _ = g.maybe([0, 1], [-1, 'a'])
            kw['verbose'], _ = g.maybe([0], ['loud', 5, -1], p=0.05)
            attempt(lambda: model.fit(x, y, **kw), model, 'fit', stats)
        elif op == 'train_on_batch':
            attempt(lambda: model.train_on_batch(x, y), model, 'train_on_batch', stats)
        elif op == 'test_on_batch':
            attempt(lambda: model.test_on_batch(x, y), model, 'test_on_batch', stats)
        elif op == 'evaluate':
            attempt(lambda: model.evaluate(x, y, verbose=0, **kw), model, 'evaluate', stats)
        elif op == 'predict':
            attempt(lambda: model.predict(x, verbose=0, **kw), model, 'predict', stats)
        else:
            attempt(lambda: model.predict_on_batch(x), model, 'predict_on_batch', stats)


def run_case(g, stats):
    if g.coin(0.12): return gen_model_case(g, stats)
    spec = gen_layer(g)
    ok, layer = attempt(spec.make, None, 'construct', stats)
    if not ok: return
    for _ in range(g.ints(1, 4)):
        op = g.pick(['call'] * 6 + ['set_weights', 'reset_states', 'config', 'tape'])
        if op == 'call' or (op in ('set_weights', 'tape') and not layer.built):
            x = gen_input(g, spec, layer)
            if isinstance(layer, L.Layer) and spec.rank == 2 and type(layer).__name__.endswith('Cell'):
                B = len(x) if isinstance(x, np.ndarray) and x.ndim else 2
                units = layer.units if hasattr(layer, 'units') else 2
                st = [np.zeros((B, units), 'float32') for _ in flatten(layer.state_size)] \
                    if not g.coin(0.1) else g.pick([None, [], [np.zeros((B, 99))]])
                ok, out = attempt(lambda: layer(x, st, training=g.coin()), layer, 'cell call', stats)
            else:
                kw = call_kwargs(g, layer, x)
                ok, out = attempt(lambda: layer(x, **kw), layer, 'call', stats)
            if ok: check_output(out, layer, x)
        elif op == 'set_weights':
            ws = gen_weights(g, layer)
            attempt(lambda: layer.set_weights(ws), layer, 'set_weights', stats)
        elif op == 'reset_states':
            if not hasattr(layer, 'reset_states'): continue
            B = g.ints(1, 3)
            if g.coin(0.4): attempt(lambda: layer.reset_states(), layer, 'reset_states', stats); continue
            try: template = [np.zeros(np.shape(v)) for v in flatten(layer.states)] if layer.states is not None else \
                [np.zeros((B, 2))]
            except Exception: template = [np.zeros((B, 2))]
            states = g.pick([template, template[:-1], [t[..., :0] for t in template], 'abc', [None] * len(template),
                             template[0] if template else None])
            attempt(lambda: layer.reset_states(states), layer, 'reset_states(states)', stats)
        elif op == 'config':
            def round_trip():
                config = layer.get_config()
                again = type(layer).from_config(config)
                if again.get_config().keys() != config.keys(): raise Bad("config round trip changed the keys")
            ok, _ = attempt(round_trip, None, 'config', stats)
            if not ok: raise Bad(f"get_config/from_config failed for {layer!r}")
        elif op == 'tape':
            x = gen_input(g, spec, layer)
            kw = call_kwargs(g, layer, x) if not type(layer).__name__.endswith('Cell') else None
            if kw is None: continue
            def taped():
                with rb.GradientTape() as tape:
                    out = layer(x, **kw)
                    loss = rb.ops.sum(flatten(out)[0] if isinstance(out, (list, tuple)) else out)
                return tape.gradient(loss, layer.trainable_weights)
            attempt(taped, layer, 'tape', stats)


def fuzz(n_cases, seed=SEED):
    "Run `n_cases` generated cases; returns (stats, findings)."
    stats, findings = collections.Counter(), []
    for i in range(n_cases):
        g = Gen(np.random.default_rng([seed, i]), p_bad=0.12 if i % 2 else 0.03)   # every other case: mostly valid
        rb.set_seed(seed * 1_000_003 + i)          # unseeded initializers and dropout: reproducible cases
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with np.errstate(all='ignore'):
                try: run_case(g, stats)
                except Bad as e: findings.append((i, str(e)))
        stats['cases'] += 1
    return stats, findings


def test_fuzz_layers_and_call_arguments():
    stats, findings = fuzz(N_CASES)
    summary = {f"{k[0]}:{k[1]}" if isinstance(k, tuple) else k: v for k, v in sorted(stats.items(), key=str)}
    print(f"\nfuzz: {stats['cases']} cases (seed {SEED}); outcomes: {summary}")
    assert stats['cases'] == N_CASES
    assert not findings, f"{len(findings)} finding(s); first ones:\n" + "\n\n".join(
        f"case {i}: {msg}" for i, msg in findings[:5])
    # the generator reaches both outcomes of calls: successes and documented errors
    assert stats['ok', 'call'] > N_CASES // 10 and stats['error', 'ValueError'] > N_CASES // 10
    assert stats['ok', 'fit'] > 0 and stats['ok', 'tape'] > 0


if __name__ == '__main__':
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else N_CASES
    stats, findings = fuzz(n)
    by_kind = collections.defaultdict(list)
    for i, msg in findings: by_kind[msg.split('\n')[0][:160]].append((i, msg))
    for key, items in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        print(f"==== {len(items)}x (e.g. case {items[0][0]}) {items[0][1]}" if '-v' in sys.argv else f"{len(items)} {key}")
    print(dict(stats))
