"""CuPy in, CuPy out, same numbers as NumPy -- on the CPU, through the strict CuPy emulator of fakes/fake_cupy.py.

Every layer and op family runs twice with the same weights: on NumPy input and on emulated CuPy input. The
emulator refuses what real CuPy refuses (`np.asarray(cp_x)`, a NumPy array in an operator or function with
CuPy arrays), so a NumPy array leaking into a GPU computation fails here even without a GPU."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.backend import flatten, is_cupy_array, to_numpy
from rnnbook.layers import (RNN, SimpleRNN, GRU, LSTM, SimpleRNNCell, GRUCell, LSTMCell, StackedRNNCells, Dense,
                            Dropout, Embedding, Masking, BatchNormalization, Bidirectional, TimeDistributed,
                            ConvLSTM1D, ConvLSTM2D, CuDNNLSTM, CuDNNGRU)

import fake_cupy


@pytest.fixture
def cp(monkeypatch):
    """The emulator installed as `cupy` (and as rnnbook's CuPy module) for one test. The emulator has no cuDNN, so
    the layers run their own loops on the (emulated) GPU arrays: where rnnbook binds cuDNN, it is reported absent."""
    import importlib
    try: cudnn = importlib.import_module('rnnbook.cudnn')
    except ImportError: cudnn = None
    if cudnn is not None and hasattr(cudnn, 'library_reason'):
        monkeypatch.setattr(cudnn, 'library_reason', lambda: 'the CuPy emulator (tests/fakes/fake_cupy.py) has no cuDNN')
    with fake_cupy.installed() as module:
        yield module


def dev(cp, x):
    "A (nest of) NumPy arrays copied to the emulated device."
    if x is None: return None
    if isinstance(x, (list, tuple)): return type(x)(dev(cp, v) for v in x)
    if isinstance(x, dict): return {k: dev(cp, v) for k, v in x.items()}
    return cp.asarray(x)


def check(out_gpu, out_cpu, atol=1e-6, exact=False):
    "Every leaf of `out_gpu` is a CuPy array equal to the matching NumPy leaf."
    fg, fc = flatten(out_gpu), flatten(out_cpu)
    assert len(fg) == len(fc)
    for a, b in zip(fg, fc):
        a = getattr(a, 'value', a)
        assert is_cupy_array(a), f'expected a CuPy array, got {type(a).__name__}'
        b = to_numpy(b)
        if exact: np.testing.assert_array_equal(a.get(), b)
        else: np.testing.assert_allclose(a.get(), b, atol=atol, rtol=1e-5)


def on_device(layer):
    "Every weight of `layer` lives on the (emulated) GPU."
    for w in layer.weights: assert is_cupy_array(w.value), f'{w.path} is {type(w.value).__name__}'


def twins(make, x, cp, build_kwargs=None):
    "Two layers from `make`: one built on NumPy `x`, one on CuPy `x`, with the NumPy one's weights."
    cpu, gpu = make(), make()
    cpu(x, **(build_kwargs or {}))
    gpu(dev(cp, x), **dev(cp, build_kwargs or {}))
    on_device(gpu)
    gpu.set_weights(cpu.get_weights())
    on_device(gpu)
    return cpu, gpu


def move(model, cp):
    """Put every weight of a model built on NumPy placeholders (`rb.Input`, or a Sequential starting with
    `Embedding`) on the device, with the documented call `Layer.to('gpu')`."""
    assert model.to('gpu') is model
    on_device(model)
    return model


def data(*shape, seed=0, dtype='float32'):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- the emulator itself -------------------------------------------------------------------------------------

def test_emulator_is_strict(cp):
    import cupy
    assert cupy is cp
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert type(a).__module__ == 'cupy' and is_cupy_array(a) and a.device.id == 0
    for bad in [lambda: np.asarray(a), lambda: np.array(a), lambda: a + np.ones(3), lambda: np.ones(3) * a,
                lambda: np.add(a, np.ones(3)), lambda: np.concatenate([a, np.ones((2, 3))]),
                lambda: a.__setitem__(0, np.ones(3)), lambda: cp.where(a > 0, a, np.ones(3))]:
        with pytest.raises(TypeError):
            bad()
    n = len(fake_cupy.host_index_uses)
    assert is_cupy_array(a[np.array([0, 1])]) and len(fake_cupy.host_index_uses) == n + 1    # as CuPy: copied over
    fake_cupy.STRICT_INDEX = True
    try:
        with pytest.raises(TypeError): a[np.array([0, 1])]
    finally: fake_cupy.STRICT_INDEX = False
    with pytest.raises(TypeError, match='Implicit conversion to a NumPy array is not allowed'):
        np.asarray(a)
    both = np.concatenate([a, a])
    assert is_cupy_array(both) and both.shape == (4, 3)
    s = a.sum()
    assert is_cupy_array(s) and s.ndim == 0 and float(s) == 15.0
    assert is_cupy_array(a * np.float32(2) + 1) and is_cupy_array(np.tanh(a))
    view = a[0]; view[...] = 7.0                                       # views share memory
    assert a.get()[0].tolist() == [7.0] * 3
    out = cp.empty_like(a); cp.multiply(a, 2, out=out)
    assert out.get()[1].tolist() == [6.0, 8.0, 10.0]
    assert cp.cuda.runtime.getDeviceCount() == 1
    with cp.cuda.Device(0): pass
    assert is_cupy_array(cp.random.default_rng(0).random((2,)))
    assert cp.float32 is np.float32


def test_emulator_uninstalls():
    import sys
    import rnnbook.backend as backend
    before = (sys.modules.get('cupy'), backend._cupy)
    with fake_cupy.installed():
        assert sys.modules['cupy'] is fake_cupy.module and backend._cupy is fake_cupy.module
    assert (sys.modules.get('cupy'), backend._cupy) == before


# ---- recurrent layers ----------------------------------------------------------------------------------------

LAYERS = {
    'simple_rnn': lambda **k: SimpleRNN(4, **k),
    'gru': lambda **k: GRU(4, **k),
    'gru_v1': lambda **k: GRU(4, reset_after=False, **k),
    'lstm': lambda **k: LSTM(4, **k),
    'rnn_simple_cell': lambda **k: RNN(SimpleRNNCell(4), **k),
    'rnn_gru_cell': lambda **k: RNN(GRUCell(4, reset_after=False), **k),
    'rnn_lstm_cell': lambda **k: RNN(LSTMCell(4), **k),
    'stacked': lambda **k: RNN([SimpleRNNCell(3), GRUCell(2), LSTMCell(4)], **k),
    'stacked_cells': lambda **k: RNN(StackedRNNCells([LSTMCell(3), GRUCell(4)]), **k),
}


@pytest.mark.parametrize('name', LAYERS)
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('go_backwards', [False, True])
def test_recurrent_matches_numpy(cp, name, masked, go_backwards):
    x = data(3, 5, 2)
    mask = np.random.default_rng(1).random((3, 5)) > .3 if masked else None
    make = lambda: LAYERS[name](return_sequences=True, return_state=True, go_backwards=go_backwards)
    cpu, gpu = twins(make, x, cp)
    check(gpu(cp.asarray(x), mask=dev(cp, mask)), cpu(x, mask=mask))


@pytest.mark.parametrize('name', ['simple_rnn', 'gru', 'gru_v1', 'lstm', 'stacked'])
def test_unroll_initial_state_last_output(cp, name):
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    cpu, gpu = twins(lambda: LAYERS[name](return_state=True, unroll=True), x, cp)
    states = [np.full(s.shape, .5, 'float32') for s in flatten(cpu(x)[1:])]
    check(gpu(cp.asarray(x), mask=cp.asarray(mask), initial_state=dev(cp, states)),
          cpu(x, mask=mask, initial_state=states))


@pytest.mark.parametrize('name', ['simple_rnn', 'gru', 'lstm', 'stacked'])
def test_dropout_in_training_with_seed(cp, name):
    x = data(3, 5, 2)
    kw = dict(dropout=.3, recurrent_dropout=.4, return_sequences=True)
    make = {'stacked': lambda: RNN([SimpleRNNCell(3, dropout=.3, recurrent_dropout=.2, seed=1),
                                    LSTMCell(4, dropout=.2, recurrent_dropout=.3, seed=2)], return_sequences=True)
            }.get(name, lambda: LAYERS[name](seed=7, **kw))
    cpu, gpu = twins(make, x, cp)
    check(gpu(cp.asarray(x), training=True), cpu(x, training=True))
    check(gpu(cp.asarray(x), training=True), cpu(x, training=True))    # the next masks of the streams


@pytest.mark.parametrize('name', ['simple_rnn', 'gru', 'lstm', 'stacked'])
def test_stateful_across_calls_and_reset(cp, name):
    x = data(2, 3, 2)
    cpu, gpu = twins(lambda: LAYERS[name](stateful=True, return_sequences=True), x, cp)
    cpu.reset_state(); gpu.reset_state()
    check(gpu(cp.asarray(x)), cpu(x))
    check(gpu(cp.asarray(x)), cpu(x))
    for s in flatten(gpu.states): assert is_cupy_array(s.value)
    cpu.reset_state(); gpu.reset_state()
    for s in flatten(gpu.states): assert is_cupy_array(s.value)
    check(gpu(cp.asarray(x)), cpu(x))


def test_masking_then_lstm(cp):
    x = data(3, 5, 2)
    x[0, 3:] = 0; x[2, :2] = 0
    cpu = rb.Sequential([Masking(0.0), LSTM(4, return_sequences=True)])
    gpu = rb.Sequential([Masking(0.0), LSTM(4, return_sequences=True)])
    cpu(x); gpu(cp.asarray(x)); on_device(gpu)
    gpu.set_weights(cpu.get_weights())
    check(gpu(cp.asarray(x)), cpu(x))
    check(gpu(cp.asarray(x), mask=cp.asarray(x[..., 0] != 5)), cpu(x, mask=x[..., 0] != 5))


def test_masking_layer_by_layer(cp):
    "A mask made by one layer called by hand reaches the next on the GPU, as on NumPy (kept beside the CuPy array)."
    x = data(3, 5, 2)
    x[0, 3:] = 0
    cpu, gpu = twins(lambda: LSTM(4, return_sequences=True), x, cp)
    masked = Masking(0.0)(cp.asarray(x))
    check(rb.get_mask(masked), rb.get_mask(Masking(0.0)(x)), exact=True)
    check(gpu(masked), cpu(Masking(0.0)(x)))
    assert rb.get_mask(masked + 1) is None and rb.get_mask(masked[:, :2]) is None   # derived arrays: no mask
    assert rb.get_mask(rb.with_mask(masked, None)) is None


def test_gpu_masks_live_as_long_as_their_array(cp):
    import gc
    from rnnbook import layer as layer_module
    before = len(layer_module._GPU_MASKS)
    a = rb.with_mask(cp.asarray(np.ones((2, 3))), cp.asarray(np.ones((2, 3), bool)))
    assert len(layer_module._GPU_MASKS) == before + 1 and rb.get_mask(a) is not None
    del a; gc.collect()
    assert len(layer_module._GPU_MASKS) == before


def test_embedding_mask_zero_then_lstm(cp):
    ids = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [5, 6, 7, 8, 9]])
    make = lambda: rb.Sequential([Embedding(10, 3, mask_zero=True), LSTM(4, return_sequences=True, return_state=False)])
    cpu, gpu = make(), make()               # built at construction (Embedding first), on NumPy
    gpu.set_weights(cpu.get_weights()); move(gpu, cp)
    check(gpu(cp.asarray(ids)), cpu(ids))
    emb_cpu, emb_gpu = cpu.layers[0], gpu.layers[0]
    check(emb_gpu.compute_mask(cp.asarray(ids), None), emb_cpu.compute_mask(ids, None), exact=True)


# ---- wrappers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('merge_mode', ['concat', 'sum', 'mul', 'ave', None])
@pytest.mark.parametrize('masked', [False, True])
def test_bidirectional(cp, merge_mode, masked):
    x = data(3, 4, 2)
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], bool) if masked else None
    make = lambda: Bidirectional(LSTM(3, return_sequences=True, return_state=True), merge_mode=merge_mode)
    cpu, gpu = twins(make, x, cp)
    check(gpu(cp.asarray(x), mask=dev(cp, mask)), cpu(x, mask=mask))


def test_bidirectional_initial_state_backward_layer(cp):
    x = data(2, 4, 3)
    make = lambda: Bidirectional(GRU(3, return_state=True), backward_layer=GRU(3, go_backwards=True, return_state=True))
    cpu, gpu = twins(make, x, cp)
    states = [np.full((2, 3), .25, 'float32'), np.full((2, 3), -.5, 'float32')]
    check(gpu(cp.asarray(x), initial_state=dev(cp, states)), cpu(x, initial_state=states))


def test_time_distributed(cp):
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    cpu, gpu = twins(lambda: TimeDistributed(Dense(5, activation='relu')), x, cp)
    check(gpu(cp.asarray(x)), cpu(x))
    check(gpu(cp.asarray(x), mask=cp.asarray(mask)), cpu(x, mask=mask))
    x4 = data(2, 3, 4, 2)
    cpu, gpu = twins(lambda: TimeDistributed(LSTM(3)), x4, cp)
    check(gpu(cp.asarray(x4)), cpu(x4))


# ---- convolutional recurrent layers ----------------------------------------------------------------------------

@pytest.mark.parametrize('padding', ['valid', 'same'])
def test_conv_lstm_1d(cp, padding):
    x = data(2, 3, 6, 2)
    make = lambda: ConvLSTM1D(3, 3, padding=padding, return_sequences=True, return_state=True)
    cpu, gpu = twins(make, x, cp)
    mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    check(gpu(cp.asarray(x)), cpu(x))
    check(gpu(cp.asarray(x), mask=cp.asarray(mask)), cpu(x, mask=mask))


def test_conv_lstm_2d(cp):
    x = data(2, 3, 5, 5, 2)
    make = lambda: ConvLSTM2D(2, (3, 3), padding='same', strides=1, go_backwards=True, dropout=.2,
                              recurrent_dropout=.3, seed=3, return_sequences=True)
    cpu, gpu = twins(make, x, cp)
    check(gpu(cp.asarray(x)), cpu(x), atol=1e-5)
    check(gpu(cp.asarray(x), training=True), cpu(x, training=True), atol=1e-5)


def test_conv_lstm_2d_stateful(cp):
    x = data(2, 2, 4, 4, 1)
    cpu, gpu = twins(lambda: ConvLSTM2D(2, 3, padding='same', stateful=True), x, cp)
    cpu.reset_state(); gpu.reset_state()
    check(gpu(cp.asarray(x)), cpu(x), atol=1e-5)
    check(gpu(cp.asarray(x)), cpu(x), atol=1e-5)


# ---- core layers -----------------------------------------------------------------------------------------------

def test_dense_dropout_batchnorm(cp):
    x = data(4, 5)
    cpu, gpu = twins(lambda: Dense(3, activation='gelu'), x, cp)
    check(gpu(cp.asarray(x)), cpu(x), atol=1e-6)
    cpu, gpu = twins(lambda: Dropout(.4, seed=5), x, cp)
    check(gpu(cp.asarray(x), training=True), cpu(x, training=True), exact=True)
    check(gpu(cp.asarray(x), training=False), cpu(x, training=False), exact=True)
    x3 = data(2, 4, 3)
    cpu, gpu = twins(lambda: Dropout(.5, noise_shape=(None, 1, 3), seed=2), x3, cp)
    check(gpu(cp.asarray(x3), training=True), cpu(x3, training=True), exact=True)
    cpu, gpu = twins(lambda: BatchNormalization(momentum=.5), x3, cp)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    check(gpu(cp.asarray(x3), training=True), cpu(x3, training=True), atol=1e-5)
    check(gpu(cp.asarray(x3), training=True, mask=cp.asarray(mask)), cpu(x3, training=True, mask=mask), atol=1e-5)
    check(gpu(cp.asarray(x3)), cpu(x3), atol=1e-5)
    check(gpu.weights, cpu.weights, atol=1e-6)                     # the moving statistics


def test_embedding(cp):
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    cpu, gpu = twins(lambda: Embedding(5, 3, mask_zero=True), ids, cp)
    check(gpu(cp.asarray(ids)), cpu(ids), exact=True)


# ---- CuDNN-compatible layers -----------------------------------------------------------------------------------

@pytest.mark.parametrize('make', [lambda: CuDNNLSTM(3, return_sequences=True, return_state=True),
                                  lambda: CuDNNGRU(3, return_sequences=True, return_state=True, go_backwards=True)],
                         ids=['cudnn_lstm', 'cudnn_gru'])
def test_cudnn_layers(cp, make):
    x = data(2, 4, 3)
    cpu, gpu = twins(make, x, cp)
    check(gpu(cp.asarray(x)), cpu(x))


def test_cudnn_stateful(cp):
    x = data(2, 3, 2)
    cpu, gpu = twins(lambda: CuDNNLSTM(3, stateful=True), x, cp)
    cpu.reset_states(); gpu.reset_states()
    check(gpu(cp.asarray(x)), cpu(x))
    check(gpu(cp.asarray(x)), cpu(x))


# ---- gradients -------------------------------------------------------------------------------------------------

def grads(layer, x, mask=None, training=False):
    xv = rb.Variable(x)
    with rb.GradientTape() as tape:
        y = layer(xv, mask=mask, training=training) if mask is not None else layer(xv, training=training)
        loss = rb.ops.sum(rb.ops.square(flatten(y)[0])) + rb.ops.sum(flatten(y)[-1])
    return [loss] + tape.gradient(loss, [xv] + list(layer.trainable_weights))


@pytest.mark.parametrize('make', [
    lambda: SimpleRNN(3, return_sequences=True), lambda: GRU(3, return_state=True),
    lambda: GRU(3, reset_after=False, go_backwards=True), lambda: LSTM(3, return_sequences=True, return_state=True),
    lambda: LSTM(3, dropout=.2, recurrent_dropout=.3, seed=1), lambda: RNN([LSTMCell(2), GRUCell(3)]),
    lambda: Bidirectional(LSTM(3, return_sequences=True)), lambda: Bidirectional(GRU(2), merge_mode='sum')],
    ids=['simple_rnn', 'gru', 'gru_v1', 'lstm', 'lstm_dropout', 'stacked', 'bidi_lstm', 'bidi_gru'])
@pytest.mark.parametrize('masked', [False, True])
def test_gradients(cp, make, masked):
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool) if masked else None
    cpu, gpu = twins(make, x, cp)
    check(grads(gpu, cp.asarray(x), dev(cp, mask), training=True), grads(cpu, x, mask, training=True), atol=1e-5)


def test_gradients_conv_lstm(cp):
    x = data(2, 3, 4, 4, 1)
    cpu, gpu = twins(lambda: ConvLSTM2D(2, 3, padding='same', return_sequences=True), x, cp)
    check(grads(gpu, cp.asarray(x)), grads(cpu, x), atol=1e-5)
    x1 = data(2, 3, 5, 2)
    cpu, gpu = twins(lambda: ConvLSTM1D(2, 2, padding='valid'), x1, cp)
    check(grads(gpu, cp.asarray(x1)), grads(cpu, x1), atol=1e-5)


def test_gradients_cudnn(cp):
    x = data(2, 4, 3)
    cpu, gpu = twins(lambda: CuDNNGRU(3, return_sequences=True), x, cp)
    check(grads(gpu, cp.asarray(x)), grads(cpu, x), atol=1e-5)


# ---- models: fit / predict / evaluate --------------------------------------------------------------------------

def sequential():
    return rb.Sequential([Embedding(12, 4, mask_zero=True), LSTM(5, return_sequences=True, dropout=.1, seed=3),
                          GRU(4), Dropout(.2, seed=4), Dense(3)])


def functional():
    inp = rb.Input((None, 3))
    h = Bidirectional(SimpleRNN(3, return_sequences=True))(inp)
    h = BatchNormalization()(h)
    out = Dense(2, activation='softmax')(LSTM(4)(h))
    return rb.Model(inp, out)


@pytest.mark.parametrize('opt', ['adam', 'sgd'])
def test_sequential_fit(cp, opt):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, (8, 5)); ids[:3, 3:] = 0
    y = rng.integers(0, 3, (8,))
    cpu, gpu = sequential(), sequential()    # built at construction (Embedding first), on NumPy
    gpu.set_weights(cpu.get_weights()); move(gpu, cp)
    for m, xi, yi in [(cpu, ids, y), (gpu, cp.asarray(ids), cp.asarray(y))]:
        o = rb.optimizers.Adam(0.01) if opt == 'adam' else rb.optimizers.SGD(0.1, momentum=.9)
        m.compile(o, rb.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
        rb.set_seed(11)
        m.history_ = m.fit(xi, yi, batch_size=4, epochs=2, shuffle=True, verbose=0)
    on_device(gpu)
    check(gpu.weights, cpu.weights, atol=1e-5)
    for k in cpu.history_.history:
        np.testing.assert_allclose(gpu.history_.history[k], cpu.history_.history[k], atol=1e-5)
    check(gpu.predict(cp.asarray(ids), batch_size=3, verbose=0), cpu.predict(ids, batch_size=3, verbose=0), atol=1e-5)
    ev_g = gpu.evaluate(cp.asarray(ids), cp.asarray(y), batch_size=4, verbose=0, return_dict=True)
    ev_c = cpu.evaluate(ids, y, batch_size=4, verbose=0, return_dict=True)
    assert ev_g.keys() == ev_c.keys()
    for k in ev_c: np.testing.assert_allclose(float(ev_g[k]), float(ev_c[k]), atol=1e-5)


def test_functional_fit(cp):
    x = data(6, 4, 3)
    y = np.eye(2, dtype='float32')[np.random.default_rng(2).integers(0, 2, 6)]
    cpu, gpu = functional(), functional()    # built on placeholders, on NumPy
    gpu.set_weights(cpu.get_weights()); move(gpu, cp)
    for m, xi, yi in [(cpu, x, y), (gpu, cp.asarray(x), cp.asarray(y))]:
        m.compile(rb.optimizers.Adam(0.01), 'categorical_crossentropy', metrics=['accuracy', 'mae'])
        m.fit(xi, yi, batch_size=3, epochs=2, shuffle=False, verbose=0, validation_split=0.34)
    check(gpu.weights, cpu.weights, atol=1e-5)
    check(gpu.predict(cp.asarray(x), verbose=0), cpu.predict(x, verbose=0), atol=1e-5)
    check(gpu.predict_on_batch(cp.asarray(x)), cpu.predict_on_batch(x), atol=1e-5)


# ---- losses and metrics ----------------------------------------------------------------------------------------

LOSSES = ['mse', 'mae', 'binary_crossentropy', 'categorical_crossentropy', 'MeanSquaredError', 'MeanAbsoluteError',
          'BinaryCrossentropy', 'CategoricalCrossentropy']


@pytest.mark.parametrize('name', LOSSES)
def test_losses(cp, name):
    rng = np.random.default_rng(3)
    y_true = (rng.random((4, 3)) > .5).astype('float32')
    y_pred = rng.uniform(.05, .95, (4, 3)).astype('float32')
    sw = np.array([1., .5, 0., 2.], 'float32')
    fn = rb.losses.get(name)
    check(fn(cp.asarray(y_true), cp.asarray(y_pred)), fn(y_true, y_pred), atol=1e-6)
    if hasattr(fn, 'get_config'):
        check(fn(cp.asarray(y_true), cp.asarray(y_pred), sample_weight=cp.asarray(sw)),
              fn(y_true, y_pred, sample_weight=sw), atol=1e-6)


def test_sparse_losses_and_sequence_masks(cp):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((2, 3, 4)).astype('float32')
    labels = rng.integers(0, 4, (2, 3))
    fn = rb.losses.SparseCategoricalCrossentropy(from_logits=True)
    check(fn(cp.asarray(labels), cp.asarray(logits)), fn(labels, logits))
    sw = np.array([[1, 1, 0], [1, 0, 0]], 'float32')
    check(fn(cp.asarray(labels), cp.asarray(logits), sample_weight=cp.asarray(sw)), fn(labels, logits, sample_weight=sw))


@pytest.mark.parametrize('name', ['accuracy', 'binary_accuracy', 'categorical_accuracy', 'sparse_categorical_accuracy',
                                  'mae', 'mse', 'BinaryCrossentropy', 'CategoricalCrossentropy'])
def test_metrics(cp, name):
    rng = np.random.default_rng(5)
    y_true = np.eye(3, dtype='float32')[rng.integers(0, 3, 6)]
    y_pred = rng.random((6, 3)).astype('float32')
    if name == 'sparse_categorical_accuracy': y_true = y_true.argmax(-1)
    if name in ('binary_accuracy', 'BinaryCrossentropy'): y_true = (rng.random((6, 3)) > .5).astype('float32')
    m_cpu, m_gpu = rb.metrics.get(name), rb.metrics.get(name)
    m_cpu.update_state(y_true, y_pred); m_gpu.update_state(cp.asarray(y_true), cp.asarray(y_pred))
    m_cpu.update_state(y_true[:3], y_pred[:3]); m_gpu.update_state(cp.asarray(y_true[:3]), cp.asarray(y_pred[:3]))
    np.testing.assert_allclose(float(to_numpy(m_gpu.result())), float(to_numpy(m_cpu.result())), atol=1e-6)


# ---- ops -------------------------------------------------------------------------------------------------------

def test_ops(cp):
    a, b = data(3, 4, seed=1), data(4, 2, seed=2)
    o = rb.ops
    cases = [lambda x, y: o.matmul(x, y), lambda x, y: o.tanh(x) * 2 + 1, lambda x, y: o.sigmoid(x),
             lambda x, y: o.concatenate([x, x], axis=0), lambda x, y: o.stack([x, x]), lambda x, y: o.where(x > 0, x, 0.),
             lambda x, y: o.exp(x) + o.log(o.abs(x) + 1), lambda x, y: o.mean(x, axis=1), lambda x, y: o.transpose(x),
             lambda x, y: o.reshape(x, (2, 6)), lambda x, y: o.split(x, 2, axis=1), lambda x, y: o.einsum('ij,jk->ik', x, y),
             lambda x, y: o.clip(x, -.5, .5), lambda x, y: o.zeros_like(x), lambda x, y: o.ones_like(y),
             lambda x, y: o.cast(x > 0, 'float32'), lambda x, y: o.maximum(x, 0.), lambda x, y: o.square(x),
             lambda x, y: o.flip(x, axis=1), lambda x, y: o.expand_dims(x, 0), lambda x, y: o.take(x, o.convert_to_tensor([0, 2]) if o.array_module(x) is np else
                                  o.array_module(x).asarray([0, 2]), axis=0),
             lambda x, y: o.relu(x) - o.minimum(x, .1) + o.sqrt(o.square(x)), lambda x, y: o.dot(x, y),
             lambda x, y: o.broadcast_to(x[:1], (3, 4)), lambda x, y: o.squeeze(x[:, :1], 1),
             lambda x, y: o.zeros((2, 3)) if False else o.zeros_like(x) + o.ones_like(x)]
    for f in cases:
        check(f(cp.asarray(a), cp.asarray(b)), f(a, b), atol=1e-6)


# ---- rb.trace --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('make', [lambda: LSTM(3, return_sequences=True), lambda: GRU(3),
                                  lambda: Bidirectional(SimpleRNN(2))], ids=['lstm', 'gru', 'bidirectional'])
def test_trace(cp, make):
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    cpu, gpu = twins(make, x, cp)
    t_gpu = rb.trace(gpu, cp.asarray(x), mask=cp.asarray(mask))
    t_cpu = rb.trace(cpu, x, mask=mask)
    on_device(gpu)
    fg = {k: v for k, v in vars(t_gpu).items() if hasattr(v, 'shape')} if hasattr(t_gpu, '__dict__') else {}
    fc = {k: v for k, v in vars(t_cpu).items() if hasattr(v, 'shape')} if hasattr(t_cpu, '__dict__') else {}
    assert fg.keys() == fc.keys()
    for k in fc: np.testing.assert_allclose(to_numpy(fg[k]), to_numpy(fc[k]), atol=1e-6)


def test_functional_model_hands_masks_over_on_cupy(cp):
    def make():
        inp = rb.Input((None,), dtype='int32')
        h = LSTM(3, return_sequences=True)(Embedding(9, 2, mask_zero=True)(inp))
        return rb.Model(inp, Dense(2)(GRU(2)(h)))
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 0], [6, 7, 8, 1]])
    cpu, gpu = make(), make()
    gpu.set_weights(cpu.get_weights()); move(gpu, cp)
    check(gpu(cp.asarray(ids)), cpu(ids))
    check(gpu.predict(cp.asarray(ids), verbose=0), cpu.predict(ids, verbose=0))


def test_model_to_device_and_back_with_its_optimizer(cp):
    "`model.to('gpu')` moves weights, stateful states and optimizer slots; `to('cpu')` brings them back."
    x, y = data(8, 5, 3), data(8, 2, seed=1)
    make = lambda: rb.Sequential([LSTM(4, return_sequences=True), GRU(3), Dense(2)])
    cpu, gpu = make(), make()
    cpu(x); gpu(x); gpu.set_weights(cpu.get_weights())
    for m in (cpu, gpu): m.compile(optimizer='adam', loss='mse')
    cpu.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    gpu.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)      # slots created on the CPU
    gpu.to('gpu')
    on_device(gpu)
    assert all(is_cupy_array(v.value) for v in gpu.optimizer.variables[2:])
    cpu.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    gpu.fit(dev(cp, x), dev(cp, y), epochs=1, batch_size=4, shuffle=False, verbose=0)
    check(gpu(dev(cp, x)), cpu(x), atol=1e-5)
    gpu.to('cpu')
    assert not any(is_cupy_array(w.value) for w in gpu.weights)
    np.testing.assert_allclose(gpu(x), cpu(x), atol=1e-5)
    stateful = LSTM(2, stateful=True); stateful(x[:2])
    stateful.to('gpu')
    assert all(is_cupy_array(s.value) for s in stateful.states)
    with pytest.raises(ValueError, match="argument `device`.*'tpu'"):
        stateful.to('tpu')
