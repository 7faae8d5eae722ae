"""CuPy in, CuPy out, same numbers as NumPy -- and the cuDNN path (rnnbook.cudnn) equal to the CuPy loop, to NumPy
and to torch.nn on CUDA. Skipped (with the reason) where CuPy or a GPU is missing; the cuDNN tests also where
cuDNN 9 cannot be loaded (`rnnbook.cudnn.library_reason()`).

The GPU acceptance suite: `tools/gpu_check.sh` runs it (with tests/gpu/test_cudnn_binding_real_library.py) on a
GPU machine."""
import contextlib

import numpy as np
import pytest

import rnnbook as rb
import rnnbook.cudnn
import rnnbook.recurrent
import rnnbook.dispatch
from rnnbook.backend import flatten, is_cupy_array, to_numpy, unwrap
from rnnbook.layers import (RNN, SimpleRNN, GRU, LSTM, LSTMCell, SimpleRNNCell, Bidirectional, CuDNNLSTM,
                            CuDNNGRU)

cp = pytest.importorskip('cupy', reason='CuPy is not installed (GPU tests need `pip install rnnbook[gpu]`)')
try:
    if cp.cuda.runtime.getDeviceCount() < 1: raise RuntimeError('no CUDA device')
except Exception as e:  # noqa: BLE001 - any CUDA failure means no usable GPU
    pytest.skip(f'no usable CUDA device: {e}', allow_module_level=True)

CUDNN_REASON = rnnbook.cudnn.library_reason()
needs_cudnn = pytest.mark.skipif(CUDNN_REASON is not None, reason=f'cuDNN 9 cannot be loaded: {CUDNN_REASON}')


@pytest.mark.parametrize('make', [lambda **k: SimpleRNN(4, **k), lambda **k: GRU(4, **k),
                                  lambda **k: GRU(4, reset_after=False, **k), lambda **k: LSTM(4, **k),
                                  lambda **k: RNN([SimpleRNNCell(3), LSTMCell(4)], **k)])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('go_backwards', [False, True])
def test_cupy_matches_numpy(make, masked, go_backwards):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 5)).astype('float32')
    mask = rng.random((3, 6)) > .3 if masked else None
    cpu = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    gpu = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    cpu.build(x.shape)
    gpu(cp.asarray(x))                       # built on the GPU by its first input
    gpu.set_weights(cpu.get_weights())
    out_gpu = gpu(cp.asarray(x), mask=None if mask is None else cp.asarray(mask))
    out_cpu = cpu(x, mask=mask)
    for a, b in zip(rb.backend.flatten(out_gpu), rb.backend.flatten(out_cpu)):
        assert rb.backend.is_cupy_array(a)
        np.testing.assert_allclose(cp.asnumpy(a), b, atol=1e-5)


def test_stateful_and_dropout_on_gpu_are_deterministic():
    x = cp.asarray(np.random.default_rng(1).standard_normal((2, 5, 3)).astype('float32'))
    a, b = (LSTM(3, stateful=True, dropout=.3, seed=4) for _ in range(2))
    a(x); b(x); b.set_weights(a.get_weights()); a.reset_state(); b.reset_state()
    np.testing.assert_array_equal(cp.asnumpy(a(x, training=True)), cp.asnumpy(b(x, training=True)))
    assert all(rb.backend.is_cupy_array(s.value) for s in a.states)


# =====================================================================================================================
# cuDNN: the path rnnbook.recurrent takes for LSTM, GRU(reset_after=True) and SimpleRNN(tanh/relu) on CuPy data
# =====================================================================================================================

B, T, D, U = 3, 6, 5, 4
LENGTHS = [6, 3, 1]                 # ragged, right-padded: one full row, one of a single step
TOL = {'float32': dict(rtol=1e-5, atol=1e-5), 'float64': dict(rtol=1e-10, atol=1e-10)}
KIND_ARGS = {'lstm': (LSTM, {}), 'gru': (GRU, {'reset_after': True}), 'simple_tanh': (SimpleRNN, {}),
             'simple_relu': (SimpleRNN, {'activation': 'relu'})}
