"""Behaviour of the recurrent layers that needs no Keras: fused vs reference loop, the guide's custom cells,
dropout semantics, statefulness, edge cases, errors that change nothing, configs."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook import ops
from rnnbook.layers import (RNN, SimpleRNN, GRU, LSTM, SimpleRNNCell, GRUCell, LSTMCell, StackedRNNCells, Layer)
from rnnbook.recurrent import fused_ok

LAYERS = [(SimpleRNN, {}), (GRU, {}), (GRU, {'reset_after': False}), (LSTM, {}), (LSTM, {'implementation': 1}),
          (GRU, {'activation': 'relu', 'recurrent_activation': 'hard_sigmoid', 'use_bias': False}),
          (LSTM, {'activation': 'softsign', 'recurrent_activation': 'hard_sigmoid'}),
          (SimpleRNN, {'activation': 'relu', 'use_bias': False})]
CELL_OF = {SimpleRNN: SimpleRNNCell, GRU: GRUCell, LSTM: LSTMCell}


def data(B=4, T=7, D=5, seed=0, dtype='float32'):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)).astype(dtype)


def pair(cls, kw, x, **opts):
    "A fused layer and the same weights in RNN(cell) (the reference loop)."
    a = cls(6, **kw, **opts)
    b = RNN(CELL_OF[cls](6, **kw), **opts)
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    return a, b


def flat(out): return rb.backend.flatten(out) if isinstance(out, list) else [out]


def close(a, b, atol=1e-5):
    for u, v in zip(flat(a), flat(b)):
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, atol=atol, rtol=0)


MASKS = {
    'none': None,
    'right_padded': np.array([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6, [1] * 6 + [0]], bool),
    'holes_and_empty': np.array([[0, 1, 1, 0, 1, 0, 1], [0] * 7, [1, 0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 0, 1, 1]], bool),
}


@pytest.mark.parametrize('cls,kw', LAYERS)
@pytest.mark.parametrize('mask', list(MASKS))
@pytest.mark.parametrize('go_backwards', [False, True])
@pytest.mark.parametrize('zero_output_for_mask', [False, True])
def test_fused_equals_reference_loop(cls, kw, mask, go_backwards, zero_output_for_mask):
    x = data()
    for rs in (True, False):
        opts = dict(return_sequences=rs, return_state=True, go_backwards=go_backwards,
                    zero_output_for_mask=zero_output_for_mask)
        a, b = pair(cls, kw, x, **opts)
        assert fused_ok(a, False)
        close(a(x, mask=MASKS[mask]), b(x, mask=MASKS[mask]))


@pytest.mark.parametrize('cls,kw', LAYERS[:5])
def test_fused_with_initial_state_and_float64(cls, kw):
    x = data(dtype='float64')
    a, b = pair(cls, kw, x, return_sequences=True, return_state=True)
    n = 2 if cls is LSTM else 1
    init = [np.random.default_rng(i).standard_normal((4, 6)) for i in range(n)]
    ya, yb = a(x, initial_state=init), b(x, initial_state=init)
    assert all(y.dtype == np.float64 for y in ya)
    close(ya, yb, atol=1e-12)
    y32 = a(x.astype('float32'), initial_state=[s.astype('float32') for s in init])
    assert y32[0].dtype == np.float32
    close(y32, ya, atol=2e-5)


def test_go_backwards_equals_reversed_input_and_all_true_mask_equals_none():
    x = data()
    for cls, kw in LAYERS:
        f = cls(3, return_sequences=True, **kw); f.build(x.shape)
        g = cls(3, return_sequences=True, go_backwards=True, **kw); g.build(x.shape); g.set_weights(f.get_weights())
        close(g(x), f(x[:, ::-1]))
        close(f(x, mask=np.ones(x.shape[:2], bool)), f(x))


def test_sample_results_do_not_depend_on_the_batch():
    x, mask = data(), MASKS['holes_and_empty']
    for cls, kw in LAYERS:
        layer = cls(3, return_sequences=True, return_state=True, **kw)
        full = layer(x, mask=mask)
        for i in range(4):
            one = layer(x[i:i + 1], mask=mask[i:i + 1])
            close([o[i:i + 1] for o in full], one)


def test_masked_leading_steps_output_zero_and_state_is_carried():
    x = data(); mask = np.ones((4, 7), bool); mask[0, :3] = False; mask[1, 3:] = False
    layer = LSTM(3, return_sequences=True, return_state=True)
    seq, h, c = layer(x, mask=mask)
    assert np.all(seq[0, :3] == 0)
    np.testing.assert_array_equal(seq[1, 3:], np.repeat(seq[1, 2:3], 4, axis=0))
    np.testing.assert_array_equal(h[1], seq[1, 2])
    seq0 = LSTM(3, return_sequences=True, zero_output_for_mask=True)
    seq0.build(x.shape); seq0.set_weights(layer.get_weights())
    out = seq0(x, mask=mask)
    assert np.all(out[1, 3:] == 0) and np.all(out[0, :3] == 0)
    np.testing.assert_allclose(out[1, :3], seq[1, :3], atol=1e-6)


@pytest.mark.parametrize('cls,kw', LAYERS[:5])
def test_stateful_chunks_equal_one_call(cls, kw):
    x = data(T=9)
    s = cls(4, stateful=True, return_sequences=True, **kw)
    w = cls(4, return_sequences=True, **kw)
    s.build(x.shape); w.build(x.shape); w.set_weights(s.get_weights())
    chunks = np.concatenate([s(x[:, :2]), s(x[:, 2:3]), s(x[:, 3:])], axis=1)
    close(chunks, w(x))
    s.reset_state()
    assert all(np.all(np.asarray(v) == 0) for v in rb.backend.flatten(s.states))
    close(s(x), w(x))
    # Keras 2's reset_states(states=...) sets given values; the next call starts from them
    n = 2 if cls is LSTM else 1
    init = [np.full((4, 4), .3, 'float32') for _ in range(n)]
    s.reset_states(states=init)
    close(s(x), w(x, initial_state=init))


def test_stateful_batch_size_from_batch_input_shape_and_errors():
    layer = LSTM(2, stateful=True, batch_input_shape=(3, None, 4))
    layer.build((None, None, 4))
    assert [tuple(v.shape) for v in layer.states] == [(3, 2), (3, 2)]
    with pytest.raises(ValueError, match='Expected batch size: 3'):
        layer(np.ones((2, 5, 4), 'float32'))
    with pytest.raises(ValueError, match=r'expects 2 state\(s\), but it received 1'):
        layer.reset_states(states=[np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r'expected shape=\(3, 2\), found shape=\(3, 5\)'):
        layer.reset_states(states=[np.zeros((3, 5)), np.zeros((3, 2))])
    with pytest.raises(AttributeError, match='must be stateful'):
        LSTM(2).reset_states(states=[np.zeros((3, 2))] * 2)


def test_unroll_and_implementation_give_the_same_numbers():
    x = data()
    for cls in (GRU, LSTM):
        base = cls(5, return_sequences=True); base.build(x.shape)
        for kw in (dict(unroll=True), dict(implementation=1), dict(implementation=1, unroll=True)):
            other = cls(5, return_sequences=True, **kw); other.build(x.shape); other.set_weights(base.get_weights())
            close(other(x), base(x))


def test_dropout_is_variational_inverted_and_only_in_training():
    x = np.ones((3, 6, 8), 'float32')
    cell = SimpleRNNCell(8, activation=None, kernel_initializer='identity', recurrent_initializer='zeros',
                         dropout=0.5, seed=1)
    layer = RNN(cell, return_sequences=True)
    np.testing.assert_array_equal(layer(x), x)                         # inference: no dropout
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True)
    assert set(np.unique(y)) <= {0., 2.}                                # kept inputs scaled by 1/(1-p)
    np.testing.assert_array_equal(y, np.repeat(y[:, :1], 6, axis=1))   # the same mask at every step
    assert not np.array_equal(y, layer(x, training=True))              # a new mask for each call


def test_dropout_fused_equals_reference_and_seeds_are_reproducible():
    x = data()
    for cls in (SimpleRNN, GRU, LSTM):
        a = cls(5, dropout=0.3, seed=7, return_sequences=True)
        b = RNN(CELL_OF[cls](5, dropout=0.3, seed=7), return_sequences=True)
        a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
        assert fused_ok(a, True)
        close(a(x, training=True), b(x, training=True))
        c = cls(5, dropout=0.3, recurrent_dropout=0.2, seed=3, return_sequences=True)
        d = cls(5, dropout=0.3, recurrent_dropout=0.2, seed=3, return_sequences=True)
        c.build(x.shape); d.build(x.shape); d.set_weights(c.get_weights())
        assert not fused_ok(c, True) and fused_ok(c, False)
        np.testing.assert_array_equal(c(x, training=True), d(x, training=True))


def test_set_seed_gives_identical_weights():
    rb.set_seed(123); a = LSTM(4); a.build((1, 2, 3))
    rb.set_seed(123); b = LSTM(4); b.build((1, 2, 3))
    for u, v in zip(a.get_weights(), b.get_weights()): np.testing.assert_array_equal(u, v)


# --- the guide's custom cells (Keras' "Working with RNNs", with rb in place of keras) -------------------------

class MinimalRNNCell(Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer='uniform', name='kernel')
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer='uniform',
                                                name='recurrent_kernel')
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = h + ops.matmul(prev_output, self.recurrent_kernel)
        return output, [output]


from guide_cells import NestedCell  # noqa: E402  (the guide's cell, shared by the tests)


def test_minimal_rnn_cell_from_the_guide():
    x = data(B=2, T=5, D=3)
    layer = RNN(MinimalRNNCell(4), return_sequences=True)
    y = layer(x)
    K, R = layer.get_weights()
    h = np.zeros((2, 4), 'float32')
    for t in range(5):
        h = x[:, t] @ K + h @ R
        np.testing.assert_allclose(y[:, t], h, rtol=1e-5, atol=1e-6)
    stacked = RNN([MinimalRNNCell(4), MinimalRNNCell(2)])
    assert stacked(x).shape == (2, 2)


def test_nested_cell_from_the_guide():
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((3, 6, 4)).astype('float32')
    x2 = rng.standard_normal((3, 6, 2, 5)).astype('float32')
    layer = RNN(NestedCell(4, 3, 2), return_sequences=True, return_state=True)
    (o1, o23), s1, s23 = layer((x1, x2))
    assert o1.shape == (3, 6, 4) and o23.shape == (3, 6, 3, 2) and s1.shape == (3, 4) and s23.shape == (3, 3, 2)
    k1, k23 = layer.get_weights()
    np.testing.assert_allclose(s1, np.einsum('btd,du->bu', x1, k1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s23, np.einsum('btij,ijkl->bkl', x2, k23), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(o1[:, 2], x1[:, 2] @ k1, rtol=1e-5, atol=1e-6)


# --- edge cases ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', [SimpleRNN, GRU, LSTM])
def test_edge_shapes(cls):
    layer = cls(3, return_sequences=True, return_state=True)
    seq, *states = layer(np.ones((0, 4, 2), 'float32'))                  # empty batch
    assert seq.shape == (0, 4, 3) and all(s.shape == (0, 3) for s in states)
    seq, *states = layer(np.ones((2, 0, 2), 'float32'))                  # zero timesteps: initial states
    assert seq.shape == (2, 0, 3) and all(np.all(s == 0) for s in states)
    one = layer(np.ones((2, 1, 2), 'float32'))                            # one timestep
    np.testing.assert_array_equal(one[0][:, 0], one[1])
    ints = layer(np.ones((2, 3, 2), 'int64'))                             # integer input -> float32
    assert ints[0].dtype == np.float32
    bools = layer(np.ones((2, 3, 2), bool))
    np.testing.assert_array_equal(bools[0], ints[0])
    u1 = cls(1)(np.ones((2, 3, 2), 'float32'))                            # units=1
    assert u1.shape == (2, 1)


def test_nan_propagates_and_odd_memory_layouts_work():
    x = data()
    layer = GRU(3, return_sequences=True); ref = layer(x)
    xn = x.copy(); xn[1, 2, 0] = np.nan
    y = layer(xn)
    assert np.isnan(y[1, 2:]).all() and not np.isnan(y[[0, 2, 3]]).any()
    np.testing.assert_array_equal(layer(np.asfortranarray(x)), ref)
    ro = x.copy(); ro.setflags(write=False)
    np.testing.assert_array_equal(layer(ro), ref)
    big = np.zeros((4, 14, 5), 'float32'); big[:, ::2] = x
    np.testing.assert_array_equal(layer(big[:, ::2]), ref)


# --- errors: clear messages, nothing changed -----------------------------------------------------------------

def test_constructor_errors_name_the_argument():
    cases = [(lambda: LSTM(0), 'units'), (lambda: GRU(-2), 'got -2'), (lambda: SimpleRNN(2.5), 'got 2.5'),
             (lambda: LSTM(2, dropout=1.0), '`dropout`'), (lambda: GRU(2, recurrent_dropout=-0.1), 'got -0.1'),
             (lambda: LSTM(2, activation='tahn'), "received 'tahn'"),
             (lambda: GRU(2, kernel_initializer='glorot'), "received 'glorot'"),
             (lambda: LSTM(2, implementation=3), 'got 3'), (lambda: LSTM(2, return_sequences='yes'), "got 'yes'"),
             (lambda: LSTM(2, use_cudnn='sometimes'), "'sometimes'"), (lambda: LSTM(2, colour=1), 'colour')]
    for make, text in cases:
        with pytest.raises(ValueError) as e: make()
        assert text in str(e.value), (text, str(e.value))


def test_call_errors_leave_weights_and_states_unchanged():
    x = data()
    layer = LSTM(3, stateful=True, return_sequences=True)
    layer(x)
    weights = layer.get_weights(); states = [np.asarray(s).copy() for s in layer.states]
    bad = [(lambda: layer(x[..., :4]), 'expected axis -1 of input shape to have value 5'),
           (lambda: layer(x[0]), 'expected ndim=3, found ndim=2'),
           (lambda: layer(x[None]), 'expected ndim=3, found ndim=4. Full shape received: (1, 4, 7, 5)'),
           (lambda: layer(x, mask=np.ones((4, 6), bool)), 'received shape (4, 6)'),
           (lambda: layer(x, initial_state=[np.zeros((4, 3))]), 'received 1 initial state'),
           (lambda: layer(x, initial_state=[np.zeros((4, 3)), np.zeros((4, 2))]), 'received shape (4, 2)'),
           (lambda: layer(x[:2]), 'Received batch size: 2'),
           (lambda: layer.set_weights(weights[:2]), 'length 2, but the layer was expecting 3'),
           (lambda: layer.set_weights([weights[0].T, weights[1], weights[2]]), 'provided weight shape (12, 5)')]
    for call, text in bad:
        with pytest.raises(ValueError) as e: call()
        assert text in str(e.value), (text, str(e.value))
        for u, v in zip(layer.get_weights(), weights): np.testing.assert_array_equal(u, v)
        for u, v in zip(layer.states, states): np.testing.assert_array_equal(np.asarray(u), v)


def test_failed_first_call_leaves_layer_unbuilt():
    layer = RNN(NestedCell(2, 2, 2))
    with pytest.raises(Exception): layer(np.ones((2, 3, 4), 'float32'))   # not the nested input it needs
    assert not layer.built and layer.weights == []


# --- config ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('make', [
    lambda: SimpleRNN(3, activation='relu', dropout=.1, return_sequences=True, seed=4),
    lambda: GRU(3, reset_after=False, kernel_regularizer='l2', recurrent_constraint='max_norm', go_backwards=True),
    lambda: LSTM(3, unit_forget_bias=False, kernel_initializer=rb.initializers.Orthogonal(gain=2., seed=1),
                 stateful=True, implementation=1),
    lambda: RNN(LSTMCell(3), return_state=True, zero_output_for_mask=True),
    lambda: RNN([SimpleRNNCell(2), GRUCell(3, reset_after=False)], unroll=True),
    lambda: StackedRNNCells([LSTMCell(2), LSTMCell(3)]),
    lambda: GRUCell(4, recurrent_activation='hard_sigmoid', bias_regularizer=rb.regularizers.L1L2(.1, .2)),
])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == {**config, 'name': config['name']}
    x = data(B=2, T=3, D=4)
    if isinstance(layer, RNN):
        layer.build(x.shape); clone.build(x.shape); clone.set_weights(layer.get_weights())
        close(layer(x), clone(x))


def test_regularizers_appear_on_losses():
    layer = LSTM(3, kernel_regularizer=rb.regularizers.L2(0.1), bias_regularizer='l1')
    layer.build((1, 2, 4))
    K, _, b = layer.get_weights()
    np.testing.assert_allclose(sorted(float(l) for l in layer.losses),
                               sorted([0.1 * float((K ** 2).sum()), 0.01 * float(np.abs(b).sum())]), rtol=1e-5)


@pytest.mark.parametrize('B', [1, 3])
def test_inputs_and_initial_states_are_not_modified(B):
    x = data(B=B)
    for cls, kw in LAYERS[:5]:
        n = 2 if cls is LSTM else 1
        init = [np.full((B, 6), .5, 'float32') for _ in range(n)]
        keep_x, keep_init = x.copy(), [s.copy() for s in init]
        layer = cls(6, return_sequences=True, **kw)
        layer(x, initial_state=init)
        layer(x, initial_state=init, mask=np.ones(x.shape[:2], bool))
        np.testing.assert_array_equal(x, keep_x)
        for s, k in zip(init, keep_init): np.testing.assert_array_equal(s, k)


def test_returned_arrays_are_independent_of_later_calls():
    x = data()
    layer = LSTM(3, return_sequences=True, return_state=True)
    first = [a.copy() for a in layer(x)]
    out = layer(x)
    layer(data(seed=1))
    for a, b in zip(first, out): np.testing.assert_array_equal(a, b)


def test_use_cudnn_true_is_refused_until_a_cudnn_path_exists():
    layer = GRU(2, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn=True was specified"):
        layer(data())
    np.testing.assert_array_equal(GRU(2, use_cudnn=False)(np.zeros((1, 2, 3), 'float32')), np.zeros((1, 2)))


def test_a_plain_object_following_the_cell_protocol_works():
    class Accumulate:                      # not a Layer: just call + state_size, as the Keras protocol allows
        state_size = [2]
        output_size = 2
        def call(self, inputs, states):
            s = states[0] + inputs
            return s * 2, [s]
    y, s = RNN(Accumulate(), return_sequences=True, return_state=True)(np.ones((1, 3, 2), 'float32'))
    np.testing.assert_array_equal(y[0, :, 0], [2, 4, 6])
    np.testing.assert_array_equal(s, [[3, 3]])


def test_layer_dtype_argument_sets_weights_and_compute_dtype():
    layer = LSTM(3, dtype='float64')
    y = layer(data())
    assert y.dtype == np.float64 and all(w.dtype == np.float64 for w in layer.get_weights())
    assert layer.get_config()['dtype'] == 'float64'


def test_plain_object_cells_get_training_and_constants_when_they_take_them():
    seen = {}
    class Cell:
        state_size = 1
        def call(self, inputs, states, training=None, constants=None):
            seen['training'], seen['constants'] = training, constants[0][0, 0]
            return states[0] + inputs, [states[0] + inputs]
    y = RNN(Cell())(np.ones((1, 2, 1), 'float32'), training=True, constants=[np.full((1, 1), 7.)])
    assert seen == {'training': True, 'constants': 7.} and y[0, 0] == 2


def test_keras2_dropout_mask_api_for_custom_cells():
    class Keras2Cell(SimpleRNNCell):       # a tf.keras-style cell using DropoutRNNCellMixin's names
        def call(self, inputs, states, training=None):
            masks = self.get_dropout_mask_for_cell(inputs, training, count=2)
            if masks is not None:
                assert len(masks) == 2 and masks[0].shape == inputs.shape
                inputs = inputs * masks[0]
            return super().call(inputs, states, training=False)
    x = np.ones((2, 5, 4), 'float32')
    cell = Keras2Cell(4, activation=None, kernel_initializer='identity', recurrent_initializer='zeros',
                      dropout=0.5, seed=0)
    layer = RNN(cell, return_sequences=True)
    np.testing.assert_array_equal(layer(x), x)
    y = layer(x, training=True)
    assert set(np.unique(y)) <= {0., 2.} and (y == 0).any()
    np.testing.assert_array_equal(y, np.repeat(y[:, :1], 5, axis=1))   # cached for the whole sequence


def test_guide_state_reuse_example():
    "The guide: feed a stateful layer's `states` to a new layer as `initial_state`."
    rng = np.random.default_rng(0)
    p1, p2, p3 = (rng.random((20, 10, 50)).astype('float32') for _ in range(3))
    lstm_layer = LSTM(64, stateful=True)
    lstm_layer(p1); lstm_layer(p2)
    existing_state = lstm_layer.states
    new_layer = LSTM(64)
    new_layer.build(p3.shape); new_layer.set_weights(lstm_layer.get_weights())
    np.testing.assert_allclose(new_layer(p3, initial_state=existing_state), lstm_layer(p3), atol=1e-6)
    lstm_layer.reset_states()
    assert all(np.all(np.asarray(s) == 0) for s in lstm_layer.states)


def test_implementation_1_draws_one_dropout_mask_per_gate():
    x = np.ones((2, 3, 6), 'float32')
    cell = LSTMCell(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    assert cell.implementation == 1                       # recurrent dropout forces it, as in Keras
    layer = RNN(cell)
    masks = []
    orig = cell._draw_mask
    cell._draw_mask = lambda like, rate, count=None: masks.append(orig(like, rate, count)) or masks[-1]
    layer(x, training=True)
    assert [m.shape for m in masks] == [(4, 2, 6), (4, 2, 4)]
    assert not all(np.array_equal(masks[0][0], masks[0][k]) for k in range(1, 4))
