"""The convolution fast paths against their references.

* `conv` without a tape on a large patch matrix (CPU): gathered and multiplied block by block
  (`convolution._conv_blocked`); the reference is the one gather and one product of `_conv_cols`.
* The kernel's cotangent summed over blocks of rows (`_kernel_cotangent`); the reference is one product.
* ConvLSTM outside a tape: the input convolution a chunk of steps at a time (`ConvLSTM.input_steps`); the
  reference is all steps at once (`input_sequence`, the path a tape records). Inference memory flat in T.
* `call_path` describes ConvLSTM's path.

These are the NumPy paths: the compiled kernels of notebook 12a0 (tests/unit/test_conv_kernels.py) are switched
off here (`RNNBOOK_COMPILED=0`), or float32 stride-1 calls would go to them instead.
"""
import itertools
import tracemalloc

import numpy as np
import pytest

from rnnbook import convolution, conv_lstm, ops
from rnnbook.autodiff import GradientTape
from rnnbook.conv_layers import Conv1D, Conv2D, Conv3D
from rnnbook.conv_lstm import ConvLSTM1D, ConvLSTM2D
from rnnbook.dispatch import call_path, CallPath


@pytest.fixture(autouse=True)
def numpy_paths(monkeypatch):
    "The im2col paths of notebook 12a, not the compiled kernels."
    monkeypatch.setenv("RNNBOOK_COMPILED", "0")


@pytest.fixture
def spy_blocked(monkeypatch):
    "Counts the calls of `_conv_blocked` (the block-by-block forward)."
    calls = []
    real = convolution._conv_blocked

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(convolution, '_conv_blocked', spy)
    return calls


LAYERS = {1: Conv1D, 2: Conv2D, 3: Conv3D}
SPATIAL = {1: (11,), 2: (9, 8), 3: (6, 7, 5)}
CASES = [(rank, padding, strides, dilation, data_format, groups)
         for rank in (1, 2, 3)
         for padding in ('valid', 'same') + (('causal',) if rank == 1 else ())
         for strides, dilation in ((1, 1), (2, 1), (1, 2))
         for data_format in ('channels_last', 'channels_first')
         for groups in (1, 2)]


@pytest.mark.parametrize("rank,padding,strides,dilation,data_format,groups", CASES)
def test_blocked_forward_equals_one_product(monkeypatch, spy_blocked, rank, padding, strides, dilation,
                                            data_format, groups):
    rng = np.random.default_rng(rank)
    C = 4
    shape = (3,) + SPATIAL[rank] + (C,) if data_format == 'channels_last' else (3, C) + SPATIAL[rank]
    x = rng.standard_normal(shape).astype('float32')
    layer = LAYERS[rank](6, 3, strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                         data_format=data_format)
    layer.build(shape)
    monkeypatch.setattr(convolution, '_BLOCKED_FROM', 1 << 60)          # the reference: one product
    reference = np.asarray(layer(x))
    assert spy_blocked == []
    monkeypatch.setattr(convolution, '_BLOCKED_FROM', 0)                # every call block by block
    for block in (1, 40, 1 << 17):                                      # row pieces .. samples .. all at once
        monkeypatch.setattr(convolution, '_BLOCK', block)
        np.testing.assert_allclose(layer(x), reference, rtol=1e-5, atol=1e-6)
    assert len(spy_blocked) == 3 * groups                               # taken: once per group and block size


def test_blocked_only_for_large_patch_matrices(spy_blocked):
    rng = np.random.default_rng(0)
    small = rng.standard_normal((2, 8, 8, 3)).astype('float32')
    large = rng.standard_normal((8, 64, 64, 32)).astype('float32')      # 8·64·64·9·32 = 9.4M patch elements
    Conv2D(4, 3, padding='same')(small)
    assert spy_blocked == []
    layer = Conv2D(8, 3, padding='same')
    y = layer(large)
    assert spy_blocked == [(8, 64, 64, 32)]
    ref = convolution._conv_cols(large, np.asarray(layer.kernel), 1, 'same', 1)[0] + np.asarray(layer.bias)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_tape_forward_is_one_product(monkeypatch, spy_blocked):
    monkeypatch.setattr(convolution, '_BLOCKED_FROM', 0)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype('float32')
    layer = Conv2D(4, 3)
    layer(x)
    assert len(spy_blocked) == 1
    with GradientTape():                                                # a tape keeps the patches: one product
        layer(x)
    assert len(spy_blocked) == 1