N_STATES = {'lstm': 2, 'gru': 1, 'simple_tanh': 1, 'simple_relu': 1}


@pytest.fixture
def spy(monkeypatch):
    """Every call of `rnnbook.cudnn.cudnn_rnn` (the one cuDNN primitive), as
    `(x shape, kind, activation, lengths, directions)`; `directions` is 2 for a fused bidirectional call."""
    calls, real = [], rnnbook.cudnn.cudnn_rnn

    def counting(x, h0, c0, *weights, **kw):
        calls.append((tuple(unwrap(x).shape), kw.get('kind'), kw.get('activation'), kw.get('lengths'),
                      int(unwrap(h0).shape[0])))
        return real(x, h0, c0, *weights, **kw)
    monkeypatch.setattr(rnnbook.cudnn, 'cudnn_rnn', counting)
    return calls


@contextlib.contextmanager
def forced_loop(kind):
    """The CuPy loop for this layer: `use_cudnn=False` is given at construction for LSTM/GRU; SimpleRNN (which has
    no `use_cudnn`, as in Keras) is kept off cuDNN by making `_cudnn_check` give a reason."""
    if kind.startswith('simple'):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(rnnbook.dispatch, '_cudnn_check', lambda *a, **k: ('forced CuPy loop (test)', None))
            yield
    else:
        yield


def make_layer(kind, wrap, path, dtype, go_backwards, ret, units=U):
    "A layer of `kind`, uni- or bidirectional (`wrap`), for the `path` 'cudnn', 'loop' or 'numpy'."
    cls, kw = KIND_ARGS[kind]
    kw = dict(kw, dtype=dtype, go_backwards=go_backwards, return_sequences=ret in ('seq_state', 'seq'),
              return_state=ret in ('seq_state', 'last_state'))
    if path == 'loop' and cls is not SimpleRNN: kw['use_cudnn'] = False
    if wrap == 'uni_zero_output': kw['zero_output_for_mask'] = True
    layer = cls(units, **kw)
    if wrap.startswith('bidi'): layer = Bidirectional(layer, merge_mode=wrap.split('_')[1])
    return layer


def directions(layer):
    return [layer.forward_layer, layer.backward_layer] if isinstance(layer, Bidirectional) else [layer]


def cotangent(i, shape, dtype):
    "The fixed random weights of output leaf `i` in the loss (the same on every path)."
    return np.random.default_rng(100 + i).standard_normal(shape).astype(dtype)


def forward_backward(layer, x, states, mask, xp, training=False):
    """Outputs and the gradients of `sum_i <output_i, C_i>` w.r.t. the inputs, the initial states and every
    trainable weight, as NumPy arrays."""
    xv = rb.Variable(x)
    sv = None if states is None else [rb.Variable(s) for s in states]
    kw = {}
    if sv is not None: kw['initial_state'] = sv
    if mask is not None: kw['mask'] = mask
    with rb.GradientTape() as tape:
        leaves = flatten(layer(xv, training=training, **kw))
        loss = None
        for i, o in enumerate(leaves):
            v = unwrap(o)
            term = rb.ops.sum(rb.ops.multiply(o, xp.asarray(cotangent(i, v.shape, v.dtype))))
            loss = term if loss is None else rb.ops.add(loss, term)
    sources = [xv] + (sv or []) + list(layer.trainable_weights)
    grads = tape.gradient(loss, sources)
    return [to_numpy(o) for o in leaves], [to_numpy(g) for g in grads]


def randomize(layer, dtype, seed=0, scale=.4):
    rng = np.random.default_rng(seed)
    layer.set_weights([(rng.standard_normal(w.shape) * scale).astype(dtype) for w in layer.get_weights()])


