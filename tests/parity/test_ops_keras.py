"""Parity tests: rnnbook activations / initializers / regularizers / constraints
vs Keras 3 (torch backend).

Keras is run through ``keras.ops`` on NumPy inputs and converted back with
``keras.ops.convert_to_numpy``.  Deterministic things are compared
numerically; random initializers are checked for shape, dtype, statistics
(the formulas Keras uses, verified on Keras' own samples in the same test),
seeding and orthogonality.

Run:  KERAS_BACKEND=torch .venv/bin/python -m pytest tests/parity/test_ops_keras.py -q
(the module sets KERAS_BACKEND=torch itself if Keras is not imported yet).
"""

import importlib
import math
import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
from keras import ops as K  # noqa: E402

try:
    import rnnbook as rb
except ModuleNotFoundError as e:  # only skip if rnnbook itself is missing
    if e.name != "rnnbook":
        raise
    pytest.skip("rnnbook is not importable", allow_module_level=True)


def _sub(name):
    """rnnbook submodule, via attribute (contract) or import."""
    mod = getattr(rb, name, None)
    if mod is None:
        mod = importlib.import_module(f"rnnbook.{name}")
    return mod


acts = _sub("activations")
inits = _sub("initializers")
regs = _sub("regularizers")
cons = _sub("constraints")

RTOL, ATOL = 1e-5, 1e-6
BAD = "definitely_not_a_real_name_42"


def knp(x):
    return np.asarray(K.convert_to_numpy(x))


def rnp(x):
    return np.asarray(x)


def scalar(x):
    """float() of a 0-d result (NumPy / Python number from rnnbook, tensor from Keras)."""
    if not isinstance(x, (float, int, np.ndarray, np.generic)):
        x = K.convert_to_numpy(x)
    a = np.asarray(x)
    assert a.size == 1, f"expected a scalar, got shape {a.shape}"
    return float(a.reshape(()))


