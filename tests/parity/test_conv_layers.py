"""Conv1D/2D/3D and the pooling layers (rnnbook.conv_layers) against Keras 3 (torch backend).

1. Forward parity: Keras' random weights copied into rnnbook (``set_weights(get_weights())``), outputs equal within
   1e-5 (float32) and 1e-10 (float64), across rank x padding (valid/same/causal) x strides/dilation x groups,
   channels_first, no bias, activations; the pooling layers across pool size, strides, padding and data format.
2. Gradients: the tape against torch autograd through Keras (input, kernel and bias; 1e-4 in float32, 1e-9 in
   float64) and against central finite differences (float64).
3. Configs both ways (Keras -> rnnbook -> same numbers, rnnbook -> Keras -> same numbers, round trips).
4. Masks as Keras 3: Conv and pooling layers drop an incoming mask with a warning; GlobalAveragePooling1D consumes
   it (masked steps left out, fully masked sample NaN); GlobalMaxPooling1D drops it (masked steps count).
5. CuPy arrays through the strict CuPy emulator (tests/fakes/fake_cupy.py): CuPy in, CuPy out, NumPy's numbers,
   and gradients on the device.
"""

import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import conv_layers as cv  # noqa: E402
from rnnbook.autodiff import numeric_gradient  # noqa: E402
from rnnbook.layer import Variable, get_mask  # noqa: E402

torch.set_num_threads(1)
K = keras.layers
ATOL = RTOL = 1e-5
CONV = {1: "Conv1D", 2: "Conv2D", 3: "Conv3D"}
SHAPES = {1: (2, 9, 4), 2: (2, 7, 6, 4), 3: (2, 5, 6, 4, 4)}          # (N, *S, C), channels last
KERNELS = {1: 3, 2: (3, 2), 3: (2, 3, 2)}


def to_np(v):
    return np.asarray(keras.ops.convert_to_numpy(v))


def cf(x):
    "(N, *S, C) -> (N, C, *S)"
    return np.moveaxis(x, -1, 1)


def data(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def pair(name, input_shape, seed=1, dtype="float32", **kw):
    "A Keras layer and the rnnbook layer of the same name and config, both built, with the same random weights."
    k = getattr(K, name)(dtype=dtype, **kw)
    k.build(input_shape)
    rng = np.random.default_rng(seed)
    k.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(dtype) for w in k.get_weights()])
    r = getattr(cv, name)(dtype=dtype, **kw)
    r.build(input_shape)
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    r.set_weights(k.get_weights())
    return k, r


# ---------------------------------------------------------------------------------------------------------------
# 1. forward parity
# ---------------------------------------------------------------------------------------------------------------
GEOM = {"s1": {}, "s2": dict(strides=2), "d2": dict(dilation_rate=2)}


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("geom", list(GEOM))
@pytest.mark.parametrize("rank,padding", [(1, "valid"), (1, "same"), (1, "causal"), (2, "valid"), (2, "same"),
                                          (3, "valid"), (3, "same")])           # causal: Conv1D's only
def test_conv_forward(rank, padding, geom, groups):
    x = data(SHAPES[rank])
    k, r = pair(CONV[rank], x.shape, filters=4, kernel_size=KERNELS[rank], padding=padding, groups=groups,
                **GEOM[geom])
    y = r(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(y, to_np(k(x)), atol=ATOL, rtol=RTOL)
    assert y.shape == tuple(k.compute_output_shape(x.shape)) == r.compute_output_shape(x.shape)


@pytest.mark.parametrize("rank,kw", [(1, dict(strides=2, padding="same")), (1, dict(padding="causal")),
                                     (2, dict(strides=(2, 1), groups=2)),
                                     (2, dict(dilation_rate=(1, 2), padding="same")),
                                     (3, dict(strides=(1, 2, 1), padding="same"))])
def test_conv_channels_first(rank, kw):
    x = cf(data(SHAPES[rank]))
    k, r = pair(CONV[rank], x.shape, filters=4, kernel_size=KERNELS[rank], data_format="channels_first", **kw)
    y = r(x)
    assert y.shape[1] == 4
    np.testing.assert_allclose(y, to_np(k(x)), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kw", [dict(use_bias=False), dict(activation="relu"), dict(activation="tanh"),
                                dict(activation="sigmoid", kernel_size=1), dict(filters=1, kernel_size=9)])