def data(kind, wrap, dtype, masked, init, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    mask = np.arange(T)[None, :] < np.array(LENGTHS)[:, None] if masked else None
    n = N_STATES[kind] * (2 if wrap.startswith('bidi') else 1)
    states = [(rng.standard_normal((B, U)) * .5).astype(dtype) for _ in range(n)] if init else None
    return x, mask, states


def dev(a):
    if a is None: return None
    if isinstance(a, list): return [cp.asarray(v) for v in a]
    return cp.asarray(a)


def assert_close(got, want, dtype, what):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f'{what}[{i}]: shape {a.shape} != {b.shape}'
        np.testing.assert_allclose(a, b, err_msg=f'{what}[{i}]', **TOL[dtype])


def _cases():
    out = []
    for kind in KIND_ARGS:
        for dtype in ('float32', 'float64'):
            for wrap in ('uni', 'uni_zero_output', 'bidi_concat', 'bidi_sum'):
                for go_backwards in ((False, True) if wrap.startswith('uni') else (False,)):   # Bidirectional: no
                    for masked in (False, True):
                        for init in (False, True):
                            for ret in ('seq_state', 'last'):
                                out.append(pytest.param(
                                    kind, dtype, wrap, go_backwards, masked, init, ret,
                                    id=f"{kind}-{dtype}-{wrap}-{'backwards' if go_backwards else 'forwards'}-"
                                       f"{'ragged_mask' if masked else 'no_mask'}-"
                                       f"{'init_state' if init else 'zero_state'}-{ret}"))
    return out


@needs_cudnn
@pytest.mark.parametrize('kind,dtype,wrap,go_backwards,masked,init,ret', _cases())
def test_cudnn_equals_cupy_loop_and_numpy(spy, kind, dtype, wrap, go_backwards, masked, init, ret):
    x, mask, states = data(kind, wrap, dtype, masked, init)
    ref = make_layer(kind, wrap, 'numpy', dtype, go_backwards, ret)
    ref(x)
    randomize(ref, dtype)
    fast, loop = (make_layer(kind, wrap, p, dtype, go_backwards, ret) for p in ('cudnn', 'loop'))
    for layer in (fast, loop):
        with forced_loop(kind) if layer is loop else contextlib.nullcontext():
            layer(dev(x))                                        # built on the GPU by its first input
        layer.set_weights(ref.get_weights())
        assert all(is_cupy_array(w.value) for w in layer.weights)

    xg, mg = dev(x), dev(mask)
    for l in directions(fast):                                   # the cuDNN path is really the one taken
        assert rnnbook.recurrent.cudnn_reason(l, xg, mg) is None, rnnbook.recurrent.cudnn_reason(l, xg, mg)
    if not kind.startswith('simple'):
        for l in directions(loop): assert rnnbook.recurrent.cudnn_reason(l, xg, mg) == 'use_cudnn=False'

    want = forward_backward(ref, x, states, mask, np)
    del spy[:]
    got_fast = forward_backward(fast, xg, dev(states), mg, cp)
    n_dir = len(directions(fast))
    assert sum(c[4] for c in spy) == n_dir, f'cuDNN ran {spy}, expected {n_dir} direction(s) in all'
    if n_dir == 2 and hasattr(Bidirectional, '_cudnn_pair'):
        assert len(spy) == 1 and spy[0][4] == 2, f'Bidirectional: expected one fused cuDNN call, got {spy}'
    mode = {'lstm': 'LSTM', 'gru': 'GRU'}.get(kind, 'SimpleRNN')
    assert all(c[1] == mode for c in spy)
    if kind == 'simple_relu': assert all(c[2] == 'relu' for c in spy)
    if masked: assert all(c[3] is not None and list(c[3]) == LENGTHS for c in spy)
    del spy[:]
    with forced_loop(kind):
        got_loop = forward_backward(loop, xg, dev(states), mg, cp)
    assert not spy, 'the CuPy loop path called cuDNN'

    for name, got in (('cudnn', got_fast), ('cupy_loop', got_loop)):
        assert_close(got[0], want[0], dtype, f'{name} outputs vs numpy')
        assert_close(got[1], want[1], dtype, f'{name} gradients (x, initial states, weights) vs numpy')
    assert_close(got_fast[0], got_loop[0], dtype, 'cudnn vs cupy loop outputs')
    assert_close(got_fast[1], got_loop[1], dtype, 'cudnn vs cupy loop gradients')


@needs_cudnn
@pytest.mark.parametrize('kind', ['lstm', 'gru', 'simple_tanh'])
@pytest.mark.parametrize('shape', [(1, 1), (3, 1), (1, 3), (3, 2)], ids=lambda s: f'D{s[0]}_U{s[1]}')
def test_cudnn_tiny_sizes(spy, kind, shape):
    "Input size or units of 1 (the weight table's matrix shapes are read from cuDNN's descriptors)."
    d, u = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, d)).astype('float32')
    ref = make_layer(kind, 'uni', 'numpy', 'float32', False, 'seq_state', units=u)
    ref(x); randomize(ref, 'float32')
    fast = make_layer(kind, 'uni', 'cudnn', 'float32', False, 'seq_state', units=u)
    fast(dev(x)); fast.set_weights(ref.get_weights())
    del spy[:]
    got = forward_backward(fast, dev(x), None, None, cp)
    assert len(spy) == 1
    want = forward_backward(ref, x, None, None, np)
    assert_close(got[0], want[0], 'float32', 'outputs'); assert_close(got[1], want[1], 'float32', 'gradients')


