"""Gate view: static figures against baseline images, the explorer driven like a user would, and the numbers shown.

Baselines live in ``tests/views/baseline/gate_*.png``.  Regenerate them (after an intended change to the picture) with::

    RNNBOOK_UPDATE_BASELINES=1 pytest tests/views/test_gate_view.py

They are compared with ``matplotlib.testing.compare.compare_images`` at ``TOL`` (RMS of the pixel difference on a
0-255 scale); ``test_tolerance_catches_a_marker_one_step_off`` checks that this tolerance still sees a small change.
"""

import os
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
import pytest

matplotlib.use("Agg")

from rnnbook.cells import GRUCell, LSTMCell  # noqa: E402
from rnnbook.gate_view import (GateView, gate_explorer, gate_figure, state_update, update_arrays)  # noqa: E402
from rnnbook.layers import GRU, LSTM, RNN, SimpleRNN  # noqa: E402
from rnnbook.traces import trace  # noqa: E402
from rnnbook.views import render_png  # noqa: E402
from baseline_tools import check_png  # noqa: E402

BASELINE = Path(__file__).parent / "baseline"
TOL = 5
DPI = 50
B, T, F, U = 2, 12, 3, 5


def _weights(layer, x, seed):
    layer.build_from(x)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype("float32") for w in layer.get_weights()])
    return layer


@pytest.fixture
def data():
    x = np.random.default_rng(5).standard_normal((B, T, F)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 8:] = False
    return x, mask


def _traced(kind, data, **kw):
    x, mask = data
    # fixed names: the figures' headers name the layer, whatever ran before in the session
    layer = {"lstm": lambda: LSTM(U, return_sequences=True, name="lstm", **kw),
             "gru": lambda: GRU(U, name="gru", **kw),
             "simple_rnn": lambda: SimpleRNN(U, name="simple_rnn", **kw),
             "stacked": lambda: RNN([LSTMCell(4), GRUCell(U)], return_sequences=True, name="rnn", **kw)}[kind]()
    return trace(_weights(layer, x, 11), x, mask=mask)


def _png(fig):
    return render_png(fig, DPI)


def check_baseline(png, name, tmp_path, tol=TOL):
    check_png(png, name, tmp_path, tol)


