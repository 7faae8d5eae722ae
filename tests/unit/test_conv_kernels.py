"""The compiled convolution kernels (notebook 12a0, `rnnbook.conv_kernels`) behind `Conv1D`/`Conv2D`.

1. Which calls take them: float32 NumPy data, stride 1, dilation 1, one or two spatial dimensions, numba present;
   every other call keeps the im2col path of notebook 12a, and `reason` says why.
2. Against Keras 3 (torch backend): outputs and the gradients of input, kernel and bias (torch autograd through
   Keras) on random stride-1 configurations, every padding, groups, channels first, with and without bias, the
   input traced or data, in one part and cut into parts; and against the im2col path (`RNNBOOK_COMPILED=0`).
3. Against the definition in float64, on shapes the layers do not produce: uneven zeros, kernels as large as the
   input, one channel, one output row.
4. Under faults: many Python threads at once, an interrupt while the worker threads run, a forked child, NaN and
   infinity, non-contiguous inputs, an empty batch.
5. Memory: the forward never holds the patch matrix, and neither does a gradient tape.
"""
import os
import threading
import _thread

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import conv_kernels, convolution  # noqa: E402
from rnnbook import conv_layers as cv  # noqa: E402
from rnnbook.layer import Variable  # noqa: E402
from measure import in_forked_child, peak_bytes  # noqa: E402  (tests/helpers)

WHY = conv_kernels.reason(np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32), (1, 1), (1, 1))
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no compiled convolution here: {WHY}")


@pytest.fixture
def spy(monkeypatch):
    "The shapes `conv_kernels.forward` was called with."
    calls = []
    real = conv_kernels.forward

    def forward(x, *args, **kwargs):
        calls.append(x.shape)
        return real(x, *args, **kwargs)
    monkeypatch.setattr(conv_kernels, "forward", forward)
    return calls


@pytest.fixture
def split(monkeypatch):
    "Every call cut into one part per core, however small."
    monkeypatch.setattr(conv_kernels, "SPLIT_FLOPS", 0)


def data(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------------------------
# 1. which calls take the kernels
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,shape,taken", [
    (lambda: cv.Conv2D(4, 3, padding="same"), (2, 6, 5, 3), True),
    (lambda: cv.Conv1D(4, 3, padding="causal"), (2, 9, 3), True),
    (lambda: cv.Conv1D(6, 2, groups=3, data_format="channels_first"), (2, 3, 7), True),
    (lambda: cv.Conv2D(4, 3, strides=2), (2, 6, 5, 3), False),
    (lambda: cv.Conv2D(4, 3, dilation_rate=2), (2, 6, 5, 3), False),
    (lambda: cv.Conv3D(4, 2), (2, 3, 4, 5, 3), False),
    (lambda: cv.Conv2D(4, 3, dtype="float64"), (2, 6, 5, 3), False),
])
def test_which_calls_take_the_kernels(spy, make, shape, taken):
    make()(data(shape))
    assert bool(spy) == taken


def test_reason_names_what_rules_a_call_out():
    x, w = np.zeros((1, 5, 5, 2), np.float32), np.zeros((3, 3, 2, 4), np.float32)
    assert conv_kernels.reason(x, w, (1, 1), (1, 1)) is None
    assert conv_kernels.reason(x, w, (1, 2), (1, 1)) == "strides=(1, 2) (the compiled kernels serve stride 1)"
    assert conv_kernels.reason(x, w, (1, 1), (2, 2)) == "dilation_rate=(2, 2) (the compiled kernels serve dilation 1)"
    assert conv_kernels.reason(x, w.astype("float16"), (1, 1), (1, 1)).startswith("dtype float16")
    assert conv_kernels.reason(x[:0], w, (1, 1), (1, 1)) == "an empty input"
    assert conv_kernels.reason(list(x), w, (1, 1), (1, 1)) == "the data is not a NumPy array"