# ---- a second oracle: torch.nn on CUDA (cuDNN) ----------------------------------------------------------------------

@needs_cudnn
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('bidirectional', [False, True], ids=['uni', 'bidi'])
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_cudnn_equals_torch_cuda(spy, kind, bidirectional, dtype):
    torch = pytest.importorskip('torch')
    if not torch.cuda.is_available(): pytest.skip('torch has no CUDA here')
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    wrap = 'bidi_concat' if bidirectional else 'uni'
    x, _, states = data(kind, wrap, dtype, masked=False, init=True)
    layer = make_layer(kind, wrap, 'cudnn', dtype, False, 'seq_state')
    layer(dev(x)); randomize(layer, dtype, seed=5)
    del spy[:]
    outs, grads = forward_backward(layer, dev(x), dev(states), None, cp)
    assert sum(c[4] for c in spy) == (2 if bidirectional else 1)

    m = rb.utils.torch_module(layer).to('cuda')
    tdt = getattr(torch, dtype)
    tx = torch.tensor(x, device='cuda', dtype=tdt, requires_grad=True)
    n, P = N_STATES[kind], 2 if bidirectional else 1
    # rnnbook: [h_fw(, c_fw), h_bw(, c_bw)]; torch: h0 (P, B, U)(, c0 (P, B, U))
    per_dir = [states[r * n:(r + 1) * n] for r in range(P)]
    t_init = [torch.tensor(np.stack([d[j] for d in per_dir]), device='cuda', dtype=tdt, requires_grad=True)
              for j in range(n)]
    seq, fin = m(tx, tuple(t_init) if n == 2 else t_init[0])
    fin = list(fin) if n == 2 else [fin]
    t_outs = [seq] + [f[r] for r in range(P) for f in fin]               # rnnbook's order: per direction
    loss = sum((o * torch.tensor(cotangent(i, tuple(o.shape), dtype), device='cuda')).sum()
               for i, o in enumerate(t_outs))
    loss.backward()
    assert_close(outs, [o.detach().cpu().numpy() for o in t_outs], dtype, 'outputs vs torch')
    g_x, g_states, g_w = grads[0], grads[1:1 + n * P], grads[1 + n * P:]
    assert_close([g_x], [tx.grad.cpu().numpy()], dtype, 'd/dx vs torch')
    t_gs = [t_init[j].grad[r].cpu().numpy() for r in range(P) for j in range(n)]
    assert_close(g_states, t_gs, dtype, 'd/d initial states vs torch')
    pgrads = {k: p.grad for k, p in m.named_parameters()}
    for r in range(P):
        K, R, b = rb.utils.keras_weights(mode_name(kind), pgrads, reverse=bool(r))
        if kind == 'lstm': b = b / 2         # Keras' one bias is torch's b_ih + b_hh: each gets the whole gradient
        assert_close(g_w[3 * r:3 * r + 3], [K, R, b], dtype, f'weight gradients vs torch (direction {r})')