def _eq(a, b):
    """Config value equality; numbers compared loosely (Keras stores some as float32)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return a == pytest.approx(b, rel=1e-6)
    return a == b


# ===========================================================================
# Activations
# ===========================================================================

ACTIVATIONS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softmax",
               "elu", "selu", "softplus", "softsign", "swish", "gelu",
               "exponential"]
ELEMENTWISE = [a for a in ACTIVATIONS if a != "softmax"]

_SPECIAL = [-1e4, -1e3, -100.0, -88.5, -88.0, -50.0, -30.0, -20.0, -17.0,
            -15.0, -6.0, -3.0, -2.9999, -1e-3, -1e-6, -1e-30, 0.0, 1e-30, 1e-6,
            1e-3, 2.9999, 3.0, 6.0, 15.0, 17.0, 20.0, 30.0, 50.0, 88.0, 88.5,
            100.0, 1e3, 1e4]
GRID = np.concatenate([np.linspace(-12, 12, 2401), _SPECIAL]).astype(np.float32)
EXTREME = np.array([-1e30, -1e20, 1e20, 1e30], np.float32)

# Warm-up: with keras imported, the very first torch.tanh call of a process is
# occasionally (~1 in 10 runs, torch 2.13 CPU/AVX512) off by up to 9e-5; every
# later call is exact to ~3e-8. Call every Keras activation once before
# using Keras as the reference.
for _name in ACTIVATIONS:
    knp(keras.activations.get(_name)(GRID))


def _assert_close(got, want, what):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_grid_matches_keras(name):
    want = knp(keras.activations.get(name)(GRID))
    got = rnp(acts.get(name)(GRID.copy()))
    _assert_close(got, want, f"{name} on grid")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_extreme_values_match_keras(name):
    # +-1e20, +-1e30: exp overflows, naive log1p(exp(x)) / x*sigmoid(x) etc. break
    with np.errstate(all="ignore"):
        got = rnp(acts.get(name)(EXTREME.copy()))
    want = knp(keras.activations.get(name)(EXTREME))
    _assert_close(got, want, f"{name} on {EXTREME}")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_keeps_float32_and_shape(name):
    x = GRID[:2400].reshape(4, 20, 30)
    y = rnp(acts.get(name)(x.copy()))
    assert y.shape == x.shape
    assert y.dtype == np.float32, f"{name}: dtype {y.dtype} (Keras gives float32)"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_nd_matches_keras(name):
    x = np.random.default_rng(0).normal(0, 4, (3, 7, 11)).astype(np.float32)
    _assert_close(rnp(acts.get(name)(x.copy())),
                  knp(keras.activations.get(name)(x)), f"{name} 3-D")


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3, 1e4])
def test_softmax_matches_keras(scale):
    rng = np.random.default_rng(1)
    for shape in [(7,), (5, 9), (2, 3, 16)]:
        x = (rng.normal(size=shape) * scale).astype(np.float32)
        got = rnp(acts.get("softmax")(x.copy()))
        want = knp(keras.activations.get("softmax")(x))
        _assert_close(got, want, f"softmax scale={scale} shape={shape}")
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


def test_softmax_large_equal_logits_and_grid():
    x = np.array([[1e4, 1e4, -1e4], [88.0, 89.0, 90.0], [0, 0, 0]], np.float32)
    _assert_close(rnp(acts.get("softmax")(x.copy())),
                  knp(keras.activations.get("softmax")(x)), "softmax rows")
    _assert_close(rnp(acts.get("softmax")(GRID.copy())),
                  knp(keras.activations.get("softmax")(GRID)), "softmax grid")


def test_gelu_is_keras_default_exact_erf_form():
    # keras.activations.gelu(x, approximate=False) is the default; the erf form
    # and the tanh approximation differ by up to ~5e-4, so this pins the choice.
    x = np.linspace(-5, 5, 1001).astype(np.float32)
    exact = knp(keras.activations.gelu(x, approximate=False))
    approx = knp(keras.activations.gelu(x, approximate=True))
    assert np.max(np.abs(exact - approx)) > 1e-4
    np.testing.assert_allclose(knp(keras.activations.get("gelu")(x)), exact)
    ref = 0.5 * x.astype(np.float64) * (
        1 + np.vectorize(math.erf)(x.astype(np.float64) / math.sqrt(2)))
    np.testing.assert_allclose(exact, ref, rtol=1e-5, atol=1e-6)
    _assert_close(rnp(acts.get("gelu")(x.copy())), exact, "gelu exact")


def test_hard_sigmoid_is_keras3_formula():
    x = np.array([-4, -3, -2.5, -1, 0, 1, 2.5, 3, 4], np.float32)
    want = np.clip(x + 3, 0, 6) / 6  # relu6(x + 3) / 6, NOT Keras 2's 0.2x+0.5
    np.testing.assert_allclose(rnp(acts.get("hard_sigmoid")(x)), want, atol=1e-7)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_serialize_roundtrip(name):
    if not hasattr(acts, "serialize"):
        pytest.skip("rnnbook.activations.serialize not implemented")
    f = acts.get(name)
    s = acts.serialize(f)
    g = acts.get(s)
    x = GRID[:600].reshape(20, 30)
    np.testing.assert_array_equal(rnp(g(x.copy())), rnp(f(x.copy())))


def test_activation_unknown_name_raises():
    with pytest.raises(ValueError, match=BAD):
        acts.get(BAD)


# ===========================================================================
# Initializers
# ===========================================================================


def _i(lib, name, **kw):
    mod = keras.initializers if lib == "keras" else inits
    return getattr(mod, name)(**kw)


def _call(lib, init, shape, dtype=None):
    out = init(shape, dtype=dtype) if dtype is not None else init(shape)
    return knp(out) if lib == "keras" else rnp(out)


# -- deterministic: exact equality --------------------------------------------

DETERMINISTIC = [
    ("Zeros", {}, (3, 4)),
    ("Zeros", {}, (7,)),
    ("Zeros", {}, (2, 3, 4)),
    ("Ones", {}, (3, 4)),
    ("Ones", {}, (5,)),
    ("Ones", {}, (2, 3, 4)),
    ("Constant", {"value": 0.5}, (3, 4)),
    ("Constant", {"value": -2.25}, (6,)),
    ("Constant", {"value": 3}, (2, 2, 2)),
    ("Identity", {}, (4, 4)),
    ("Identity", {}, (3, 5)),
    ("Identity", {}, (5, 3)),
    ("Identity", {"gain": 2.5}, (4, 4)),
    ("Identity", {"gain": -0.5}, (3, 6)),
]


@pytest.mark.parametrize("name,kw,shape", DETERMINISTIC,
                         ids=[f"{n}{k}{s}" for n, k, s in DETERMINISTIC])
def test_deterministic_initializer_equals_keras(name, kw, shape):
    want = _call("keras", _i("keras", name, **kw), shape)
    got = _call("rnnbook", _i("rnnbook", name, **kw), shape)
    assert got.shape == want.shape
    assert got.dtype == np.float32 == want.dtype, got.dtype
    np.testing.assert_array_equal(got, want)
    got2 = _call("rnnbook", _i("rnnbook", name, **kw), shape, dtype="float32")
    assert got2.dtype == np.float32
    np.testing.assert_array_equal(got2, want)


def test_identity_rejects_non_2d_like_keras():
    with pytest.raises(ValueError):
        _i("keras", "Identity")((2, 3, 4))
    with pytest.raises(ValueError):
        _i("rnnbook", "Identity")((2, 3, 4))


# -- random: statistics ---------------------------------------------------------

TRUNC_STD_FACTOR = 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]


def keras_fans(shape):
    """Keras' compute_fans (no input/output axes)."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    rf = int(np.prod(shape[:-2]))
    return shape[-2] * rf, shape[-1] * rf


