"""The cuDNN path without a GPU: the weight layout against an emulated offset table and against PyTorch's cuDNN
layout, the loop's conventions around cuDNN (masks as lengths, go_backwards, padded outputs) against the layers'
own loops with cuDNN emulated, forward and gradients, and the predicate that picks the path."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook import cudnn, recurrent
from rnnbook.autodiff import GradientTape
from rnnbook.layer import Variable
from rnnbook.layers import LSTM, GRU, SimpleRNN, Bidirectional, RNN, LSTMCell
from rnnbook.utils import to_torch
from cudnn_emulator import emulated_cudnn_rnn

KINDS = {'LSTM': LSTM, 'GRU': GRU, 'SimpleRNN': SimpleRNN}


def keras_weights(kind, D, U, rng, dtype='float64'):
    n = cudnn.GATES[kind]
    return [rng.standard_normal((D, n * U)).astype(dtype), rng.standard_normal((U, n * U)).astype(dtype),
            rng.standard_normal((2, n * U) if kind == 'GRU' else (n * U,)).astype(dtype)]


# ---- the weight layout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('kind', cudnn.KINDS)
@pytest.mark.parametrize('directions', [1, 2])
def test_round_trip_through_any_table_order(kind, directions):
    rng = np.random.default_rng(0)
    D, U = 5, 3
    w = [keras_weights(kind, D, U, rng) for _ in range(directions)]
    table = cudnn.emulated_weight_table(kind, D, U, directions)
    n = cudnn.GATES[kind]
    assert cudnn.weight_space_size(table) == directions * (n * U * (D + U) + 2 * n * U)
    flat = cudnn.keras_to_flat(kind, w, table)
    for _ in range(3):                                   # the conversion reads offsets, not the order of the entries
        shuffled = [table[i] for i in rng.permutation(len(table))]
        np.testing.assert_array_equal(cudnn.keras_to_flat(kind, w, shuffled), flat)
    # cuDNN's offsets can leave gaps (alignment): spread the entries out and convert again
    gapped, off = [], 7
    for e in table:
        gapped.append(e._replace(offset=off)); off += int(np.prod(e.shape)) + 3
    back = cudnn.flat_to_keras(kind, cudnn.keras_to_flat(kind, w, gapped), gapped, D, U, directions)
    for got, want in zip(back, w):
        for a, b in zip(got, want): np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('kind', cudnn.KINDS)
def test_flat_layout_is_pytorchs_cudnn_layout(kind):
    """PyTorch's cuDNN flat buffer holds weight_ih, weight_hh, bias_ih, bias_hh per direction, gates in cuDNN's order:
    the emulated table in cuDNN's documented order must reproduce it from the same layer's Keras weights."""
    rng = np.random.default_rng(1)
    D, U = 4, 3
    layer = Bidirectional(KINDS[kind](U, return_sequences=True))
    layer.build((2, 5, D))
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    sd = to_torch(layer)
    table = cudnn.emulated_weight_table(kind, D, U, 2)
    w = [[v.value for v in (l.cell.kernel, l.cell.recurrent_kernel, l.cell.bias)]
         for l in (layer.forward_layer, layer.backward_layer)]
    flat = cudnn.keras_to_flat(kind, w, table)
    want = np.concatenate([np.ravel(sd[f'{name}_l0{sfx}']) for sfx in ('', '_reverse')
                           for name in ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')])
    np.testing.assert_allclose(flat, want, rtol=0, atol=1e-6)


def test_gru_gates_swap_and_lstm_biases():
    rng = np.random.default_rng(2)
    D, U = 3, 2
    g = keras_weights('GRU', D, U, rng)
    t = cudnn.emulated_weight_table('GRU', D, U)
    flat = cudnn.keras_to_flat('GRU', [g], t)
    at = {(e.lin_id, e.part): e for e in t}
    block = lambda lin, part: flat[at[lin, part].offset:at[lin, part].offset + int(np.prod(at[lin, part].shape))]
    np.testing.assert_array_equal(block(0, 'matrix'), g[0][:, U:2 * U].T.ravel())     # r: Keras' second gate
    np.testing.assert_array_equal(block(1, 'matrix'), g[0][:, :U].T.ravel())          # z: Keras' first gate
    np.testing.assert_array_equal(block(5, 'matrix'), g[1][:, 2 * U:].T.ravel())      # recurrent h
    np.testing.assert_array_equal(block(3, 'bias'), g[2][1, U:2 * U])                   # recurrent r bias
    # an LSTM's one bias is cuDNN's input bias; values sum both biases, gradients take the input bias's
    l = keras_weights('LSTM', D, U, rng)
    t = cudnn.emulated_weight_table('LSTM', D, U)
    flat = cudnn.keras_to_flat('LSTM', [l], t)
    rec_bias = [e for e in t if e.part == 'bias' and e.lin_id >= 4]
    assert all(not flat[e.offset:e.offset + U].any() for e in rec_bias)
    for e in rec_bias: flat[e.offset:e.offset + U] = 1.0
    np.testing.assert_allclose(cudnn.flat_to_keras('LSTM', flat, t, D, U)[0][2], l[2] + 1)
    np.testing.assert_allclose(cudnn.flat_to_keras('LSTM', flat, t, D, U, gradient=True)[0][2], l[2])


def test_layout_errors():
    rng = np.random.default_rng(3)
    w = keras_weights('LSTM', 3, 2, rng)
    with pytest.raises(ValueError, match=r"expects a matrix of shape \(2, 4\).*give shape \(2, 3\)"):
        cudnn.keras_to_flat('LSTM', [w], cudnn.emulated_weight_table('LSTM', 4, 2))
    with pytest.raises(ValueError, match="argument `kind`.*received 'RNN'"):
        cudnn.emulated_weight_table('RNN', 3, 2)


# ---- masks as lengths and the loop's conventions -------------------------------------------------------------
def test_sequence_lengths():
    right = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    np.testing.assert_array_equal(cudnn.sequence_lengths(right), [2, 4, 1])
    assert cudnn.sequence_lengths(np.array([[0, 1, 1, 1]], bool)) is None          # left-padded
    assert cudnn.sequence_lengths(np.array([[1, 0, 1, 0]], bool)) is None          # a hole
    assert cudnn.sequence_lengths(np.array([[1, 1], [0, 0]], bool)) is None        # an empty sample
    np.testing.assert_array_equal(cudnn.reverse_index([2, 4], 4), [[1, 0, 2, 3], [3, 2, 1, 0]])


@pytest.fixture
def emulated(monkeypatch):
    "cuDNN's forward emulated by recorded rnnbook ops (the binding itself needs a GPU)."
    calls = []
    def spy(*a, **k):
        calls.append(k)
        return emulated_cudnn_rnn(*a, **k)
    monkeypatch.setattr(cudnn, 'cudnn_rnn', spy)
    return calls


def _case(kind, masked, rng, B=4, T=6, D=3, dtype='float64'):
    x = rng.standard_normal((B, T, D)).astype(dtype)
    lengths = np.array([6, 3, 1, 5])[:B] if masked else None
    mask = None if lengths is None else np.arange(T)[None] < lengths[:, None]
    return x, lengths, mask


@pytest.mark.parametrize('kind,act', [('LSTM', 'tanh'), ('GRU', 'tanh'), ('SimpleRNN', 'tanh'), ('SimpleRNN', 'relu')])
@pytest.mark.parametrize('go_backwards', [False, True])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('zero_output_for_mask', [False, True])
@pytest.mark.parametrize('given_state', [False, True])
def test_cudnn_sequence_equals_the_loop(emulated, kind, act, go_backwards, masked, zero_output_for_mask, given_state):
    rng = np.random.default_rng(4)
    x, lengths, mask = _case(kind, masked, rng)
    U = 2
    kw = dict(activation=act) if kind == 'SimpleRNN' else {}
    layer = KINDS[kind](U, return_sequences=True, return_state=True, go_backwards=go_backwards,
                        zero_output_for_mask=zero_output_for_mask, dtype='float64', **kw)
    layer.build(x.shape)
    layer.set_weights([w + .1 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    n_states = 2 if kind == 'LSTM' else 1
    states = [rng.standard_normal((4, U)) if given_state else np.zeros((4, U)) for _ in range(n_states)]
    seq, *final = layer(x, mask=mask, initial_state=states if given_state else None)
    last_layer = KINDS[kind](U, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                             dtype='float64', **kw)
    last_layer.build(x.shape); last_layer.set_weights(layer.get_weights())
    last = last_layer(x, mask=mask, initial_state=states if given_state else None)
    c = layer.cell
    got_last, got_seq, got_states = cudnn.cudnn_sequence(
        kind, x, states, [c.kernel.value, c.recurrent_kernel.value, c.bias.value], lengths, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask, activation=act)
    assert emulated and emulated[-1]['lengths'] is (None if lengths is None or lengths.min() == 6 else lengths)
    np.testing.assert_allclose(got_seq, seq, atol=1e-12)
    np.testing.assert_allclose(got_last, last, atol=1e-12)
    for a, b in zip(got_states, final): np.testing.assert_allclose(a, b, atol=1e-12)


_real_check = recurrent._cudnn_check


def _force_cudnn(monkeypatch):
    "Let NumPy calls take the cuDNN path (its config rules still apply), so the layer wiring runs on the CPU."
    from rnnbook import dispatch        # `call_path` (notebook 08c) decides for every layer
    real = dispatch._cudnn_check
    def check(layer, sequences, mask, constants):
        why = dispatch.cudnn_config_reason(layer)
        if why or constants is not None: return real(layer, sequences, mask, constants)
        if mask is None: return None, None
        lengths = cudnn.sequence_lengths(np.asarray(mask))
        return (None, lengths) if lengths is not None else ("the mask is not right-padded", None)
    monkeypatch.setattr(dispatch, '_cudnn_check', check)


@pytest.mark.parametrize('kind', ['LSTM', 'GRU', 'SimpleRNN'])
@pytest.mark.parametrize('go_backwards', [False, True])
@pytest.mark.parametrize('masked', [False, True])
def test_layer_gradients_through_cudnn_path_equal_the_fused_loop(emulated, monkeypatch, kind, go_backwards, masked):
    rng = np.random.default_rng(5)
    x, lengths, mask = _case(kind, masked, rng)
    layer = KINDS[kind](3, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype='float64')
    layer.build(x.shape)
    n_states = 2 if kind == 'LSTM' else 1
    h0 = [rng.standard_normal((4, 3)) for _ in range(n_states)]
    w_seq, w_h = rng.standard_normal((4, 6, 3)), rng.standard_normal((4, 3))

    def run():
        xv, sv = Variable(x), [Variable(h) for h in h0]
        with GradientTape() as tape:
            seq, h, *_ = layer(xv, mask=mask, initial_state=sv)
            loss = rb.ops.add(rb.ops.sum(rb.ops.multiply(seq, w_seq)), rb.ops.sum(rb.ops.multiply(h, w_h)))
        return [loss] + tape.gradient(loss, [xv, *sv, *layer.trainable_weights])

    want = run()
    assert not emulated
    _force_cudnn(monkeypatch)
    got = run()
    assert len(emulated) == 1
    for a, b in zip(got, want): np.testing.assert_allclose(a, b, atol=1e-10)


def test_training_dropout_and_stateful_through_cudnn_path(emulated, monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3)).astype('float32')
    a = LSTM(4, dropout=.4, seed=3, stateful=True, return_sequences=True)
    b = LSTM(4, dropout=.4, seed=3, stateful=True, return_sequences=True)
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    want = [a(x, training=True), a(x)]
    _force_cudnn(monkeypatch)
    got = [b(x, training=True), b(x)]
    assert len(emulated) == 2
    for u, v in zip(got, want): np.testing.assert_allclose(u, v, atol=1e-6)
    for u, v in zip(b.states, a.states): np.testing.assert_allclose(u.value, v.value, atol=1e-6)


@pytest.mark.parametrize('kind', ['LSTM', 'GRU', 'SimpleRNN'])
@pytest.mark.parametrize('mode', ['concat', 'sum', 'ave', 'mul', None])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('return_sequences', [False, True])
def test_bidirectional_is_one_cudnn_call(emulated, monkeypatch, kind, mode, masked, return_sequences):
    rng = np.random.default_rng(7)
    x, lengths, mask = _case(kind, masked, rng)
    layer = Bidirectional(KINDS[kind](3, return_sequences=return_sequences, return_state=True, dtype='float64'),
                          merge_mode=mode)
    layer.build(x.shape)
    layer.set_weights([w + .1 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    n_states = 2 if kind == 'LSTM' else 1
    h0 = [rng.standard_normal((4, 3)) for _ in range(2 * n_states)]
    w_out = [rng.standard_normal(np.shape(o)) for o in rb.backend.flatten(layer(x, mask=mask, initial_state=h0))]

    def run():
        xv, sv = Variable(x), [Variable(h) for h in h0]
        with GradientTape() as tape:
            outs = rb.backend.flatten(layer(xv, mask=mask, initial_state=sv))
            loss = rb.ops.sum(rb.ops.stack([rb.ops.sum(rb.ops.multiply(o, w)) for o, w in zip(outs, w_out)]))
        return outs + tape.gradient(loss, [xv, *sv, *layer.trainable_weights])

    want = run()
    assert not emulated
    _force_cudnn(monkeypatch)
    got = run()
    assert len(emulated) == 1                              # both directions in one call
    assert len(w_out) == len(rb.backend.flatten(got[:len(w_out)]))
    for a, b in zip(got, want): np.testing.assert_allclose(a, b, atol=1e-10)


def test_bidirectional_falls_back_per_direction(emulated, monkeypatch):
    "Stateful, or dropout while training: each direction on its own (still through cuDNN where it can)."
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 3))
    a, b = (Bidirectional(LSTM(2, return_sequences=True, dropout=.5, seed=1, dtype='float64')) for _ in range(2))
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    want = a(x, training=True)
    _force_cudnn(monkeypatch)
    got = b(x, training=True)
    assert len(emulated) == 2
    np.testing.assert_allclose(got, want, atol=1e-12)


# ---- the predicate -----------------------------------------------------------------------------------------------
def test_reasons_name_the_argument():
    x = np.zeros((2, 3, 4), 'float32')
    cases = [(LSTM(2, unroll=True), 'unroll=True'), (LSTM(2, use_bias=False), 'use_bias=False'),
             (GRU(2, recurrent_dropout=.2), 'recurrent_dropout=0.2'), (GRU(2, reset_after=False), 'reset_after=False'),
             (LSTM(2, activation='relu'), "activation='relu'"), (SimpleRNN(2, activation='sigmoid'), "activation='sigmoid'"),
             (LSTM(2, recurrent_activation='hard_sigmoid'), "recurrent_activation='hard_sigmoid'"),
             (LSTM(2, use_cudnn=False), 'use_cudnn=False')]
    for layer, why in cases:
        layer.build(x.shape)
        assert why in recurrent.cudnn_reason(layer, x), (layer, recurrent.cudnn_reason(layer, x))
    for layer in (LSTM(2), GRU(2), SimpleRNN(2), SimpleRNN(2, activation='relu')):
        layer.build(x.shape)
        assert recurrent.cudnn_config_reason(layer) is None
        assert 'not CuPy arrays' in recurrent.cudnn_reason(layer, x)
        assert not recurrent.cudnn_ok(layer, x)
    stacked = RNN([LSTMCell(2)]); stacked.build(x.shape)
    assert not hasattr(stacked, 'cudnn_loop')


def test_use_cudnn_true_where_cudnn_cannot_serve_raises_keras_error():
    x = np.zeros((2, 3, 4), 'float32')
    with pytest.raises(ValueError, match=r"use_cudnn=True was specified.*Pass use_cudnn='auto'.*not CuPy arrays"):
        LSTM(2, use_cudnn=True)(x)
    with pytest.raises(ValueError, match="Invalid value received for argument `use_cudnn`"):
        GRU(2, use_cudnn='yes')


def test_use_cudnn_true_with_left_padded_mask_raises(emulated, monkeypatch):
    _force_cudnn(monkeypatch)
    x = np.zeros((2, 3, 4), 'float32')
    left = np.array([[0, 1, 1], [1, 1, 1]], bool)
    with pytest.raises(ValueError, match=r"use_cudnn=True was specified.*not right-padded"):
        LSTM(2, use_cudnn=True)(x, mask=left)
    out = LSTM(2)(x, mask=left)        # 'auto' falls back to the loop
    assert out.shape == (2, 2) and not emulated


@pytest.mark.parametrize('name', ['CuDNNLSTM', 'CuDNNGRU'])
@pytest.mark.parametrize('go_backwards', [False, True])
def test_cudnn_layers_take_cudnn_with_gradients(emulated, monkeypatch, name, go_backwards):
    from rnnbook import cudnn_layers
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 4))
    layer = getattr(rb.layers, name)(3, return_sequences=True, return_state=True, go_backwards=go_backwards,
                                     dtype='float64')
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal(w.shape) * .3 for w in layer.get_weights()])
    w_out = rng.standard_normal((3, 5, 3))

    def run():
        xv = Variable(x)
        with GradientTape() as tape:
            seq, *states = layer(xv)
            loss = rb.ops.add(rb.ops.sum(rb.ops.multiply(seq, w_out)), rb.ops.sum(states[-1]))
        return [seq, *states] + tape.gradient(loss, [xv, *layer.trainable_weights])

    want = run()
    monkeypatch.setattr(cudnn_layers, 'cudnn_ok', lambda layer, sequences: True)
    got = run()
    assert len(emulated) == 1
    for a, b in zip(got, want): np.testing.assert_allclose(a, b, atol=1e-10)
