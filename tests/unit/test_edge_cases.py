"""Edge cases with a defined result: empty batches, one and zero time steps, fully masked samples, units=1,
very long sequences (memory that does not grow with T), integer and boolean inputs, NaN/inf, and arrays that
are non-contiguous, Fortran-ordered or read-only -- across the layers, and under `rb.GradientTape`."""

import numpy as np
import pytest

import rnnbook as rb
from rnnbook import ops
from rnnbook.backend import flatten
from rnnbook.layers import (RNN, SimpleRNN, GRU, LSTM, SimpleRNNCell, GRUCell, LSTMCell, Bidirectional, TimeDistributed,
                            ConvLSTM1D, ConvLSTM2D, Embedding, Dense, Masking, BatchNormalization, CuDNNLSTM)
from measure import peak_bytes  # noqa: E402  (tests/helpers)


def seq(B=3, T=4, D=5, seed=0, dtype='float32'):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype(dtype)


def grid(B=3, T=4, seed=0, dtype='float32'):
    "ConvLSTM2D input `(B, T, rows, cols, channels)`."
    return np.random.default_rng(seed).standard_normal((B, T, 5, 4, 2)).astype(dtype)


def outs(y): return [np.asarray(rb.to_numpy(a)) for a in (flatten(y) if isinstance(y, (list, tuple)) else [y])]


# Each case: a layer factory, an input factory `(B, T, seed, dtype) -> x`, and whether it runs over time.
CASES = {
    'simple_rnn': (lambda: SimpleRNN(3, return_sequences=True, return_state=True), seq, True),
    'gru': (lambda: GRU(3, return_sequences=True, return_state=True), seq, True),
    'gru_v1_last': (lambda: GRU(3, reset_after=False), seq, True),
    'lstm': (lambda: LSTM(3, return_sequences=True, return_state=True), seq, True),
    'lstm_last_backwards': (lambda: LSTM(3, go_backwards=True), seq, True),
    'rnn_lstm_cell': (lambda: RNN(LSTMCell(3), return_sequences=True, return_state=True), seq, True),
    'rnn_stacked': (lambda: RNN([GRUCell(3), SimpleRNNCell(2)], return_sequences=True, return_state=True), seq, True),
    'bidirectional': (lambda: Bidirectional(LSTM(3, return_sequences=True, return_state=True)), seq, True),
    'bidirectional_sum_last': (lambda: Bidirectional(GRU(3), merge_mode='sum'), seq, True),
    'cudnn_lstm': (lambda: CuDNNLSTM(3, return_sequences=True), seq, True),
    'time_distributed_dense': (lambda: TimeDistributed(Dense(3)), seq, True),
    'time_distributed_lstm': (lambda: TimeDistributed(LSTM(2)), lambda B, T, seed=0, dtype='float32':
                              np.random.default_rng(seed).standard_normal((B, T, 3, 2)).astype(dtype), True),
    'conv_lstm2d': (lambda: ConvLSTM2D(2, 3, padding='same', return_sequences=True, return_state=True), grid, True),
    'conv_lstm2d_last': (lambda: ConvLSTM2D(2, 2), grid, True),
    'conv_lstm1d_channels_first': (lambda: ConvLSTM1D(2, 3, data_format='channels_first', return_sequences=True),
                                   lambda B, T, seed=0, dtype='float32':
                                   np.random.default_rng(seed).standard_normal((B, T, 2, 6)).astype(dtype), True),
    'dense': (lambda: Dense(3, activation='tanh'), seq, False),
    'masking': (lambda: Masking(0.0), seq, False),
    'batch_norm': (lambda: BatchNormalization(), seq, False),
}
RECURRENT = [k for k, (_, _, over_time) in CASES.items() if over_time and not k.startswith('time_distributed')]


def built(name, seed=0):
    "A layer of case `name`, built on a batch of 2 (weights fixed by `seed`)."
    make, data, _ = CASES[name]
    rb.set_seed(seed)
    layer = make()
    layer(data(2, 3))
    return layer, data