def test_keras_fans_helper_agrees_with_keras():
    from keras.src.initializers.random_initializers import compute_fans
    for s in [(7,), (3, 5), (3, 5, 7), (3, 3, 16, 32), (2, 3, 3, 8, 4)]:
        assert keras_fans(s) == compute_fans(s)


def check_uniform(x, lo, hi, what):
    n = x.size
    assert x.min() >= lo - 1e-7 and x.max() <= hi + 1e-7, (
        f"{what}: range [{x.min()}, {x.max()}] outside [{lo}, {hi}]")
    w = hi - lo
    # with n >= 18k samples the extremes come within 0.1 % (5e-4 * w) of the limits
    assert x.min() <= lo + 5e-4 * w * max(1, 20000 / n), f"{what}: min {x.min()} far from {lo}"
    assert x.max() >= hi - 5e-4 * w * max(1, 20000 / n), f"{what}: max {x.max()} far from {hi}"
    std = w / math.sqrt(12)
    assert abs(x.mean() - (lo + hi) / 2) < 5 * std / math.sqrt(n), f"{what}: mean {x.mean()}"
    assert abs(x.std() / std - 1) < 0.03, f"{what}: std {x.std()} != {std}"


def check_normal(x, mean, std, what):
    n = x.size
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n), f"{what}: mean {x.mean()} != {mean}"
    assert abs(x.std() / std - 1) < 0.03, f"{what}: std {x.std()} != {std}"
    # untruncated: tails beyond 2.5 sigma exist (P ~ 1.2 %)
    assert np.mean(np.abs(x - mean) > 2.5 * std) > 0.005, f"{what}: no tails (truncated?)"


def check_truncated(x, mean, stddev, what):
    """Keras truncated_normal: N(mean, stddev) restricted to mean +- 2 stddev."""
    n = x.size
    z = (x.astype(np.float64) - mean) / stddev
    assert np.all(np.abs(z) <= 2 + 1e-5), f"{what}: |z| max {np.abs(z).max()} > 2"
    assert np.abs(z).max() > 1.9, f"{what}: max |z| {np.abs(z).max()} (too narrow)"
    # not clipping: clipping would put ~4.5 % of mass at |z| = 2
    assert np.mean(np.abs(z) > 1.99) < 0.005, f"{what}: mass piled at +-2 std (clipped?)"
    assert abs(z.mean()) < 5 / math.sqrt(n), f"{what}: mean {x.mean()} != {mean}"
    assert abs(z.std() / TRUNC_STD_FACTOR - 1) < 0.03, (
        f"{what}: std {x.std()} != {stddev * TRUNC_STD_FACTOR}")