CASES = {
    "gate_lstm": ("lstm", dict(sample=0, timestep=4)),
    "gate_lstm_masked_units": ("lstm", dict(sample=1, timestep=9, units=(1, 3))),
    "gate_gru": ("gru", dict(sample=1, timestep=2)),
    "gate_simple_rnn": ("simple_rnn", dict(sample=0, timestep=6)),
    "gate_stacked_cell1": ("stacked", dict(sample=1, timestep=5, cell=1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_matches_baseline(name, data, tmp_path):
    kind, kw = CASES[name]
    with matplotlib.style.context("default"):
        check_baseline(_png(gate_figure(_traced(kind, data), **kw)), name, tmp_path)


def test_tolerance_catches_a_marker_one_step_off(data, tmp_path):
    if os.environ.get("RNNBOOK_UPDATE_BASELINES") == "1":
        pytest.skip("regenerating baselines")
    kind, kw = CASES["gate_lstm"]
    with matplotlib.style.context("default"):
        png = _png(gate_figure(_traced(kind, data), **dict(kw, timestep=kw["timestep"] + 1)))
    with pytest.raises(AssertionError, match="did not match"):
        check_baseline(png, "gate_lstm", tmp_path)


# ---- the numbers shown -------------------------------------------------------------------------------------------
def test_lstm_update_splits_into_keep_and_write(data):
    tr = _traced("lstm", data)
    c, f, i, ct = tr["c"], tr["f"], tr["i"], tr["c_tilde"]
    for s in range(B):
        for t in range(T):
            u = state_update(tr, s, t)
            prev = c[s, t - 1] if t else np.zeros(U)
            np.testing.assert_allclose(u["keep"], f[s, t] * prev, rtol=1e-6)
            np.testing.assert_allclose(u["write"], i[s, t] * ct[s, t], rtol=1e-6)
            if tr.mask[s, t]:
                np.testing.assert_allclose(u["keep"] + u["write"], c[s, t], rtol=1e-5, atol=1e-6)
            else:
                assert u["masked"] and np.array_equal(u["new"], prev)


def test_gru_update_follows_processing_order(data):
    tr = _traced("gru", data, go_backwards=True)
    h, z, ht = tr["h"], tr["z"], tr["h_tilde"]
    for t in range(T):                         # processed T-1 .. 0: the state before step t is the one after t+1
        u = state_update(tr, 0, t)
        prev = h[0, t + 1] if t < T - 1 else np.zeros(U)
        np.testing.assert_allclose(u["keep"], z[0, t] * prev, rtol=1e-6)
        np.testing.assert_allclose(u["write"], (1 - z[0, t]) * ht[0, t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(u["keep"] + u["write"], h[0, t], rtol=1e-5, atol=1e-6)


def test_bars_show_the_trace(data):
    tr = _traced("lstm", data)
    view = gate_figure(tr, sample=0, timestep=6, units=(1, 3)).rnnbook_view
    keep = [r.get_height() for r in view.bars["keep"].patches]
    write = [r.get_height() for r in view.bars["write"].patches]
    np.testing.assert_allclose(keep, tr["f"][0, 6, 1:4] * tr["c"][0, 5, 1:4], rtol=1e-6)
    np.testing.assert_allclose(np.add(keep, write), tr["c"][0, 6, 1:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(view.new_points.get_ydata(), tr["c"][0, 6, 1:4])
    np.testing.assert_array_equal(view.points["f"].get_ydata(), tr["f"][0, 6, 1:4])
    np.testing.assert_array_equal(view.images["o"].get_array(), tr["o"][0, :, 1:4].T)
    shaded = view.overlays["c"].get_array()[0, :, 3]
    np.testing.assert_array_equal(shaded > 0, ~tr.mask[0])


def test_saturation_is_counted(data):
    tr = _traced("lstm", data)
    tr.values["f"][0, :, 0] = 0.999            # unit 0 wide open at every step
    tr.values["f"][0, :, 1] = 0.001            # unit 1 shut
    view = GateView(tr)
    view.update(0, 3, (0, 1))
    assert view.axes["f"].get_title().endswith(": 50% shut, 50% open")


# ---- the explorer --------------------------------------------------------------------------------------------------
def test_timestep_slider_redraws_and_moves_the_marker(data):
    tr = _traced("lstm", data)
    ex = gate_explorer(tr)
    png, draws = ex.image.value, ex.draws
    ex.controls["timestep"].value = 7
    assert ex.draws == draws + 1
    assert 'data-timestep="7"' in ex.status.value and f'data-draws="{draws + 1}"' in ex.status.value
    assert ex.image.value != png
    for line in ex.view.markers.values():
        assert list(line.get_xdata()) == [7, 7]
    np.testing.assert_allclose(ex.view.shown["keep"] + ex.view.shown["write"], tr["c"][0, 7], rtol=1e-5, atol=1e-6)


def test_explorer_image_equals_the_static_figure(data):
    tr = _traced("lstm", data)
    ex = gate_explorer(tr)
    for name, value in [("timestep", 9), ("sample", 1), ("units", (2, 4)), ("timestep", 3)]:
        ex.controls[name].value = value
        v = ex.values
        static = render_png(gate_figure(tr, v["sample"], v["timestep"], v["units"]), ex.dpi)
        from PIL import Image
        import io
        a = np.asarray(Image.open(io.BytesIO(ex.image.value)).convert("RGBA"))
        b = np.asarray(Image.open(io.BytesIO(static)).convert("RGBA"))
        assert a.shape == b.shape and np.array_equal(a, b), name


def test_sample_and_unit_range(data):
    tr = _traced("lstm", data)
    ex = gate_explorer(tr)
    ex.controls["sample"].value = 1
    assert 'data-sample="1"' in ex.status.value
    np.testing.assert_array_equal(ex.view.images["h"].get_array(), tr["h"][1].T)
    assert (ex.view.overlays["h"].get_array()[0, 8:, 3] > 0).all()        # masked steps shaded
    ex.controls["units"].value = (2, 4)
    assert 'data-units="(2, 4)"' in ex.status.value
    assert ex.view.images["i"].get_array().shape == (3, T)
    assert ex.view.axes["i"].get_ylim() == (1.5, 4.5)
    assert len(ex.view.bars["keep"].patches) == 3
    assert list(ex.view.points["i"].get_xdata()) == [2, 3, 4]


def test_stacked_cell_selector(data):
    ex = gate_explorer(_traced("stacked", data))
    assert ex.view.kind == "lstm" and ex.controls["units"].value == (0, 3)
    draws = ex.draws
    ex.controls["cell"].value = 1
    assert ex.draws == draws + 1 and ex.view.kind == "gru"
    assert ex.controls["units"].value == (0, U - 1) and ex.controls["units"].max == U - 1
    ex.controls["cell"].value = 0
    assert ex.view.kind == "lstm" and ex.controls["units"].value == (0, 3)


def test_gate_explorer_from_layer_and_errors(data):
    x, mask = data
    ex = gate_explorer(GRU(3), x, mask)
    assert ex.view.kind == "gru" and ex.draws == 1
    with pytest.raises(ValueError, match="needs the input"):
        gate_explorer(GRU(3))
    with pytest.raises(ValueError, match="single cell"):
        gate_figure(_traced("gru", data), cell=1)
    with pytest.raises(ValueError, match="timestep"):
        gate_figure(_traced("gru", data), timestep=T)


def test_update_arrays_shapes(data):
    ua = update_arrays(_traced("simple_rnn", data))
    assert set(ua) == {"prev", "pre", "new"} and ua["new"].shape == (B, T, U)