def mode_name(kind): return {'lstm': 'LSTM', 'gru': 'GRU'}.get(kind, 'SimpleRNN')


# ---- stateful, Keras 2's cuDNN layers, errors, the plan cache -------------------------------------------------------

@needs_cudnn
@pytest.mark.parametrize('wrap', ['uni', 'bidi_concat'])
@pytest.mark.parametrize('kind', ['lstm', 'gru', 'simple_tanh'])
def test_cudnn_stateful_across_two_batches(spy, kind, wrap):
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((B, T, D)).astype('float32') for _ in range(2)]
    layers = []
    for path in ('numpy', 'cudnn'):
        cls, kw = KIND_ARGS[kind]
        layer = cls(U, stateful=True, return_sequences=True, return_state=True, **kw)
        if wrap != 'uni': layer = Bidirectional(layer)
        layer(xs[0] if path == 'numpy' else dev(xs[0]))
        layers.append(layer)
    ref, fast = layers
    randomize(ref, 'float32'); fast.set_weights(ref.get_weights())
    ref.reset_state(); fast.reset_state()
    del spy[:]
    for k, x in enumerate(xs):
        got, want = flatten(fast(dev(x))), flatten(ref(x))
        assert_close([to_numpy(g) for g in got], [to_numpy(w) for w in want], 'float32', f'batch {k} outputs')
        assert_close([v.numpy() for v in flatten(fast.states)], [v.numpy() for v in flatten(ref.states)],
                     'float32', f'states after batch {k}')
    assert sum(c[4] for c in spy) == 2 * len(directions(fast))


@pytest.mark.parametrize('wrap', ['uni', 'bidi_concat'])
def test_stateful_states_stay_on_device(wrap):
    "A stateful layer called on CuPy data keeps its states on the GPU (no host round trip per batch)."
    x = dev(np.random.default_rng(8).standard_normal((B, T, D)).astype('float32'))
    layer = LSTM(U, stateful=True)
    if wrap != 'uni': layer = Bidirectional(layer)
    layer(x); layer(x)
    where = [type(v.value).__module__.split('.')[0] for v in flatten(layer.states)]
    assert where == ['cupy'] * len(where), f'states live on {where}'


@needs_cudnn
@pytest.mark.parametrize('init', [False, True], ids=['zero_state', 'init_state'])
@pytest.mark.parametrize('go_backwards', [False, True], ids=['forwards', 'backwards'])
@pytest.mark.parametrize('cls', [CuDNNLSTM, CuDNNGRU], ids=['CuDNNLSTM', 'CuDNNGRU'])
def test_keras2_cudnn_layers_take_cudnn_on_gpu(spy, cls, go_backwards, init):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((B, T, D)).astype('float32')
    states = [rng.standard_normal((B, U)).astype('float32') for _ in range(2 if cls is CuDNNLSTM else 1)]
    ref, fast = (cls(U, return_sequences=True, return_state=True, go_backwards=go_backwards) for _ in range(2))
    ref(x); fast(dev(x))
    randomize(ref, 'float32'); fast.set_weights(ref.get_weights())
    assert rnnbook.cudnn_layers.cudnn_ok(fast, dev(x)) and not rnnbook.cudnn_layers.cudnn_ok(ref, x)
    del spy[:]
    got = forward_backward(fast, dev(x), dev(states) if init else None, None, cp)
    assert len(spy) == 1 and spy[0][1] == cls.cudnn_kind
    want = forward_backward(ref, x, states if init else None, None, np)
    assert_close(got[0], want[0], 'float32', 'outputs'); assert_close(got[1], want[1], 'float32', 'gradients')