def variance_scaling_expectation(shape, scale, mode, distribution):
    fan_in, fan_out = keras_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out,
         "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    s = scale / max(1.0, n)
    if distribution == "uniform":
        lim = math.sqrt(3 * s)
        return lambda x, what: check_uniform(x, -lim, lim, what)
    if distribution == "untruncated_normal":
        return lambda x, what: check_normal(x, 0.0, math.sqrt(s), what)
    return lambda x, what: check_truncated(x, 0.0, math.sqrt(s) / TRUNC_STD_FACTOR, what)


LIBS = ["keras", "rnnbook"]  # keras validates the expectations themselves
BIG = (400, 300)
CONV2D = (3, 3, 48, 64)   # fan_in 432, fan_out 576
CONV1D = (5, 60, 70)      # fan_in 300, fan_out 350
VEC = (30000,)            # fan_in = fan_out = 30000

RANDOM_CASES = [
    ("RandomUniform", {}, BIG, lambda x, w: check_uniform(x, -0.05, 0.05, w)),
    ("RandomUniform", {"minval": -0.3, "maxval": 0.7}, BIG,
     lambda x, w: check_uniform(x, -0.3, 0.7, w)),
    ("RandomNormal", {}, BIG, lambda x, w: check_normal(x, 0.0, 0.05, w)),
    ("RandomNormal", {"mean": 1.0, "stddev": 2.0}, BIG,
     lambda x, w: check_normal(x, 1.0, 2.0, w)),
    ("TruncatedNormal", {}, BIG, lambda x, w: check_truncated(x, 0.0, 0.05, w)),
    ("TruncatedNormal", {"mean": 1.0, "stddev": 2.0}, BIG,
     lambda x, w: check_truncated(x, 1.0, 2.0, w)),
]
for _shape in [BIG, CONV2D, CONV1D, VEC]:
    for _name, _args in [("GlorotUniform", (1.0, "fan_avg", "uniform")),
                         ("GlorotNormal", (1.0, "fan_avg", "truncated_normal")),
                         ("HeUniform", (2.0, "fan_in", "uniform")),
                         ("HeNormal", (2.0, "fan_in", "truncated_normal")),
                         ("LecunUniform", (1.0, "fan_in", "uniform")),
                         ("LecunNormal", (1.0, "fan_in", "truncated_normal"))]:
        RANDOM_CASES.append((_name, {}, _shape,
                             variance_scaling_expectation(_shape, *_args)))
for _shape in [BIG, CONV2D, CONV1D]:
    for _mode in ["fan_in", "fan_out", "fan_avg"]:
        for _dist in ["uniform", "truncated_normal", "untruncated_normal"]:
            for _scale in ([0.5, 3.0] if _shape is CONV2D else [2.0]):
                RANDOM_CASES.append((
                    "VarianceScaling",
                    {"scale": _scale, "mode": _mode, "distribution": _dist},
                    _shape,
                    variance_scaling_expectation(_shape, _scale, _mode, _dist)))


def _case_id(c):
    name, kw, shape, _ = c
    kws = ",".join(f"{k}={v}" for k, v in kw.items())
    return f"{name}({kws})-{'x'.join(map(str, shape))}"


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("name,kw,shape,check", RANDOM_CASES,
                         ids=[_case_id(c) for c in RANDOM_CASES])
def test_random_initializer_statistics(lib, name, kw, shape, check):
    x = _call(lib, _i(lib, name, seed=123, **kw), shape)
    assert x.shape == shape, f"{lib} {name}: shape {x.shape} != {shape}"
    assert x.dtype == np.float32, f"{lib} {name}: dtype {x.dtype}"
    assert np.all(np.isfinite(x))
    check(x, f"{lib} {name}{kw} {shape}")


