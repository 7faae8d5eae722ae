"""Parity of rnnbook.losses and rnnbook.metrics with Keras 3 (torch backend).

Losses: every function (probabilities and logits, label smoothing, rank-2 and sequence shapes, probabilities at
exactly 0 and 1 so Keras' clipping is exercised) and every class with every reduction, with and without
sample weights and masks (a Keras mask attached with ``set_keras_mask`` on the Keras side, ``with_mask`` or
``mask=`` on ours), ``ignore_class``, a real Embedding(mask_zero) -> LSTM -> Dense model on both sides, tape
gradients against torch autograd through Keras' losses, configs, ``get``/``serialize``, and error texts.

Metrics: the accuracy functions, every metric class over several updates with weights and masks,
``MeanMetricWrapper``, the losses-as-metrics classes, ``resolve_accuracy``/``get_metric`` against Keras'
``compile_utils.get_metric``, ``get``.

Numbers: float32, ``rtol=1e-6`` (plus ``atol=1e-7`` for values near 0).
"""

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.backend import set_keras_mask  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import losses as L  # noqa: E402
from rnnbook import metrics as M  # noqa: E402
from rnnbook.layer import get_mask, with_mask  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-6, 1e-7
B, T, C = 4, 5, 3


def knp(x):
    return keras.ops.convert_to_numpy(x)


