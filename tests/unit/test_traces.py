"""rb.trace: hand-computed gate values on tiny examples, and exact reproduction of every layer's output."""

import itertools

import numpy as np
import pytest

import rnnbook as rb
from rnnbook.initializers import Constant
from rnnbook.layers import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell,
                            StackedRNNCells)
from rnnbook.traces import trace, trace_batches

B, T, F, U = 3, 6, 4, 3
MASKS = {"none": None,
         "right_padded": np.array([[1] * 6, [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]], bool),
         "holes": np.array([[0, 1, 1, 0, 1, 1], [1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0]], bool)}


def data(shape=(B, T, F), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def sig(z):
    return 1 / (1 + np.exp(-z))


def test_lstm_hand_computed():
    layer = LSTM(1, kernel_initializer=Constant(0.5), recurrent_initializer=Constant(-0.25),
                 bias_initializer=Constant(0.1), unit_forget_bias=False)
    x = np.array([[[2.0], [-1.0]]], "float32")
    tr = trace(layer, x)
    z1 = 0.5 * 2 + 0.1                                          # h0 = 0
    i1 = f1 = o1 = sig(z1)
    ct1 = np.tanh(z1)
    c1 = i1 * ct1
    h1 = o1 * np.tanh(c1)
    z2 = 0.5 * -1 - 0.25 * h1 + 0.1
    f2 = sig(z2)
    c2 = f2 * c1 + sig(z2) * np.tanh(z2)
    h2 = sig(z2) * np.tanh(c2)
    np.testing.assert_allclose([tr["i"][0, 0, 0], tr["f"][0, 0, 0], tr["o"][0, 0, 0], tr["c_tilde"][0, 0, 0],
                                tr["c"][0, 0, 0], tr["h"][0, 0, 0]], [i1, f1, o1, ct1, c1, h1], rtol=1e-6)
    np.testing.assert_allclose([tr["f"][0, 1, 0], tr["c"][0, 1, 0], tr["h"][0, 1, 0]], [f2, c2, h2], rtol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_hand_computed(reset_after):
    layer = GRU(1, kernel_initializer=Constant(0.5), recurrent_initializer=Constant(2.0),
                bias_initializer=Constant(0.1), reset_after=reset_after)
    h0 = np.array([[0.5]], "float32")
    tr = trace(layer, np.array([[[1.0]]], "float32"), initial_state=[h0])
    z = sig(0.5 + 2.0 * 0.5 + (0.2 if reset_after else 0.1))
    r = sig(0.5 + 2.0 * 0.5 + (0.2 if reset_after else 0.1))
    hh = np.tanh(0.5 + 0.1 + r * (2.0 * 0.5 + 0.1)) if reset_after else np.tanh(0.5 + 0.1 + 2.0 * (r * 0.5))
    h = z * 0.5 + (1 - z) * hh
    np.testing.assert_allclose([tr["z"][0, 0, 0], tr["r"][0, 0, 0], tr["h_tilde"][0, 0, 0], tr["h"][0, 0, 0]],
                               [z, r, hh, h], rtol=1e-6)


def test_simple_rnn_hand_computed():
    layer = SimpleRNN(1, kernel_initializer=Constant(1.0), recurrent_initializer=Constant(0.5),
                      bias_initializer=Constant(-0.5), activation="relu")
    tr = trace(layer, np.array([[[1.0], [2.0], [-3.0]]], "float32"))
    np.testing.assert_allclose(tr["pre"][0, :, 0], [0.5, 1.75, -3.5 + 0.875 + 0.0], rtol=1e-6)
    np.testing.assert_allclose(tr["h"][0, :, 0], [0.5, 1.75, 0.0], rtol=1e-6)


KINDS = {
    "LSTM": lambda **kw: LSTM(U, **kw),
    "GRU": lambda **kw: GRU(U, **kw),
    "GRU_v1": lambda **kw: GRU(U, reset_after=False, **kw),
    "SimpleRNN": lambda **kw: SimpleRNN(U, **kw),
    "RNN(LSTMCell)": lambda **kw: RNN(LSTMCell(U), **kw),
    "stacked": lambda **kw: RNN(StackedRNNCells([LSTMCell(3), GRUCell(2), SimpleRNNCell(4)]), **kw),
}
OPTS = list(itertools.product([False, True], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("rs,st,gb,zo", OPTS[::3] + [OPTS[-1]])
def test_trace_reproduces_every_layer(kind, mask_name, rs, st, gb, zo):
    layer = KINDS[kind](return_sequences=rs, return_state=st, go_backwards=gb, zero_output_for_mask=zo)
    x, mask = data(), MASKS[mask_name]
    tr = trace(layer, x, mask=mask)                             # asserts equality with layer(x) itself
    out = layer(x, mask=mask)
    flat = rb.backend.flatten
    assert len(flat(tr.outputs)) == len(flat(out))
    for a, b in zip(flat(tr.outputs), flat(out)):            # same structure and values as the layer returns
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    expected_mask = np.ones((B, T), bool) if mask is None else mask
    np.testing.assert_array_equal(tr.updated, expected_mask)
    np.testing.assert_array_equal(tr.order, np.arange(T)[::-1] if gb else np.arange(T))
    if kind == "stacked":
        assert [c.kind for c in tr.cells] == ["lstm", "gru", "simple_rnn"]
        assert [c["h"].shape[-1] for c in tr.cells] == [3, 2, 4]
    # held state across masked steps, and the last processed step's state is the final state
    h = tr["h"]
    for b in range(B):
        for k, t in enumerate(tr.order[1:], 1):
            if not expected_mask[b, t]:
                np.testing.assert_array_equal(h[b, t], h[b, tr.order[k - 1]])
    top = tr.cells[-1].kind if tr.cells else tr.kind
    h_final = tr.final_states[-2] if top == "lstm" else tr.final_states[-1]
    np.testing.assert_allclose(h[:, tr.order[-1]], h_final, rtol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("rs,st", [(True, False), (False, True), (True, True)])
def test_trace_bidirectional(merge_mode, rs, st):
    layer = Bidirectional(GRU(U, return_sequences=rs, return_state=st), merge_mode=merge_mode)
    x, mask = data(), MASKS["right_padded"]
    tr = trace(layer, x, mask=mask)
    if rs:                                   # backward trace and output aligned on the input's time steps
        np.testing.assert_allclose(tr.backward["h"][:, 1], tr.backward_output[:, 1], rtol=1e-6)
        np.testing.assert_array_equal(tr.backward_output[1, 4:], 0)        # padding: zeros (Keras forces it)
    for mode in ("concat", "sum", "mul", "ave"):
        m = tr.merge(mode)
        ref = {"concat": np.concatenate([tr.forward_output, tr.backward_output], -1),
               "sum": tr.forward_output + tr.backward_output, "mul": tr.forward_output * tr.backward_output,
               "ave": (tr.forward_output + tr.backward_output) / 2}[mode]
        np.testing.assert_allclose(m, ref, rtol=1e-6)


def test_trace_batches_follows_state_and_resets():
    layer = LSTM(U, stateful=True, return_sequences=True)
    x = data((B, 9, F))
    chunks = [x[:, :3], x[:, 3:6], x[:, 6:]]
    bts = trace_batches(layer, chunks, resets=(2,))
    whole = LSTM(U, return_sequences=True)
    whole.build(x.shape)
    whole.set_weights(layer.get_weights())
    ref = whole(x[:, :6])
    np.testing.assert_allclose(np.concatenate([bts[0].trace.outputs, bts[1].trace.outputs], 1), ref, rtol=1e-5,
                               atol=1e-6)
    for a, b in zip(bts[1].state_in, bts[0].state_out):
        np.testing.assert_array_equal(a, b)
    assert bts[2].reset and all(np.abs(s).max() == 0 for s in bts[2].state_in)
    for v, s in zip(layer.states, bts[2].state_out):              # the layer really advanced
        np.testing.assert_array_equal(v.numpy(), s)


def test_trace_leaves_a_stateful_layer_untouched():
    layer = GRU(U, stateful=True)
    x = data()
    layer(x)
    before = [v.numpy().copy() for v in layer.states]
    tr = trace(layer, x)
    np.testing.assert_array_equal(tr.initial_states[0], before[0])   # starts from the current state
    for v, b in zip(layer.states, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_trace_errors():
    with pytest.raises(ValueError, match="expected a recurrent layer"):
        trace(rb.layers.Dense(2), data())
    with pytest.raises(ValueError, match="stateful=False"):
        trace_batches(LSTM(2), [data()])

    class MyCell(rb.layers.Layer):
        state_size = 2

        def call(self, x, states):
            return states[0], states

    with pytest.raises(ValueError, match="MyCell"):
        trace(RNN(MyCell()), data())


def test_normal_calls_record_nothing():
    """Tracing is a separate replay: a layer call creates no trace state and no tape."""
    layer = LSTM(U)
    layer(data())
    assert rb.ops._recorder is None
    assert not any("trace" in k for k in vars(layer))