RANDOM_NAMES = ["RandomUniform", "RandomNormal", "TruncatedNormal",
                "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
                "LecunUniform", "LecunNormal", "Orthogonal", "VarianceScaling"]


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_random_initializer_seeding(name):
    shape = (20, 30)
    a = _call("rnnbook", _i("rnnbook", name, seed=7), shape)
    b = _call("rnnbook", _i("rnnbook", name, seed=7), shape)
    c = _call("rnnbook", _i("rnnbook", name, seed=8), shape)
    assert a.dtype == np.float32 and a.shape == shape
    np.testing.assert_array_equal(a, b, err_msg="same seed must give identical values")
    assert not np.array_equal(a, c), "different seeds gave identical values"
    d = _call("rnnbook", _i("rnnbook", name, seed=7), shape, dtype="float32")
    np.testing.assert_array_equal(a, d)


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_seeded_instance_repeats_like_keras(name):
    # Keras 3: a seeded initializer instance returns the same values every call.
    k = _i("keras", name, seed=5)
    np.testing.assert_array_equal(_call("keras", k, (6, 4)), _call("keras", k, (6, 4)))
    r = _i("rnnbook", name, seed=5)
    np.testing.assert_array_equal(_call("rnnbook", r, (6, 4)),
                                  _call("rnnbook", r, (6, 4)))


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_unseeded_instances_differ(name):
    a = _call("rnnbook", _i("rnnbook", name), (16, 16))
    b = _call("rnnbook", _i("rnnbook", name), (16, 16))
    assert not np.array_equal(a, b)


ORTHO_SHAPES = [(64, 64), (32, 128), (128, 32), (3, 4, 20), (4, 5, 6), (2, 3, 3, 8)]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize("shape", ORTHO_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_orthogonal(lib, gain, shape):
    w = _call(lib, _i(lib, "Orthogonal", gain=gain, seed=3), shape)
    assert w.shape == shape and w.dtype == np.float32
    m = w.reshape(-1, shape[-1]).astype(np.float64)  # Keras flattens leading dims
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)),
                               atol=2e-5 * gain ** 2,
                               err_msg=f"{lib} Orthogonal{shape} gain={gain}")


def test_orthogonal_rejects_1d_like_keras():
    with pytest.raises(ValueError):
        _i("keras", "Orthogonal")((5,))
    with pytest.raises(ValueError):
        _i("rnnbook", "Orthogonal")((5,))


# -- get / serialize -------------------------------------------------------------

INIT_OBJECTS = [
    ("Zeros", {}), ("Ones", {}), ("Constant", {"value": 0.75}),
    ("Identity", {"gain": 1.5}),
    ("RandomUniform", {"minval": -0.2, "maxval": 0.4, "seed": 11}),
    ("RandomNormal", {"mean": 0.1, "stddev": 0.3, "seed": 11}),
    ("TruncatedNormal", {"mean": -0.1, "stddev": 0.2, "seed": 11}),
    ("GlorotUniform", {"seed": 11}), ("GlorotNormal", {"seed": 11}),
    ("HeUniform", {"seed": 11}), ("HeNormal", {"seed": 11}),
    ("LecunUniform", {"seed": 11}), ("LecunNormal", {"seed": 11}),
    ("Orthogonal", {"gain": 0.5, "seed": 11}),
    ("VarianceScaling", {"scale": 0.3, "mode": "fan_out",
                         "distribution": "uniform", "seed": 11}),
]
SNAKE = {"Zeros": "zeros", "Ones": "ones", "Constant": "constant",
         "Identity": "identity", "RandomUniform": "random_uniform",
         "RandomNormal": "random_normal", "TruncatedNormal": "truncated_normal",
         "GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal",
         "HeUniform": "he_uniform", "HeNormal": "he_normal",
         "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal",
         "Orthogonal": "orthogonal", "VarianceScaling": "variance_scaling"}


def _same_config(a, b):
    assert set(a) == set(b), (a, b)
    for k in a:
        assert _eq(a[k], b[k]), (k, a, b)


@pytest.mark.parametrize("name,kw", INIT_OBJECTS, ids=[n for n, _ in INIT_OBJECTS])
def test_initializer_serialize_roundtrip(name, kw):
    obj = _i("rnnbook", name, **kw)
    cfg = obj.get_config()
    for k, v in kw.items():
        assert k in cfg and _eq(cfg[k], v), f"get_config() lacks/changes {k}: {cfg}"
    ser = inits.serialize(obj)
    assert ser["class_name"] == name
    obj2 = inits.get(ser)
    assert type(obj2) is type(obj)
    _same_config(obj2.get_config(), cfg)
    obj3 = inits.get({"class_name": name, "config": cfg})  # Keras-style dict
    assert type(obj3) is type(obj)
    shape = (6, 6)
    np.testing.assert_array_equal(rnp(obj2(shape)), rnp(obj(shape)))
    np.testing.assert_array_equal(rnp(obj3(shape)), rnp(obj(shape)))


