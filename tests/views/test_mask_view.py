"""Mask view: static figures against baseline images, the explorer's controls and its zero_output_for_mask toggle.

Baselines live in ``tests/views/baseline/mask_*.png``; regenerate them with ``RNNBOOK_UPDATE_BASELINES=1 pytest
tests/views/test_mask_view.py``.  Compared with ``matplotlib.testing.compare.compare_images`` at ``TOL`` (RMS, 0-255).
"""

from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
import pytest

matplotlib.use("Agg")

from rnnbook.layers import GRU, LSTM, SimpleRNN, Bidirectional  # noqa: E402
from rnnbook.mask_view import (mask_explorer, mask_figure, masked_outputs, output_rule,  # noqa: E402
                               sequence_outputs)
from rnnbook.traces import trace  # noqa: E402
from rnnbook.views import render_png  # noqa: E402
from baseline_tools import check_png  # noqa: E402

BASELINE = Path(__file__).parent / "baseline"
TOL = 5
DPI = 50
B, T, F, U = 4, 10, 3, 3


@pytest.fixture
def data():
    x = np.random.default_rng(2).standard_normal((B, T, F)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 7:] = False          # right-padded
    mask[2, 3:6] = False         # a gap
    mask[3, :4] = False          # left-padded
    return x, mask


def _layer(cls, x, seed=3, **kw):
    name = {"SimpleRNN": "simple_rnn"}.get(cls.__name__, cls.__name__.lower())   # fixed: the header shows it
    layer = cls(U, name=name, **kw)
    layer.build_from(x)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.9, 0.9, w.shape).astype("float32") for w in layer.get_weights()])
    return layer


def check_baseline(png, name, tmp_path, tol=TOL):
    check_png(png, name, tmp_path, tol)


CASES = {
    "mask_lstm_gap": (LSTM, dict(return_sequences=True), dict(sample=2, unit=1)),
    "mask_gru_zero_output": (GRU, dict(return_sequences=True, zero_output_for_mask=True), dict(sample=1, unit=0)),
    "mask_simple_rnn_backwards": (SimpleRNN, dict(go_backwards=True), dict(sample=3, unit=2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_matches_baseline(name, data, tmp_path):
    x, mask = data
    cls, kw, show = CASES[name]
    with matplotlib.style.context("default"):
        fig = mask_figure(trace(_layer(cls, x, **kw), x, mask=mask), **show)
        check_baseline(render_png(fig, DPI), name, tmp_path)


def test_state_is_flat_across_masked_steps(data):
    x, mask = data
    tr = trace(_layer(LSTM, x, return_sequences=True), x, mask=mask)
    view = mask_figure(tr, sample=2, unit=1).rnnbook_view
    xs, ys = view.h_line.get_data()
    assert list(xs) == [-1] + list(range(T))                      # starts at the initial state, left of step 0
    np.testing.assert_array_equal(ys[1:], tr["h"][2, :, 1])
    assert np.all(ys[4:7] == ys[3])                               # steps 3-5 masked: flat at step 2's value
    assert list(view.h_masked.get_xdata()) == [3, 4, 5]
    np.testing.assert_array_equal(view.c_line.get_ydata()[4:7], tr["c"][2, 2, 1])
    assert view.grid.get_array().shape == (B, T)
    assert view.highlight.get_y() == 1.5


def test_outputs_zeroed_or_repeated(data):
    x, mask = data
    tr = trace(_layer(GRU, x, return_sequences=True), x, mask=mask)
    assert output_rule(tr) is False
    np.testing.assert_allclose(sequence_outputs(tr), masked_outputs(tr, False), rtol=1e-6)
    view = mask_figure(tr, sample=1, unit=2).rnnbook_view
    assert view.active is False
    repeat, zeros = view.out_lines[False].get_ydata(), view.out_lines[True].get_ydata()
    np.testing.assert_array_equal(repeat[7:], np.full(3, tr["h"][1, 6, 2]))
    np.testing.assert_array_equal(zeros[7:], np.zeros(3))
    np.testing.assert_array_equal(repeat[:7], zeros[:7])
    left = masked_outputs(tr, False)[3, :4]                       # nothing to repeat before the first real step
    assert np.abs(left).max() == 0


def test_backwards_outputs_follow_processing_order(data):
    x, mask = data
    layer = _layer(GRU, x, return_sequences=True, go_backwards=True)
    tr = trace(layer, x, mask=mask)
    assert output_rule(tr) is False
    rep = masked_outputs(tr, False)
    np.testing.assert_array_equal(rep[3, :4], np.repeat(tr["h"][3, 4:5], 4, axis=0))   # repeats step 4's output
    np.testing.assert_array_equal(rep[1, 7:], np.zeros((3, U)))                          # processed first: zeros


def test_explorer_toggle_retraces_a_copy(data):
    x, mask = data
    layer = _layer(LSTM, x)
    ex = mask_explorer(layer, x, mask)
    assert ex.controls["sample"].value == 1 and ex.view.active is False
    png, draws = ex.image.value, ex.draws
    ex.controls["zero_output_for_mask"].value = True
    assert ex.draws == draws + 1 and 'data-zero-output-for-mask="True"' in ex.status.value
    assert ex.image.value != png
    assert ex.view.active is True and set(ex.traces) == {False, True}
    copy_out = sequence_outputs(ex.trace)                        # the copy's own outputs, as the layer returned them
    np.testing.assert_array_equal(copy_out[1, 7:], np.zeros((3, U)))
    np.testing.assert_array_equal(ex.view.out_lines[True].get_ydata(), copy_out[1, :, 0])
    assert ex.view.ax_out[True].spines["left"].get_linewidth() == 2
    assert ex.view.ax_out[False].spines["left"].get_linewidth() == 0.8
    np.testing.assert_array_equal(ex.traces[True]["h"], ex.traces[False]["h"])
    assert layer.zero_output_for_mask is False and layer.return_sequences is False      # the layer is untouched
    ex.controls["zero_output_for_mask"].value = False
    assert ex.view.active is False and ex.draws == draws + 2


def test_explorer_sample_and_unit(data):
    x, mask = data
    ex = mask_explorer(_layer(SimpleRNN, x), x, mask)
    ex.controls["sample"].value = 3
    ex.controls["unit"].value = 2
    assert 'data-sample="3"' in ex.status.value and 'data-unit="2"' in ex.status.value
    assert ex.view.shown["sample"] == 3 and ex.view.shown["unit"] == 2
    np.testing.assert_array_equal(ex.view.h_real.get_xdata(), np.arange(4, T))
    assert ex.view.highlight.get_y() == 2.5


def test_errors(data):
    x, mask = data
    with pytest.raises(ValueError, match="forward_layer"):
        mask_explorer(Bidirectional(GRU(2)), x, mask)
    tr = trace(_layer(GRU, x), x, mask=mask)
    with pytest.raises(ValueError, match="units"):
        mask_figure(tr, unit=U)
    with pytest.raises(ValueError, match="forward"):
        mask_figure(trace(Bidirectional(GRU(2)), x, mask=mask))
