"""Gradients through rnnbook layers against torch autograd running Keras 3 (same weights and inputs).

For a Keras layer on the torch backend, inputs and initial states are ``torch.tensor(requires_grad=True)``, the
loss is ``sum(output * W)`` for fixed random ``W`` (and the final states likewise), ``loss.backward()`` fills
``.grad`` of the inputs and of every ``keras_layer.trainable_weights[i].value``.  The rnnbook side computes the
same loss under ``rb.GradientTape`` and asks for the gradients of the same things.  Tolerance 1e-4 (float32).
The hand-written fused BPTT of SimpleRNN/GRU/LSTM is tested in test_grad_recurrent.py; here the reference loop
(``RNN(cell)``, recorded op by op), the wrappers, the companion layers and the tape itself.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import ops  # noqa: E402
from rnnbook.autodiff import numeric_gradient, check_gradients  # noqa: E402
from rnnbook.layers import (RNN, Bidirectional, Dense, Dropout, Embedding, GRUCell, LSTMCell, SimpleRNNCell,  # noqa: E402
                            TimeDistributed, StackedRNNCells)

torch.set_num_threads(1)
TOL = 1e-4
B, T, F, U = 3, 5, 4, 3
MASKS = {"none": None,
         "right_padded": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
         "holes": np.array([[0, 1, 1, 0, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], bool)}


def randomize(klayer, seed=0):
    rng = np.random.default_rng(seed)
    klayer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype) for w in klayer.get_weights()])


def keras_grads(klayer, x, weights_out, mask=None, initial_state=None, **call_kw):
    """Keras outputs and d(sum(out_i * W_i))/d(x, initial states, trainable weights) by torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    kw = dict(call_kw)
    if mask is not None:
        kw["mask"] = torch.tensor(mask)
    states = None
    if initial_state is not None:
        states = [torch.tensor(s, requires_grad=True) for s in initial_state]
        kw["initial_state"] = states
    out = klayer(xt, **kw)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    loss = sum((o * torch.tensor(w)).sum() for o, w in zip(outs, weights_out))
    for v in klayer.trainable_weights:
        if v.value.grad is not None:
            v.value.grad = None
    loss.backward()
    grads = [xt.grad.numpy()] + ([s.grad.numpy() for s in states] if states else [])
    grads += [v.value.grad.numpy() if v.value.grad is not None else np.zeros(v.shape, "float32")
              for v in klayer.trainable_weights]
    return [o.detach().numpy() for o in outs], grads


def rb_grads(layer, x, weights_out, mask=None, initial_state=None, **call_kw):
    xv = rb.Variable(x)
    states = [rb.Variable(s) for s in initial_state] if initial_state is not None else None
    kw = dict(call_kw)
    if mask is not None:
        kw["mask"] = mask
    if states is not None:
        kw["initial_state"] = states
    with rb.GradientTape() as tape:
        out = layer(xv, **kw)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        loss = None
        for o, w in zip(outs, weights_out):
            term = ops.sum(ops.multiply(o, w))
            loss = term if loss is None else loss + term
    sources = [xv] + (states or []) + layer.trainable_weights
    return [np.asarray(rb.backend.unwrap(o)) for o in outs], tape.gradient(loss, sources)


def compare(klayer, rlayer, x, mask=None, initial_state=None, seed=3, **call_kw):
    w = _weights_for(klayer, x, mask, initial_state, seed, **call_kw)
    kouts, kg = keras_grads(klayer, x, w, mask, initial_state, **call_kw)
    routs, rg = rb_grads(rlayer, x, w, mask, initial_state, **call_kw)
    assert len(routs) == len(kouts)
    for a, b in zip(routs, kouts):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert len(rg) == len(kg)
    for i, (a, b) in enumerate(zip(rg, kg)):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL, err_msg=f"gradient {i}")


def _weights_for(klayer, x, mask, initial_state, seed, **call_kw):
    "Fixed random weights, one array per output of the layer, for the loss sum(out_i * W_i)."
    with torch.no_grad():
        kw = dict(call_kw)
        if mask is not None:
            kw["mask"] = torch.tensor(mask)
        if initial_state is not None:
            kw["initial_state"] = [torch.tensor(s) for s in initial_state]
        out = klayer(torch.tensor(x), **kw)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(o.shape)).astype("float32") for o in outs]


def pair(make_keras, make_rb, shape=(B, T, F)):
    k, r = make_keras(), make_rb()
    k.build(shape)
    randomize(k)
    r.build(shape)
    r.set_weights(k.get_weights())
    return k, r


