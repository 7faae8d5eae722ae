"""`BatchNormalization` against Keras 3 (torch backend): outputs in training and at inference, moving statistics
after several calls, masks, axes, center/scale, config, errors, and gradients against torch autograd."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnbook.core import BatchNormalization  # noqa: E402
from rnnbook.layer import get_mask, with_mask  # noqa: E402

ATOL = RTOL = 1e-5


def _pair(shape, **kwargs):
    "A Keras and an rnnbook layer with the same config and the same (random) weights."
    k = keras.layers.BatchNormalization(**kwargs)
    k.build(shape)
    rng = np.random.default_rng(7)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in k.get_weights()]
    k.set_weights(weights)
    r = BatchNormalization(**kwargs)
    r.build(shape)
    r.built = True
    r.set_weights(weights)
    return k, r


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("kwargs,shape", [
    ({}, (8, 4)),
    ({"momentum": 0.9, "epsilon": 1e-2}, (8, 4)),
    ({}, (4, 5, 3)),
    ({"axis": 1}, (4, 5, 3)),
    ({"center": False}, (6, 3)),
    ({"scale": False}, (6, 3)),
    ({"center": False, "scale": False}, (6, 3)),
])
def test_training_and_inference_match_keras(kwargs, shape, rng):
    k, r = _pair(shape, **kwargs)
    for step in range(3):                                      # moving statistics after several updates
        x = rng.normal(2.0, 3.0, shape).astype("float32")
        np.testing.assert_allclose(r(x, training=True), _np(k(x, training=True)), rtol=RTOL, atol=1e-4)
        for a, b in zip(r.get_weights(), k.get_weights()):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(r(x), _np(k(x)), rtol=RTOL, atol=ATOL)              # inference: moving stats
    np.testing.assert_allclose(r(x, training=False), _np(k(x, training=False)), rtol=RTOL, atol=ATOL)


def test_masked_statistics_match_keras(rng):
    shape = (3, 6, 4)
    k, r = _pair(shape, momentum=0.5)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    mean0, var0 = r.moving_mean.numpy(), r.moving_variance.numpy()
    y = r(x, training=True, mask=mask)
    np.testing.assert_allclose(y, _np(k(x, training=True, mask=mask)), rtol=RTOL, atol=1e-4)
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    # the padded steps do not count: same statistics as the valid steps alone
    valid = x[mask]
    np.testing.assert_allclose(r.moving_mean.numpy(), 0.5 * mean0 + 0.5 * valid.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.moving_variance.numpy(), 0.5 * var0 + 0.5 * valid.var(0), rtol=1e-5, atol=1e-5)
    # the mask rides on the input and is passed on
    y = r(with_mask(x, mask), training=True)
    np.testing.assert_array_equal(get_mask(y), mask)


def test_not_trainable_uses_moving_statistics_even_in_training(rng):
    k, r = _pair((5, 3))
    k.trainable = r.trainable = False
    before = r.get_weights()
    x = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(r(x, training=True), _np(k(x, training=True)), rtol=RTOL, atol=ATOL)
    for a, b in zip(before, r.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_config_and_errors():
    r = BatchNormalization(gamma_regularizer="l2", beta_constraint="non_neg")
    r(np.ones((2, 3), "float32"))
    assert [w.name for w in r.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in r.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in r.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert len(r.losses) == 1
    keys = set(keras.layers.BatchNormalization().get_config())
    assert keys == set(r.get_config())
    r2 = BatchNormalization.from_config(r.get_config())
    assert r2.get_config() == r.get_config()
    assert BatchNormalization(center=False, scale=False).build((None, 4)) is None
    with pytest.raises(ValueError, match="renorm=False"):
        BatchNormalization(renorm=True)
    with pytest.raises(ValueError, match="synchronized=False"):
        BatchNormalization(synchronized=True)
    with pytest.raises(ValueError, match="out of bounds"):
        BatchNormalization(axis=3)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="should have a defined dimension"):
        BatchNormalization().build((None, None))
    layer = BatchNormalization()
    layer(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="one dimension less"):
        BatchNormalization()(np.ones((2, 3, 4), "float32"), mask=np.ones((2,), bool))


def test_float64_and_int_inputs():
    r = BatchNormalization()
    y = r(np.arange(6, dtype="float64").reshape(3, 2), training=True)
    assert y.dtype == np.float64
    y = BatchNormalization()(np.arange(6).reshape(3, 2), training=True)
    assert y.dtype == np.float32


def test_gradients_match_torch_autograd(rng):
    from rnnbook import autodiff
    import rnnbook as rb
    shape = (3, 5, 4)
    k, r = _pair(shape)
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    mask = np.ones(shape[:2], bool)
    mask[0, 3:] = False
    c = rng.normal(size=shape).astype("float32")                # a random cotangent: loss = sum(y * c)
    for training in (True, False):
        xt = torch.tensor(x, requires_grad=True)
        yk = k(xt, training=training, mask=torch.tensor(mask))
        (yk * torch.tensor(c)).sum().backward()
        grads_k = [xt.grad.numpy()] + [v.value.grad.numpy() for v in (k.gamma, k.beta)]
        for v in (k.gamma, k.beta): v.value.grad = None
        xv = rb.Variable(x)
        with autodiff.GradientTape() as tape:
            y = r(xv, training=training, mask=mask)
            loss = rb.ops.sum(rb.ops.multiply(y, c))
        grads_r = tape.gradient(loss, [xv, r.gamma, r.beta])
        for a, b in zip(grads_r, grads_k):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_in_a_trained_model_moving_statistics_follow_keras(rng):
    from rnnbook import optimizers  # noqa: F401
    from rnnbook.models import Sequential, Input
    from rnnbook.layers import Dense
    km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                           keras.layers.Dense(2)])
    rm = Sequential([Input((4,)), Dense(3), BatchNormalization(), Dense(2)])
    rm.set_weights(km.get_weights())
    km.compile(keras.optimizers.SGD(0.1), "mse")
    rm.compile(optimizers.SGD(0.1), "mse")
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    hk = km.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    hr = rm.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(hr.history["loss"], hk.history["loss"], rtol=1e-5)
    for a, b in zip(rm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
