"""The compiled LSTM kernel (notebook 08b0) under threads, interrupts and fork: its worker threads never mix two
calls' slices, an interrupt leaves nothing half-written that a later call reads, and a forked child makes its own
workers instead of waiting on its parent's."""
import os
import threading
import _thread

import numpy as np
import pytest

from rnnbook import compiled, ops
from rnnbook.layers import LSTM
from measure import in_forked_child  # tests/helpers

pytestmark = pytest.mark.skipif(
    compiled.reason('lstm', np.zeros((1, 2, 1), np.float32), ops.tanh) is not None,
    reason=f"no compiled kernel here: {compiled.reason('lstm', np.zeros((1, 2, 1), np.float32), ops.tanh)}")


@pytest.fixture
def split(monkeypatch):
    "Every call cut into one slice per core, however small."
    monkeypatch.setattr(compiled, "SPLIT_FLOPS", 0)
    monkeypatch.setattr(compiled, "MIN_SLICE", 1)


def reference(layer, x, monkeypatch):
    "The layer's output by the NumPy passes."
    with monkeypatch.context() as m:
        m.setenv("RNNBOOK_COMPILED", "0")
        return np.asarray(layer(x))


def test_calls_from_many_threads_keep_their_own_slices(split, monkeypatch):
    rng = np.random.default_rng(0)
    layer = LSTM(8, return_sequences=True)
    xs = [rng.standard_normal((6, 7, 3)).astype("float32") for _ in range(6)]
    want = [reference(layer, x, monkeypatch) for x in xs]
    got, errors = [None] * len(xs), []
    def run(i):
        try:
            for _ in range(15):
                got[i] = np.asarray(layer(xs[i]))
        except Exception as e:       # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads: t.start()
    for t in threads: t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_an_interrupt_while_the_workers_run_leaves_later_calls_right(split, monkeypatch):
    rng = np.random.default_rng(1)
    layer = LSTM(64, return_sequences=True)
    long_x = rng.standard_normal((32, 3000, 16)).astype("float32")
    layer(long_x[:, :2])
    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in range(1000):         # 50-100 ms a call here: the interrupt lands in one, whatever the machine
            layer(long_x)
    timer.join()
    x = rng.standard_normal((4, 9, 16)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(x)), reference(layer, x, monkeypatch), atol=1e-5)


def _child():
    x = np.random.default_rng(2).standard_normal((40, 30, 8)).astype("float32")
    layer = LSTM(16)
    compiled.SPLIT_FLOPS, compiled.MIN_SLICE = 0, 1
    return np.asarray(layer(x)).shape


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_makes_its_own_workers(split):
    LSTM(4)(np.zeros((4, 3, 2), "float32"))       # the parent's workers exist
    assert in_forked_child(_child) == (40, 16)