def test_switched_off_by_the_environment(spy, monkeypatch):
    monkeypatch.setenv("RNNBOOK_COMPILED", "0")
    cv.Conv2D(4, 3)(data((2, 6, 5, 3)))
    assert spy == []
    assert conv_kernels.reason(np.zeros((1, 3, 3, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32),
                               (1, 1), (1, 1)) == "RNNBOOK_COMPILED=0"


# ---------------------------------------------------------------------------------------------------------------
# 2. against Keras, and against the im2col path
# ---------------------------------------------------------------------------------------------------------------
def random_configs(n, seed):
    "Random stride-1 Conv1D/Conv2D configurations: `(name, input shape, layer kwargs)`."
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rank = int(rng.integers(1, 3))
        groups = int(rng.choice([1, 1, 2]))
        C = groups * int(rng.integers(1, 6))
        F = groups * int(rng.integers(2, 6))          # torch's slow_conv2d rejects the gradient of one filter
        spatial = tuple(int(v) for v in rng.integers(3, 12, rank))
        k = tuple(int(rng.integers(1, min(5, s) + 1)) for s in spatial)
        padding = str(rng.choice(["valid", "same"] + (["causal"] if rank == 1 else [])))
        first = bool(rng.integers(0, 2))
        kw = dict(filters=F, kernel_size=k, padding=padding, groups=groups, use_bias=bool(rng.integers(0, 4)),
                  activation=str(rng.choice(["linear", "tanh", "relu"])),
                  data_format="channels_first" if first else "channels_last")
        shape = (int(rng.integers(1, 5)),) + ((C,) + spatial if first else spatial + (C,))
        out.append((f"Conv{rank}D", shape, kw))
    return out


def keras_pair(name, shape, kw, seed=1):
    k = getattr(keras.layers, name)(**kw)
    k.build(shape)
    rng = np.random.default_rng(seed)
    k.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in k.get_weights()])
    r = getattr(cv, name)(**kw)
    r.build(shape)
    r.set_weights(k.get_weights())
    return k, r


def rb_grads(layer, x, w, traced=True):
    xv = Variable(x) if traced else x
    with rb.GradientTape() as tape:
        loss = rb.ops.sum(rb.ops.multiply(layer(xv), w))
    sources = ([xv] if traced else []) + list(layer.trainable_weights)
    return [np.asarray(g) for g in tape.gradient(loss, sources)]


def keras_grads(layer, x, w):
    xt = torch.tensor(x, requires_grad=True)
    for v in layer.trainable_weights:
        v.value.grad = None
    (layer(xt) * torch.tensor(w)).sum().backward()
    return [xt.grad.numpy()] + [v.value.grad.numpy() for v in layer.trainable_weights]