# ---- empty batch, one step, zero steps ---------------------------------------------------------------------

@pytest.mark.parametrize('name', list(CASES))
def test_empty_batch_gives_empty_outputs_of_the_right_shape(name):
    layer, data = built(name)
    full, empty = outs(layer(data(2, 3))), outs(layer(data(0, 3)))
    assert len(full) == len(empty)
    for f, e in zip(full, empty):
        assert e.shape == (0,) + f.shape[1:] and e.dtype == f.dtype


@pytest.mark.parametrize('name', RECURRENT)
def test_zero_steps_give_the_initial_states_and_empty_sequences(name):
    layer, data = built(name)
    full, empty = outs(layer(data(2, 7))), outs(layer(data(2, 0)))      # 7 steps: no other axis has size 7
    assert len(full) == len(empty)
    for f, e in zip(full, empty):
        if getattr(layer, 'return_sequences', False) and f.ndim >= 3 and f.shape[1] == 7:
            assert e.shape == (2, 0) + f.shape[2:]           # an empty sequence
        else:
            assert e.shape == f.shape
            np.testing.assert_array_equal(e, 0)            # last output and states: the zero initial states


@pytest.mark.parametrize('make,x', [(lambda: TimeDistributed(Dense(3)), np.ones((2, 0, 4), 'int32')),
                                    (lambda: TimeDistributed(LSTM(2)), np.ones((2, 0, 3, 4), 'int32')),
                                    (lambda: TimeDistributed(Embedding(5, 2)), np.ones((2, 0, 3), 'int64'))])
def test_time_distributed_zero_steps_give_float_outputs_of_the_right_shape(make, x):
    layer = make()
    y = layer(x)
    full = layer(np.ones((2, 1) + x.shape[2:], x.dtype))
    assert y.shape == (2, 0) + full.shape[2:] and y.dtype == full.dtype == np.float32
    with pytest.raises(ValueError, match='token ids|real numbers'):     # the inputs are still checked
        layer(x.astype(str))


@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_zero_steps_return_a_given_initial_state(cls):
    layer = cls(3, return_state=True)
    layer(seq(2, 3))
    init = [np.full((2, 3), 0.5, 'float32') for _ in layer.states or ([0, 0] if cls is LSTM else [0])]
    out, *states = layer(seq(2, 0), initial_state=init)
    np.testing.assert_array_equal(out, 0)
    for s, i in zip(states, init): np.testing.assert_array_equal(s, i)


@pytest.mark.parametrize('cls,cell', [(SimpleRNN, SimpleRNNCell), (GRU, GRUCell), (LSTM, LSTMCell)])
def test_one_step_equals_one_cell_call(cls, cell):
    layer = cls(3, return_sequences=True, return_state=True)
    x = seq(2, 1)
    y, *states = layer(x)
    c = cell(3); c.build((2, 5)); c.set_weights(layer.get_weights())
    h, new = c(x[:, 0], [np.zeros((2, 3), 'float32') for _ in states])
    np.testing.assert_allclose(y[:, 0], h, atol=1e-6)
    for s, n in zip(states, new): np.testing.assert_allclose(s, n, atol=1e-6)


@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_units_one(cls):
    layer = cls(1, return_sequences=True, return_state=True)
    y, *states = layer(seq())
    assert y.shape == (3, 4, 1) and all(s.shape == (3, 1) for s in states)
    ref = RNN({SimpleRNN: SimpleRNNCell, GRU: GRUCell, LSTM: LSTMCell}[cls](1), return_sequences=True)
    ref.build((3, 4, 5)); ref.set_weights(layer.get_weights())
    np.testing.assert_allclose(ref(seq()), y, atol=1e-6)


# ---- fully masked samples --------------------------------------------------------------------------------------