def data(shape=(B, T, F), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


CELLS = {
    "SimpleRNNCell": (lambda: keras.layers.SimpleRNNCell(U), lambda: SimpleRNNCell(U), 1),
    "GRUCell": (lambda: keras.layers.GRUCell(U), lambda: GRUCell(U), 1),
    "GRUCell_v1": (lambda: keras.layers.GRUCell(U, reset_after=False), lambda: GRUCell(U, reset_after=False), 1),
    "LSTMCell": (lambda: keras.layers.LSTMCell(U), lambda: LSTMCell(U), 2),
}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("go_backwards,return_sequences", [(False, True), (True, True), (False, False), (True, False)])
def test_reference_loop_gradients_match_keras(cell, mask_name, go_backwards, return_sequences):
    kc, rc, n_states = CELLS[cell]
    opts = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    k, r = pair(lambda: keras.layers.RNN(kc(), **opts), lambda: RNN(rc(), **opts))
    init = [data((B, U), seed=10 + i) for i in range(n_states)]
    compare(k, r, data(), MASKS[mask_name], init)


@pytest.mark.parametrize("mask_name", ["none", "holes"])
def test_stacked_cells_gradients_match_keras(mask_name):
    k, r = pair(lambda: keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)], return_sequences=True),
                lambda: RNN(StackedRNNCells([LSTMCell(3), GRUCell(2)]), return_sequences=True))
    compare(k, r, data(), MASKS[mask_name])


INNER = {   # the wrapped layer: the reference loop over a cell, or a built-in layer with hand-written BPTT
    "RNN(LSTMCell)": (lambda rs: keras.layers.RNN(keras.layers.LSTMCell(U), return_sequences=rs),
                      lambda rs: RNN(LSTMCell(U), return_sequences=rs)),
    "LSTM": (lambda rs: keras.layers.LSTM(U, return_sequences=rs), lambda rs: rb.layers.LSTM(U, return_sequences=rs)),
    "GRU": (lambda rs: keras.layers.GRU(U, return_sequences=rs), lambda rs: rb.layers.GRU(U, return_sequences=rs)),
    "GRU_v1": (lambda rs: keras.layers.GRU(U, return_sequences=rs, reset_after=False),
               lambda rs: rb.layers.GRU(U, return_sequences=rs, reset_after=False)),
    "SimpleRNN": (lambda rs: keras.layers.SimpleRNN(U, return_sequences=rs),
                  lambda rs: rb.layers.SimpleRNN(U, return_sequences=rs)),
}


@pytest.mark.parametrize("inner", sorted(INNER))
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask_name", ["none", "right_padded", "holes"])
def test_bidirectional_gradients_match_keras(inner, merge_mode, return_sequences, mask_name):
    kl, rl = INNER[inner]
    k, r = pair(lambda: keras.layers.Bidirectional(kl(return_sequences), merge_mode=merge_mode),
                lambda: Bidirectional(rl(return_sequences), merge_mode=merge_mode))
    compare(k, r, data(), MASKS[mask_name])


def test_bidirectional_return_state_and_initial_state_gradients_match_keras():
    k, r = pair(lambda: keras.layers.Bidirectional(keras.layers.RNN(keras.layers.GRUCell(U), return_sequences=True,
                                                                    return_state=True)),
                lambda: Bidirectional(RNN(GRUCell(U), return_sequences=True, return_state=True)))
    compare(k, r, data(), MASKS["right_padded"], [data((B, U), seed=i) for i in range(2)])


def test_embedding_rnn_timedistributed_dense_chain_gradients_match_keras():
    ids = np.array([[4, 7, 2, 9, 0], [3, 3, 8, 0, 0], [5, 1, 6, 2, 7]])
    ke, kl, kd = keras.layers.Embedding(10, F, mask_zero=True), keras.layers.RNN(keras.layers.LSTMCell(U),
                                                                               return_sequences=True), \
        keras.layers.TimeDistributed(keras.layers.Dense(2, activation="tanh"))
    re, rl, rd = Embedding(10, F, mask_zero=True), RNN(LSTMCell(U), return_sequences=True), \
        TimeDistributed(Dense(2, activation="tanh"))
    ke.build(ids.shape)
    kl.build((B, T, F))
    kd.build((B, T, U))
    for i, (kk, rr) in enumerate(((ke, re), (kl, rl), (kd, rd))):
        randomize(kk, i)
    re.build(ids.shape)
    rl.build((B, T, F))
    rd.build((B, T, U))
    for kk, rr in ((ke, re), (kl, rl), (kd, rd)):
        rr.set_weights(kk.get_weights())
    w = np.random.default_rng(0).standard_normal((B, T, 2)).astype("float32")
    kweights = ke.trainable_weights + kl.trainable_weights + kd.trainable_weights
    y = kd(kl(ke(torch.tensor(ids))))
    (y * torch.tensor(w)).sum().backward()
    kg = [v.value.grad.numpy() for v in kweights]
    with rb.GradientTape() as tape:
        loss = ops.sum(rd(rl(re(ids))) * w)
    rg = tape.gradient(loss, re.trainable_weights + rl.trainable_weights + rd.trainable_weights)
    for a, b in zip(rg, kg):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL)
    np.testing.assert_array_equal(rg[0][0], 0)          # the padding id's row gets no gradient through the mask


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax", "gelu", "selu"])
def test_dense_gradients_match_keras(activation):
    k, r = pair(lambda: keras.layers.Dense(5, activation=activation), lambda: Dense(5, activation=activation),
                shape=(B, T, F))
    compare(k, r, data())


