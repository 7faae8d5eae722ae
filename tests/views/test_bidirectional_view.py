"""The bidirectional merge view: baseline images, reading order under a mask, the merge-mode selector."""


import matplotlib
import matplotlib.style
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.bidirectional import merge
from rnnbook.bidirectional_view import (BidirectionalView, bidirectional_explorer, bidirectional_figure,
                                        reading_steps)
from rnnbook.layers import GRU, LSTM, Bidirectional, SimpleRNN
from rnnbook.traces import trace_bidirectional
from baseline_tools import check_png  # noqa: E402
from rnnbook.views import render_png  # noqa: E402

TOL = 2.0      # RMS of the pixel difference (0-255 scale) that matplotlib's compare_images accepts
DPI = 60
MODES = ["concat", "sum", "mul", "ave", None]


def check_baseline(fig, name, tmp_path):
    "Compare `fig` (rendered at DPI) with its baseline image."
    check_png(render_png(fig, DPI), name, tmp_path, TOL)


@pytest.fixture(autouse=True)
def _style():
    with matplotlib.style.context("default"):
        yield


def setup(cls=LSTM, mode="concat", seed=0, B=3, T=10, F=4, U=6):
    rb.set_seed(seed)
    x = np.random.default_rng(seed).standard_normal((B, T, F)).astype("float32")
    lengths = [T, T - 3, 4][:B]
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    layer = Bidirectional(cls(U, return_sequences=True), merge_mode=mode, name="bidirectional")   # the header shows it
    return layer, x, mask


@pytest.mark.parametrize("mode,name,timestep", [("concat", "bidirectional_concat.png", 5),
                                                ("sum", "bidirectional_sum.png", 8),
                                                (None, "bidirectional_none.png", None)])
def test_figure_baseline(mode, name, timestep, tmp_path):
    layer, x, mask = setup(mode="concat")
    bt = trace_bidirectional(layer, x, mask)
    fig = bidirectional_figure(bt, sample=1, merge_mode=mode, timestep=timestep)
    check_baseline(fig, name, tmp_path)


def test_reading_steps():
    right = np.array([1, 1, 1, 1, 0, 0], bool)
    np.testing.assert_array_equal(reading_steps(np.arange(6), right), [1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(reading_steps(np.arange(6)[::-1], right), [4, 3, 2, 1, 0, 0])
    holes = np.array([0, 1, 1, 0, 1, 0], bool)
    np.testing.assert_array_equal(reading_steps(np.arange(6)[::-1], holes), [0, 3, 2, 0, 1, 0])
    np.testing.assert_array_equal(reading_steps(np.arange(3), np.zeros(3, bool)), [0, 0, 0])


@pytest.mark.parametrize("cls", [SimpleRNN, GRU, LSTM])
def test_backward_direction_starts_at_last_valid_step(cls):
    layer, x, mask = setup(cls)
    bt = trace_bidirectional(layer, x, mask)
    n = int(mask[1].sum())                                                # sample 1: 7 valid of 10
    steps = reading_steps(bt.backward.order, bt.mask[1])
    assert steps[n - 1] == 1 and steps[0] == n and not steps[n:].any()
    assert not bt.backward["h"][1, n:].any()                             # zeros through the padding
    # the backward state at the last valid step is one cell step from zeros: same as the sequence cut to n steps
    cut = trace_bidirectional(layer, x[1:2, :n])
    np.testing.assert_allclose(bt.backward_output[1, :n], cut.backward_output[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bt.forward_output[1, :n], cut.forward_output[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_view_merged_panel_is_the_merge(mode):
    layer, x, mask = setup()
    bt = trace_bidirectional(layer, x, mask)
    view = BidirectionalView()
    view.update(bt, sample=2, merge_mode=mode, timestep=3)
    expected = merge(bt.forward_output, bt.backward_output, mode)
    expected = np.concatenate(expected, -1) if mode is None else np.asarray(expected)
    np.testing.assert_allclose(view.merged_image.get_array(), expected[2], rtol=1e-6)
    np.testing.assert_array_equal(view.forward_image.get_array(), bt.forward_output[2])
    np.testing.assert_array_equal(view.backward_image.get_array(), bt.backward_output[2])
    assert view.divider.get_visible() == (mode in ("concat", None))
    shade = view.shades[2].get_array()[:, 0, 3]
    np.testing.assert_array_equal(shade > 0, ~mask[2])


def test_layer_mode_is_the_default():
    layer, x, mask = setup(mode="ave")
    bt = trace_bidirectional(layer, x, mask)
    view = BidirectionalView()
    view.update(bt, 0)
    np.testing.assert_allclose(view.merged_image.get_array(), bt.merged[0], rtol=1e-6)
    with pytest.raises(ValueError, match="merge_mode"):
        view.update(bt, 0, "max")


def test_explorer_merge_mode_selector():
    layer, x, mask = setup(mode="concat")
    ex = bidirectional_explorer(layer, x, mask)
    assert 'data-merge-mode="concat"' in ex.status.value and ex.draws == 1
    assert ex.controls["sample"].value == 1 and 'data-sample="1"' in ex.status.value   # the first padded sample
    ex.controls["merge_mode"].value = "sum"
    assert 'data-merge-mode="sum"' in ex.status.value and ex.draws == 2
    bt = ex.trace
    np.testing.assert_allclose(ex.view.merged_image.get_array(), bt.forward_output[1] + bt.backward_output[1],
                               rtol=1e-6)
    assert ex.view.merged_image.get_clim() == (-2.0, 2.0)
    png_sum = ex.image.value
    ex.controls["merge_mode"].value = "None"          # the label of merge_mode=None (a None value shows blank)
    assert 'data-merge-mode="None"' in ex.status.value
    assert ex.view.merged_image.get_array().shape == (10, 12) and ex.image.value != png_sum
    assert list(ex.controls["merge_mode"].options) == ["concat", "sum", "mul", "ave", "None"]


def test_explorer_timestep_and_sample_sliders():
    layer, x, mask = setup(GRU)
    ex = bidirectional_explorer(layer, x, mask)
    ex.controls["sample"].value = 2                                       # 4 valid steps
    ex.controls["timestep"].value = 3
    assert 'data-timestep="3"' in ex.status.value and 'data-sample="2"' in ex.status.value
    assert all(fr.get_y() == 2.5 and fr.get_visible() for fr in ex.view.frames)
    caption = ex.view.caption.get_text()
    assert "forward copy reads it as step 4 of 4" in caption and "backward copy as step 1 of 4" in caption
    ex.controls["timestep"].value = 7
    assert "padding" in ex.view.caption.get_text() and ex.draws == 4


def test_return_sequences_required():
    rb.set_seed(0)
    x = np.zeros((1, 3, 2), "float32")
    bt = trace_bidirectional(Bidirectional(LSTM(2)), x)
    with pytest.raises(ValueError, match="return_sequences=True"):
        bidirectional_figure(bt)
