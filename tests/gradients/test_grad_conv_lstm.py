"""Exact gradients of ConvLSTM: the im2col convolution primitives and the layers under ``rb.GradientTape``.

1. The gradient rules of ``im2col`` / ``col2im`` / ``conv`` / ``gate_conv`` (called directly, no tape) against
   central finite differences in float64, over ranks 1-3, 'valid'/'same' padding, strides, dilation and channel
   counts; ``col2im`` is checked to be the adjoint of ``im2col``.
2. ConvLSTM1D/2D/3D under the tape against torch autograd through Keras 3 (torch backend), same weights: the input
   and the initial states are ``torch.tensor(requires_grad=True)``, the loss is ``sum(out_i * W_i)`` over the
   output and both final states for fixed random ``W_i``, and the gradients of input, initial states and every
   trainable weight must agree within 1e-4 (float32) -- across padding, return_sequences, strides, masks,
   go_backwards, channels_first, dilation, no bias, other activations, the unrolled cell path.
3. The layer under the tape against central finite differences of the whole forward pass (float64, small sizes),
   including dropout in training (the seed generator is reset before every call so that every evaluation draws
   the same masks), and the fast path against the cell-by-cell path (``unroll=True``) and against the chunked
   input convolution.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import conv_lstm as cl  # noqa: E402
from rnnbook import ops  # noqa: E402
from rnnbook.backend import SeedGenerator, unwrap  # noqa: E402
from rnnbook.conv_lstm import (ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, col2im, conv, gate_conv, im2col)  # noqa: E402

RB = {1: ConvLSTM1D, 2: ConvLSTM2D, 3: ConvLSTM3D}
TOL = 1e-4


def numeric_grad(f, a, eps=1e-6):
    "Central differences of the scalar `f()` w.r.t. every entry of float64 array `a` (perturbed in place)."
    g = np.zeros(a.shape)
    for i in np.ndindex(a.shape):
        v = a[i]
        a[i] = v + eps
        up = f()
        a[i] = v - eps
        down = f()
        a[i] = v
        g[i] = (up - down) / (2 * eps)
    return g


# ---------------------------------------------------------------------------------------------------------------
# 1. The convolution primitives' rules vs finite differences (no tape)
# ---------------------------------------------------------------------------------------------------------------
# (input shape (N, *S, C), kernel size, strides, dilation, filters)
GEOMETRIES = {
    "1d_k3": ((2, 9, 3), (3,), (1,), (1,), 4),
    "1d_s2": ((2, 9, 2), (3,), (2,), (1,), 3),
    "1d_s3_k2": ((1, 10, 1), (2,), (3,), (1,), 2),
    "1d_d2": ((2, 8, 2), (3,), (1,), (2,), 3),
    "1d_k1": ((2, 5, 3), (1,), (1,), (1,), 2),
    "2d_k3": ((2, 6, 5, 2), (3, 3), (1, 1), (1, 1), 4),
    "2d_k32_s21": ((2, 7, 6, 3), (3, 2), (2, 1), (1, 1), 3),
    "2d_s2_even": ((1, 8, 6, 2), (4, 2), (2, 2), (1, 1), 2),
    "2d_d21": ((2, 7, 6, 1), (3, 2), (1, 1), (2, 1), 5),
    "2d_s3_k2": ((1, 7, 7, 2), (2, 2), (3, 3), (1, 1), 2),
    "3d_k2": ((1, 4, 5, 4, 2), (2, 3, 2), (1, 1, 1), (1, 1, 1), 3),
    "3d_s2": ((2, 5, 4, 4, 1), (3, 2, 2), (2, 1, 2), (1, 1, 1), 2),
    "3d_d2": ((1, 5, 5, 4, 2), (2, 2, 2), (1, 1, 1), (2, 1, 2), 2),
}


def _geometry(name, padding, seed=0):
    shape, k, s, r, F = GEOMETRIES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(k + (shape[-1], F))
    return rng, x, w, k, s, r


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_conv_vjp_matches_finite_differences(geometry, padding):
    rng, x, w, k, s, r = _geometry(geometry, padding)
    zbar = rng.standard_normal(conv(x, w, s, padding, r).shape)
    grads = conv.vjp(zbar, None, x, w, s, padding, r)
    assert all(g is None for g in grads[2:])
    dx, dw = grads[:2]
    assert dx.shape == x.shape and dw.shape == w.shape
    loss = lambda: float((conv(x, w, s, padding, r) * zbar).sum())  # noqa: E731
    np.testing.assert_allclose(dx, numeric_grad(loss, x), atol=1e-7, rtol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_gate_conv_vjp_matches_finite_differences(geometry, padding):
    "Per-gate inputs `(G, N, *S, C)` against kernel `(*k, C, G*F)`, and the plain form (delegating to conv)."
    rng, x, w, k, s, r = _geometry(geometry, padding, seed=1)
    G = 4
    xg = rng.standard_normal((G,) + x.shape)
    wg = rng.standard_normal(w.shape[:-1] + (G * 2,))
    zbar = rng.standard_normal(gate_conv(xg, wg, s, padding, r).shape)
    dx, dw = gate_conv.vjp(zbar, None, xg, wg, s, padding, r)[:2]
    assert dx.shape == xg.shape and dw.shape == wg.shape
    loss = lambda: float((gate_conv(xg, wg, s, padding, r) * zbar).sum())  # noqa: E731
    np.testing.assert_allclose(dx, numeric_grad(loss, xg), atol=1e-7, rtol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, wg), atol=1e-7, rtol=1e-7)
    # the plain form equals conv's rule
    zbar = rng.standard_normal(conv(x, w, s, padding, r).shape)
    for a, b in zip(gate_conv.vjp(zbar, None, x, w, s, padding, r)[:2], conv.vjp(zbar, None, x, w, s, padding, r)[:2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_col2im_is_the_adjoint_of_im2col(geometry, padding):
    rng, x, w, k, s, r = _geometry(geometry, padding, seed=2)
    cols = im2col(x, k, s, padding, r)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, k, s, padding, r)
    assert back.shape == x.shape
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)
    # the rules: im2col's is col2im, col2im's is im2col (both linear maps)
    np.testing.assert_array_equal(im2col.vjp(c, None, x, k, s, padding, r)[0], back)
    np.testing.assert_allclose(col2im.vjp(x, None, c, x.shape, k, s, padding, r)[0], im2col(x, k, s, padding, r))
    # and against finite differences of <im2col(x), c>
    loss = lambda: float((im2col(x, k, s, padding, r) * c).sum())  # noqa: E731
    np.testing.assert_allclose(back, numeric_grad(loss, x), atol=1e-7)


def test_col2im_counts_overlaps_and_skips():
    "Each input cell's gradient is the number of windows covering it (ones in), zero where a stride skips it."
    x = np.zeros((1, 7, 1))
    ones = np.ones(im2col(x, 3, 2, 'valid', 1).shape)
    np.testing.assert_array_equal(col2im(ones, x.shape, 3, 2, 'valid', 1)[0, :, 0], [1, 1, 2, 1, 2, 1, 1])
    x = np.zeros((1, 8, 1))                                           # windows 0-2, 2-4, 4-6; cell 7 unseen
    np.testing.assert_array_equal(col2im(np.ones((1, 3, 3)), x.shape, 3, 2, 'valid', 1)[0, :, 0],
                                  [1, 1, 2, 1, 2, 1, 1, 0])
    # 'same': the padded cells are cropped away (length 5, kernel 3 -> one zero on each side)
    np.testing.assert_array_equal(col2im(np.ones((1, 5, 3)), (1, 5, 1), 3, 1, 'same', 1)[0, :, 0], [2, 3, 3, 3, 2])


def test_rules_accept_mixed_dtypes_and_variables():
    "float32 cotangents, float32 kernels: the rule's results have the shapes (and floating dtypes) of the inputs."
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 5, 2)).astype("float32")
    w = rng.standard_normal((3, 3, 2, 8)).astype("float32")
    zbar = rng.standard_normal((2, 5, 5, 8)).astype("float32")
    dx, dw = conv.vjp(zbar, None, x, w, 1, "same", 1)[:2]
    assert dx.dtype == np.float32 and dw.dtype == np.float32
    dx64, dw64 = conv.vjp(zbar.astype("float64"), None, x.astype("float64"), w.astype("float64"), 1, "same", 1)[:2]
    np.testing.assert_allclose(dx, dx64, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(dw, dw64, atol=1e-4, rtol=1e-4)
    # Variables are unwrapped by the forward
    np.testing.assert_array_equal(conv(rb.Variable(x), rb.Variable(w), 1, "same"), conv(x, w, 1, "same"))


# ---------------------------------------------------------------------------------------------------------------
# The tape: the primitives are recorded, the layer is differentiable
# ---------------------------------------------------------------------------------------------------------------
def _tape():
    from rnnbook import autodiff as ad
    return ad


@pytest.mark.parametrize("fn", ["conv", "gate_conv", "im2col"])
def test_primitives_under_the_tape_match_finite_differences(fn):
    ad = _tape()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 5, 2))
    w = rng.standard_normal((3, 2, 2, 8))
    if fn == "conv":
        ad.check_gradients(lambda a, b: conv(a, b, (2, 1), "same", 1), x, w, atol=1e-7)
    elif fn == "gate_conv":
        xg = rng.standard_normal((4,) + x.shape)
        ad.check_gradients(lambda a, b: gate_conv(a, b, 1, "valid", (2, 1)), xg, w, atol=1e-7)
    else:
        ad.check_gradients(lambda a: im2col(a, (3, 2), (1, 2), "same", 1), x, atol=1e-7)


def test_conv_is_one_recorded_op():
    ad = _tape()
    rng = np.random.default_rng(5)
    x, w = rb.Variable(rng.standard_normal((2, 6, 5, 2))), rb.Variable(rng.standard_normal((3, 3, 2, 4)))
    with rb.GradientTape() as tape:
        z = conv(x, w, 1, "same")
    assert isinstance(z, ad.Tensor) and z._node.op is conv
    assert {id(p) for _, p in z._node.parents} == {id(x), id(w)}
    dx, dw = tape.gradient(z, [x, w])                                            # seeded with ones
    ref = conv.vjp(np.ones(z.shape), None, x.value, w.value, 1, "same", 1)
    np.testing.assert_allclose(dx, ref[0])
    np.testing.assert_allclose(dw, ref[1])


def test_outside_a_tape_nothing_is_recorded():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 5, 2)).astype("float32")
    layer = ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True)
    out = layer(x)
    assert all(type(o) is np.ndarray for o in out)


# ---------------------------------------------------------------------------------------------------------------
# 2. Against torch autograd through Keras 3
# ---------------------------------------------------------------------------------------------------------------
SHAPES = {1: (2, 4, 9, 2), 2: (2, 3, 7, 6, 2), 3: (2, 3, 5, 4, 4, 2)}          # (B, T, *S, C), channels last
KERNELS = {1: 3, 2: (3, 2), 3: (2, 3, 2)}
FILTERS = 3
MASKS = {"none": None, "holes": "holes", "right_padded": "right"}


def _mask(kind, B, T):
    if kind is None:
        return None
    if kind == "right":
        m = np.ones((B, T), bool)
        m[1, T - 2:] = False
        return m
    m = np.ones((B, T), bool)
    m[0, 0] = m[1, 1] = False                                                   # a leading masked step, a hole
    return m


def _keras_layer(rank, input_shape, seed, **kw):
    import keras
    k = {1: keras.layers.ConvLSTM1D, 2: keras.layers.ConvLSTM2D, 3: keras.layers.ConvLSTM3D}[rank](**kw)
    k.build(input_shape)
    rng = np.random.default_rng(seed)
    k.set_weights([(rng.standard_normal(w.shape) * 0.4).astype(w.dtype) for w in k.get_weights()])
    return k


def keras_grads(k, x, states, mask, ws):
    import torch
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    kw = {"initial_state": st}
    if mask is not None:
        kw["mask"] = torch.tensor(mask)
    outs = k(xt, **kw)
    loss = sum((o * torch.tensor(w)).sum() for o, w in zip(outs, ws))
    for v in k.trainable_weights:
        v.value.grad = None
    loss.backward()
    grads = [xt.grad.numpy()] + [s.grad.numpy() for s in st] + [v.value.grad.numpy() for v in k.trainable_weights]
    return [o.detach().numpy() for o in outs], grads


def rb_grads(layer, x, states, mask, ws, training=False, reseed=None):
    xv = rb.Variable(x, dtype=x.dtype)
    sv = [rb.Variable(s, dtype=s.dtype) for s in states]
    if reseed is not None:
        layer.cell.seed_generator = SeedGenerator(reseed)
    with rb.GradientTape() as tape:
        outs = layer(xv, initial_state=sv, mask=mask, training=training)
        loss = None
        for o, w in zip(outs, ws):
            term = ops.sum(ops.multiply(o, w))
            loss = term if loss is None else ops.add(loss, term)
    grads = tape.gradient(loss, [xv, *sv, *layer.trainable_weights])
    return [np.asarray(unwrap(o)) for o in outs], grads


def _setup(rank, data_seed=0, cf=False, shape=None, data_dtype="float32", **kw):
    "An rnnbook layer (`kw` + filters, kernel_size, return_state), data, initial states and the loss weights."
    rng = np.random.default_rng(data_seed)
    shape = shape or SHAPES[rank]
    dtype = data_dtype
    x = rng.standard_normal(shape).astype(dtype)
    if cf:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 2))
        kw["data_format"] = "channels_first"
    kw = dict(dict(filters=FILTERS, kernel_size=KERNELS[rank], return_state=True), **kw)
    r = RB[rank](**kw)
    r.build(x.shape)
    state_shape = (x.shape[0],) + tuple(r.cell.state_size[0])
    states = [(rng.standard_normal(state_shape) * 0.5).astype(dtype) for _ in range(2)]
    out = r(x, initial_state=states)
    ws = [rng.standard_normal(np.shape(o)).astype(dtype) for o in out]
    return rng, x, states, ws, r, kw


def _compare_with_keras(rank, mask_kind=None, cf=False, seed=0, **kw):
    _tape()
    rng, x, states, ws, r, kw = _setup(rank, seed, cf, **kw)
    k = _keras_layer(rank, x.shape, seed + 100, **{k_: v for k_, v in kw.items() if k_ != "unroll"})
    r.set_weights(k.get_weights())
    mask = _mask(mask_kind, *x.shape[:2])
    kouts, kg = keras_grads(k, x, states, mask, ws)
    routs, rg = rb_grads(r, x, states, mask, ws)
    assert len(routs) == len(kouts) == 3
    for a, b in zip(routs, kouts):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    names = ["input", "h0", "c0", "kernel", "recurrent_kernel", "bias"]
    assert len(rg) == len(kg) == 3 + len(k.trainable_weights)
    for name, a, b in zip(names, rg, kg):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_kind", sorted(MASKS))
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("rank", [1, 2])
def test_gradients_match_keras(rank, padding, return_sequences, strides, mask_kind, go_backwards):
    _compare_with_keras(rank, MASKS[mask_kind], padding=padding, return_sequences=return_sequences, strides=strides,
                        go_backwards=go_backwards)


@pytest.mark.parametrize("kw", [dict(padding="same"), dict(strides=(1, 2, 1), return_sequences=True),
                                dict(padding="same", go_backwards=True, return_sequences=True)])
def test_gradients_match_keras_3d(kw):
    _compare_with_keras(3, "holes", **kw)


@pytest.mark.parametrize("rank,kw", [
    (1, dict(strides=2, padding="same", return_sequences=True)),
    (2, dict(strides=(2, 1), go_backwards=True)),
    (2, dict(dilation_rate=(1, 2), padding="same", return_sequences=True)),
    (3, dict(padding="same", return_sequences=True)),
])
def test_gradients_match_keras_channels_first(rank, kw):
    _compare_with_keras(rank, "holes", cf=True, **kw)


@pytest.mark.parametrize("rank,kw", [
    (2, dict(dilation_rate=2, return_sequences=True)),
    (1, dict(dilation_rate=3, padding="same")),
    (2, dict(use_bias=False, padding="same", return_sequences=True)),
    (2, dict(activation="relu", recurrent_activation="hard_sigmoid", padding="same")),
    (2, dict(zero_output_for_mask=True, return_sequences=True, padding="same")),
    (2, dict(unroll=True, padding="same", return_sequences=True, go_backwards=True)),
    (2, dict(unroll=True, data_format="channels_first", strides=2)),
])
def test_gradients_match_keras_options(rank, kw):
    kw = dict(kw)
    cf = kw.pop("data_format", None) == "channels_first"
    _compare_with_keras(rank, "holes", cf=cf, **kw)


@pytest.mark.parametrize("rank", [1, 2])
def test_gradients_match_keras_float64(rank):
    "In float64 the two agree to rounding (1e-10): the same function, differentiated exactly."
    _tape()
    rng, x, states, ws, r64, kw = _setup(rank, 7, data_dtype="float64", padding="same", return_sequences=True,
                                         dtype="float64")
    k = _keras_layer(rank, x.shape, 107, **kw)
    r64.set_weights(k.get_weights())
    mask = _mask("holes", *x.shape[:2])
    _, kg = keras_grads(k, x, states, mask, ws)
    _, rg = rb_grads(r64, x, states, mask, ws)
    for a, b in zip(rg, kg):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# 3. End to end: the layer under the tape vs finite differences (float64); fast path vs cell path
# ---------------------------------------------------------------------------------------------------------------
def _fd_check(rank, shape, mask_kind=None, cf=False, training=False, seed=11, **kw):
    _tape()
    rng, x, states, ws, r, kw = _setup(rank, seed, cf, shape=shape, data_dtype="float64", dtype="float64", **kw)
    r.set_weights([rng.standard_normal(w.shape) * 0.5 for w in r.get_weights()])
    mask = _mask(mask_kind, *x.shape[:2])
    reseed = 5 if training else None
    _, grads = rb_grads(r, x, states, mask, ws, training=training, reseed=reseed)

    def loss():
        if reseed is not None:
            r.cell.seed_generator = SeedGenerator(reseed)
        outs = r(x, initial_state=states, mask=mask, training=training)
        return float(sum((np.asarray(o) * w).sum() for o, w in zip(outs, ws)))

    targets = [x, *states] + [w.value for w in r.trainable_weights]
    names = ["input", "h0", "c0", "kernel", "recurrent_kernel", "bias"]
    for name, a, g in zip(names, targets, grads):
        np.testing.assert_allclose(g, numeric_grad(loss, a), atol=1e-6, rtol=1e-5, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("rank,shape,mask_kind,cf,kw", [
    (1, (2, 3, 6, 2), "holes", False, dict(padding="same", go_backwards=True, return_sequences=True)),
    (1, (2, 3, 7, 1), None, True, dict(strides=2)),
    (2, (2, 3, 5, 4, 2), "right", False, dict(padding="same", strides=2, return_sequences=True)),
    (2, (1, 3, 5, 5, 1), None, True, dict(kernel_size=2, dilation_rate=(2, 1))),
    (3, (2, 2, 3, 3, 3, 1), "holes", False, dict(kernel_size=2, padding="same")),
])
def test_layer_gradients_match_finite_differences(rank, shape, mask_kind, cf, kw):
    kw = dict(dict(filters=2), **kw)
    _fd_check(rank, shape, mask_kind, cf, **kw)


def test_layer_gradients_with_dropout_match_finite_differences():
    "Training with input and recurrent dropout: the same masks in every evaluation (seed reset), exact gradients."
    _fd_check(2, (2, 3, 4, 4, 2), "holes", False, training=True, filters=2, padding="same", dropout=0.3,
              recurrent_dropout=0.4, return_sequences=True)


@pytest.mark.parametrize("kw", [dict(), dict(dropout=0.3, recurrent_dropout=0.2), dict(go_backwards=True, strides=2),
                                dict(data_format="channels_first", padding="same")])
def test_fast_path_gradients_equal_cell_path(kw):
    "The fused input convolution (all steps at once) and the cell step by step (`unroll=True`) give one gradient."
    _tape()
    kw = dict(kw)
    cf = kw.pop("data_format", None) == "channels_first"
    rng, x, states, ws, fast, kw = _setup(2, 21, cf, return_sequences=True, seed=9, **kw)
    slow = ConvLSTM2D(**dict(kw, unroll=True))
    slow.build(x.shape)
    slow.set_weights(fast.get_weights())
    mask = _mask("holes", *x.shape[:2])
    training = "dropout" in kw
    a = rb_grads(fast, x, states, mask, ws, training=training, reseed=3)
    b = rb_grads(slow, x, states, mask, ws, training=training, reseed=3)
    for u, v in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-5)


def test_chunked_input_convolution_gradients(monkeypatch):
    "A small patch budget splits the all-steps convolution into chunks: same outputs and gradients."
    _tape()
    rng, x, states, ws, r, kw = _setup(2, 3, False, shape=(2, 5, 6, 5, 2), padding="same", return_sequences=True,
                                       dropout=0.25, seed=2)
    mask = _mask("holes", *x.shape[:2])
    whole = rb_grads(r, x, states, mask, ws, training=True, reseed=1)
    monkeypatch.setattr(cl, "_PATCH_BUDGET", 10000)                             # 2 steps per chunk: 2+2+1
    chunked = rb_grads(r, x, states, mask, ws, training=True, reseed=1)
    for u, v in zip(whole[0] + whole[1], chunked[0] + chunked[1]):
        np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-5)


def test_gradients_without_initial_state_and_stateful():
    "Zero initial states (no initial_state given) and a stateful layer: weights and input still get gradients."
    _tape()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 5, 4, 2))
    for layer in (ConvLSTM2D(2, 3, padding="same", dtype="float64"),
                  ConvLSTM2D(2, 3, padding="same", dtype="float64", stateful=True)):
        layer.build(x.shape)
        layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
        w = rng.standard_normal((2, 5, 4, 2))
        if layer.stateful:
            layer(x)                                                             # states carried from a first call
        before = [s.numpy() for s in layer.states] if layer.stateful else None
        xv = rb.Variable(x, dtype="float64")
        with rb.GradientTape() as tape:
            loss = ops.sum(ops.multiply(layer(xv), w))
        grads = tape.gradient(loss, [xv, *layer.trainable_weights])

        def f():
            if layer.stateful:
                for s, b in zip(layer.states, before):
                    s.assign(b)
            return float((np.asarray(layer(x)) * w).sum())
        for a, g in zip([x, layer.cell.kernel.value], grads[:2]):
            np.testing.assert_allclose(g, numeric_grad(f, a), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# CuPy (skipped without it)
# ---------------------------------------------------------------------------------------------------------------
def test_rules_on_cupy_match_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(9)
    for padding, s, r in itertools.product(["valid", "same"], [(1, 1), (2, 1)], [(1, 1)]):
        x = rng.standard_normal((4, 2, 7, 6, 3))
        w = rng.standard_normal((3, 2, 3, 8))
        zbar = rng.standard_normal(gate_conv(x, w, s, padding, r).shape)
        a = gate_conv.vjp(zbar, None, x, w, s, padding, r)[:2]
        b = gate_conv.vjp(cp.asarray(zbar), None, cp.asarray(x), cp.asarray(w), s, padding, r)[:2]
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, cp.asnumpy(v), atol=1e-10)
        cols = rng.standard_normal(im2col(x[0], (3, 2), s, padding, r).shape)
        np.testing.assert_allclose(col2im(cols, x[0].shape, (3, 2), s, padding, r),
                                   cp.asnumpy(col2im(cp.asarray(cols), x[0].shape, (3, 2), s, padding, r)), atol=1e-12)