def test_regularization_losses_have_gradients():
    layer = Dense(3, kernel_regularizer=rb.regularizers.L2(0.1), bias_regularizer=rb.regularizers.L1(0.01),
                  bias_initializer="ones")
    layer(data((2, F)))
    with rb.GradientTape() as tape:
        penalty = sum(layer.losses)
    dK, db = tape.gradient(penalty, layer.trainable_weights)
    K, b = layer.get_weights()
    np.testing.assert_allclose(dK, 2 * 0.1 * K, rtol=1e-6)
    np.testing.assert_allclose(db, 0.01 * np.sign(b), rtol=1e-6)


def test_dropout_backward_uses_the_forward_mask():
    x = rb.Variable(np.ones((4, 50), "float32"))
    with rb.GradientTape() as tape:
        y = Dropout(0.4, seed=3)(x, training=True)
        loss = ops.sum(y)
    g = tape.gradient(loss, x)
    np.testing.assert_allclose(g, np.asarray(rb.backend.unwrap(y)), rtol=1e-6)   # d(sum(x*m))/dx = m, and y = m here


def test_custom_ops_cell_gradients_by_finite_differences():
    class NormCell(rb.layers.Layer):
        """A cell using einsum, concatenate, split, maximum and sqrt: no backward written for it."""
        state_size = 4

        def build(self, input_shape):
            self.W = self.add_weight((input_shape[-1] + 4, 8), "glorot_uniform", name="W", dtype="float64")

        def call(self, x, states):
            z = ops.einsum("bi,ij->bj", ops.concatenate([x, states[0]], axis=-1), self.W)
            a, b = ops.split(z, 2, axis=-1)
            h = ops.tanh(a) * ops.sigmoid(b) / ops.sqrt(1 + ops.maximum(a * a, 0.1))
            return h, [h]

    layer = RNN(NormCell(dtype="float64"), return_sequences=True, dtype="float64")
    xs = np.random.default_rng(0).standard_normal((2, 4, 3))
    layer(xs)
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    check_gradients(lambda x, h0: layer(x, initial_state=[h0], mask=mask), xs, np.random.default_rng(1).standard_normal((2, 4)))
    W = layer.cell.W.numpy()

    def loss_of(Wv):
        layer.cell.W.assign(Wv)
        v = float(np.sum(np.asarray(layer(xs, mask=mask)) ** 2))
        layer.cell.W.assign(W)
        return v

    with rb.GradientTape() as tape:
        loss = ops.sum(ops.square(layer(xs, mask=mask)))
    np.testing.assert_allclose(tape.gradient(loss, layer.cell.W), numeric_gradient(loss_of, W), rtol=1e-5, atol=1e-7)


def test_stateful_gradients_stop_at_the_batch_boundary():
    layer = RNN(LSTMCell(U), stateful=True, return_sequences=True)
    x1, x2 = data(seed=1), data(seed=2)
    layer(x1)
    carried = [s.numpy().copy() for s in layer.states]
    with rb.GradientTape() as tape:
        loss = ops.sum(layer(x2))
    g = tape.gradient(loss, layer.trainable_weights)
    fresh = RNN(LSTMCell(U), return_sequences=True)
    fresh.build(x2.shape)
    fresh.set_weights(layer.get_weights())
    with rb.GradientTape() as tape:
        loss = ops.sum(fresh(x2, initial_state=carried))    # the carried states as constants
    for a, b in zip(g, tape.gradient(loss, fresh.trainable_weights)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_tape_api():
    x = rb.Variable(np.array([1.0, 2.0, 3.0]))
    unused = rb.Variable(np.ones(2))
    layer = Dense(2)
    y = layer(np.ones((1, 3), "float32"))
    assert type(y) is np.ndarray                               # no tape: plain arrays, nothing recorded
    with rb.GradientTape() as tape:
        y = ops.sum(x * x)
        assert isinstance(y, rb.autodiff.Tensor) and float(y) == 14.0
    gx, gu = tape.gradient(y, [x, unused])
    np.testing.assert_array_equal(gx, [2, 4, 6])
    np.testing.assert_array_equal(gu, [0, 0])
    with pytest.raises(RuntimeError, match="non-persistent"):
        tape.gradient(y, x)
    with rb.GradientTape(persistent=True) as tape:
        y = ops.sum(ops.exp(x))
        z = ops.sum(rb.stop_gradient(x) * x)
    np.testing.assert_allclose(tape.gradient(y, x), np.exp([1, 2, 3]))
    np.testing.assert_allclose(tape.gradient(z, x), [1, 2, 3])
    assert tape.gradient(z, unused, unconnected_gradients="none") is None
    assert not isinstance(ops.sum(x * x), rb.autodiff.Tensor)   # after the tape closes nothing is recorded
    with rb.GradientTape() as tape:
        w = tape.watch(np.array([2.0]))
        y = w * w * w
    np.testing.assert_allclose(tape.gradient(y, w), [12.0])
    with rb.GradientTape() as tape:
        a = np.array([1.0, 2.0]) * rb.Variable(np.array([3.0, 4.0]))   # NumPy on the left defers to the Variable
    assert isinstance(a, rb.autodiff.Tensor)
    assert rb.ops._recorder is None                             # closed tapes leave nothing behind
