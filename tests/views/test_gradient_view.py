"""The gradient-flow view: dL/dh_t from the tape against finite differences, vanishing gradients, figures."""


import matplotlib
import matplotlib.style
import numpy as np
import pytest

import rnnbook as rb
from rnnbook import ops
from rnnbook.gradient_view import (GradientView, gradient_explorer, gradient_figure, gradient_flow, gradient_flows,
                                   make_layer, perturbed_output, state_gradients, task_input)
from rnnbook.layers import GRU, LSTM, SimpleRNN
from baseline_tools import check_png  # noqa: E402
from rnnbook.views import render_png  # noqa: E402

TOL = 2.0      # RMS of the pixel difference (0-255 scale) that matplotlib's compare_images accepts
DPI = 60
KINDS = ["simple_rnn", "gru", "lstm"]


def check_baseline(fig, name, tmp_path):
    "Compare `fig` (rendered at DPI) with its baseline image."
    check_png(render_png(fig, DPI), name, tmp_path, TOL)


@pytest.fixture(autouse=True)
def _style():
    with matplotlib.style.context("default"):
        yield


def finite_differences(layer, x, loss, eps=1e-6):
    "dL/dh_t by central differences on every entry, nudging h_t through `perturbed_output`."
    B, T = x.shape[:2]
    U = layer.cell.units
    out = np.zeros((B, T, U))
    for t in range(T):
        for b in range(B):
            for u in range(U):
                d = np.zeros((T, B, U)); d[t, b, u] = eps
                out[b, t, u] = (loss(perturbed_output(layer, x, d)) - loss(perturbed_output(layer, x, -d))) / (2 * eps)
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gate_bias", [None, 2.0])
def test_state_gradients_match_finite_differences(kind, gate_bias):
    x = task_input(T=7, features=3, batch=2, seed=3)
    layer = make_layer(kind, units=4, scale=1.3, gate_bias=gate_bias, seed=5, features=3)
    g = state_gradients(layer, x)
    fd = finite_differences(layer, x, lambda h: h.sum() / 2)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    flow = gradient_flow(layer, x)
    np.testing.assert_allclose(flow, np.sqrt((fd ** 2).sum(axis=(0, 2))), rtol=1e-6)


def test_custom_loss_and_reset_after_false():
    x = task_input(T=5, features=2, batch=3, seed=1)
    rb.set_seed(0)
    layer = GRU(3, reset_after=False, dtype="float64")
    loss = lambda h: 0.5 * ops.sum(h * h)
    g = state_gradients(layer, x, loss)
    np.testing.assert_allclose(g[:, -1], layer(x), rtol=1e-12)            # d(0.5 h^2)/dh = h
    fd = finite_differences(layer, x, lambda h: 0.5 * (h * h).sum())
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_float32_layer_and_go_backwards():
    x = task_input(T=6, features=3, batch=2, seed=2)
    rb.set_seed(1)
    fwd = LSTM(4)
    fwd.build(x.shape)
    bwd = LSTM(4, go_backwards=True)
    bwd.build(x.shape)
    bwd.set_weights(fwd.get_weights())
    g32 = state_gradients(fwd, x)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(perturbed_output(bwd, x), bwd(x), rtol=1e-6)
    # by input time: the backwards layer on x is the forwards layer on x reversed, with the steps reversed
    np.testing.assert_allclose(state_gradients(bwd, x), state_gradients(fwd, x[:, ::-1])[:, ::-1], rtol=1e-5)
    wide = LSTM(4, dtype="float64")
    wide.build(x.shape)
    wide.set_weights([w.astype("float64") for w in fwd.get_weights()])
    np.testing.assert_allclose(g32, state_gradients(wide, x), rtol=1e-4, atol=1e-6)


def test_simple_rnn_vanishes_against_lstm():
    "Default initialisation, T=100: the gradient reaching t=0 is far smaller for SimpleRNN than for LSTM."
    x = task_input(T=100)                                                  # 4 x 100 x 8, seed 0
    flows = gradient_flows(x, units=64)
    for f in flows.values():
        np.testing.assert_allclose(f[-1], np.sqrt(64 / 4))                 # the same start for every cell
    ratio = flows["simple_rnn"][0] / flows["lstm"][0]
    print(f"SimpleRNN / LSTM at t=0, T=100: {ratio:.2e}")                 # measured 7.2e-03
    assert ratio < 0.05
    assert flows["simple_rnn"][0] < 1e-9 * flows["simple_rnn"][-1]         # vanished
    # the same check on a float32 SimpleRNN and LSTM, Keras' default dtype
    f32 = {k: gradient_flow(make_layer(k, 64, features=8, dtype="float32"), x) for k in ("simple_rnn", "lstm")}
    assert f32["simple_rnn"][0] / f32["lstm"][0] < 0.05