@needs_cudnn
@pytest.mark.parametrize('cls', [LSTM, GRU])
def test_use_cudnn_true_with_left_padded_mask_raises(spy, cls):
    x = dev(np.random.default_rng(2).standard_normal((2, 5, 3)).astype('float32'))
    layer = cls(4, use_cudnn=True, return_sequences=True)
    layer(x)                                                             # no mask: cuDNN
    left = cp.asarray(np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool))
    assert rnnbook.recurrent.cudnn_reason(layer, x, left) is not None
    with pytest.raises(ValueError, match='use_cudnn=True was specified, but cuDNN is not supported'):
        layer(x, mask=left)
    empty_row = cp.asarray(np.array([[0, 0, 0, 0, 0], [1, 1, 1, 0, 0]], bool))
    with pytest.raises(ValueError, match='use_cudnn=True was specified'):
        layer(x, mask=empty_row)
    del spy[:]
    right = cp.asarray(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool))
    layer(x, mask=right)                                                 # right-padded: fine, and cuDNN
    assert len(spy) == 1 and list(spy[0][3]) == [3, 5]
    auto = cls(4, return_sequences=True)                                 # 'auto': the loop, no error
    auto(x, mask=left)


@needs_cudnn
def test_plan_is_cached_and_its_table_is_sound():
    p = rnnbook.cudnn.plan('LSTM', D, U, 1, 'float32')
    assert rnnbook.cudnn.plan('LSTM', D, U, 1, 'float32') is p
    assert rnnbook.cudnn.plan('LSTM', D, U, 1, np.float32) is p
    assert rnnbook.cudnn.plan('LSTM', D, U, 1, 'float64') is not p
    assert rnnbook.cudnn.plan('LSTM', D, U, 2, 'float32') is not p
    assert rnnbook.cudnn.plan('SimpleRNN', D, U, 1, 'float32', 'relu') is not \
        rnnbook.cudnn.plan('SimpleRNN', D, U, 1, 'float32', 'tanh')
    lengths = np.array([5, 2, 1], np.int32)
    assert p.data(3, 5, lengths, True) is p.data(3, 5, lengths.copy(), True)
    assert p.data(3, 5, None, False) is not p.data(3, 5, None, True)
    assert p.states_desc(3) is p.states_desc(3)
    assert rnnbook.cudnn.tensor_dims(p.states_desc(3)) == [1, 3, U]
    for kind, P in (('LSTM', 1), ('GRU', 2), ('SimpleRNN', 1)):
        pl = rnnbook.cudnn.plan(kind, D, U, P, 'float64')
        n = rnnbook.cudnn.GATES[kind]
        assert len(pl.table) == P * 2 * 2 * n
        spans = sorted((e.offset, e.offset + int(np.prod(e.shape))) for e in pl.table)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), 'weight blocks overlap'
        assert spans[-1][1] * 8 <= pl.weight_bytes
        for e in pl.table:
            want = (U,) if e.part == 'bias' else (U, D if e.lin_id < n else U)
            assert e.shape == want, e


@needs_cudnn
def test_cudnn_float32_stays_float32_and_on_device(spy):
    x = dev(np.random.default_rng(4).standard_normal((2, 5, 3)).astype('float32'))
    layer = LSTM(4, return_sequences=True, return_state=True)
    out = layer(x)
    assert len(spy) == 1
    assert all(is_cupy_array(o) and o.dtype == np.float32 for o in flatten(out))