MASKED = ['simple_rnn', 'gru', 'lstm', 'lstm_last_backwards', 'rnn_lstm_cell', 'rnn_stacked', 'bidirectional',
          'bidirectional_sum_last', 'conv_lstm2d', 'conv_lstm2d_last']


@pytest.mark.parametrize('name', MASKED)
def test_fully_masked_samples_give_zeros_and_do_not_touch_the_others(name):
    layer, data = built(name)
    x = data(3, 4, seed=1)
    mask = np.array([[True, True, False, True], [False] * 4, [True] * 4])
    y = outs(layer(x, mask=mask))
    for a in y: np.testing.assert_array_equal(a[1], 0)         # outputs and final states of the empty sample
    for b in (0, 2):                                           # the others: as if alone
        alone = outs(layer(x[b:b + 1], mask=mask[b:b + 1]))
        for a, s in zip(y, alone): np.testing.assert_allclose(a[b], s[0], atol=1e-5)


@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_fully_masked_sample_keeps_its_initial_state(cls):
    layer = cls(3, return_state=True, return_sequences=True)
    x = seq(2, 4)
    n = 2 if cls is LSTM else 1
    init = [np.random.default_rng(i).standard_normal((2, 3)).astype('float32') for i in range(n)]
    y, *states = layer(x, mask=np.array([[False] * 4, [True] * 4]), initial_state=init)
    np.testing.assert_array_equal(y[0], 0)
    for s, i in zip(states, init): np.testing.assert_array_equal(s[0], i[0])


# ---- long sequences: memory does not grow with T at inference --------------------------------------------------

@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_long_sequence_memory_does_not_grow_with_T(cls):
    "Peak memory of a call with return_sequences=False: 10^4 and 10^5 steps (the input itself allocated before)."
    layer = cls(8)
    layer(seq(2, 3, 4))
    peaks = {}
    for T in (10**4, 10**5):
        x = np.random.default_rng(T).standard_normal((2, T, 4)).astype('float32')
        peaks[T] = peak_bytes(lambda: layer(x))
        assert np.isfinite(layer(x[:, :10])).all()
    print(f"\n{cls.__name__}: peak {peaks[10**4] / 1024:.1f} KiB at T=10^4, {peaks[10**5] / 1024:.1f} KiB at T=10^5, "
          f"input {2 * 10**5 * 4 * 4 / 1024:.0f} KiB")
    assert peaks[10**5] < 2 * peaks[10**4]             # not ~10x
    assert peaks[10**5] < 2 * 10**5 * 4 * 4 / 4        # well below a copy of the input


def test_long_sequence_through_the_reference_loop_and_bidirectional_last_output():
    "The generic loop (RNN(cell)) and Bidirectional keep only the running state too."
    layer, bi = RNN(SimpleRNNCell(4)), Bidirectional(LSTM(4))
    peaks = {}
    # The fused loop copies its inputs in blocks of up to `StepInputs.budget` bytes (8192 steps here), so the
    # peak stops growing once T passes a block: compare two lengths above it. The input at T=4·10^4 is 469 KiB.
    for T in (10000, 40000):
        x = np.random.default_rng(T).standard_normal((1, T, 3)).astype('float32')
        peaks[T] = peak_bytes(lambda: layer(x)), peak_bytes(lambda: bi(x))
    print(f"\nRNN(SimpleRNNCell): {peaks[10000][0] / 1024:.1f} / {peaks[40000][0] / 1024:.1f} KiB; "
          f"Bidirectional(LSTM): {peaks[10000][1] / 1024:.1f} / {peaks[40000][1] / 1024:.1f} KiB at T=10^4 / 4·10^4")
    assert peaks[40000][0] < 1.5 * peaks[10000][0] + 64 * 1024
    assert peaks[40000][1] < 1.5 * peaks[10000][1] + 64 * 1024