def tt(x, mask=None):
    "A torch tensor (what Keras' layers return), optionally carrying a Keras mask."
    t = torch.tensor(np.asarray(x))
    if mask is not None:
        set_keras_mask(t, torch.tensor(np.asarray(mask)))
    return t


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    theirs = knp(theirs) if not isinstance(theirs, (np.ndarray, float, int)) else theirs
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64),
                               rtol=rtol, atol=atol)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make(kind, shape, from_logits, seed=0):
    """(y_true, y_pred) for a loss kind; probabilities include exact 0s and 1s to exercise the clipping."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * 3).astype("float32")
    if kind == "regression":
        return rng.standard_normal(shape).astype("float32"), logits
    if kind == "binary":
        y = (rng.random(shape) > 0.5).astype("float32")
        if from_logits:
            return y, logits
        p = (1 / (1 + np.exp(-logits))).astype("float32")
        p.reshape(-1)[:3] = [0.0, 1.0, 1.0]
        return y, p
    ids = rng.integers(0, shape[-1], shape[:-1])
    y = ids if kind == "sparse" else np.eye(shape[-1], dtype="float32")[ids]
    if from_logits:
        return y, logits
    p = softmax(logits).astype("float32")
    p.reshape(-1, shape[-1])[0] = np.eye(shape[-1])[0]          # an exact one-hot row
    p.reshape(-1, shape[-1])[1] = np.eye(shape[-1])[(ids.reshape(-1)[1] + 1) % shape[-1]]  # confidently wrong
    return y, p


MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 1]], bool)

# ---------------------------------------------------------------------------------------------------------------
# Loss functions
# ---------------------------------------------------------------------------------------------------------------

FUNCS = [
    ("mean_squared_error", "regression", [{}]),
    ("mean_absolute_error", "regression", [{}]),
    ("binary_crossentropy", "binary",
     [{"from_logits": f, "label_smoothing": s} for f in (False, True) for s in (0.0, 0.2)]),
    ("categorical_crossentropy", "categorical",
     [{"from_logits": f, "label_smoothing": s} for f in (False, True) for s in (0.0, 0.2)]),
    ("sparse_categorical_crossentropy", "sparse", [{"from_logits": f} for f in (False, True)]),
]
FUNC_CASES = [(n, k, kw) for n, k, kws in FUNCS for kw in kws]


@pytest.mark.parametrize("name,kind,kw", FUNC_CASES, ids=[f"{n}-{kw}" for n, _, kw in FUNC_CASES])
@pytest.mark.parametrize("shape", [(B, C), (B, T, C)])
def test_function_matches_keras(name, kind, kw, shape):
    y, p = make(kind, shape, kw.get("from_logits", False))
    ours = getattr(L, name)(y, p, **kw)
    theirs = getattr(keras.losses, name)(y, p, **kw)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32
    close(ours, theirs)


def test_function_aliases_and_float64():
    y, p = make("regression", (B, C), False)
    assert L.mse is L.mean_squared_error and L.mae is L.mean_absolute_error
    out = L.mse(y.astype("float64"), p.astype("float64"))
    assert out.dtype == np.float64                     # the functions keep the prediction's dtype, as Keras'
    close(out, keras.losses.mean_squared_error(y.astype("float64"), p.astype("float64")))


def test_regression_rank_alignment_matches_keras():
    rng = np.random.default_rng(1)
    for yt, yp in [(rng.random(4), rng.random((4, 1))), (rng.random((4, 5)), rng.random((4, 5, 1))),
                   (rng.random((4, 1)), rng.random(4))]:
        yp = yp.astype("float32")
        close(L.mse(yt, yp), keras.losses.mean_squared_error(yt, yp))
        close(L.mae(yt, yp), keras.losses.mean_absolute_error(yt, yp))


def test_sparse_axis_and_trailing_label_axis():
    y, p = make("sparse", (B, T, C), True)
    close(L.sparse_categorical_crossentropy(y[..., None], p, from_logits=True),
          keras.losses.sparse_categorical_crossentropy(y[..., None], p, from_logits=True))
    pt = np.moveaxis(p, -1, 1)                          # classes on axis 1
    close(L.sparse_categorical_crossentropy(y, pt, from_logits=True, axis=1),
          keras.losses.sparse_categorical_crossentropy(y, pt, from_logits=True, axis=1))
    y, p = make("categorical", (B, T, C), False)
    pt = np.moveaxis(p, -1, 1)
    close(L.categorical_crossentropy(np.moveaxis(y, -1, 1), pt, axis=1),
          keras.losses.categorical_crossentropy(np.moveaxis(y, -1, 1), pt, axis=1))


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_ignore_class_function(from_logits):
    y, p = make("sparse", (B, T, C), from_logits)
    y = np.where(np.random.default_rng(3).random(y.shape) < 0.3, -1, y)
    ours = L.sparse_categorical_crossentropy(y, p, from_logits=from_logits, ignore_class=-1)
    theirs = keras.losses.sparse_categorical_crossentropy(y, p, from_logits=from_logits, ignore_class=-1)
    close(ours, theirs)
    np.testing.assert_array_equal(get_mask(ours), knp(theirs._keras_mask))


def test_categorical_warns_on_one_class():
    with pytest.warns(SyntaxWarning, match="Consider using 'binary_crossentropy'"):
        L.categorical_crossentropy(np.ones((2, 1)), np.ones((2, 1), "float32"))


@pytest.mark.parametrize("fn,yt,yp,text", [
    (L.mean_squared_error, np.zeros((4, 3)), np.zeros((4, 5)), "y_true.shape=(4, 3), y_pred.shape=(4, 5)"),
    (L.mean_absolute_error, np.zeros((4, 3)), np.zeros((4, 5)), "y_true.shape=(4, 3), y_pred.shape=(4, 5)"),
    (L.binary_crossentropy, np.zeros((4,)), np.zeros((4, 1)), "y_true.shape=(4,), y_pred.shape=(4, 1)"),
    (L.categorical_crossentropy, np.zeros((4, 3)), np.zeros((4, 2)), "y_true.shape=(4, 3), y_pred.shape=(4, 2)"),
    (L.sparse_categorical_crossentropy, np.zeros((5,)), np.zeros((4, 2)), "y_true.shape=(5,), y_pred.shape=(4, 2)"),
])
def test_shape_mismatch_errors_name_both_shapes(fn, yt, yp, text):
    with pytest.raises(ValueError, match=None) as e:
        fn(yt, yp.astype("float32"))
    assert text in str(e.value)


def test_sparse_label_out_of_range():
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\).*received 3"):
        L.sparse_categorical_crossentropy([0, 3], np.full((2, 3), 1 / 3, "float32"))


def test_argument_errors():
    with pytest.raises(ValueError, match="label_smoothing"):
        L.binary_crossentropy([[1.0]], [[0.5]], label_smoothing=1.5)
    with pytest.raises(ValueError, match="`axis` must be of type `int`"):
        L.categorical_crossentropy([[1.0, 0]], [[0.5, 0.5]], axis=True)


# ---------------------------------------------------------------------------------------------------------------
# Loss classes: reductions, sample weights, masks
# ---------------------------------------------------------------------------------------------------------------

CLASSES = [
    ("MeanSquaredError", "regression", {}),
    ("MeanAbsoluteError", "regression", {}),
    ("BinaryCrossentropy", "binary", {}),
    ("BinaryCrossentropy", "binary", {"from_logits": True, "label_smoothing": 0.1}),
    ("CategoricalCrossentropy", "categorical", {}),
    ("CategoricalCrossentropy", "categorical", {"from_logits": True, "label_smoothing": 0.1}),
    ("SparseCategoricalCrossentropy", "sparse", {}),
    ("SparseCategoricalCrossentropy", "sparse", {"from_logits": True}),
]
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none"]
# (prediction shape, sample-weight shape or None, mask?)
SETUPS = [((B, C), None, False), ((B, C), (B,), False), ((B, T, C), None, False), ((B, T, C), (B, T), False),
          ((B, T, C), None, True), ((B, T, C), (B, T), True)]


@pytest.mark.parametrize("cls,kind,kw", CLASSES, ids=[f"{c}-{kw}" for c, _, kw in CLASSES])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,sw_shape,masked", SETUPS,
                         ids=[f"{s}-sw{w}-{'mask' if m else 'nomask'}" for s, w, m in SETUPS])
def test_class_matches_keras(cls, kind, kw, reduction, shape, sw_shape, masked):
    y, p = make(kind, shape, kw.get("from_logits", False), seed=hash((cls, shape)) % 1000)
    sw = None if sw_shape is None else np.random.default_rng(5).random(sw_shape).astype("float32")
    mask = MASK if masked else None
    ours = getattr(L, cls)(reduction=reduction, **kw)(y, p if mask is None else with_mask(p, mask), sample_weight=sw)
    theirs = getattr(keras.losses, cls)(reduction=reduction, **kw)(y, tt(p, mask), sample_weight=sw)
    assert np.shape(ours) == tuple(theirs.shape)
    assert np.asarray(ours).dtype == np.float32
    close(ours, theirs)
    if masked:   # the explicit argument gives the same value (CuPy arrays cannot carry a mask)
        close(getattr(L, cls)(reduction=reduction, **kw)(y, p, sample_weight=sw, mask=mask), theirs)


def test_class_casts_to_floatx_like_keras():
    y, p = make("categorical", (B, C), False)
    ours = L.CategoricalCrossentropy()(y, p.astype("float64"))
    assert np.asarray(ours).dtype == np.float32
    close(ours, keras.losses.CategoricalCrossentropy()(y, p.astype("float64")))
    assert np.asarray(L.CategoricalCrossentropy(dtype="float64")(y, p.astype("float64"))).dtype == np.float64


def test_class_rank_alignment_matches_keras():
    rng = np.random.default_rng(2)
    y = (rng.random(B) > 0.5).astype("float32")
    p = rng.random((B, 1)).astype("float32")
    close(L.BinaryCrossentropy()(y, p), keras.losses.BinaryCrossentropy()(y, p))
    close(L.MeanSquaredError()(y, p), keras.losses.MeanSquaredError()(y, p))
    ys = rng.integers(0, C, (B, 1))
    ps = softmax(rng.standard_normal((B, C))).astype("float32")
    close(L.SparseCategoricalCrossentropy()(ys, ps), keras.losses.SparseCategoricalCrossentropy()(ys, ps))


def test_per_sample_weights_on_step_losses():
    """(B,) weights on (B, T) step losses: Keras 3 cannot broadcast them; rnnbook applies them per sample."""
    y, p = make("sparse", (B, T, C), True)
    sw = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    per_step = knp(keras.losses.sparse_categorical_crossentropy(y, p, from_logits=True))
    loss = L.SparseCategoricalCrossentropy(from_logits=True)
    close(loss(y, p, sample_weight=sw), (per_step * sw[:, None]).mean())
    # ... which is what Keras gives for the same weights spelled out per step
    close(loss(y, p, sample_weight=sw), keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        y, p, sample_weight=np.repeat(sw[:, None], T, 1)))
    close(loss(y, with_mask(p, MASK), sample_weight=sw), keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        y, tt(p, MASK), sample_weight=np.repeat(sw[:, None], T, 1)))


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
@pytest.mark.parametrize("masked", [False, True])
def test_ignore_class_matches_keras(from_logits, reduction, masked):
    y, p = make("sparse", (B, T, C), from_logits, seed=7)
    y = np.where(np.random.default_rng(8).random(y.shape) < 0.3, 255, y)
    mask = MASK if masked else None
    ours = L.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=255, reduction=reduction)(
        y, p if mask is None else with_mask(p, mask))
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=255, reduction=reduction)(
        y, tt(p, mask))
    close(ours, theirs)


def test_fully_masked_batch_gives_zero():
    y, p = make("sparse", (B, T, C), True)
    m = np.zeros((B, T), bool)
    ours = L.SparseCategoricalCrossentropy(from_logits=True)(y, with_mask(p, m))
    close(ours, keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, tt(p, m)))
    assert float(ours) == 0.0


def test_masked_sequence_model_matches_keras():
    """Embedding(mask_zero) -> LSTM(return_sequences) -> Dense on both sides, same weights: same masked loss."""
    rng = np.random.default_rng(11)
    ids = rng.integers(1, 12, (B, 6))
    for b, n in enumerate([6, 3, 1, 4]):
        ids[b, n:] = 0
    targets = rng.integers(0, C, (B, 6))
    k_layers = [keras.layers.Embedding(12, 4, mask_zero=True), keras.layers.LSTM(5, return_sequences=True),
                keras.layers.Dense(C)]
    r_layers = [rb.layers.Embedding(12, 4, mask_zero=True), rb.layers.LSTM(5, return_sequences=True),
                rb.layers.Dense(C)]
    ky, ry = ids, ids
    for kl, rl in zip(k_layers, r_layers):
        ky = kl(ky)
        rl(ry)                                   # builds
        rl.set_weights(kl.get_weights())
        ry = rl(ry)
    np.testing.assert_array_equal(get_mask(ry), ids != 0)
    sw = rng.random(B).astype("float32")
    for cls, kw in [("SparseCategoricalCrossentropy", {"from_logits": True}),
                    ("CategoricalCrossentropy", {"from_logits": True})]:
        yt = targets if cls.startswith("Sparse") else np.eye(C, dtype="float32")[targets]
        for red in ["sum_over_batch_size", "sum"]:
            close(getattr(L, cls)(reduction=red, **kw)(yt, ry), getattr(keras.losses, cls)(reduction=red, **kw)(yt, ky),
                  rtol=1e-5)
            close(getattr(L, cls)(reduction=red, **kw)(yt, ry, sample_weight=np.repeat(sw[:, None], 6, 1)),
                  getattr(keras.losses, cls)(reduction=red, **kw)(yt, ky, sample_weight=np.repeat(sw[:, None], 6, 1)),
                  rtol=1e-5)
    kacc = keras.metrics.SparseCategoricalAccuracy()
    kacc.update_state(targets, ky)
    racc = M.SparseCategoricalAccuracy()
    racc.update_state(targets, ry)
    close(racc.result(), kacc.result())


# ---------------------------------------------------------------------------------------------------------------
# Gradients: the losses are written with rb.ops, so a tape differentiates them (compared with torch autograd)
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kind,kw", CLASSES, ids=[f"{c}-{kw}" for c, _, kw in CLASSES])
@pytest.mark.parametrize("masked", [False, True])
def test_tape_gradient_matches_torch_autograd(cls, kind, kw, masked):
    if not hasattr(rb, "GradientTape"):
        pytest.skip("rnnbook has no GradientTape yet")
    from_logits = kw.get("from_logits", False)
    y, p = make(kind, (B, T, C), from_logits, seed=21)
    if not from_logits and kind != "regression":     # keep probabilities off the clipping edges: smooth there
        y, p = make(kind, (B, T, C), True, seed=21)
        p = (1 / (1 + np.exp(-p))) if kind == "binary" else softmax(p)
        p = p.astype("float32")
    mask = MASK if masked else None
    sw = np.random.default_rng(4).random((B, T)).astype("float32")
    x = rb.Variable(p)
    with rb.GradientTape() as tape:
        loss = getattr(L, cls)(**kw)(y, x, sample_weight=sw, mask=mask)
    g = tape.gradient(loss, x)
    pt = torch.tensor(p, requires_grad=True)
    if mask is not None:
        set_keras_mask(pt, torch.tensor(mask))
    kl = getattr(keras.losses, cls)(**kw)(y, pt, sample_weight=sw)
    kl.backward()
    close(loss.value if hasattr(loss, "value") else loss, kl.detach())
    np.testing.assert_allclose(g, pt.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Loss objects: config, lookup, errors
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kind,kw", CLASSES, ids=[f"{c}-{kw}" for c, _, kw in CLASSES])
def test_config_matches_keras_and_round_trips(cls, kind, kw):
    ours = getattr(L, cls)(reduction="sum", **kw)
    theirs = getattr(keras.losses, cls)(reduction="sum", **kw)
    oc, kc = ours.get_config(), theirs.get_config()
    assert {k: oc[k] for k in kc} == kc               # Keras' keys and values (rnnbook adds `axis` to the sparse one)
    again = getattr(L, cls).from_config(oc)
    assert again.get_config() == oc
    assert L.get(L.serialize(ours)).get_config() == oc
    assert L.deserialize(keras.losses.serialize(theirs)).get_config() == oc     # Keras' config dicts load


def test_get():
    assert L.get(None) is None
    for name in ["mse", "MSE", "mean_squared_error", "mae", "mean_absolute_error", "binary_crossentropy", "bce",
                 "categorical_crossentropy", "sparse_categorical_crossentropy"]:
        ours, theirs = L.get(name), keras.losses.get(name)
        assert callable(ours) and ours.__name__ == theirs.__name__
    for name in ["MeanSquaredError", "BinaryCrossentropy", "SparseCategoricalCrossentropy"]:
        assert type(L.get(name)).__name__ == type(keras.losses.get(name)).__name__ == name
    assert isinstance(L.get(L.CategoricalCrossentropy), L.CategoricalCrossentropy)
    fn = lambda a, b: a            # noqa: E731
    assert L.get(fn) is fn
    obj = L.MeanSquaredError()
    assert L.get(obj) is obj
    assert L.deserialize(keras.losses.serialize(keras.losses.get("mse"))) is L.mean_squared_error
    assert L.serialize(L.mse) == "mean_squared_error"
    with pytest.raises(ValueError, match="received 'hinge'"):
        L.get("hinge")
    with pytest.raises(ValueError, match="received 'Foo'"):
        L.get({"class_name": "Foo", "config": {}})


def test_reduction_error_lists_allowed():
    with pytest.raises(ValueError) as e:
        L.MeanSquaredError(reduction="average")
    msg = str(e.value)
    assert "reduction='average'" in msg
    for r in ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", "None"]:
        assert r in msg
    with pytest.raises(ValueError, match="reduction"):
        L.reduce_weighted_values(np.ones(3), reduction="max")


def test_loss_function_wrapper():
    y, p = make("regression", (B, T, C), False)
    ours = L.LossFunctionWrapper(L.mean_squared_error, reduction="sum")
    from keras.src.losses.losses import LossFunctionWrapper
    theirs = LossFunctionWrapper(keras.losses.mean_squared_error, reduction="sum")
    close(ours(y, with_mask(p, MASK)), theirs(y, tt(p, MASK)))
    cfg = ours.get_config()
    assert cfg["fn"] == "mean_squared_error"
    assert L.LossFunctionWrapper.from_config(cfg).fn is L.mean_squared_error
    with pytest.raises(ValueError, match="fn"):
        L.LossFunctionWrapper(3)


def test_sample_weight_shape_error():
    with pytest.raises(ValueError, match=r"sample_weight.*\(3,\).*\(4,\)"):
        L.MeanSquaredError()(np.zeros((4, 2)), np.zeros((4, 2), "float32"), sample_weight=np.ones(3))


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------

def _acc_data(kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return (rng.random(shape) > 0.5).astype("float32"), rng.random(shape).astype("float32")
    p = rng.random(shape).astype("float32")
    ids = rng.integers(0, shape[-1], shape[:-1])
    if kind == "sparse":
        return ids, p
    if kind == "categorical":
        return np.eye(shape[-1], dtype="float32")[ids], p
    return ids, rng.integers(0, shape[-1], shape[:-1]).astype("float32")     # accuracy: labels vs labels


from keras.src.metrics import accuracy_metrics  # noqa: E402


@pytest.mark.parametrize("name,kind,kw", [("accuracy", "plain", {}), ("binary_accuracy", "binary", {}),
                                          ("binary_accuracy", "binary", {"threshold": 0.3}),
                                          ("categorical_accuracy", "categorical", {}),
                                          ("sparse_categorical_accuracy", "sparse", {})])
@pytest.mark.parametrize("shape", [(B, C), (B, 1), (B, T, C)])
def test_accuracy_functions_match_keras(name, kind, kw, shape):
    y, p = _acc_data(kind, shape)
    if kind == "sparse" and shape == (B, 1):
        y = y[..., None]
    ours = getattr(M, name)(y, p, **kw)
    theirs = getattr(accuracy_metrics, name)(y, p, **kw)     # keras.metrics does not export `accuracy`
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32
    close(ours, theirs)
    if kind == "sparse":
        close(M.sparse_categorical_accuracy(y[..., None], p), keras.metrics.sparse_categorical_accuracy(y[..., None], p))


METRICS = [("Accuracy", "plain", {}), ("BinaryAccuracy", "binary", {}), ("BinaryAccuracy", "binary", {"threshold": .7}),
           ("CategoricalAccuracy", "categorical", {}), ("SparseCategoricalAccuracy", "sparse", {}),
           ("MeanSquaredError", "regression", {}), ("MeanAbsoluteError", "regression", {}),
           ("BinaryCrossentropy", "binary", {"from_logits": True}),
           ("CategoricalCrossentropy", "categorical", {"label_smoothing": 0.1}),
           ("SparseCategoricalCrossentropy", "sparse", {"from_logits": True}),
           ("SparseCategoricalCrossentropy", "sparse", {"ignore_class": 0})]


def _metric_data(kind, shape, seed):
    if kind in ("regression",):
        return make("regression", shape, False, seed)
    if kind in ("binary", "categorical", "sparse", "plain"):
        return _acc_data(kind, shape, seed)


@pytest.mark.parametrize("cls,kind,kw", METRICS, ids=[f"{c}-{kw}" for c, _, kw in METRICS])
@pytest.mark.parametrize("shape,sw_shape,masked", SETUPS,
                         ids=[f"{s}-sw{w}-{'mask' if m else 'nomask'}" for s, w, m in SETUPS])
def test_metric_class_matches_keras(cls, kind, kw, shape, sw_shape, masked):
    ours, theirs = getattr(M, cls)(**kw), getattr(keras.metrics, cls)(**kw)
    assert ours.name == theirs.name
    for step in range(3):
        y, p = _metric_data(kind, shape, seed=step)
        sw = None if sw_shape is None else np.random.default_rng(10 + step).random(sw_shape).astype("float32")
        mask = np.roll(MASK, step, axis=1) if masked else None
        ours.update_state(y, p if mask is None else with_mask(p, mask), sample_weight=sw)
        theirs.update_state(y, tt(p, mask), sample_weight=sw)
        close(ours.result(), theirs.result())
    for o, k in zip(ours.variables, theirs.variables):
        close(o.numpy(), k)
    ours.reset_state()
    theirs.reset_state()
    close(ours.result(), theirs.result())
    assert ours.get_config() == theirs.get_config()


def test_metric_explicit_mask_and_call():
    y, p = _acc_data("sparse", (B, T, C))
    a = M.SparseCategoricalAccuracy()
    a.update_state(y, p, mask=MASK)
    k = keras.metrics.SparseCategoricalAccuracy()
    close(a.result(), k(y, tt(p, MASK)))
    close(M.SparseCategoricalAccuracy()(y, with_mask(p, MASK)), a.result())


@pytest.mark.parametrize("values_shape,sw_shape", [((B,), None), ((B,), (B,)), ((B, T), None), ((B, T), (B,)),
                                                   ((B, T), (B, T)), ((B, T, C), (B, T)), ((), None)])
def test_mean_and_sum_match_keras(values_shape, sw_shape):
    rng = np.random.default_rng(0)
    for cls in ("Mean", "Sum"):
        ours, theirs = getattr(M, cls)(), getattr(keras.metrics, cls)()
        for _ in range(2):
            v = rng.standard_normal(values_shape).astype("float32")
            sw = None if sw_shape is None else rng.random(sw_shape).astype("float32")
            ours.update_state(v, sample_weight=sw)
            theirs.update_state(v, sample_weight=sw)
        close(ours.result(), theirs.result())


def test_mean_metric_wrapper_matches_keras():
    y, p = make("regression", (B, T, C), False)
    ours = M.MeanMetricWrapper(L.mean_absolute_error, name="mae_metric")
    theirs = keras.metrics.MeanMetricWrapper(keras.losses.mean_absolute_error, name="mae_metric")
    ours.update_state(y, with_mask(p, MASK), sample_weight=np.arange(B * T, dtype="float32").reshape(B, T))
    theirs.update_state(y, tt(p, MASK), sample_weight=np.arange(B * T, dtype="float32").reshape(B, T))
    close(ours.result(), theirs.result())
    assert ours.name == "mae_metric"
    cfg = ours.get_config()
    assert cfg["fn"] == "mean_absolute_error"
    assert M.MeanMetricWrapper.from_config(cfg)._fn is L.mean_absolute_error


def test_metrics_get_matches_keras():
    for name in ["accuracy", "Accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
                 "SparseCategoricalAccuracy", "mse", "mae", "bce", "mean_squared_error", "binary_crossentropy",
                 "sparse_categorical_crossentropy", "CategoricalCrossentropy"]:
        assert type(M.get(name)).__name__ == type(keras.metrics.get(name)).__name__, name
    assert M.get(None) is None
    m = M.Mean()
    assert M.get(m) is m
    assert M.get(keras.metrics.serialize(keras.metrics.BinaryAccuracy(threshold=0.2))).threshold == 0.2
    with pytest.raises(ValueError, match="received 'f1'"):
        M.get("f1")


SHAPE_CASES = [((B,), (B, 1)), ((B, 1), (B, 1)), ((B, 1), (B, C)), ((B,), (B, C)), ((B, C), (B, C)),
               ((B, T), (B, T, C)), ((B, T, 1), (B, T, C)), ((B, T, C), (B, T, C)), ((B, T), (B, T, 1))]


@pytest.mark.parametrize("yt_shape,yp_shape", SHAPE_CASES)
@pytest.mark.parametrize("ident", ["accuracy", "acc", "mse"])
def test_get_metric_matches_keras_compile(yt_shape, yp_shape, ident):
    from keras.src.trainers.compile_utils import get_metric
    theirs = get_metric(ident, keras.KerasTensor(yt_shape), keras.KerasTensor(yp_shape))
    ours = M.get_metric(ident, yt_shape, yp_shape)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.name == theirs.name == ident
    if ident != "mse":
        assert type(M.resolve_accuracy(None, yt_shape, yp_shape)).__name__ == type(theirs).__name__


def test_resolve_accuracy_falls_back_on_the_loss():
    assert isinstance(M.resolve_accuracy("sparse_categorical_crossentropy"), M.SparseCategoricalAccuracy)
    assert isinstance(M.resolve_accuracy(L.SparseCategoricalCrossentropy(from_logits=True)), M.SparseCategoricalAccuracy)
    assert isinstance(M.resolve_accuracy(L.binary_crossentropy), M.BinaryAccuracy)
    assert isinstance(M.resolve_accuracy("BinaryCrossentropy"), M.BinaryAccuracy)
    assert isinstance(M.resolve_accuracy("categorical_crossentropy"), M.CategoricalAccuracy)
    m = M.get_metric(L.mean_squared_error)
    assert isinstance(m, M.MeanMetricWrapper) and m.name == "mean_squared_error"
    with pytest.raises(ValueError, match="Expected metric, received `None`"):
        M.get_metric(None)


def test_metrics_ignore_tape_tensors():
    if not hasattr(rb, "GradientTape"):
        pytest.skip("rnnbook has no GradientTape yet")
    y, p = _acc_data("sparse", (B, T, C))
    x = rb.Variable(p)
    with rb.GradientTape():
        v = rb.ops.multiply(x, 1.0)
        a = M.SparseCategoricalAccuracy()
        a.update_state(y, v)
    close(a.result(), keras.metrics.SparseCategoricalAccuracy()(y, p))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = a.result()
    assert np.ndim(r) == 0 and r.dtype == np.float32 and float(r) == float(M.SparseCategoricalAccuracy().result() + r)