def test_conv_options(kw):
    x = data(SHAPES[1])
    k, r = pair("Conv1D", x.shape, **{"filters": 3, "kernel_size": 2, **kw})
    np.testing.assert_allclose(r(x), to_np(k(x)), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_float64(rank):
    x = data(SHAPES[rank], dtype="float64")
    k, r = pair(CONV[rank], x.shape, dtype="float64", filters=3, kernel_size=KERNELS[rank], padding="same")
    y = r(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, to_np(k(x)), atol=1e-10, rtol=1e-10)


POOLS = {"p2": dict(), "p3s1": dict(pool_size=3, strides=1), "p3s2": dict(pool_size=3, strides=2),
         "p2s3": dict(pool_size=2, strides=3)}


def keras_torch_average_differs(shape, pool_size, strides, padding):
    """Keras on torch pads 'same' by replicating the edge when any axis' padding is uneven (TF/JAX, and rnnbook,
    leave the padding out of the mean): there the reference is the mean of the real entries, computed here."""
    if padding != "same":
        return False
    totals = [max((-(-n // s) - 1) * s + k - n, 0) for n, k, s in zip(shape, pool_size, strides)]
    return any(t % 2 for t in totals)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("name", ["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
                                  "AveragePooling2D", "AveragePooling3D"])
def test_pooling_forward(name, pool, padding, data_format):
    rank = int(name[-2])
    x = data(SHAPES[rank])
    x = cf(x) if data_format == "channels_first" else x
    kw = dict(POOLS[pool], padding=padding, data_format=data_format)
    kw.setdefault("pool_size", 2)
    k, r = getattr(K, name)(**kw), getattr(cv, name)(**kw)
    y = r(x)
    assert y.shape == tuple(k.compute_output_shape(x.shape)) == r.compute_output_shape(x.shape)
    spatial = SHAPES[rank][1:-1]
    if name.startswith("Average") and keras_torch_average_differs(spatial, r.pool_size, r.strides, padding):
        ref = reference_average(x, r)                                  # TF's rule, computed here
    else:
        ref = to_np(k(x))
    np.testing.assert_allclose(y, ref, atol=ATOL, rtol=RTOL)


def reference_average(x, layer):
    "Mean of the real entries of each 'same' window, one window at a time."
    x = np.moveaxis(x, 1, -1) if layer.data_format == "channels_first" else x
    spatial = x.shape[1:-1]
    out_shape = [-(-n // s) for n, s in zip(spatial, layer.strides)]
    before = [max((o - 1) * s + k - n, 0) // 2 for o, s, k, n in zip(out_shape, layer.strides, layer.pool_size,
                                                                       spatial)]
    y = np.zeros((x.shape[0], *out_shape, x.shape[-1]), x.dtype)
    for p in np.ndindex(*out_shape):
        window = tuple(slice(max(q * s - b, 0), min(q * s - b + k, n))
                       for q, s, b, k, n in zip(p, layer.strides, before, layer.pool_size, spatial))
        y[(slice(None), *p)] = x[(slice(None), *window)].mean(axis=tuple(range(1, len(spatial) + 1)))
    return np.moveaxis(y, -1, 1) if layer.data_format == "channels_first" else y


def test_pooling_average_rule_where_keras_torch_differs():
    "The mean of the real entries (TF/JAX), checked by hand: one axis of 5, windows of 4, stride 1: pads (1, 2)."
    x = np.arange(1, 6, dtype="float32").reshape(1, 5, 1)
    y = cv.AveragePooling1D(4, strides=1, padding="same")(x)
    np.testing.assert_allclose(y.ravel(), [(1 + 2 + 3) / 3, 2.5, 3.5, (3 + 4 + 5) / 3, 4.5])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", ["GlobalMaxPooling1D", "GlobalAveragePooling1D"])
def test_global_pooling_forward(name, data_format, keepdims):
    x = data(SHAPES[1])
    x = cf(x) if data_format == "channels_first" else x
    k, r = getattr(K, name)(data_format=data_format, keepdims=keepdims), \
        getattr(cv, name)(data_format=data_format, keepdims=keepdims)
    y = r(x)
    assert y.shape == tuple(k.compute_output_shape(x.shape)) == r.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, to_np(k(x)), atol=ATOL, rtol=RTOL)


def test_errors_name_argument_expected_and_received():
    with pytest.raises(ValueError, match="Received filters=0"):
        cv.Conv1D(0, 3)
    with pytest.raises(ValueError, match="evenly divisible by the number of groups. Received: groups=2, filters=3"):
        cv.Conv1D(3, 3, groups=2)
    with pytest.raises(ValueError, match="`strides > 1` not supported"):
        cv.Conv2D(3, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="padding"):
        cv.Conv2D(3, 3, padding="causal")
    with pytest.raises(ValueError, match="kernel_size"):
        cv.Conv3D(3, (3, 3))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        cv.Conv2D(3, 3)(data((2, 5, 5)))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=4"):
        cv.MaxPooling1D()(data((2, 5, 5, 1)))
    layer = cv.Conv1D(2, 2)
    layer(data((2, 5, 3)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(data((2, 5, 4)))
    with pytest.raises(ValueError, match="zero or negative"):
        cv.Conv1D(2, 6)(data((2, 5, 3)))
    with pytest.raises(ValueError, match="no LoRA"):
        cv.Conv1D(2, 2, lora_rank=4)


# ---------------------------------------------------------------------------------------------------------------
# 2. gradients
# ---------------------------------------------------------------------------------------------------------------
def keras_grads(k, x, w):
    xt = torch.tensor(x, requires_grad=True)
    for v in k.trainable_weights:
        v.value.grad = None
    y = k(xt)
    (y * torch.tensor(w)).sum().backward()
    return [xt.grad.numpy()] + [v.value.grad.numpy() for v in k.trainable_weights]


def rb_grads(r, x, w):
    xv = Variable(x, dtype=str(x.dtype))
    with rb.GradientTape() as tape:
        loss = rb.ops.sum(rb.ops.multiply(r(xv), w))
    return [np.asarray(g) for g in tape.gradient(loss, [xv, *r.trainable_weights])]


GRAD_CASES = {
    "1d_same_s2": (1, dict(padding="same", strides=2)),
    "1d_causal_d2": (1, dict(padding="causal", dilation_rate=2, activation="tanh")),
    "1d_groups_cf": (1, dict(groups=2, data_format="channels_first")),
    "2d_valid": (2, dict()),
    "2d_same_d2_nobias": (2, dict(padding="same", dilation_rate=(2, 1), use_bias=False)),
    "2d_s21_groups": (2, dict(strides=(2, 1), groups=4, activation="relu")),
    "3d_same": (3, dict(padding="same", strides=(1, 2, 1))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_conv_gradients_vs_torch_autograd(case, dtype):
    rank, kw = GRAD_CASES[case]
    x = data(SHAPES[rank], dtype=dtype)
    if kw.get("data_format") == "channels_first":
        x = np.ascontiguousarray(cf(x))
    k, r = pair(CONV[rank], x.shape, dtype=dtype, filters=4, kernel_size=KERNELS[rank], **kw)
    w = data(r.compute_output_shape(x.shape), seed=3, dtype=dtype)
    tol = 1e-4 if dtype == "float32" else 1e-9
    for a, b in zip(rb_grads(r, x, w), keras_grads(k, x, w)):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", [("MaxPooling1D", dict(pool_size=3, strides=2, padding="same")),
                                     ("MaxPooling2D", dict(padding="same", data_format="channels_first")),
                                     ("MaxPooling3D", dict(pool_size=(2, 3, 2), strides=1)),
                                     ("AveragePooling1D", dict(pool_size=3, strides=2, padding="same")),
                                     ("AveragePooling2D", dict(pool_size=(3, 2))),
                                     ("AveragePooling3D", dict(pool_size=2, padding="same")),
                                     ("GlobalMaxPooling1D", dict()),
                                     ("GlobalAveragePooling1D", dict(keepdims=True))])
def test_pooling_gradients_vs_torch_autograd(name, kw, dtype):
    rank = 1 if "Global" in name else int(name[-2])
    x = data(SHAPES[rank], dtype=dtype)
    if kw.get("data_format") == "channels_first":
        x = np.ascontiguousarray(cf(x))
    k, r = getattr(K, name)(dtype=dtype, **kw), getattr(cv, name)(dtype=dtype, **kw)
    w = data(r.compute_output_shape(x.shape), seed=3, dtype=dtype)
    tol = 1e-4 if dtype == "float32" else 1e-9
    if name == "GlobalAveragePooling1D" and dtype == "float64":
        tol = 1e-7                       # Keras' mean on torch gives this gradient rounded to float32 (w / T)
    for a, b in zip(rb_grads(r, x, w), keras_grads(k, x, w)):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("make,shape", [
    (lambda: cv.Conv1D(3, 3, padding="causal", dilation_rate=2, dtype="float64"), (2, 6, 2)),
    (lambda: cv.Conv2D(4, (2, 2), strides=(1, 2), groups=2, padding="same", dtype="float64"), (1, 4, 5, 2)),
    (lambda: cv.Conv3D(2, 2, data_format="channels_first", dtype="float64"), (1, 2, 3, 3, 3)),
    (lambda: cv.AveragePooling2D(3, strides=1, padding="same", dtype="float64"), (1, 4, 5, 2)),
    (lambda: cv.MaxPooling1D(2, padding="same", dtype="float64"), (2, 5, 2)),
])
def test_gradients_vs_finite_differences(make, shape):
    layer = make()
    x = data(shape, dtype="float64")
    layer(x)
    w = data(layer.compute_output_shape(shape), seed=5, dtype="float64")
    grads = rb_grads(layer, x, w)
    targets = [x] + [v.value for v in layer.trainable_weights]
    for g, a in zip(grads, targets):
        num = numeric_gradient(lambda v: float(np.sum(w * layer(x if a is not x else v))) if a is x
                               else _loss_with(layer, a, v, x, w), a)
        np.testing.assert_allclose(g, num, atol=1e-6, rtol=1e-5)


def _loss_with(layer, weight, value, x, w):
    "The loss with one weight's array replaced by `value` (restored afterwards)."
    saved = weight.copy()
    weight[...] = value
    try:
        return float(np.sum(w * layer(x)))
    finally:
        weight[...] = saved


# ---------------------------------------------------------------------------------------------------------------
# 3. configs both ways
# ---------------------------------------------------------------------------------------------------------------
CONFIG_CASES = {
    "Conv1D": (dict(filters=3, kernel_size=2, padding="causal", activation="relu",
                    kernel_regularizer={"class_name": "L2", "config": {"l2": 0.01}}), (2, 6, 4)),
    "Conv2D": (dict(filters=4, kernel_size=(2, 3), strides=(2, 1), groups=2, use_bias=False,
                    data_format="channels_first", kernel_constraint="max_norm"), (2, 4, 6, 5)),
    "Conv3D": (dict(filters=2, kernel_size=2, dilation_rate=(1, 2, 1), padding="same",
                    bias_initializer="ones"), (1, 3, 5, 4, 2)),
    "MaxPooling1D": (dict(pool_size=3, strides=1, padding="same"), (2, 6, 4)),
    "MaxPooling2D": (dict(), (2, 6, 4, 3)),
    "MaxPooling3D": (dict(pool_size=(1, 2, 2), data_format="channels_first"), (1, 2, 3, 4, 4)),
    "AveragePooling1D": (dict(pool_size=2), (2, 6, 4)),
    "AveragePooling2D": (dict(pool_size=3, strides=2, padding="same"), (2, 7, 5, 3)),   # even 'same' padding
    "AveragePooling3D": (dict(pool_size=2), (1, 4, 4, 4, 2)),
    "GlobalMaxPooling1D": (dict(keepdims=True), (2, 6, 4)),
    "GlobalAveragePooling1D": (dict(data_format="channels_first"), (2, 6, 4)),
}


def as_json(config):
    return json.loads(json.dumps(config))


def same_numbers(k, r, shape):
    x = data(shape, seed=7)
    k.build(shape)
    r.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in k.get_weights()]
    k.set_weights(weights)
    r.set_weights(weights)
    np.testing.assert_allclose(r(x), to_np(k(x)), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_configs_both_ways(name):
    kw, shape = CONFIG_CASES[name]
    k = getattr(K, name)(**kw)
    r = getattr(cv, name).from_config(as_json(k.get_config()))
    same_numbers(k, r, shape)
    r2 = getattr(cv, name)(**kw)
    k2 = getattr(K, name).from_config(as_json(r2.get_config()))
    same_numbers(k2, r2, shape)
    again = getattr(cv, name).from_config(as_json(k2.get_config()))
    assert as_json(again.get_config()) == as_json(r2.get_config())
    keras_keys = set(k.get_config()) - {"dtype"}
    assert keras_keys <= set(r.get_config()), keras_keys - set(r.get_config())


def test_layers_serialize_by_name():
    from rnnbook.layer import deserialize_layer, serialize_layer
    for name, (kw, _) in CONFIG_CASES.items():
        layer = deserialize_layer(as_json(serialize_layer(getattr(cv, name)(**kw))))
        assert type(layer) is getattr(cv, name)


# ---------------------------------------------------------------------------------------------------------------
# 4. masks
# ---------------------------------------------------------------------------------------------------------------
def masked_input():
    x = data((3, 5, 4))
    x[0, 3:] = 0
    x[1, :2] = 0
    x[2] = 0                                                           # fully masked sample
    return x


def keras_masked(layer, x):
    inp = keras.Input(x.shape[1:])
    return to_np(keras.Model(inp, layer(K.Masking()(inp)))(x))


def test_global_average_pooling_consumes_the_mask():
    x = masked_input()
    y = cv.GlobalAveragePooling1D()(rb.layers.Masking()(x))
    assert get_mask(y) is None
    np.testing.assert_allclose(y, keras_masked(K.GlobalAveragePooling1D(), x), atol=ATOL, rtol=RTOL)
    assert np.isnan(y[2]).all()                                        # 0/0, as Keras
    np.testing.assert_allclose(y[0], x[0, :3].mean(0), atol=1e-6)
    cf_y = cv.GlobalAveragePooling1D(data_format="channels_first", keepdims=True)(cf(x), mask=x.any(-1))
    np.testing.assert_allclose(cf_y[:2, :, 0], y[:2], atol=1e-6)


@pytest.mark.parametrize("make,kmake", [
    (lambda: cv.GlobalMaxPooling1D(), lambda: K.GlobalMaxPooling1D()),
    (lambda: cv.Conv1D(2, 2, kernel_initializer="ones"), lambda: K.Conv1D(2, 2, kernel_initializer="ones")),
    (lambda: cv.MaxPooling1D(), lambda: K.MaxPooling1D()),
    (lambda: cv.AveragePooling1D(2), lambda: K.AveragePooling1D(2)),
])
def test_layers_without_masking_drop_the_mask_as_keras(make, kmake):
    x = masked_input()
    with pytest.warns(UserWarning, match="does not support masking"):
        y = make()(rb.layers.Masking()(x))
    assert get_mask(y) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(y, keras_masked(kmake(), x), atol=ATOL, rtol=RTOL)


def test_global_average_in_a_model_after_embedding_mask_zero():
    ids = np.array([[3, 4, 0, 0], [1, 2, 3, 4]])
    m = rb.layers.Embedding(6, 3, mask_zero=True, embeddings_initializer="glorot_uniform")
    e = m(ids)
    y = cv.GlobalAveragePooling1D()(e)
    np.testing.assert_allclose(y[0], np.asarray(e)[0, :2].mean(0), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# 5. CuPy arrays (the strict emulator)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def cp():
    import fake_cupy
    with fake_cupy.installed() as module:
        yield module


@pytest.mark.parametrize("make,shape", [
    (lambda: cv.Conv1D(3, 3, padding="causal", groups=1), (2, 7, 2)),
    (lambda: cv.Conv2D(4, 2, strides=2, groups=2, padding="same"), (2, 5, 6, 2)),
    (lambda: cv.Conv3D(2, 2, dilation_rate=(2, 1, 1)), (1, 5, 3, 3, 2)),
    (lambda: cv.MaxPooling2D(3, strides=1, padding="same"), (2, 5, 4, 3)),
    (lambda: cv.AveragePooling1D(3, padding="same"), (2, 7, 3)),
    (lambda: cv.MaxPooling3D(), (1, 4, 4, 4, 2)),
    (lambda: cv.GlobalMaxPooling1D(), (2, 7, 3)),
    (lambda: cv.GlobalAveragePooling1D(), (2, 7, 3)),
])
def test_cupy_in_cupy_out(cp, make, shape):
    from rnnbook.backend import is_cupy_array
    x = data(shape)
    cpu, gpu = make(), make()
    y = cpu(x)
    gpu(cp.asarray(x))
    gpu.set_weights(cpu.get_weights())
    for w in gpu.weights:
        assert is_cupy_array(w.value)
    yg = gpu(cp.asarray(x))
    assert is_cupy_array(yg)
    np.testing.assert_allclose(yg.get(), y, atol=1e-6, rtol=1e-5)
    w = data(y.shape, seed=2)
    gc, gg = rb_grads(cpu, x, w), _device_grads(gpu, cp.asarray(x), cp.asarray(w))
    for a, b in zip(gg, gc):
        assert is_cupy_array(a)
        np.testing.assert_allclose(a.get(), b, atol=1e-5, rtol=1e-5)


def test_cupy_channels_first_gradient(cp):
    make = lambda: cv.Conv2D(4, 2, strides=2, groups=2, padding="same", data_format="channels_first")
    x = data((2, 2, 5, 6))
    cpu, gpu = make(), make()
    y = cpu(x)
    gpu(cp.asarray(x))
    gpu.set_weights(cpu.get_weights())
    np.testing.assert_allclose(gpu(cp.asarray(x)).get(), y, atol=1e-6, rtol=1e-5)   # the forward pass works
    _device_grads(gpu, cp.asarray(x), cp.asarray(np.ones(y.shape, "float32")))


def _device_grads(layer, x, w):
    xv = Variable(x)
    with rb.GradientTape() as tape:
        loss = rb.ops.sum(rb.ops.multiply(layer(xv), w))
    return tape.gradient(loss, [xv, *layer.trainable_weights])


def test_cupy_global_average_with_mask(cp):
    x = masked_input()[:2]
    mask = x.any(-1)
    y = cv.GlobalAveragePooling1D()(x, mask=mask)
    yg = cv.GlobalAveragePooling1D()(cp.asarray(x), mask=cp.asarray(mask))
    np.testing.assert_allclose(yg.get(), y, atol=1e-6)