# ---- integer and boolean inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(CASES))
@pytest.mark.parametrize('dtype', ['int64', 'int8', 'uint8', 'bool'])
def test_integer_and_boolean_inputs_compute_as_their_float_values(name, dtype):
    layer, data = built(name)
    x = (data(2, 3, seed=2) * 2).astype(dtype)
    got, want = outs(layer(x)), outs(layer(x.astype('float32')))
    for g, w in zip(got, want):
        assert g.dtype == (x.dtype if name == 'masking' else np.float32)     # Masking keeps the dtype, as Keras'
        np.testing.assert_array_equal(g.astype('float32'), w)


def test_embedding_takes_integer_ids_of_any_width_and_integral_floats():
    emb = Embedding(10, 3)
    ids = np.array([[1, 2, 9], [0, 0, 5]])
    want = emb(ids)
    for dtype in ('int8', 'uint8', 'int32', 'uint64', 'float32', 'float64'):
        np.testing.assert_array_equal(emb(ids.astype(dtype)), want)
    np.testing.assert_array_equal(emb(ids.tolist()), want)
    assert emb(np.zeros((0, 3), int)).shape == (0, 3, 3) and emb(np.zeros((2, 0), int)).shape == (2, 0, 3)


# ---- NaN and inf propagate ------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', [k for k in CASES if k != 'batch_norm'])
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate_to_their_sample_only(name, bad):
    layer, data = built(name)
    x = data(3, 4, seed=3)
    x[1, 1].flat[0] = bad
    with np.errstate(all='ignore'):
        y = outs(layer(x))
    for a in y:
        assert np.isfinite(np.delete(a, 1, axis=0)).all()     # the other samples are untouched
    if bad != bad:                                            # NaN reaches the sample's outputs
        assert any(np.isnan(a[1]).any() for a in y)


def test_nan_propagates_through_masked_steps_only_where_unmasked():
    x = seq(2, 4)
    x[0, 2] = np.nan
    layer = LSTM(3, return_sequences=True)
    y = layer(x, mask=np.array([[True, True, False, True], [True] * 4]))
    assert np.isfinite(y).all()                               # a masked NaN step is skipped
    y = layer(x)
    assert np.isnan(y[0, 2:]).all() and np.isfinite(y[0, :2]).all() and np.isfinite(y[1]).all()


def test_batch_norm_nan_in_one_sample_at_inference_stays_there():
    bn = BatchNormalization()
    x = seq()
    x[1, 2, 0] = np.nan
    y = bn(x)
    assert np.isnan(y[1, 2, 0]) and np.isfinite(np.delete(y.reshape(-1), 1 * 4 * 5 + 2 * 5)).all()


# ---- memory layouts: non-contiguous, Fortran order, read-only ---------------------------------------------------

def layouts(x):
    "The same values as `x` in other memory layouts."
    f = np.asfortranarray(x)
    ro = x.copy(); ro.setflags(write=False)
    big = np.zeros((x.shape[0] * 2,) + x.shape[1:], x.dtype); big[::2] = x
    rev = np.ascontiguousarray(x[..., ::-1])[..., ::-1]       # negative strides
    bcast = np.broadcast_to(x[:1], x.shape) if x.shape[0] else x  # zero strides on the batch axis (read-only)
    return {'fortran': f, 'read_only': ro, 'strided': big[::2], 'negative_strides': rev,
            'broadcast': (bcast, x[:1].repeat(x.shape[0], 0))}


@pytest.mark.parametrize('name', list(CASES))
def test_odd_memory_layouts_give_identical_results_and_are_not_written(name):
    layer, data = built(name)
    x = data(3, 4, seed=4)
    want = outs(layer(x))
    for kind, a in layouts(x).items():
        a, ref = a if isinstance(a, tuple) else (a, x)
        before = np.array(a)
        got = outs(layer(a))
        for g, w in zip(got, want if ref is x else outs(layer(ref))):
            np.testing.assert_array_equal(g, w, err_msg=kind)
        np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_masks_and_initial_states_in_odd_layouts(cls):
    layer = cls(3, return_sequences=True, return_state=True)
    x = seq(3, 4)
    mask = np.array([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1]], bool)
    init = [np.random.default_rng(i).standard_normal((3, 3)).astype('float32') for i in range(2 if cls is LSTM else 1)]
    want = outs(layer(x, mask=mask, initial_state=init))
    for kind in ('fortran', 'read_only', 'strided', 'negative_strides'):
        m = layouts(mask)[kind]
        s = [layouts(i)[kind] for i in init]
        for g, w in zip(outs(layer(layouts(x)[kind], mask=m, initial_state=s)), want):
            np.testing.assert_array_equal(g, w, err_msg=kind)


