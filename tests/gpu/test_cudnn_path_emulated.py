"""rnnbook's whole cuDNN path on a machine without a GPU: the strict CuPy emulator (fakes/fake_cupy.py) holds the
data and a C-level stand-in for libcudnn.so.9 (fakes/fake_cudnn.py) answers the binding's calls with cuDNN's
documented semantics.

This runs everything rnnbook does on a GPU except the real library: the predicate choosing the path, plans and
their caches, the queried (here shuffled, gapped) weight table, descriptors, device sequence lengths, forward in
inference and training mode, backward data then backward weights on the training forward's reserve space, and the
loop's conventions around the call. The real library is exercised by tests/gpu/test_gpu_real_device.py on a GPU."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook import cudnn, recurrent
from rnnbook.autodiff import GradientTape
from rnnbook.layer import Variable
from rnnbook.layers import LSTM, GRU, SimpleRNN, Bidirectional, CuDNNLSTM, CuDNNGRU, Dense

import fake_cupy
from fake_cudnn import FakeCuDNN

KINDS = {'LSTM': LSTM, 'GRU': GRU, 'SimpleRNN': SimpleRNN}


@pytest.fixture
def gpu(monkeypatch):
    lib = FakeCuDNN()
    for name, value in (('_LIB', lib), ('_LIB_ERROR', None), ('_HANDLES', {}), ('_PLANS', {})):
        monkeypatch.setattr(cudnn, name, value)
    with fake_cupy.installed() as cp:
        yield cp, lib


def twins(make, x, cp):
    "A layer built on the (emulated) GPU and its NumPy twin with the same weights."
    cpu, dev = make(), make()
    cpu.build(x.shape)
    dev(cp.asarray(x))
    rng = np.random.default_rng(11)
    weights = [w + .2 * rng.standard_normal(w.shape) for w in cpu.get_weights()]
    cpu.set_weights(weights); dev.set_weights(weights)
    return cpu, dev


def close(got, want, atol):
    got, want = rb.backend.flatten(got), rb.backend.flatten(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = rb.backend.unwrap(a), rb.backend.unwrap(b)
        assert rb.backend.is_cupy_array(a), type(a)
        np.testing.assert_allclose(a.get(), b, atol=atol)


def data(B=4, T=6, D=3, masked=False, dtype='float64'):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    mask = np.arange(T)[None] < np.array([6, 2, 1, 4])[:B, None] if masked else None
    return x, mask


@pytest.mark.parametrize('kind,act', [('LSTM', 'tanh'), ('GRU', 'tanh'), ('SimpleRNN', 'tanh'), ('SimpleRNN', 'relu')])
@pytest.mark.parametrize('go_backwards', [False, True])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('given_state', [False, True])
@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_forward_and_gradients_through_the_binding(gpu, kind, act, go_backwards, masked, given_state, dtype):
    cp, lib = gpu
    x, mask = data(masked=masked, dtype=dtype)
    kw = dict(activation=act) if kind == 'SimpleRNN' else {}
    make = lambda: KINDS[kind](3, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype=dtype, **kw)
    cpu, dev = twins(make, x, cp)
    n = 2 if kind == 'LSTM' else 1
    rng = np.random.default_rng(13)
    h0 = [rng.standard_normal((4, 3)).astype(dtype) for _ in range(n)] if given_state else None
    w_seq, w_h = rng.standard_normal((4, 6, 3)), rng.standard_normal((4, 3))
    assert recurrent.cudnn_reason(dev, cp.asarray(x), None if mask is None else cp.asarray(mask)) is None
    atol = 1e-10 if dtype == 'float64' else 2e-5

    def run(layer, xp, put):
        xv = Variable(put(x))
        sv = None if h0 is None else [Variable(put(h)) for h in h0]
        with GradientTape() as tape:
            seq, h, *rest = layer(xv, mask=None if mask is None else put(mask), initial_state=sv)
            loss = rb.ops.add(rb.ops.sum(rb.ops.multiply(seq, put(w_seq.astype(dtype)))),
                              rb.ops.sum(rb.ops.multiply(h, put(w_h.astype(dtype)))))
        grads = tape.gradient(loss, [xv, *(sv or []), *layer.trainable_weights])
        return [seq, h, *rest, *grads]

    lib.log.clear()
    got = run(dev, cp, cp.asarray)
    assert lib.log.count('cudnnRNNForward') == 1
    assert lib.log.index('cudnnRNNBackwardData_v8') < lib.log.index('cudnnRNNBackwardWeights_v8')
    want = run(cpu, np, lambda a: a)
    close(got, want, atol)
    # inference (no tape): the inference forward, no reserve space
    lib.log.clear()
    close(dev(cp.asarray(x), mask=None if mask is None else cp.asarray(mask)), cpu(x, mask=mask), atol)
    assert lib.log.count('cudnnRNNForward') == 1 and 'cudnnRNNBackwardData_v8' not in lib.log


@pytest.mark.parametrize('kind', ['LSTM', 'GRU', 'SimpleRNN'])
@pytest.mark.parametrize('mode', ['concat', 'sum', None])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('return_sequences', [False, True])
def test_bidirectional_is_one_bidirectional_call(gpu, kind, mode, masked, return_sequences):
    cp, lib = gpu
    x, mask = data(masked=masked)
    make = lambda: Bidirectional(KINDS[kind](3, return_sequences=return_sequences, return_state=True, dtype='float64'),
                                 merge_mode=mode)
    cpu, dev = twins(make, x, cp)
    put_mask = lambda put: None if mask is None else put(mask)

    def run(layer, put):
        xv = Variable(put(x))
        with GradientTape() as tape:
            outs = rb.backend.flatten(layer(xv, mask=put_mask(put)))
            loss = rb.ops.sum(rb.ops.stack([rb.ops.sum(o) for o in outs]))
        return outs + tape.gradient(loss, [xv, *layer.trainable_weights])

    lib.log.clear()
    got = run(dev, cp.asarray)
    assert lib.log.count('cudnnRNNForward') == 1
    rnn_desc = [o for o in lib.objs.values() if o.get('kind') == 'rnn' and 'P' in o]
    assert any(o['P'] == 2 for o in rnn_desc)
    close(got, run(cpu, lambda a: a), 1e-10)


def test_plans_and_descriptors_are_cached(gpu):
    cp, lib = gpu
    x, mask = data(masked=True)
    layer = LSTM(3, return_sequences=True, dtype='float64')
    xd, md = cp.asarray(x), cp.asarray(mask)
    layer(xd, mask=md)
    lib.log.clear()
    for _ in range(3): layer(xd, mask=md)
    assert lib.log.count('cudnnRNNForward') == 3
    for name in ('cudnnSetRNNDescriptor_v8', 'cudnnGetRNNWeightParams', 'cudnnGetRNNWeightSpaceSize',
                 'cudnnSetRNNDataDescriptor', 'cudnnGetRNNTempSpaceSizes', 'cudnnCreate'):
        assert name not in lib.log, name
    assert len(cudnn._PLANS) == 1
    layer(cp.asarray(x[:2]))                    # a new batch shape: new data descriptors, the same plan
    assert 'cudnnSetRNNDataDescriptor' in lib.log and 'cudnnSetRNNDescriptor_v8' not in lib.log
    assert len(cudnn._PLANS) == 1


def test_stateful_layer_carries_state_through_cudnn(gpu):
    cp, lib = gpu
    x, _ = data()
    make = lambda: GRU(3, stateful=True, return_sequences=True, dtype='float64')
    cpu, dev = twins(make, x, cp)
    cpu.reset_state(); dev.reset_state()
    for _ in range(2): close(dev(cp.asarray(x)), cpu(x), 1e-10)
    close([s.value for s in dev.states], [s.value for s in cpu.states], 1e-10)
    assert lib.log.count('cudnnRNNForward') == 3       # the building call and two batches


@pytest.mark.parametrize('cls', [CuDNNLSTM, CuDNNGRU])
def test_cudnn_layers_run_the_binding(gpu, cls):
    cp, lib = gpu
    x, _ = data()
    cpu, dev = twins(lambda: cls(3, return_sequences=True, return_state=True, go_backwards=True, dtype='float64'), x, cp)
    lib.log.clear()
    close(dev(cp.asarray(x)), cpu(x), 1e-10)
    assert lib.log.count('cudnnRNNForward') == 1


def test_fit_through_cudnn_equals_numpy_fit(gpu):
    cp, lib = gpu
    rng = np.random.default_rng(14)
    x = rng.standard_normal((16, 5, 3)).astype('float32')
    y = rng.standard_normal((16, 2)).astype('float32')
    make = lambda: rb.Sequential([LSTM(4), Dense(2)])
    cpu, dev = make(), make()
    cpu(x); dev(cp.asarray(x))
    dev.set_weights(cpu.get_weights())
    for m in (cpu, dev): m.compile(optimizer='adam', loss='mse')
    lib.log.clear()
    h_dev = dev.fit(cp.asarray(x), cp.asarray(y), batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_cpu = cpu.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert lib.log.count('cudnnRNNBackwardWeights_v8') == 4
    np.testing.assert_allclose(h_dev.history['loss'], h_cpu.history['loss'], rtol=1e-5)
    for a, b in zip(dev.get_weights(), cpu.get_weights()): np.testing.assert_allclose(a, b, atol=1e-5)


def test_info_and_use_cudnn_true(gpu):
    cp, lib = gpu
    x, _ = data()
    layer = LSTM(3, use_cudnn=True)
    assert rb.backend.info(layer, cp.asarray(x))['cudnn_path'] == 'taken'
    layer(cp.asarray(x))
    left = cp.asarray(np.array([[0, 1, 1, 1, 1, 1]] * 4, bool))
    with pytest.raises(ValueError, match="use_cudnn=True was specified.*not right-padded"):
        layer(cp.asarray(x), mask=left)
    auto = LSTM(3, dtype='float64')
    lib.log.clear()
    auto(cp.asarray(x), mask=left)                 # 'auto': the loop, on the GPU arrays
    assert 'cudnnRNNForward' not in lib.log
    assert 'right-padded' in rb.backend.info(auto, cp.asarray(x), left)['cudnn_path']