@pytest.mark.parametrize("name,kw", INIT_OBJECTS, ids=[n for n, _ in INIT_OBJECTS])
def test_initializer_config_matches_keras(name, kw):
    rcfg = _i("rnnbook", name, **kw).get_config()
    kcfg = _i("keras", name, **kw).get_config()
    for k in set(rcfg) & set(kcfg):
        assert _eq(rcfg[k], kcfg[k]), (k, rcfg, kcfg)
    # default-constructed objects: same default hyper-parameters as Keras
    rdef = _i("rnnbook", name).get_config()
    kdef = _i("keras", name).get_config()
    for k in (set(rdef) & set(kdef)) - {"seed"}:
        assert _eq(rdef[k], kdef[k]), (k, rdef, kdef)


@pytest.mark.parametrize("name", list(SNAKE))
def test_initializer_get_by_name(name):
    for ident in (name, SNAKE[name]):
        obj = inits.get(ident)
        assert type(obj).__name__ == name, f"get({ident!r}) -> {type(obj).__name__}"
        if name != "Constant":  # Keras' Constant.from_config needs "value"
            assert type(keras.initializers.get(ident)).__name__ == name


def test_initializer_get_passes_objects_through():
    obj = inits.GlorotUniform(seed=1)
    assert inits.get(obj) is obj


def test_initializer_unknown_name_raises():
    with pytest.raises(ValueError, match=BAD):
        inits.get(BAD)


# ===========================================================================
# Regularizers
# ===========================================================================

_rng = np.random.default_rng(42)
W2 = _rng.normal(0, 0.7, (20, 30)).astype(np.float32)
W1 = _rng.normal(0, 0.7, (17,)).astype(np.float32)
W3 = _rng.normal(0, 0.7, (3, 4, 5)).astype(np.float32)

REG_CASES = [("L1", {}), ("L1", {"l1": 0.3}), ("L2", {}), ("L2", {"l2": 0.05}),
             ("L1L2", {}), ("L1L2", {"l1": 0.01, "l2": 0.02}),
             ("L1L2", {"l1": 0.5}), ("L1L2", {"l2": 0.25})]


@pytest.mark.parametrize("name,kw", REG_CASES, ids=[f"{n}{k}" for n, k in REG_CASES])
def test_regularizer_value_matches_keras(name, kw):
    r = getattr(regs, name)(**kw)
    k = getattr(keras.regularizers, name)(**kw)
    for w in (W2, W1, W3):
        got = scalar(r(w.copy()))
        want = scalar(k(w))
        assert got == pytest.approx(want, rel=RTOL, abs=ATOL), (name, kw, w.shape)


@pytest.mark.parametrize("ident,cls", [("l1", "L1"), ("l2", "L2"), ("L1", "L1"),
                                       ("L2", "L2"), ("L1L2", "L1L2")])
def test_regularizer_get_by_name_matches_keras(ident, cls):
    r = regs.get(ident)
    assert type(r).__name__ == cls
    assert scalar(r(W2)) == pytest.approx(scalar(keras.regularizers.get(ident)(W2)),
                                          rel=RTOL, abs=ATOL)