def test_gate_bias_opens_the_carry_path():
    x = task_input(T=60, features=8, batch=2, seed=1)
    closed = gradient_flows(x, units=16)
    opened = gradient_flows(x, units=16, gate_bias=3.0)
    assert opened["lstm"][0] > 1e3 * closed["lstm"][0]
    assert opened["gru"][0] > 1e3 * closed["gru"][0]
    np.testing.assert_allclose(opened["simple_rnn"], closed["simple_rnn"])  # no gate
    lstm = make_layer("lstm", 5, gate_bias=2.5, features=3)
    np.testing.assert_array_equal(lstm.cell.bias.numpy()[5:10], 2.5)
    gru = make_layer("gru", 5, gate_bias=2.5, features=3)
    np.testing.assert_array_equal(gru.get_weights()[2][:, :5].sum(axis=0), 2.5)


def test_arguments_checked():
    x = task_input(T=4, features=2, batch=1)
    with pytest.raises(ValueError, match="simple_rnn"):
        gradient_flow("transformer", x)
    with pytest.raises(ValueError, match="keeps its own"):
        gradient_flow(SimpleRNN(2), x, scale=2.0)
    with pytest.raises(ValueError, match="batch, time, features"):
        gradient_flow("gru", x[0])
    from rnnbook.layers import RNN, LSTMCell
    with pytest.raises(ValueError, match="SimpleRNN, GRU or LSTM"):
        gradient_flow(RNN([LSTMCell(2), LSTMCell(2)]), x)
    assert gradient_flow("SimpleRNN", x, units=3).shape == (4,)


def test_figure_baseline(tmp_path):
    x = task_input(T=60, features=8, batch=4, seed=0)
    check_baseline(gradient_figure(x, units=16, timestep=30), "gradient_flow.png", tmp_path)


def test_figure_gate_bias_baseline(tmp_path):
    x = task_input(T=60, features=8, batch=4, seed=0)
    check_baseline(gradient_figure(x, units=16, gate_bias=3.0, scale=1.2), "gradient_gate_bias.png", tmp_path)


def test_view_data():
    flows = {"simple_rnn": np.geomspace(1e-8, 1, 20), "lstm": np.geomspace(1e-3, 1, 20)}
    view = GradientView()
    view.update(flows, timestep=25)                                       # clamped to the last step
    np.testing.assert_array_equal(view.lines["lstm"].get_ydata(), flows["lstm"])
    assert len(view.lines["gru"].get_xdata()) == 0
    assert view.cursor.get_xdata()[0] == 19 and view.cursor.get_visible()
    lo, hi = view.ax.get_ylim()
    assert lo <= 1e-8 and hi >= 1


def test_explorer_controls():
    ex = gradient_explorer(T=30, units=8)
    assert ex.draws == 1 and len(ex.cache) == 1
    ex.controls["timestep"].value = 12
    assert 'data-timestep="12"' in ex.status.value and ex.view.cursor.get_xdata()[0] == 12
    assert len(ex.cache) == 1                                              # a cursor move computes nothing
    ex.controls["T"].value = 10                                            # the cursor is clamped, one redraw
    assert ex.controls["timestep"].max == 9 and ex.controls["timestep"].value == 9
    assert ex.draws == 3 and 'data-T="10"' in ex.status.value and 'data-timestep="9"' in ex.status.value
    ex.controls["units"].value = 16
    ex.controls["scale"].value = 1.2
    ex.controls["gate_bias"].value = 3.0
    assert 'data-gate-bias="3.0"' in ex.status.value and len(ex.cache) == 5
    expected = gradient_flows(ex.x[:, :10], units=16, scale=1.2, gate_bias=3.0)
    for k, f in expected.items():
        np.testing.assert_allclose(ex.view.lines[k].get_ydata(), f)
    ex.controls["T"].value = 30
    ex.controls["units"].value = 8
    ex.controls["scale"].value = 1.0
    ex.controls["gate_bias"].value = None                                  # back to the first setting: cached
    assert len(ex.cache) == 8
