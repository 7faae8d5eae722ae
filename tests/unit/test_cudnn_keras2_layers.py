"""Keras 2's CuDNNLSTM / CuDNNGRU: constructor, weights, the conversions to and from LSTM / GRU(reset_after=True)
(rnnbook.utils.cudnn_to_keras / keras_to_cudnn), equal outputs on every RNN option, no masks, config."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.cudnn_layers import CuDNNLSTM, CuDNNGRU, CuDNNCell, cudnn_ok
from rnnbook.layer import UnrecognizedArgumentError, serialize_layer, deserialize_layer
from rnnbook.recurrent import LSTM, GRU, SimpleRNN
from rnnbook.utils import cudnn_to_keras, keras_to_cudnn

PAIRS = [(CuDNNLSTM, LSTM, 'LSTM', 4), (CuDNNGRU, GRU, 'GRU', 3)]
IDS = ['lstm', 'gru']


def data(B=3, T=6, D=4, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype('float32')


def random_weights(layer, seed=1, scale=.5):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.standard_normal(w.shape).astype('float32') * scale for w in layer.weights])
    return layer


def keras2_cudnn_to_keras(kind, weights):
    "Keras 2's own conversion (hdf5_format._convert_rnn_weights, from_cudnn=True), written as Keras 2 wrote it."
    n = 4 if kind == 'LSTM' else 3
    k = np.hstack([g.T.reshape(g.shape, order='F') for g in np.hsplit(weights[0], n)])
    r = np.hstack([g.T for g in np.hsplit(weights[1], n)])
    b = np.sum(np.split(weights[2], 2, axis=0), axis=0) if kind == 'LSTM' else np.array(weights[2]).reshape((2, -1))
    return [k, r, b]


def twins(cud_cls, ref_cls, x, **opts):
    "A CuDNN layer with random weights and the built-in layer with the converted weights."
    extra = {'reset_after': True} if ref_cls is GRU else {}
    a = random_weights(cud_cls(5, **opts))
    a.build(x.shape) if not a.built else None
    b = ref_cls(5, **opts, **extra)
    b.build(x.shape)
    b.set_weights(cudnn_to_keras(a.cudnn_kind, a.get_weights()))
    return a, b


def flat(out): return out if isinstance(out, list) else [out]


def close(a, b, atol=1e-5):
    a, b = flat(a), flat(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, atol=atol, rtol=0)


# ---- construction and weights -------------------------------------------------------------------------------
@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_weights_shapes_and_count(cls, ref, kind, g):
    u, n = 5, 3
    layer = cls(u)
    layer.build((None, None, n))
    assert [w.shape for w in layer.weights] == [(n, g * u), (u, g * u), (2 * g * u,)]
    assert [w.name for w in layer.weights] == ['kernel', 'recurrent_kernel', 'bias']
    assert layer.count_params() == g * u * (n + u) + 2 * g * u
    if kind == 'LSTM': assert layer.count_params() == 4 * u * (n + u) + 8 * u
    plain = ref(u); plain.build((None, None, n))
    assert layer.count_params() - plain.count_params() == (g * u if kind == 'LSTM' else 0)


def test_unit_forget_bias_in_the_recurrent_half():
    u = 3
    layer = CuDNNLSTM(u); layer.build((1, 2, 4))
    b = layer.bias.numpy()
    np.testing.assert_array_equal(b, np.r_[np.zeros(5 * u), np.ones(u), np.zeros(2 * u)])
    # converted, it is exactly LSTM's unit_forget_bias initialization
    plain = LSTM(u); plain.build((1, 2, 4))
    np.testing.assert_array_equal(cudnn_to_keras('LSTM', layer.get_weights())[2], plain.cell.bias.numpy())
    off = CuDNNLSTM(u, unit_forget_bias=False, bias_initializer='ones'); off.build((1, 2, 4))
    np.testing.assert_array_equal(off.bias.numpy(), np.ones(8 * u))
    # the initializer fills the other chunks (Keras 2: init(5u), ones(u), init(2u))
    other = CuDNNLSTM(u, bias_initializer='ones'); other.build((1, 2, 4))
    np.testing.assert_array_equal(other.bias.numpy(), np.ones(8 * u))


def test_constructor_arguments_and_refusals():
    layer = CuDNNGRU(4, kernel_regularizer='l2', bias_constraint='non_neg', return_sequences=True,
                     go_backwards=True, stateful=True, name='g', trainable=False)
    assert (layer.return_sequences, layer.go_backwards, layer.stateful, layer.name) == (True, True, True, 'g')
    layer.build((2, 3, 4))
    # Keras 3 penalises trainable weights only: a frozen layer adds no regularization loss
    assert len(layer.losses) == 0 and len(layer.non_trainable_weights) == 3 and not layer.trainable_weights
    for bad in ('activation', 'recurrent_activation', 'dropout', 'recurrent_dropout', 'use_bias', 'unroll',
                'reset_after', 'implementation'):
        with pytest.raises(UnrecognizedArgumentError, match=bad):
            CuDNNLSTM(3, **{bad: 0.1 if 'dropout' in bad else True})
    with pytest.raises(UnrecognizedArgumentError, match='blah'): CuDNNGRU(3, blah=1)
    with pytest.raises(ValueError, match='units'): CuDNNLSTM(0)
    with pytest.raises(ValueError, match='unit_forget_bias'): CuDNNLSTM(2, unit_forget_bias='yes')
    with pytest.raises(ValueError, match='should be defined'): CuDNNLSTM(2).build((1, 2, None))


# ---- equal outputs --------------------------------------------------------------------------------------------
OPTIONS = [dict(), dict(return_sequences=True), dict(return_state=True),
           dict(return_sequences=True, return_state=True), dict(go_backwards=True, return_sequences=True),
           dict(go_backwards=True, return_state=True)]


@pytest.mark.parametrize('opts', OPTIONS, ids=lambda o: '-'.join(o) or 'default')
@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_equals_builtin_with_converted_weights(cls, ref, kind, g, opts):
    x = data()
    a, b = twins(cls, ref, x, **opts)
    close(a(x), b(x))
    # and back: the built-in layer's weights converted to cuDNN's layout give the same outputs
    c = cls(5, **opts); c.build(x.shape)
    c.set_weights(keras_to_cudnn(kind, b.get_weights()))
    close(c(x), b(x))


@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_initial_state_and_list_inputs(cls, ref, kind, g):
    x = data()
    a, b = twins(cls, ref, x, return_sequences=True, return_state=True)
    rng = np.random.default_rng(3)
    init = [rng.standard_normal((3, 5)).astype('float32') for _ in range(2 if kind == 'LSTM' else 1)]
    close(a(x, initial_state=init), b(x, initial_state=init))
    close(a([x, *init]), b(x, initial_state=init))            # Keras 2: layer([inputs, *initial_state])
    fresh = cls(5, return_sequences=True, return_state=True)
    fresh([x, *init])                                           # builds from a list of shapes
    assert fresh.kernel.shape == (4, g * 5)


@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_stateful(cls, ref, kind, g):
    x = data()
    a, b = twins(cls, ref, x, stateful=True, return_sequences=True)
    for part in (x[:, :3], x[:, 3:]): close(a(part), b(part))
    for u, v in zip(a.states, b.states): np.testing.assert_allclose(u.numpy(), v.numpy(), atol=1e-5)
    # one stateful call of two halves equals one call of the whole sequence
    whole = cls(5, return_sequences=True); whole.build(x.shape); whole.set_weights(a.get_weights())
    a.reset_states()
    close(np.concatenate([a(x[:, :3]), a(x[:, 3:])], axis=1), whole(x))
    a.reset_states([np.ones((3, 5), 'float32')] * len(a.states))
    assert all((v.numpy() == 1).all() for v in a.states)
    with pytest.raises(ValueError, match='batch size'): a(x[:2])


@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_go_backwards_is_the_reversed_sequence(cls, ref, kind, g):
    x = data()
    fwd = random_weights(cls(5, return_sequences=True)); fwd.build(x.shape)
    bwd = cls(5, return_sequences=True, go_backwards=True); bwd.build(x.shape); bwd.set_weights(fwd.get_weights())
    close(bwd(x), fwd(x[:, ::-1].copy()))


@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_cell_step_and_seam(cls, ref, kind, g, monkeypatch):
    x = data()
    a, b = twins(cls, ref, x, return_sequences=True, return_state=True)
    assert cudnn_ok(a, x) is False
    assert isinstance(a.cell, CuDNNCell) and a.cell.state_size == ([5, 5] if kind == 'LSTM' else 5)
    states = [np.zeros((3, 5), 'float32')] * (2 if kind == 'LSTM' else 1)
    y, new = a.cell.call(x[:, 0], states)
    _, *ref_states = b(x[:, :1])
    close(y, ref_states[0]); close(new, ref_states)
    # the reference loop of RNN (the cell step by step) equals the fused path
    ref_loop = rb.rnn.RNN.inner_loop(a, x, [s for s in states], None)
    fused = a.inner_loop(x, [s for s in states], None)
    close(ref_loop[1], fused[1]); close(ref_loop[2], fused[2])
    # cuDNN's path (the call emulated: it needs a GPU) on the weights as stored equals the fused path
    from rnnbook import cudnn, cudnn_layers
    from cudnn_emulator import emulated_cudnn_rnn
    assert 'not CuPy arrays' in cudnn_layers.cudnn_reason(a, x)
    monkeypatch.setattr(cudnn, 'cudnn_rnn', emulated_cudnn_rnn)
    via_cudnn = a.cudnn_loop(x, [s for s in states])
    close(via_cudnn[0], fused[0]); close(via_cudnn[1], fused[1]); close(via_cudnn[2], fused[2])


def test_float64_and_cudnn_kind_conversions_keep_dtype():
    x = data().astype('float64')
    a = random_weights(CuDNNLSTM(3, dtype='float64')); a.build(x.shape)
    assert a(x).dtype == np.float64
    assert all(w.dtype == np.float64 for w in cudnn_to_keras('CuDNNLSTM', a.get_weights()))


def test_float32_layer_on_float64_input():
    x = data().astype('float64')
    a, b = twins(CuDNNGRU, GRU, x, return_sequences=True)
    close(a(x), b(x))


# ---- the conversion functions --------------------------------------------------------------------------------
@pytest.mark.parametrize('kind,g', [('LSTM', 4), ('GRU', 3)])
@pytest.mark.parametrize('D,U', [(3, 2), (2, 5), (4, 4)])
def test_conversion_matches_keras2_loader_and_round_trips(kind, g, D, U):
    rng = np.random.default_rng(D * 10 + U)
    cud = [rng.standard_normal((D, g * U)), rng.standard_normal((U, g * U)), rng.standard_normal(2 * g * U)]
    ours = cudnn_to_keras(kind, cud)
    for a, b in zip(ours, keras2_cudnn_to_keras(kind, cud)): np.testing.assert_array_equal(a, b)
    back = keras_to_cudnn(kind, ours)
    np.testing.assert_array_equal(back[0], cud[0]); np.testing.assert_array_equal(back[1], cud[1])
    if kind == 'GRU': np.testing.assert_array_equal(back[2], cud[2])
    else:   # Keras 2's split: halves in each vector; the sum is what LSTM sees
        np.testing.assert_array_equal(back[2], np.tile(ours[2] / 2, 2))
        np.testing.assert_allclose(back[2][:g * U] + back[2][g * U:], ours[2])


def test_conversion_inputs_and_errors():
    k, r = np.ones((3, 8)), np.ones((2, 8))
    assert keras_to_cudnn('LSTM', [k, r])[2].tolist() == [0] * 16           # use_bias=False: zero biases
    assert keras_to_cudnn('GRU', [np.ones((3, 6)), np.ones((2, 6))])[2].shape == (12,)
    with pytest.raises(ValueError, match='reset_after=False'):
        keras_to_cudnn('GRU', [np.ones((3, 6)), np.ones((2, 6)), np.ones(6)])
    with pytest.raises(ValueError, match=r"'LSTM' or 'GRU'.*'SimpleRNN'"): cudnn_to_keras('SimpleRNN', [k, r, k])
    with pytest.raises(ValueError, match='expected 3 arrays, received 2'): cudnn_to_keras('LSTM', [k, r])
    with pytest.raises(ValueError, match=r'`bias`: expected shape \(16,\), received \(8,\)'):
        cudnn_to_keras('LSTM', [k, r, np.ones(8)])
    with pytest.raises(ValueError, match=r'`recurrent_kernel`: expected shape \(3, 9\), received \(3, 8\)'):
        cudnn_to_keras('GRU', [k, np.ones((3, 8)), np.ones(12)])
    with pytest.raises(ValueError, match=r'`kernel`: expected shape \(3, 9\), received \(3, 6\)'):
        cudnn_to_keras('GRU', [np.ones((3, 6)), np.ones((3, 9)), np.ones(18)])
    with pytest.raises(ValueError, match=r'LSTM weight `bias`: expected shape \(8,\)'):
        keras_to_cudnn('LSTM', [k, r, np.ones(16)])
    # rb.Variables are accepted
    layer = CuDNNGRU(2); layer.build((1, 1, 3))
    assert cudnn_to_keras('GRU', layer.weights)[2].shape == (2, 6)


# ---- to_builtin / from_builtin --------------------------------------------------------------------------------
@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_to_and_from_builtin(cls, ref, kind, g):
    x = data()
    a = random_weights(cls(5, return_sequences=True, return_state=True, go_backwards=True)); a.build(x.shape)
    b = a.to_builtin()
    assert type(b) is ref and (b.return_sequences, b.return_state, b.go_backwards) == (True, True, True)
    close(a(x), b(x))
    c = cls.from_builtin(b)
    close(c(x), b(x))
    # unbuilt layers convert their options only
    assert not cls(3).to_builtin().built and not cls.from_builtin(ref(3)).built
    # an LSTM without bias becomes a CuDNNLSTM with zero biases
    if kind == 'LSTM':
        nb = random_weights(LSTM(5, use_bias=False, return_sequences=True)); nb.build(x.shape)
        close(CuDNNLSTM.from_builtin(nb)(x), nb(x))


def test_to_builtin_carries_states():
    x = data()
    a = random_weights(CuDNNLSTM(5, stateful=True)); a.build(x.shape)
    a(x)
    b = a.to_builtin()
    for u, v in zip(a.states, b.states): np.testing.assert_array_equal(u.numpy(), v.numpy())
    close(a(x), b(x))
    c = CuDNNLSTM.from_builtin(b)
    for u, v in zip(c.states, b.states): np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_from_builtin_refuses_what_cudnn_cannot_compute():
    with pytest.raises(ValueError, match='reset_after=False'): CuDNNGRU.from_builtin(GRU(3, reset_after=False))
    with pytest.raises(ValueError, match="no activation 'relu'"): CuDNNLSTM.from_builtin(LSTM(3, activation='relu'))
    with pytest.raises(ValueError, match='gates use sigmoid'):
        CuDNNGRU.from_builtin(GRU(3, recurrent_activation='hard_sigmoid'))
    with pytest.raises(ValueError, match='expects a LSTM layer'): CuDNNLSTM.from_builtin(GRU(3))
    with pytest.raises(ValueError, match='expects a GRU layer'): CuDNNGRU.from_builtin(SimpleRNN(3))
    with pytest.raises(ValueError, match='expects a LSTM layer'): CuDNNLSTM.from_builtin(CuDNNLSTM(3))


# ---- masks ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('cls', [CuDNNLSTM, CuDNNGRU], ids=IDS)
def test_masks_raise(cls):
    x = data()
    layer = cls(5); layer.build(x.shape)
    before = layer.get_weights()
    mask = np.ones((3, 6), bool)
    with pytest.raises(ValueError, match='Masking is not supported for CuDNN RNNs'): layer(x, mask=mask)
    with pytest.raises(ValueError, match='Masking is not supported'): layer(x, mask=[mask, None])
    with pytest.raises(ValueError, match='Masking is not supported'): layer(rb.with_mask(x, mask))
    with pytest.raises(ValueError, match='Masking is not supported'): layer.compute_mask(x, mask)
    assert layer.compute_mask(x, None) is None
    assert cls(5, return_state=True).compute_mask(x, None) == [None] * (3 if cls is CuDNNLSTM else 2)
    assert layer.supports_masking is False
    for a, b in zip(before, layer.get_weights()): np.testing.assert_array_equal(a, b)
    layer(x, mask=None)   # no mask: fine


# ---- config -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('cls,ref,kind,g', PAIRS, ids=IDS)
def test_config_round_trip(cls, ref, kind, g):
    x = data()
    layer = cls(5, kernel_initializer='he_normal', recurrent_regularizer='l2', bias_constraint='non_neg',
                return_sequences=True, go_backwards=True, name='c')
    config = layer.get_config()
    keras2_keys = {'name', 'trainable', 'dtype', 'units', 'kernel_initializer', 'recurrent_initializer',
                   'bias_initializer', 'kernel_regularizer', 'recurrent_regularizer', 'bias_regularizer',
                   'activity_regularizer', 'kernel_constraint', 'recurrent_constraint', 'bias_constraint',
                   'return_sequences', 'return_state', 'go_backwards', 'stateful'}
    assert set(config) == keras2_keys | ({'unit_forget_bias'} if kind == 'LSTM' else set())
    twin = cls.from_config(config)
    assert twin.get_config() == config
    again = deserialize_layer(serialize_layer(layer))
    assert type(again) is cls and again.get_config() == config
    layer.build(x.shape); random_weights(layer)
    twin.build(x.shape); twin.set_weights(layer.get_weights())
    close(twin(x), layer(x))
    assert cls.from_config({**config, 'time_major': False}).get_config() == config
    with pytest.raises(ValueError, match='time_major=True'): cls.from_config({**config, 'time_major': True})


def test_keras2_style_config_loads():
    "A config dict as Keras 2 (tf.keras) wrote it for a CuDNNLSTM."
    config = {'name': 'cu_dnnlstm_1', 'trainable': True, 'dtype': 'float32', 'return_sequences': False,
              'return_state': False, 'go_backwards': False, 'stateful': False, 'time_major': False, 'units': 8,
              'kernel_initializer': {'class_name': 'GlorotUniform', 'config': {'seed': None}},
              'recurrent_initializer': {'class_name': 'Orthogonal', 'config': {'gain': 1.0, 'seed': None}},
              'bias_initializer': {'class_name': 'Zeros', 'config': {}}, 'unit_forget_bias': True,
              'kernel_regularizer': None, 'recurrent_regularizer': None, 'bias_regularizer': None,
              'activity_regularizer': None, 'kernel_constraint': None, 'recurrent_constraint': None,
              'bias_constraint': None}
    layer = CuDNNLSTM.from_config(config)
    assert layer.units == 8 and layer.name == 'cu_dnnlstm_1'
    layer.build((None, None, 3))
    assert layer.count_params() == 4 * 8 * (3 + 8) + 8 * 8


def test_default_names():
    assert CuDNNLSTM(2).name.startswith('cu_dnnlstm') and CuDNNGRU(2).name.startswith('cu_dnngru')


@pytest.mark.parametrize("cls", [CuDNNLSTM, CuDNNGRU])
def test_cudnn_layers_train_gradients_by_finite_differences(cls):
    """Under a tape the cuDNN-layout weights get exact gradients (the layout conversion is recorded)."""
    import rnnbook as rb
    from rnnbook.autodiff import numeric_gradient
    layer = cls(3, return_sequences=True, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    layer(x)
    w = np.random.default_rng(1).standard_normal((2, 4, 3))
    with rb.GradientTape() as tape:
        loss = rb.ops.sum(layer(x) * w)
    grads = tape.gradient(loss, layer.trainable_weights)
    for v, g in zip(layer.trainable_weights, grads):
        base = v.numpy()

        def f(a, v=v, base=base):
            v.assign(a)
            out = float(np.sum(np.asarray(layer(x)) * w))
            v.assign(base)
            return out
        np.testing.assert_allclose(g, numeric_gradient(f, base), rtol=1e-5, atol=1e-8)
