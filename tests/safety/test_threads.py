"""Layers called from several threads: one build, every caller on the layer's weights, no stateful update lost.

The rules (notebook 06, *Threads*): a built layer that is not stateful takes no lock; the first call of an unbuilt
layer (build and call) is serialized under one reentrant lock; a stateful layer's read-states -> loop ->
write-states is serialized under the same lock. Each test races threads released together by a barrier, with
the interpreter switching threads as often as it can."""
import contextlib
import sys
import threading

import numpy as np
import pytest

import rnnbook as rb
from rnnbook import layers as L


@contextlib.contextmanager
def frequent_switches():
    "Switch threads every microsecond (the default is 5 ms), so that races show up."
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try: yield
    finally: sys.setswitchinterval(interval)


def race(n, fn):
    "Run `fn(i)` in `n` threads released together; their results (an exception is re-raised here)."
    barrier, results, errors = threading.Barrier(n), [None] * n, []
    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e: errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    with frequent_switches():
        for t in threads: t.start()
        for t in threads: t.join()
    if errors: raise errors[0]
    return results


def x3(B=2, T=5, D=3, seed=0): return np.random.default_rng(seed).standard_normal((B, T, D)).astype('float32')


def counter(stateful=True, **kwargs):
    "A SimpleRNN whose state counts its calls: h_t = x_t + h_{t-1}, so one call on ones((1, 1, 1)) adds 1."
    return L.SimpleRNN(1, activation=None, kernel_initializer='ones', recurrent_initializer='identity',
                       bias_initializer='zeros', stateful=stateful, **kwargs)


@pytest.mark.parametrize('make', [lambda: L.LSTM(4), lambda: rb.Sequential([L.GRU(4), L.Dense(2)])],
                         ids=['lstm', 'sequential'])
def test_first_call_from_threads_builds_once(make):
    "Four threads making the first call of one layer: one set of weights, and every output computed with it."
    x = x3()
    for _ in range(5):
        layer = make()
        outs = race(4, lambda i: layer(x))
        n = 3 if isinstance(layer, L.LSTM) else 5
        assert len(layer.weights) == n, [w.path for w in layer.weights]
        for y in outs: np.testing.assert_array_equal(y, layer(x))


def test_failed_first_call_in_one_thread_leaves_the_others_one_layer():
    "One thread's first call fails after building (a bad initial state): the layer it restores is not the one the others use."
    x = x3()
    for _ in range(20):
        layer = L.LSTM(4)
        def call(i):
            if i % 2: return layer(x)
            with pytest.raises(ValueError, match='initial state'): layer(x, initial_state=[np.zeros((2, 4))])
        outs = race(4, call)
        assert len(layer.weights) == 3
        for y in outs[1::2]: np.testing.assert_array_equal(y, layer(x))


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_stateful_calls_from_threads_lose_no_update(dtype):
    "A stateful layer called 4 x 500 times from threads (its first call among them) counts every call."
    layer, x = counter(), np.ones((1, 1, 1), dtype)
    race(4, lambda i: [layer(x) for _ in range(500)])
    assert layer.states[0].numpy().item() == 2000


def test_stateful_model_from_threads_loses_no_update():
    "The same through an unbuilt Sequential: its first call builds the stateful layer, every call counts."
    model, x = rb.Sequential([counter(return_sequences=True), L.Dense(1, use_bias=False)]), np.ones((1, 1, 1))
    race(4, lambda i: [model(x) for _ in range(200)])
    assert model.layers[0].states[0].numpy().item() == 800
    assert len(model.weights) == 4     # kernel, recurrent kernel, bias, Dense kernel


def test_built_layer_takes_no_lock_stateful_layer_does():
    "While another thread holds the layer lock, a built non-stateful layer still runs; a stateful one waits for it."
    from rnnbook.layer import _LAYER_LOCK
    x = x3()
    free, stateful = L.GRU(3), L.GRU(3, stateful=True)
    free(x), stateful(x)
    done = {}
    def call(name, layer): layer(x); done[name] = True
    with _LAYER_LOCK:
        threads = [threading.Thread(target=call, args=a) for a in (('free', free), ('stateful', stateful))]
        for t in threads: t.start()
        threads[0].join(timeout=30)
        threads[1].join(timeout=0.5)
        assert done == {'free': True}, done       # the stateful call waits for the lock
    threads[1].join(timeout=30)
    assert done == {'free': True, 'stateful': True}


def test_failing_model_calls_undo_no_other_threads_update():
    "A model call that fails after its stateful layer ran puts its states back; that must not undo another thread's call."
    class FailsInSomeThreads(L.Layer):
        def call(self, x):
            if threading.current_thread().name.startswith('fail'): raise RuntimeError('this thread fails')
            return x
    model = rb.Sequential([rb.Input(batch_shape=(1, 1, 1)), counter(return_sequences=True), FailsInSomeThreads()])
    x = np.ones((1, 1, 1))

    def calls(i):
        threading.current_thread().name = f"{'fail' if i % 2 else 'pass'}-{i}"
        for _ in range(200):
            try: model(x)
            except RuntimeError: pass
    race(4, calls)
    assert model.layers[0].states[0].numpy().item() == 400      # the two passing threads' calls, every one
