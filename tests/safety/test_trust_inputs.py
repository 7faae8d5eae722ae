"""Inputs a layer must not take on trust: masks of other numbers than 0/1, complex or string states, ragged lists,
huge float token ids, negative state sizes, empty feature axes; and a stateful layer's states kept in the dtype
its calls compute in. Each error names the argument, what was expected and what was received."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook import layers as L


def x3(B=2, T=3, D=4, dtype='float32'): return np.random.default_rng(0).standard_normal((B, T, D)).astype(dtype)


def built(layer, x):
    layer(x)
    return layer


# ---- masks: booleans, or the numbers 0 and 1 -------------------------------------------------------------------

BAD_MASKS = {'half': (0.5, '0.5'), 'two': (2, '2'), 'minus_one': (-1, '-1'), 'nan': (np.nan, 'nan')}


@pytest.mark.parametrize('name', list(BAD_MASKS))
@pytest.mark.parametrize('layer', ['LSTM', 'GRU', 'SimpleRNN'])
def test_mask_of_other_numbers_is_refused(layer, name):
    "A mask holding 0.5, 2, -1 or NaN is refused (ValueError naming `mask`, the expected 0/1 and the value found)."
    value, shown = BAD_MASKS[name]
    rnn = built(getattr(L, layer)(3, return_sequences=True), x3())
    mask = np.ones((2, 3), 'float64' if isinstance(value, float) else 'int64')
    mask[1, 1] = value
    with pytest.raises(ValueError, match='mask') as info: rnn(x3(), mask=mask)
    assert '0 and 1' in str(info.value) and f"values such as {shown}" in str(info.value)
    # masks of exactly 0/1 keep working as Keras takes them: float, int and bool masks give the same outputs
    ok = np.array([[1, 1, 0], [1, 0, 0]])
    for m in (ok.astype('float32'), ok, ok.astype(bool)):
        np.testing.assert_array_equal(rnn(x3(), mask=m), rnn(x3(), mask=ok.astype(bool)))


def test_mask_of_complex_numbers_is_refused():
    with pytest.raises(ValueError, match=r'`mask`.*received dtype complex128'):
        L.GRU(2)(x3(), mask=np.ones((2, 3), complex))


@pytest.fixture
def cp(monkeypatch):
    "The CuPy emulator of tests/fakes/fake_cupy.py installed as `cupy` for one test (no cuDNN)."
    import importlib
    import fake_cupy
    cudnn = importlib.import_module('rnnbook.cudnn')
    monkeypatch.setattr(cudnn, 'library_reason', lambda: 'the CuPy emulator (tests/fakes/fake_cupy.py) has no cuDNN')
    with fake_cupy.installed() as module:
        yield module


def test_cupy_mask_of_other_numbers_is_refused(cp):
    "The same check on (emulated) CuPy arrays, where a 0/1 float mask still works."
    x = cp.asarray(x3())
    rnn = built(L.LSTM(3, return_sequences=True), x)
    with pytest.raises(ValueError, match='values such as 0.5'): rnn(x, mask=cp.asarray(np.full((2, 3), 0.5)))
    ok = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(rnn(x, mask=cp.asarray(ok.astype('float32'))).get(),
                                  rnn(x, mask=cp.asarray(ok.astype(bool))).get())


# ---- states: real numbers only -------------------------------------------------------------------------------

@pytest.mark.parametrize('bad', ['complex', 'string'])
def test_initial_state_of_complex_or_strings_is_refused(bad):
    "A complex initial state would silently lose its imaginary part; strings gave NumPy's conversion error."
    lstm = built(L.LSTM(3, name='lstm'), x3())
    state = np.full((2, 3), 1 + 2j) if bad == 'complex' else np.full((2, 3), 'x')
    with pytest.raises(ValueError, match='`initial_state`') as info: lstm(x3(), initial_state=[state, np.zeros((2, 3))])
    assert 'real numbers' in str(info.value) and str(state.dtype) in str(info.value)


@pytest.mark.parametrize('bad', ['complex', 'string'])
def test_reset_states_of_complex_or_strings_is_refused(bad):
    "The same for `reset_states(states)`, and the states are left as they were."
    lstm = built(L.LSTM(3, stateful=True, name='lstm'), x3())
    before = [s.numpy() for s in lstm.states]
    state = np.full((2, 3), 1 + 2j) if bad == 'complex' else np.full((2, 3), 'x')
    with pytest.raises(ValueError, match='`states`') as info: lstm.reset_states([np.ones((2, 3)), state])
    assert 'real numbers' in str(info.value) and str(state.dtype) in str(info.value)
    for s, b in zip(lstm.states, before): np.testing.assert_array_equal(s.numpy(), b)


# ---- ragged lists, huge ids, negative state sizes, no features ---------------------------------------------------

def test_ragged_list_input_names_inputs():
    dense = L.Dense(2)
    with pytest.raises(ValueError, match=r'argument `inputs`.*ragged list \[\[1.0, 2.0\], \[3.0\]\]'):
        dense([[1., 2.], [3.]])
    assert not dense.built
    with pytest.raises(ValueError, match=r'argument `mask`.*ragged list'):
        L.GRU(2)(x3(), mask=[[1, 1, 1], [1, 0]])


@pytest.mark.parametrize('value', [2.0 ** 63, 1e20])
def test_huge_float_ids_are_reported_as_themselves(value):
    "Float ids >= 2^63 reported their int64 overflow (-9223372036854775808); now their own value."
    with pytest.raises(ValueError, match=f"received id {int(value)}"):
        L.Embedding(10, 2)(np.array([[1.0, value]]))


@pytest.mark.parametrize('state_size', [-2, [3, -1], [(2, -3)]])
def test_negative_state_size_names_state_size(state_size):
    "A negative size is refused when the layer is built (a cell may set its sizes in `build`, as ConvLSTM's does)."
    cell = type('NegativeCell', (), {'state_size': state_size, 'call': lambda self, x, s: (x, s)})()
    rnn = L.RNN(cell)
    with pytest.raises(ValueError, match=r'`state_size`: expected non-negative sizes.*received -\d'): rnn(x3())
    assert not rnn.built


def test_negative_state_size_set_in_build_names_state_size():
    "A cell that sets its `state_size` when built (as ConvLSTM's does) is checked when the states are made."
    class LateCell(L.Layer):
        state_size = 2
        def build(self, input_shape): self.state_size = -2
        def call(self, x, states): return x, states
    with pytest.raises(ValueError, match='`state_size`'): L.RNN(LateCell())(x3())


def test_dense_refuses_zero_features_like_the_recurrent_layers():
    "Keras 3 builds a (0, units) kernel and returns the bias; rnnbook refuses, as its recurrent layers do."
    message = 'should be defined and positive. Received input_shape=(2, 0)'
    for layer in (L.Dense(3), L.SimpleRNN(3)):
        x = np.ones((2, 0)) if isinstance(layer, L.Dense) else np.ones((2, 3, 0))
        with pytest.raises(ValueError) as info: layer(x)
        assert 'The last dimension of the inputs to' in str(info.value)
        assert message in str(info.value) or 'input_shape=(2, 0)' in str(info.value)
        assert not layer.built


# ---- stateful states keep the dtype of the call -------------------------------------------------------------------

@pytest.mark.parametrize('name', ['SimpleRNN', 'GRU', 'LSTM'])
def test_stateful_float64_halves_equal_one_call(name):
    "A float32 layer fed float64: two stateful halves equal one call on the whole (the state stays float64)."
    x = np.random.default_rng(1).standard_normal((2, 400, 4))
    halves = built(getattr(L, name)(3, stateful=True, return_sequences=True), x[:, :1])
    halves.reset_state()
    one = built(getattr(L, name)(3, return_sequences=True), x[:, :1])
    one.set_weights(halves.get_weights())
    both = np.concatenate([halves(x[:, :200]), halves(x[:, 200:])], axis=1)
    np.testing.assert_allclose(both, one(x), rtol=0, atol=1e-12)
    assert all(s.dtype == np.float64 for s in halves.states)
    halves(x.astype('float32'))             # a float32 call: float32 states again
    assert all(s.dtype == np.float32 for s in halves.states)


def test_bidirectional_one_cudnn_call_checks_mask_values(monkeypatch):
    "Both directions as one (emulated) cuDNN call read the mask as lengths: the same rule refuses 0.5 there."
    import fake_cupy
    from fake_cudnn import FakeCuDNN
    for name, value in (('_LIB', FakeCuDNN()), ('_LIB_ERROR', None), ('_HANDLES', {}), ('_PLANS', {})):
        monkeypatch.setattr(rb.cudnn, name, value)
    with fake_cupy.installed() as cp:
        x = cp.asarray(x3())
        bi = L.Bidirectional(L.LSTM(3, return_sequences=True))
        bi(x)
        with pytest.raises(ValueError, match='values such as 0.5'): bi(x, mask=cp.asarray(np.full((2, 3), 0.5)))
        ok = np.array([[1, 1, 0], [1, 0, 0]])
        np.testing.assert_array_equal(bi(x, mask=cp.asarray(ok.astype('float32'))).get(),
                                      bi(x, mask=cp.asarray(ok.astype(bool))).get())