@pytest.mark.parametrize("traced", [False, True])
def test_kernel_cotangent_blocks_equal_one_product(monkeypatch, traced):
    "The gradients of a training step, the kernel's summed over blocks of rows, against one product."
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 10, 9, 5)).astype('float32')
    layer = Conv2D(6, 3, strides=(1, 2), padding='same')
    layer.build(x.shape)
    y = np.asarray(layer(x))
    gz = (2 * y / y.size).reshape(-1, 6)                                # Z̄ of mean(y²)
    cols = convolution.im2col(x, 3, (1, 2), 'same').reshape(-1, 45)
    reference = (np.ascontiguousarray(cols.T) @ gz).reshape(3, 3, 5, 6)
    for block in (9, 45 * 7, 1 << 18):                                  # one row, 7 rows, all rows a block
        monkeypatch.setattr(convolution, '_KERNEL_BLOCK', block)
        with GradientTape() as tape:
            xin = ops.convert_to_tensor(x)
            if traced: tape.watch(xin)
            loss = ops.mean(ops.square(layer(xin)))
        dkernel, dbias = tape.gradient(loss, layer.trainable_weights)
        np.testing.assert_allclose(dkernel, reference, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(dbias, gz.sum(0), rtol=1e-4, atol=1e-6)


def _conv_lstm_cases():
    for data_format, go_backwards, masked, rank in itertools.product(
            ('channels_last', 'channels_first'), (False, True), (False, True), (1, 2)):
        yield data_format, go_backwards, masked, rank


@pytest.mark.parametrize("data_format,go_backwards,masked,rank", list(_conv_lstm_cases()))
def test_conv_lstm_inference_chunks_equal_all_steps(monkeypatch, data_format, go_backwards, masked, rank):
    rng = np.random.default_rng(2)
    B, T, C = 2, 7, 3
    spatial = (6,) * rank
    shape = (B, T) + (spatial + (C,) if data_format == 'channels_last' else (C,) + spatial)
    x = rng.standard_normal(shape).astype('float32')
    mask = np.ones((B, T), bool)
    if masked: mask[1, 4:] = False
    cls = ConvLSTM1D if rank == 1 else ConvLSTM2D
    layer = cls(4, 3, padding='same', data_format=data_format, go_backwards=go_backwards, return_sequences=True,
                return_state=True)
    layer.build(shape)
    with GradientTape():                                                # the reference: all steps at once
        reference = [np.asarray(a) for a in layer(x, mask=mask)]
    steps = []
    real = conv_lstm.ConvLSTM.input_steps

    def spy(self, *args, **kwargs):
        steps.append(args[0].shape)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(conv_lstm.ConvLSTM, 'input_steps', spy)
    for budget in (1, 3 * 6 ** rank * C * 3 ** rank, 1 << 18):         # 1 step, 3 steps, all steps a chunk
        monkeypatch.setattr(conv_lstm, '_STEP_BUDGET', budget)
        for got, want in zip(layer(x, mask=mask), reference):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(steps) == 3                                              # the chunked path was taken


def test_conv_lstm_inference_memory_flat_in_steps():
    layer = ConvLSTM2D(8, 3, padding='same')
    layer.build((2, 1, 16, 16, 3))

    def peak(T):
        x = np.zeros((2, T, 16, 16, 3), 'float32')
        tracemalloc.start()
        layer(x)
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used
    peak(10)
    small, large = peak(20), peak(400)
    assert large < 1.5 * small + (1 << 20), (small, large)              # all steps at once: 50 MB at T=400


def test_call_path_describes_conv_lstm():
    x = np.zeros((2, 50, 8, 8, 3), 'float32')
    layer = ConvLSTM2D(4, 3, padding='same')
    chosen = call_path(layer, x)
    assert chosen == CallPath('fused', "ConvLSTM2D has no cuDNN path; no tape records, so the input convolution "
                                       "runs 50 of 50 steps at a time (memory flat in the number of steps)")
    with GradientTape():
        assert call_path(layer, x).reason.endswith("runs for all steps at once (im2col), kept for the backward pass")
    assert call_path(ConvLSTM2D(4, 3, unroll=True), x) == CallPath(
        'loop', 'ConvLSTM2D has no cuDNN path; not fused: unroll=True')
    big = np.zeros((2, 50, 64, 64, 3), 'float32')                       # 2·64·64·3·9 patch elements a step
    assert "runs 1 of 50 steps" in call_path(layer, big).reason
