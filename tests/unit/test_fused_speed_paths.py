"""The speed paths of the fused loops (notebook 08b) against the reference loop: inference runs its steps in blocks
(`StepInputs.budget` bytes each, outputs copied out once per block), so the tests shrink the budget until blocks
hold 1, 2 or 3 steps and check every option still gives the reference loop's outputs and states."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.fused import StepInputs
from rnnbook.layers import RNN, SimpleRNN, GRU, LSTM, SimpleRNNCell, GRUCell, LSTMCell
from rnnbook.recurrent import fused_ok

CELL_OF = {SimpleRNN: SimpleRNNCell, GRU: GRUCell, LSTM: LSTMCell}
LAYERS = [(SimpleRNN, {}), (GRU, {}), (GRU, {'reset_after': False}), (LSTM, {}),
          (LSTM, {'activation': 'softsign', 'recurrent_activation': 'hard_sigmoid'})]
MASK = np.array([[1] * 7, [1] * 4 + [0] * 3, [0, 1, 1, 0, 1, 0, 1], [0] * 7], bool)
B, T, D, U = 4, 7, 5, 6


def pair(cls, kw, x, **opts):
    "A fused layer and the same weights in RNN(cell), the reference loop."
    a, b = cls(U, **kw, **opts), RNN(CELL_OF[cls](U, **kw), **opts)
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    return a, b


def steps_per_block(n, x, units=U):
    "The `StepInputs.budget` that makes inference blocks of `n` steps for `x` `(B, T, D)`."
    return n * (units + x.shape[2] + 1) * x.shape[0] * x.itemsize


def assert_close(a, b, atol):
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(u, v, atol=atol, rtol=0)


@pytest.mark.parametrize('cls,kw', LAYERS)
@pytest.mark.parametrize('n', [1, 2, 3])
@pytest.mark.parametrize('dtype,atol', [('float32', 1e-5), ('float64', 1e-12)])
def test_blocks_of_steps_equal_reference_loop(monkeypatch, cls, kw, n, dtype, atol):
    x = np.random.default_rng(0).standard_normal((B, T, D)).astype(dtype)
    monkeypatch.setattr(StepInputs, 'budget', steps_per_block(n, x))
    assert StepInputs(x, np.zeros((B, U), dtype), False).n == n
    for go_backwards in (False, True):
        for rs in (True, False):
            for mask in (None, MASK):
                a, b = pair(cls, kw, x, return_sequences=rs, return_state=True, go_backwards=go_backwards)
                assert fused_ok(a, False)
                assert_close(a(x, mask=mask), b(x, mask=mask), atol)


def test_block_memory_does_not_grow_with_time(monkeypatch):
    x = np.zeros((2, 1000, 3), 'float32')
    monkeypatch.setattr(StepInputs, 'budget', steps_per_block(10, x, units=4))
    s = StepInputs(x, np.zeros((2, 4), 'float32'), go_backwards=False)
    assert s.all.shape == (11, 4 + 3 + 1, 2)                   # 10 steps and the carried state, not 1000
    assert StepInputs(x, np.zeros((2, 4), 'float32'), False, keep=True).all.shape == (8, 1001, 2)


def test_stateful_lstm_across_blocks_equals_one_call(monkeypatch):
    x = np.random.default_rng(1).standard_normal((B, 2 * T, D)).astype('float32')
    monkeypatch.setattr(StepInputs, 'budget', steps_per_block(3, x))
    whole, parts = LSTM(U, return_sequences=True), LSTM(U, return_sequences=True, stateful=True)
    whole.build(x.shape)
    parts.build(x[:, :T].shape)
    parts.set_weights(whole.get_weights())
    y = np.concatenate([np.asarray(parts(x[:, :T])), np.asarray(parts(x[:, T:]))], axis=1)
    np.testing.assert_allclose(y, np.asarray(whole(x)), atol=1e-6, rtol=0)


def test_training_gradients_unchanged_by_the_inference_budget(monkeypatch):
    x = np.random.default_rng(2).standard_normal((B, T, D)).astype('float32')
    layer = LSTM(U, return_sequences=True)
    layer.build(x.shape)

    def grads():
        with rb.GradientTape() as tape:
            loss = rb.ops.mean(rb.ops.square(layer(x)))
        return [np.asarray(g) for g in tape.gradient(loss, layer.trainable_weights)]
    before = grads()
    monkeypatch.setattr(StepInputs, 'budget', 1)
    for g, h in zip(grads(), before):
        np.testing.assert_array_equal(g, h)