def test_embedding_and_time_distributed_with_read_only_strided_ids():
    emb = TimeDistributed(Embedding(10, 3, mask_zero=True))
    ids = np.random.default_rng(0).integers(0, 10, (3, 4, 5))
    want = emb(ids)
    ro = ids.copy(); ro.setflags(write=False)
    big = np.zeros((3, 8, 5), ids.dtype); big[:, ::2] = ids
    for a in (ro, big[:, ::2], np.asfortranarray(ids)):
        got = emb(a)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rb.get_mask(got), rb.get_mask(want))


# ---- the same edge cases under a gradient tape --------------------------------------------------------------------

TAPE_CASES = ['simple_rnn', 'gru', 'lstm', 'lstm_last_backwards', 'rnn_lstm_cell', 'rnn_stacked', 'bidirectional',
              'time_distributed_dense', 'conv_lstm2d', 'dense', 'cudnn_lstm']


def grads(layer, x, **kw):
    x = rb.Variable(x) if np.asarray(x).dtype.kind == 'f' else x
    with rb.GradientTape() as tape:
        y = layer(x, **kw)
        loss = sum(ops.sum(a * a) for a in (flatten(y) if isinstance(y, (list, tuple)) else [y]))
    gs = tape.gradient(loss, list(layer.trainable_weights) + ([x] if isinstance(x, rb.Variable) else []),
                       unconnected_gradients='zero')
    return np.asarray(rb.to_numpy(loss)), [np.asarray(rb.to_numpy(g)) for g in gs]


@pytest.mark.parametrize('name', TAPE_CASES)
def test_gradients_of_edge_shapes(name):
    layer, data = built(name)
    weights = [w.shape for w in layer.trainable_weights]
    for B, T in ((0, 3), (2, 1), (1, 4)):
        loss, gs = grads(layer, data(B, T, seed=5))
        assert [g.shape for g in gs[:len(weights)]] == weights
        assert all(np.isfinite(g).all() for g in gs)
        if B == 0:
            assert loss == 0 and all(np.all(g == 0) for g in gs)


@pytest.mark.parametrize('name', TAPE_CASES)
def test_gradients_of_odd_layouts_and_integer_inputs(name):
    layer, data = built(name)
    x = data(3, 4, seed=6)
    want = grads(layer, x)
    for kind, a in layouts(x).items():
        if isinstance(a, tuple): continue
        got = grads(layer, a)
        for g, w in zip(got[1], want[1]): np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=kind)
    xi = (x * 2).astype('int32')
    got, want = grads(layer, xi), grads(layer, xi.astype('float32'))
    for g, w in zip(got[1], want[1][:len(got[1])]): np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('name', ['lstm', 'gru', 'bidirectional', 'rnn_stacked'])
def test_gradients_with_nan_input_do_not_crash_and_fully_masked_samples_get_none(name):
    layer, data = built(name)
    x = data(3, 4, seed=7)
    mask = np.array([[True] * 4, [False] * 4, [True, True, False, False]])
    loss, gs = grads(layer, x, mask=mask)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in gs)
    np.testing.assert_array_equal(gs[-1][1], 0)          # the fully masked sample's inputs get no gradient
    np.testing.assert_array_equal(gs[-1][2, 2:], 0)
    x[0, 1, 0] = np.nan
    with np.errstate(all='ignore'):
        loss, gs = grads(layer, x)
    assert np.isnan(loss)
