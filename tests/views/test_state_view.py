"""The state carry-over view: figures against baseline images, the explorer's next-batch and reset buttons."""


import matplotlib
import matplotlib.style
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.layers import GRU, LSTM, SimpleRNN
from rnnbook.state_view import StateView, state_explorer, state_figure, stateless_traces
from rnnbook.traces import trace_batches
from baseline_tools import check_png  # noqa: E402
from rnnbook.views import render_png  # noqa: E402

TOL = 2.0      # RMS of the pixel difference (0-255 scale) that matplotlib's compare_images accepts
DPI = 60


def check_baseline(fig, name, tmp_path):
    "Compare `fig` (rendered at DPI) with its baseline image."
    check_png(render_png(fig, DPI), name, tmp_path, TOL)


def stream(B=3, T=24, F=3, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype("float32")


def chunks(x, size):
    return [x[:, k:k + size] for k in range(0, x.shape[1], size)]


@pytest.fixture(autouse=True)
def _style():
    with matplotlib.style.context("default"):
        yield


def test_state_figure_baseline(tmp_path):
    rb.set_seed(0)
    layer = SimpleRNN(5, stateful=True, name="simple_rnn")     # a fixed name: the header shows it
    batches = chunks(stream(), 8)
    bts = trace_batches(layer, batches, resets=(2,))
    fig = state_figure(bts, unit=1, sample=0, stateless=stateless_traces(layer, batches))
    check_baseline(fig, "state_carry_over.png", tmp_path)


def test_state_figure_lstm_without_comparison_baseline(tmp_path):
    rb.set_seed(1)
    layer = LSTM(6, stateful=True, name="lstm")
    bts = trace_batches(layer, chunks(stream(B=2, T=30, seed=1), 10))
    fig = state_figure(bts, unit=3, sample=1)
    check_baseline(fig, "state_lstm_no_comparison.png", tmp_path)


@pytest.mark.parametrize("cls", [SimpleRNN, GRU, LSTM])
def test_stateless_traces_are_the_stateless_layer(cls):
    rb.set_seed(2)
    layer = cls(4, stateful=True)
    batches = chunks(stream(), 6)
    trace_batches(layer, batches[:2])                                     # the layer now holds a state
    held = [v.numpy() for v in layer.states]
    free = cls(4)
    free.build(batches[0].shape)
    free.set_weights(layer.get_weights())
    for tr, xb in zip(stateless_traces(layer, batches), batches):
        np.testing.assert_allclose(tr["h"][:, -1], free(xb), rtol=1e-5, atol=1e-6)
    for v, h in zip(layer.states, held):
        np.testing.assert_array_equal(v.numpy(), h)                        # untouched


def test_view_lines_and_difference():
    rb.set_seed(3)
    layer = GRU(4, stateful=True)
    batches = chunks(stream(), 8)
    bts = trace_batches(layer, batches, resets=(1,))
    free = stateless_traces(layer, batches)
    view = StateView()
    view.update(bts, free, unit=2, sample=2)
    h = np.concatenate([b.trace["h"] for b in bts], axis=1)
    f = np.concatenate([t["h"] for t in free], axis=1)
    np.testing.assert_array_equal(view.line_state.get_ydata(), h[2, :, 2])
    np.testing.assert_array_equal(view.line_free.get_ydata(), f[2, :, 2])
    np.testing.assert_allclose(view.diff_image.get_array(), np.abs(h[2] - f[2]).T)
    diff = view.diff_image.get_array()
    assert diff[:, :16].max() < 1e-6                                      # batch 0 and the reset batch 1
    assert diff[:, 16].max() > 1e-3                                       # batch 2 carries batch 1's state
    # the state entering batch 2 is drawn at the boundary, at the value batch 1 ended with
    np.testing.assert_allclose(view.dots_in.get_xdata(), [15.5])
    np.testing.assert_allclose(view.dots_in.get_ydata(), [h[2, 15, 2]], atol=1e-6)


def marker(ex):
    return ex.status.value


def test_explorer_next_batch_carries_state():
    rb.set_seed(4)
    ex = state_explorer(SimpleRNN(8, stateful=True), chunks(stream(), 6))
    assert ex.draws == 1 and 'data-batches="1"' in marker(ex)
    ex.next_button.click()
    ex.next_button.click()
    assert 'data-batches="3"' in marker(ex) and 'data-reset="false"' in marker(ex)
    for prev, nxt in zip(ex.batch_traces, ex.batch_traces[1:]):
        np.testing.assert_array_equal(nxt.state_in[0], prev.state_out[0])
    np.testing.assert_array_equal(ex.layer.states[0].numpy(), ex.batch_traces[-1].state_out[0])
    assert len(ex.view.line_state.get_xdata()) == 18


def test_explorer_reset_starts_next_batch_from_zeros():
    rb.set_seed(5)
    ex = state_explorer(LSTM(8, stateful=True), chunks(stream(), 6))
    ex.next_button.click()
    assert np.abs(ex.batch_traces[-1].state_in[0]).max() > 0
    draws = ex.draws
    ex.reset_button.click()
    assert ex.draws == draws + 1 and 'data-reset-pending="true"' in marker(ex)
    assert all(not v.numpy().any() for v in ex.layer.states)              # reset_state() ran at once
    ex.next_button.click()
    last = ex.batch_traces[-1]
    assert last.reset and 'data-reset="true"' in marker(ex) and 'data-state-in="0"' in marker(ex)
    assert not any(s.any() for s in last.state_in)
    np.testing.assert_allclose(last.trace["h"], ex.stateless[-1]["h"], atol=1e-6)   # = the stateless run
    assert 'data-reset-pending="false"' in marker(ex)


def test_explorer_sliders_update_marker_and_wrap_around():
    rb.set_seed(6)
    batches = chunks(stream(), 12)
    ex = state_explorer(SimpleRNN(5, stateful=True), batches)
    ex.controls["unit"].value = 4
    assert 'data-unit="4"' in marker(ex)
    np.testing.assert_array_equal(ex.view.line_state.get_ydata(), ex.batch_traces[0].trace["h"][0, :, 4])
    ex.controls["sample"].value = 2
    assert 'data-sample="2"' in marker(ex) and ex.draws == 3
    ex.next_button.click(); ex.next_button.click()                        # past the end: starts over at batch 0
    assert len(ex.batch_traces) == 3
    np.testing.assert_array_equal(ex.batch_traces[2].state_in[0], ex.batch_traces[1].state_out[0])
    assert ex.last_draw_ms is not None and ex.image.value[:4] == b"\x89PNG"


def test_explorer_errors():
    with pytest.raises(ValueError, match="stateful=False"):
        state_explorer(SimpleRNN(2), chunks(stream(), 6))
    with pytest.raises(ValueError, match="at least one batch"):
        state_explorer(SimpleRNN(2, stateful=True), [])