def test_regularizer_get_l1_l2():
    # Keras 2 name; Keras 3.15 itself only knows "l1l2"/"L1L2".
    r = regs.get("l1_l2")
    assert type(r).__name__ == "L1L2"
    cfg = r.get_config()
    want = cfg["l1"] * np.abs(W2).sum() + cfg["l2"] * np.square(W2).sum()
    assert scalar(r(W2)) == pytest.approx(float(want), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("name,kw", REG_CASES, ids=[f"{n}{k}" for n, k in REG_CASES])
def test_regularizer_serialize_roundtrip(name, kw):
    r = getattr(regs, name)(**kw)
    cfg = r.get_config()
    kcfg = getattr(keras.regularizers, name)(**kw).get_config()
    assert set(cfg) == set(kcfg), (cfg, kcfg)
    for key in cfg:
        assert _eq(cfg[key], kcfg[key]), (cfg, kcfg)
    ser = regs.serialize(r)
    assert ser["class_name"] == name
    r2 = regs.get(ser)
    assert type(r2) is type(r)
    assert r2.get_config() == cfg
    r3 = regs.get({"class_name": name, "config": cfg})
    assert scalar(r3(W2)) == pytest.approx(scalar(r(W2)), rel=1e-7)


def test_regularizer_unknown_name_raises():
    with pytest.raises(ValueError, match=BAD):
        regs.get(BAD)


# ===========================================================================
# Constraints
# ===========================================================================

_crng = np.random.default_rng(7)
CW2 = (_crng.normal(0, 0.5, (20, 30))).astype(np.float32)
CW2[:, 3] = 0.0   # an all-zero column: needs Keras' epsilon, not 0/0
CW2[5, :] = 0.0   # an all-zero row (matters for axis=1)
CW3 = (_crng.normal(0, 0.8, (4, 5, 6))).astype(np.float32)
CW1 = (_crng.normal(0, 1.0, (12,))).astype(np.float32)

CON_CASES = [
    ("MaxNorm", {}), ("MaxNorm", {"max_value": 1.5, "axis": 0}),
    ("MaxNorm", {"max_value": 2.5, "axis": 1}),
    ("NonNeg", {}),
    ("UnitNorm", {}), ("UnitNorm", {"axis": 1}),
    ("MinMaxNorm", {}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.5, "rate": 1.0, "axis": 0}),
    ("MinMaxNorm", {"min_value": 1.0, "max_value": 2.0, "rate": 0.3, "axis": 1}),
]


@pytest.mark.parametrize("name,kw", CON_CASES, ids=[f"{n}{k}" for n, k in CON_CASES])
def test_constraint_matches_keras(name, kw):
    c = getattr(cons, name)(**kw)
    k = getattr(keras.constraints, name)(**kw)
    ws = [CW2, CW3] + ([CW1] if kw.get("axis", 0) == 0 else [])
    for w in ws:
        got = rnp(c(w.copy()))
        want = knp(k(w))
        assert got.dtype == np.float32, got.dtype
        _assert_close(got, want, f"{name}{kw} on shape {w.shape}")


@pytest.mark.parametrize("name,kw", CON_CASES, ids=[f"{n}{k}" for n, k in CON_CASES])
def test_constraint_serialize_roundtrip(name, kw):
    c = getattr(cons, name)(**kw)
    cfg = c.get_config()
    kcfg = getattr(keras.constraints, name)(**kw).get_config()
    assert set(cfg) == set(kcfg) and all(_eq(cfg[x], kcfg[x]) for x in cfg), (cfg, kcfg)
    ser = cons.serialize(c)
    assert ser["class_name"] == name
    c2 = cons.get(ser)
    assert type(c2) is type(c) and c2.get_config() == cfg
    c3 = cons.get({"class_name": name, "config": cfg})
    np.testing.assert_array_equal(rnp(c3(CW2.copy())), rnp(c(CW2.copy())))


@pytest.mark.parametrize("ident,cls", [("max_norm", "MaxNorm"), ("MaxNorm", "MaxNorm"),
                                       ("non_neg", "NonNeg"), ("NonNeg", "NonNeg"),
                                       ("unit_norm", "UnitNorm"), ("UnitNorm", "UnitNorm"),
                                       ("min_max_norm", "MinMaxNorm"),
                                       ("MinMaxNorm", "MinMaxNorm")])
def test_constraint_get_by_name(ident, cls):
    c = cons.get(ident)
    assert type(c).__name__ == cls
    _assert_close(rnp(c(CW2.copy())), knp(keras.constraints.get(ident)(CW2)), ident)


def test_constraint_unknown_name_raises():
    with pytest.raises(ValueError, match=BAD):
        cons.get(BAD)
