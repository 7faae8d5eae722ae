"""Training never gives a silent wrong answer and never stops half-way (issue: trust in training).

- the first step of a model built lazily is applied (Keras 3 is the oracle);
- `optimizer.iterations` is an int64 counter whatever `floatx` is;
- a `fit` that fails, in any epoch, puts the model back as it was -- a model it built is unbuilt again;
- Ctrl-C (a `KeyboardInterrupt` raised anywhere, or a real SIGINT) leaves the model at the start or at the end of
  the interrupted step, never in between: compared with a replay of the same run without the interrupt;
- a model call that raises in a later layer puts back the states an earlier stateful layer had changed.
"""
import os
import signal

import numpy as np
import pytest

os.environ.setdefault('KERAS_BACKEND', 'torch')
import rnnbook as rb  # noqa: E402
from rnnbook import layers as L  # noqa: E402

X1, Y1 = np.ones((4, 3), 'float32'), np.zeros((4, 1), 'float32')


def keras_first_step():
    "Keras 3's kernel and step count after one `train_on_batch` of `Dense(1, 'ones')` under SGD and MSE."
    keras = pytest.importorskip('keras')
    m = keras.Sequential([keras.layers.Dense(1, kernel_initializer='ones')])
    m.compile(optimizer=keras.optimizers.SGD(0.01), loss='mse')
    m.train_on_batch(X1, Y1)
    return m.layers[0].get_weights()[0], int(m.optimizer.iterations.numpy())


class Subclassed(rb.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(1, kernel_initializer='ones')

    def call(self, x): return self.dense(x)


def sequential(): return rb.Sequential([L.Dense(1, kernel_initializer='ones')])


@pytest.mark.parametrize('make', [sequential, Subclassed], ids=['sequential_without_input', 'subclassed'])
@pytest.mark.parametrize('how', ['train_on_batch', 'fit'])
def test_first_step_of_an_unbuilt_model_is_applied(make, how):
    kernel, steps = keras_first_step()
    model = make()
    model.compile(rb.optimizers.SGD(0.01), 'mse')
    assert not model.built
    if how == 'fit': model.fit(X1, Y1, batch_size=4, verbose=0)
    else: model.train_on_batch(X1, Y1)
    np.testing.assert_allclose(model.weights[0].numpy(), kernel, rtol=1e-6)
    assert int(model.optimizer.iterations.numpy()) == steps == 1


def test_first_step_of_a_custom_loop_is_applied():
    kernel, _ = keras_first_step()
    model, opt = sequential(), rb.optimizers.SGD(0.01)
    with rb.GradientTape() as tape:
        loss = rb.ops.mean(rb.ops.square(model(X1) - Y1))
    opt.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
    np.testing.assert_allclose(model.weights[0].numpy(), kernel, rtol=1e-6)


@pytest.mark.parametrize('floatx', ['float16', 'float32', 'float64'])
def test_iterations_is_an_int64_counter(floatx):
    rb.set_floatx(floatx)
    try: opt = rb.optimizers.Adam(0.1)
    finally: rb.set_floatx('float32')
    assert opt.iterations.dtype == np.dtype('int64')
    start = {'float16': 2048, 'float32': 2 ** 24, 'float64': 2 ** 53}[floatx]   # where a counter of floatx stops
    opt.iterations.assign(start)
    w = rb.Variable(np.zeros(2, 'float32'), name='w')
    for _ in range(3): opt.apply([np.ones(2, 'float32')], [w])
    assert int(opt.iterations.numpy()) == start + 3


def lstm_model(stateful=False, built=True):
    rb.set_seed(0)
    layers = [L.LSTM(4, stateful=stateful, return_sequences=True), L.LSTM(3, stateful=stateful), L.Dense(3)]
    if built: layers = [rb.Input(batch_shape=(8 if stateful else None, 5, 2))] + layers
    model = rb.Sequential(layers)
    model.compile(rb.optimizers.Adam(0.05), rb.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(n=32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 2)).astype('float32'), rng.integers(0, 3, n)


def everything(model):
    "What a step may change: weights, stateful states, optimizer variables (values and names)."
    states = [v.numpy() for l in model.layers for v in rb.backend.flatten(l.__dict__.get('states') or [])]
    opt = [(v.shape, v.numpy()) for v in model.optimizer.variables]
    return model.get_weights(), states, opt


def assert_same(a, b):
    (wa, sa, oa), (wb, sb, ob) = a, b
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert len(sa) == len(sb) and all(np.array_equal(x, y) for x, y in zip(sa, sb))
    assert [p for p, _ in oa] == [p for p, _ in ob]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(oa, ob))