@pytest.mark.parametrize("parts", [False, True])
@pytest.mark.parametrize("name,shape,kw", random_configs(40, seed=7))
def test_random_configurations_match_keras(spy, monkeypatch, name, shape, kw, parts):
    if parts:
        monkeypatch.setattr(conv_kernels, "SPLIT_FLOPS", 0)          # cut into one part per core, however small
    torch.set_num_threads(1)
    x = data(shape, seed=2)
    k, r = keras_pair(name, shape, kw)
    y = np.asarray(r(x))
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(k(torch.tensor(x))), atol=1e-5, rtol=1e-5)
    assert spy, "the compiled kernels did not run"
    w = data(y.shape, seed=3)
    for a, b in zip(rb_grads(r, x, w), keras_grads(k, x, w)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    for a, b in zip(rb_grads(r, x, w, traced=False), keras_grads(k, x, w)[1:]):   # input as data: weights only
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,shape,kw", random_configs(12, seed=11))
def test_cut_into_parts_equals_the_im2col_path(monkeypatch, split, name, shape, kw):
    x = data(shape, seed=4)
    layer = getattr(cv, name)(**kw)
    y = np.asarray(layer(x))
    w = data(y.shape, seed=5)
    got = rb_grads(layer, x, w)
    with monkeypatch.context() as m:
        m.setenv("RNNBOOK_COMPILED", "0")
        np.testing.assert_allclose(y, np.asarray(layer(x)), atol=1e-5, rtol=1e-5)
        for a, b in zip(got, rb_grads(layer, x, w)):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# 3. against the definition, in float64
# ---------------------------------------------------------------------------------------------------------------
def naive(x, w, pads, b=None):
    x = np.pad(x.astype(np.float64), [(0, 0), *pads, (0, 0)])
    kh, kw, C, F = w.shape
    z = np.zeros((x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1, F)) + (0 if b is None else b)
    for y in range(z.shape[1]):
        for p in range(z.shape[2]):
            z[:, y, p] += np.einsum("nijc,ijcf->nf", x[:, y:y + kh, p:p + kw], w.astype(np.float64))
    return z


@pytest.mark.parametrize("parts", [False, True])
@pytest.mark.parametrize("shape,k,pads", [
    ((3, 5, 6, 2), (5, 6), ((0, 0), (0, 0))),          # the kernel as large as the input: one output
    ((2, 4, 4, 3), (4, 4), ((2, 1), (3, 0))),          # uneven zeros, more than half the kernel
    ((2, 1, 40, 1), (1, 7), ((0, 0), (6, 0))),         # one channel (patches by taps), causal-like zeros
    ((3, 6, 7, 1), (3, 5), ((1, 1), (2, 2))),          # one channel, zeros on every side
    ((2, 3, 4, 1), (3, 4), ((2, 0), (0, 3))),          # one channel, uneven zeros past half the kernel
    ((1, 30, 2, 4), (3, 1), ((1, 1), (0, 0))),         # tall and narrow
    ((2, 6, 7, 70), (2, 2), ((1, 0), (0, 1))),         # many channels: one output row a block
])
def test_against_the_definition(monkeypatch, parts, shape, k, pads):
    if parts:
        monkeypatch.setattr(conv_kernels, "SPLIT_FLOPS", 0)
    monkeypatch.setattr(conv_kernels, "_BLOCK", 1 << 9)           # many blocks, some of one row
    x = data(shape, seed=1)
    w = data(k + (shape[-1], 5), seed=2)
    b = data((5,), seed=3)
    z = naive(x, w, pads, b)
    np.testing.assert_allclose(conv_kernels.forward(x, w, b, pads), z, atol=1e-4, rtol=1e-5)
    gz = data(z.shape, seed=4)
    dW, db = conv_kernels.kernel_grad(x, w.shape, gz, pads)
    patches = np.pad(x.astype(np.float64), [(0, 0), *pads, (0, 0)])
    want = np.zeros(w.shape)
    for i in range(k[0]):
        for j in range(k[1]):
            want[i, j] = np.einsum("nyxc,nyxf->cf", patches[:, i:i + z.shape[1], j:j + z.shape[2]], gz)
    np.testing.assert_allclose(dW, want, atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(db, gz.sum((0, 1, 2)), atol=1e-3, rtol=1e-5)
    dx = conv_kernels.input_grad(gz, w, x.shape, pads)
    np.testing.assert_allclose((conv_kernels.forward(x, w, None, pads) * gz).sum(), (x * dx).sum(),
                               rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# 4. faults
# ---------------------------------------------------------------------------------------------------------------
def reference(layer, x, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("RNNBOOK_COMPILED", "0")
        return np.asarray(layer(x))


def test_calls_from_many_threads_keep_their_own_buffers(split, monkeypatch):
    layers = [cv.Conv2D(6, 3, padding="same"), cv.Conv1D(5, 4), cv.Conv2D(3, (2, 5))]
    xs = [data((4, 9, 8, 3), seed=1), data((5, 20, 7), seed=2), data((3, 7, 11, 2), seed=3)]
    want = [reference(layer, x, monkeypatch) for layer, x in zip(layers, xs)]
    errors, got = [], {}

    def run(i):
        try:
            for _ in range(20):
                got[i] = np.asarray(layers[i % 3](xs[i % 3]))
                np.testing.assert_allclose(got[i], want[i % 3], atol=1e-5)
        except Exception as e:                                       # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads: t.start()
    for t in threads: t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)


def test_an_interrupt_while_the_workers_run_leaves_later_calls_right(split, monkeypatch):
    layer = cv.Conv2D(32, 3, padding="same")
    big = data((16, 64, 64, 16), seed=1)
    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in range(2000):                                        # a few ms a call: the interrupt lands in one
            layer(big)
    timer.join()
    x = data((3, 10, 9, 16), seed=2)
    np.testing.assert_allclose(np.asarray(layer(x)), reference(layer, x, monkeypatch), atol=1e-5)


def _child():
    conv_kernels.SPLIT_FLOPS = 0
    x = np.random.default_rng(2).standard_normal((6, 12, 12, 3)).astype("float32")
    return np.asarray(cv.Conv2D(4, 3)(x)).shape


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_its_own_parts(split):
    cv.Conv2D(4, 3)(data((6, 12, 12, 3)))                            # the parent's workers exist
    assert in_forked_child(_child) == (6, 10, 10, 4)


def test_nan_and_infinity_reach_only_their_windows():
    x = data((2, 6, 6, 2))
    x[0, 2, 3, 1], x[1, 0, 0, 0] = np.nan, np.inf
    w = np.abs(data((3, 3, 2, 4), seed=1)) + 0.1
    z = conv_kernels.forward(x, w, None, ((1, 1), (1, 1)))
    window = np.zeros((6, 6), bool)
    window[1:4, 2:5] = True                                          # the outputs whose window holds the NaN
    assert np.isnan(z[0][window]).all() and not np.isnan(z[0][~window]).any()
    assert np.isposinf(z[1, :2, :2]).all() and np.isfinite(z[1, 2:]).all()


def test_non_contiguous_inputs_and_an_empty_batch(spy):
    layer = cv.Conv2D(4, 3, padding="same")
    x = data((2, 7, 8, 6))[:, ::1, :, ::2]                           # a strided view of the channels
    y = np.asarray(layer(x))
    np.testing.assert_allclose(y, np.asarray(layer(np.ascontiguousarray(x))), atol=1e-6)
    assert spy
    assert np.asarray(layer(np.zeros((0, 7, 8, 3), np.float32))).shape == (0, 7, 8, 4)


def test_a_kernel_larger_than_the_input_is_the_same_error():
    with pytest.raises(ValueError, match="zero or negative"):
        cv.Conv2D(2, 4)(data((1, 3, 5, 2)))
    assert np.asarray(cv.Conv2D(2, 4, padding="same")(data((1, 3, 5, 2)))).shape == (1, 3, 5, 2)


# ---------------------------------------------------------------------------------------------------------------
# 5. memory
# ---------------------------------------------------------------------------------------------------------------
def test_neither_the_forward_nor_a_tape_holds_the_patch_matrix():
    layer = cv.Conv2D(16, 3, padding="same")
    x = data((8, 32, 32, 16))                                        # patches: 8·32·32·144 floats = 4.7 MB
    layer(x)
    out = 8 * 32 * 32 * 16 * 4                                       # the output: 0.5 MB
    assert peak_bytes(lambda: layer(x)) < 2 * out

    def step():
        with rb.GradientTape() as tape:
            loss = rb.ops.sum(rb.ops.square(layer(x)))
        tape.gradient(loss, layer.trainable_weights)
    step()
    assert peak_bytes(step) < 6 * out                                      # output, square, cotangents: no patches


def test_call_path_says_which_and_why():
    from rnnbook.dispatch import call_path
    x = data((2, 6, 5, 3))
    assert call_path(cv.Conv2D(4, 3), x).path == "compiled"
    path = call_path(cv.Conv2D(4, 3, dilation_rate=2), x)
    assert path.path == "im2col" and "dilation_rate=(2, 2)" in path.reason
    assert call_path(cv.Conv1D(4, 3, dtype="float64"), data((2, 6, 3))).reason.endswith(
        "dtype float64 (the compiled kernels serve float32)")
