"""RepeatVector, Flatten, Reshape, Permute, Activation and LeakyReLU (nbs/10a_reshaping) against Keras 3 (torch).

For every case, in float32 and float64:

* forward: Keras' output and dtype, to 1e-5 (float32) / 1e-10 (float64);
* gradients: the tape's d(sum(y * W))/dx against torch autograd through the Keras layer, 1e-4 / 1e-10, and
  against finite differences (``check_gradients``, float64);
* weights: none, as in Keras (``get_weights() == []``, ``count_params() == 0``);
* configs both ways (Keras -> rnnbook, rnnbook -> Keras, round trips, the nested form) with equal outputs;
* ``compute_output_shape`` as Keras', unknown dimensions included;
* masks as Keras 3: the reshaping layers warn and drop a mask, the activation layers pass it on;
* CuPy arrays through the strict emulator (tests/fakes/fake_cupy.py): CuPy in, CuPy out, same values and
  gradients;
* argument and input errors of the same type as Keras';
* in a model: ``TimeDistributed(Flatten())`` and ``addition_rnn``'s encoder / RepeatVector / decoder with
  Keras' weights copied in.
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
import rnnbook.reshaping as rr  # noqa: E402   (until the classes are in rnnbook.layers)
from rnnbook import ops  # noqa: E402
from rnnbook.autodiff import GradientTape, check_gradients  # noqa: E402
from rnnbook.backend import is_cupy_array  # noqa: E402
from rnnbook.layer import Variable, get_mask, serialize_layer, deserialize_layer  # noqa: E402
from rnnbook.core import Dense, Masking  # noqa: E402
from rnnbook.recurrent import LSTM  # noqa: E402
from rnnbook.time_distributed import TimeDistributed  # noqa: E402

import fake_cupy  # noqa: E402

torch.set_num_threads(1)
K = keras.layers
TOL = {"float32": (1e-5, 1e-4), "float64": (1e-10, 1e-10)}   # (forward, gradients)

# name: (builder(m) with m = keras.layers or rnnbook.reshaping, input shape)
CASES = {
    "RepeatVector": (lambda m, **kw: m.RepeatVector(3, **kw), (3, 4)),
    "RepeatVector_1": (lambda m, **kw: m.RepeatVector(1, **kw), (2, 5)),
    "Flatten": (lambda m, **kw: m.Flatten(**kw), (2, 3, 4)),
    "Flatten_rank1": (lambda m, **kw: m.Flatten(**kw), (4,)),
    "Flatten_rank2": (lambda m, **kw: m.Flatten(data_format="channels_first", **kw), (2, 5)),
    "Flatten_channels_first": (lambda m, **kw: m.Flatten(data_format="channels_first", **kw), (2, 3, 4, 2)),
    "Reshape": (lambda m, **kw: m.Reshape((3, -1), **kw), (2, 12)),
    "Reshape_3d": (lambda m, **kw: m.Reshape((2, 3, 2), **kw), (2, 3, 4)),
    "Reshape_flat": (lambda m, **kw: m.Reshape((-1,), **kw), (2, 3, 4)),
    "Permute": (lambda m, **kw: m.Permute((2, 1), **kw), (2, 3, 4)),
    "Permute_4d": (lambda m, **kw: m.Permute((3, 1, 2), **kw), (2, 2, 3, 4)),
    "LeakyReLU": (lambda m, **kw: m.LeakyReLU(**kw), (2, 3, 4)),
    "LeakyReLU_slope": (lambda m, **kw: m.LeakyReLU(negative_slope=0.1, **kw), (3, 4)),
    "LeakyReLU_zero": (lambda m, **kw: m.LeakyReLU(0.0, **kw), (3, 4)),
}
ACTIVATIONS = ["relu", "tanh", "sigmoid", "softmax", "log_softmax", "elu", "selu", "softplus", "softsign",
               "swish", "silu", "gelu", "mish", "hard_sigmoid", "relu6", "leaky_relu", "exponential", "linear", None]
for _a in ACTIVATIONS:
    CASES[f"Activation_{_a}"] = ((lambda a: lambda m, **kw: m.Activation(a, **kw))(_a), (2, 3, 4))
NAMES = sorted(CASES)


def cls(case):
    return case.split("_")[0]


def data(shape, dtype="float32", seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def as_json(config):
    return json.loads(json.dumps(config))


def knp(v):
    return keras.ops.convert_to_numpy(v)


def make(case, dtype="float32"):
    build, shape = CASES[case]
    return build(K, dtype=dtype), build(rr, dtype=dtype), shape


# ---- forward and gradients -----------------------------------------------------------------------------------

def keras_grad(klayer, x, w):
    xt = torch.tensor(x, requires_grad=True)
    y = klayer(xt)
    (y * torch.tensor(w)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


def tape_grad(layer, x, w):
    xv = Variable(x, dtype=x.dtype.name)
    with GradientTape() as tape:
        y = layer(xv)
        loss = ops.sum(ops.multiply(y, w))
    return np.asarray(y), np.asarray(tape.gradient(loss, xv))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", NAMES)
def test_forward_and_gradients_match_keras(case, dtype):
    k, r, shape = make(case, dtype)
    x = data(shape, dtype)
    yr = r(x)
    yk = knp(k(x))
    assert yr.dtype == yk.dtype == np.dtype(dtype)
    assert yr.shape == yk.shape
    fwd, grad = TOL[dtype]
    if case == "Activation_hard_sigmoid" and dtype == "float64":
        grad = 1e-7     # torch's float64 hardsigmoid backward scales by a float32 1/6 (rnnbook's is exact)
    np.testing.assert_allclose(yr, yk, atol=fwd, rtol=fwd)
    w = data(yk.shape, dtype, seed=2)
    yk, gk = keras_grad(k, x, w)
    yr, gr = tape_grad(r, x, w)
    np.testing.assert_allclose(yr, yk, atol=fwd, rtol=fwd)
    np.testing.assert_allclose(gr, gk, atol=grad, rtol=grad)


@pytest.mark.parametrize("case", NAMES)
def test_gradients_match_finite_differences(case):
    build, shape = CASES[case]
    check_gradients(lambda x: build(rr)(x), data(shape, "float64"), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", NAMES)
def test_no_weights(case):
    k, r, shape = make(case)
    x = data(shape)
    k(x)
    r(x)
    assert r.get_weights() == [] == k.get_weights()
    assert r.count_params() == 0 == k.count_params()
    assert r.trainable_weights == []


def test_float16_inputs_are_computed_in_the_layer_dtype_and_ids_pass_through():
    x = data((2, 3, 4), "float16")
    for case in ("Flatten", "Permute", "Activation_tanh", "LeakyReLU"):
        k, r, _ = make(case)
        assert r(x).dtype == knp(k(x)).dtype == np.float32
    ids = np.arange(24).reshape(2, 3, 4)
    for case in ("Flatten", "Reshape_flat", "Permute"):
        k, r, _ = make(case)
        assert r(ids).dtype == ids.dtype
        np.testing.assert_array_equal(r(ids), knp(k(ids)))


# ---- shapes ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", NAMES)
def test_compute_output_shape_matches_keras(case):
    k, r, shape = make(case)
    for s in [(None, *shape[1:]), shape, (None,) * len(shape) if len(shape) > 1 else (None,)]:
        if cls(case) == "Reshape" and None in s[1:]:
            continue                                      # see test_reshape_output_shape_unknown
        assert tuple(r.compute_output_shape(s)) == tuple(k.compute_output_shape(s)), s
    y = r(data(shape))
    assert tuple(r.compute_output_shape(shape)) == y.shape


def test_reshape_output_shape_unknown():
    for target, s in [((3, -1), (None, None)), ((2, 3, 2), (None, 3, None)), ((-1,), (None, None, 4))]:
        assert rr.Reshape(target).compute_output_shape(s) == K.Reshape(target).compute_output_shape(s)


# ---- configs ---------------------------------------------------------------------------------------------------

def same_outputs(k, r, shape):
    x = data(shape)
    np.testing.assert_allclose(r(x), knp(k(x)), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", NAMES)
def test_configs_both_ways(case):
    k, r, shape = make(case)
    r_from_k = getattr(rr, cls(case)).from_config(as_json(k.get_config()))
    same_outputs(k, r_from_k, shape)
    k_from_r = getattr(K, cls(case)).from_config(as_json(r.get_config()))
    same_outputs(k_from_r, r, shape)
    again = getattr(rr, cls(case)).from_config(as_json(k_from_r.get_config()))
    assert as_json(again.get_config()) == as_json(r.get_config())
    k_again = getattr(K, cls(case)).from_config(as_json(r_from_k.get_config()))
    assert as_json(k_again.get_config()) == as_json(k.get_config())


@pytest.mark.parametrize("case", NAMES)
def test_nested_form_both_ways(case):
    k, r, shape = make(case)
    r(data(shape))                                             # built: the nested form has a build_config
    k2 = keras.saving.deserialize_keras_object(as_json(serialize_layer(r)))
    assert type(k2).__name__ == cls(case)
    same_outputs(k2, r, shape)
    k(data(shape))
    r2 = deserialize_layer(as_json(keras.saving.serialize_keras_object(k)))
    assert type(r2) is getattr(rr, cls(case))
    same_outputs(k, r2, shape)


def test_keras2_leaky_relu_config_with_alpha():
    config = {"name": "leaky", "trainable": True, "dtype": "float32", "alpha": 0.25}
    with pytest.warns(UserWarning, match="deprecated"):
        r = rr.LeakyReLU.from_config(dict(config))
    with pytest.warns(UserWarning, match="deprecated"):
        k = K.LeakyReLU.from_config(dict(config))
    assert r.negative_slope == k.negative_slope == 0.25
    assert "alpha" not in r.get_config()


def test_defaults_are_keras():
    assert rr.LeakyReLU().negative_slope == K.LeakyReLU().negative_slope == 0.3
    assert rr.Flatten().data_format == K.Flatten().data_format == "channels_last"
    assert rr.Reshape([3, 4]).target_shape == K.Reshape([3, 4]).target_shape == (3, 4)
    assert rr.Permute([2, 1]).dims == K.Permute([2, 1]).dims == (2, 1)
    for name in ("RepeatVector", "Flatten", "Reshape", "Permute", "Activation", "LeakyReLU"):
        args = {"RepeatVector": (2,), "Reshape": ((4,),), "Permute": ((1,),), "Activation": ("relu",)}.get(name, ())
        assert getattr(rr, name)(*args).name.rstrip("_0123456789") == \
            getattr(K, name)(*args).name.rstrip("_0123456789")


# ---- masks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in NAMES if c != "Flatten_rank1"])
def test_masks_as_keras(case):
    "After Masking: the reshaping layers warn and drop the mask, the activation layers pass it on, as Keras 3."
    k, r, shape = make(case)
    x = data(shape)
    x[1, -1] = 0.0                                                  # a masked step (or sample, for 2-D inputs)
    mk, mr = K.Masking(0.0)(x), Masking(0.0)(x)
    with warnings.catch_warnings(record=True) as caught_k:
        warnings.simplefilter("always")
        yk = k(mk)
    with warnings.catch_warnings(record=True) as caught_r:
        warnings.simplefilter("always")
        yr = r(mr)
    np.testing.assert_allclose(yr, knp(yk), atol=1e-6)
    mask_k = keras.src.backend.get_keras_mask(yk)
    mask_r = get_mask(yr)
    assert (mask_k is None) == (mask_r is None)
    if mask_k is not None:
        np.testing.assert_array_equal(mask_r, knp(mask_k))
    dropped = lambda caught: [str(w.message) for w in caught if "does not support masking" in str(w.message)]
    assert bool(dropped(caught_k)) == bool(dropped(caught_r)) == (mask_k is None)
    assert [m.replace(r.name, "") for m in dropped(caught_r)] == [m.replace(k.name, "") for m in dropped(caught_k)]


# ---- CuPy ------------------------------------------------------------------------------------------------------

@pytest.fixture
def cp():
    with fake_cupy.installed() as module:
        yield module


@pytest.mark.parametrize("case", NAMES)
def test_cupy_forward(cp, case):
    build, shape = CASES[case]
    x = data(shape)
    out = build(rr)(cp.asarray(x))
    assert is_cupy_array(out)
    np.testing.assert_allclose(out.get(), build(rr)(x), atol=1e-6)


@pytest.mark.parametrize("case", NAMES)
def test_cupy_gradients(cp, case):
    build, shape = CASES[case]
    x = data(shape)
    w = data(build(rr)(x).shape, seed=2)
    _, g = tape_grad(build(rr), x, w)
    xv = Variable(cp.asarray(x))
    with GradientTape() as tape:
        loss = ops.sum(ops.multiply(build(rr)(xv), cp.asarray(w)))
    grad = tape.gradient(loss, xv)
    grad = getattr(grad, "value", grad)
    assert is_cupy_array(grad)
    np.testing.assert_allclose(grad.get(), g, atol=1e-6)


def test_cupy_masks(cp):
    x = data((2, 3, 4))
    x[1, -1] = 0.0
    y = rr.LeakyReLU()(Masking(0.0)(cp.asarray(x)))
    assert is_cupy_array(y) and is_cupy_array(get_mask(y))
    np.testing.assert_array_equal(get_mask(y).get(), [[True, True, True], [True, True, False]])
    with pytest.warns(UserWarning, match="does not support masking"):
        assert get_mask(rr.Flatten()(Masking(0.0)(cp.asarray(x)))) is None


# ---- errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,args,kwargs,error", [
    ("RepeatVector", (0,), {}, ValueError), ("RepeatVector", (1.5,), {}, TypeError),
    ("RepeatVector", (True,), {}, TypeError), ("Permute", ((0, 1),), {}, ValueError),
    ("Permute", ((1, 1),), {}, ValueError), ("Reshape", ((-2, 3),), {}, ValueError),
    ("Reshape", ((-1, -1),), {}, ValueError), ("LeakyReLU", (-0.1,), {}, ValueError),
    ("LeakyReLU", (None,), {}, ValueError), ("Flatten", (), {"data_format": "NCHW"}, ValueError),
    ("Activation", ("no_such_activation",), {}, ValueError)])
def test_argument_errors_as_keras(name, args, kwargs, error):
    with pytest.raises(error):
        getattr(K, name)(*args, **kwargs)
    with pytest.raises(error) as info:
        getattr(rr, name)(*args, **kwargs)
    text = str(info.value)
    assert "Received" in text or "received" in text or "got" in text


@pytest.mark.parametrize("case,shape,needle", [
    ("RepeatVector", (2, 3, 4), "expected ndim=2, found ndim=3. Full shape received: (2, 3, 4)"),
    ("Permute", (2, 3), "expected ndim=3, found ndim=2"),
    ("Reshape", (2, 10), "input_shape=(10,), target_shape=(3, -1)"),
    ("Reshape_3d", (2, 5, 2), "input_shape=(5, 2), target_shape=(2, 3, 2)")])
def test_input_errors_as_keras(case, shape, needle):
    k, r, _ = make(case)
    x = data(shape)
    with pytest.raises(ValueError):
        k(x)
    with pytest.raises(ValueError, match=None) as info:
        r(x)
    assert needle in str(info.value)
    assert not r.built                                             # a failed first call leaves it unbuilt


# ---- in models -------------------------------------------------------------------------------------------------

def test_time_distributed_flatten_as_keras():
    "The video models' per-frame Flatten: folded into the batch, same values and gradients as Keras."
    x = data((2, 3, 4, 4, 2))
    k, r = K.TimeDistributed(K.Flatten()), TimeDistributed(rr.Flatten())
    w = data((2, 3, 32), seed=2)
    yk, gk = keras_grad(k, x, w)
    yr, gr = tape_grad(r, x, w)
    np.testing.assert_allclose(yr, yk, atol=1e-6)
    np.testing.assert_allclose(gr, gk, atol=1e-6)


def test_addition_rnn_bridge_as_keras():
    "addition_rnn: LSTM encoder -> RepeatVector -> LSTM decoder -> Dense -> softmax, Keras' weights copied in."
    def layers(m, lstm, dense):
        return [lstm(8), m.RepeatVector(3), lstm(8, return_sequences=True), dense(12), m.Activation("softmax")]
    kl, rl = layers(K, K.LSTM, K.Dense), layers(rr, LSTM, Dense)
    x = data((4, 5, 12))
    w = data((4, 3, 12), seed=2)
    rng = np.random.default_rng(0)
    hk, hr = x, x
    for a, b in zip(kl, rl):                                # build both, then copy Keras' weights
        hk, hr = a(hk), b(hr)
        weights = [rng.uniform(-0.5, 0.5, v.shape).astype("float32") for v in a.get_weights()]
        a.set_weights(weights)
        b.set_weights(weights)
    yk, gk = keras_grad(_KerasChain(kl), x, w)
    yr, gr = tape_grad(_Chain(rl), x, w)
    np.testing.assert_allclose(yr, yk, atol=1e-5)
    np.testing.assert_allclose(gr, gk, atol=1e-4)


class _KerasChain:
    def __init__(self, layers):
        self.chain = layers

    def __call__(self, x):
        for layer in self.chain:
            x = layer(x)
        return x


class _Chain(rb.layer.Layer):
    "The layers called one after the other (for `tape_grad`)."
    def __init__(self, layers):
        super().__init__()
        self.chain = list(layers)

    def call(self, x):
        for layer in self.chain:
            x = layer(x)
        return x


def test_models_move_between_keras_and_rnnbook_by_json():
    "A Sequential and a functional model using the six layers: Keras' JSON in rnnbook and back, same outputs."
    from rnnbook.models import model_from_json
    km = keras.Sequential([keras.Input((4, 4, 2)), K.Flatten(), K.Reshape((8, -1)), K.Permute((2, 1)),
                           K.LeakyReLU(0.2), K.Dense(3), K.Activation("softmax")])
    inp = keras.Input((5, 6))
    h = K.RepeatVector(2)(K.LSTM(4)(inp))
    kf = keras.Model(inp, K.Activation("tanh")(K.LSTM(3, return_sequences=True)(h)))
    for k, x in ((km, data((2, 4, 4, 2))), (kf, data((2, 5, 6)))):
        r = model_from_json(k.to_json())
        r.set_weights(k.get_weights())
        np.testing.assert_allclose(r(x), knp(k(x)), atol=1e-6)
        k2 = keras.models.model_from_json(r.to_json())
        k2.set_weights(k.get_weights())
        np.testing.assert_allclose(knp(k2(x)), knp(k(x)), atol=1e-6)