def test_failed_fit_unbuilds_a_model_it_built():
    x, y = data()
    y[20] = 7                                       # an out-of-range sparse label, in the second batch
    model = lstm_model(built=False)
    with pytest.raises(ValueError, match='class ids must be in'):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert not model.built and model.weights == []
    assert [v.path.split('/')[-1] for v in model.optimizer.variables] == ['iteration', 'learning_rate']
    assert int(model.optimizer.iterations.numpy()) == 0
    y[20] = 1                                       # the model trains normally afterwards
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert model.built and int(model.optimizer.iterations.numpy()) == 2


class FailAtEpoch(rb.callbacks.Callback):
    def __init__(self, epoch): super().__init__(); self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch: raise ValueError(f"failing at epoch {epoch}")


@pytest.mark.parametrize('stateful', [False, True])
def test_failed_fit_in_a_later_epoch_puts_everything_back(stateful):
    x, y = data()
    model = lstm_model(stateful)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)      # slots and states exist already
    before = everything(model)
    with pytest.raises(ValueError, match='failing at epoch 2'):
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False, callbacks=[FailAtEpoch(2)])
    assert_same(everything(model), before)


def replay(steps, stateful, x, y):
    "A fresh identical model trained for exactly `steps` steps on the same batches, without interrupts."
    model = lstm_model(stateful)
    model.fit(x[:8 * steps], y[:8 * steps], batch_size=8, epochs=1, verbose=0, shuffle=False)
    return everything(model)


class InterruptingAdam(rb.optimizers.Adam):
    "Adam that is interrupted while it updates its `at`-th variable of step `step` (a `KeyboardInterrupt` or SIGINT)."
    def __init__(self, step, at, how, **kwargs):
        super().__init__(**kwargs)
        self.step, self.at, self.how, self.seen = step, at, how, 0

    def update_step(self, gradient, variable, learning_rate):
        if int(self.iterations.numpy()) == self.step - 1:
            self.seen += 1
            if self.seen == self.at:
                if self.how == 'raise': raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGINT)          # a real Ctrl-C, held back until the step is whole
        super().update_step(gradient, variable, learning_rate)


@pytest.mark.parametrize('stateful', [False, True])
@pytest.mark.parametrize('how, whole_steps', [('raise', 2), ('sigint', 3)])
def test_interrupt_inside_the_update_leaves_no_half_step(stateful, how, whole_steps):
    if how == 'sigint' and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's KeyboardInterrupt in this process")
    x, y = data()
    model = lstm_model(stateful)
    model.compile(InterruptingAdam(step=3, at=4, how=how, learning_rate=0.05),
                  rb.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    # 'raise': the third step is undone (the start of the step); SIGINT: it is finished first (its end)
    assert int(model.optimizer.iterations.numpy()) == whole_steps
    assert_same(everything(model), replay(whole_steps, stateful, x, y))


class InterruptedLayer(L.Layer):
    "Passes its input on; interrupted on its `at`-th call, after the stateful LSTMs have run: `how` Ctrl-C(s)."
    def __init__(self, at, how, **kwargs):
        super().__init__(**kwargs)
        self.at, self.how, self.calls = at, how, 0

    def call(self, x):
        self.calls += 1
        if self.calls == self.at:
            if self.how == 'raise': raise KeyboardInterrupt
            for _ in range(self.how): os.kill(os.getpid(), signal.SIGINT)
        return x


@pytest.mark.parametrize('how, whole_steps', [('raise', 2), (1, 3), (2, 2)], ids=['raise', 'one_sigint', 'two_sigints'])
def test_interrupt_inside_the_forward_pass(how, whole_steps):
    "Raised, or a second Ctrl-C: the step is undone (states too). One Ctrl-C: the step ends first."
    if how != 'raise' and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's KeyboardInterrupt in this process")
    x, y = data()
    model = lstm_model(stateful=True)
    model.add(InterruptedLayer(at=3, how=how))
    model.layers[-1].calls = 0                        # (adding it called it on placeholders): the third batch
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations.numpy()) == whole_steps
    assert_same(everything(model), replay(whole_steps, True, x, y))


class FailsWhenAsked(L.Layer):
    fail = False

    def call(self, x):
        if self.fail: raise RuntimeError('a later layer fails')
        return x


def test_a_failing_later_layer_puts_back_an_earlier_stateful_layer():
    rnn, bad = L.SimpleRNN(2, stateful=True, return_sequences=True), FailsWhenAsked()
    model = rb.Sequential([rb.Input(batch_shape=(2, 3, 2)), rnn, bad])
    model(np.ones((2, 3, 2), 'float32'))
    states = [v.numpy() for v in rnn.states]
    bad.fail = True
    with pytest.raises(RuntimeError, match='later layer'):
        model(np.ones((2, 3, 2), 'float32'))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(states, rnn.states))
    with pytest.raises(RuntimeError, match='later layer'):
        model.predict(np.ones((2, 3, 2), 'float32'), batch_size=2, verbose=0)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(states, rnn.states))
