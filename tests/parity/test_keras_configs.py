"""Layer configs both ways between rnnbook and Keras 3 (torch backend), layer class by layer class.

For every class in ``rnnbook.layers`` and a spread of arguments:

* Keras -> rnnbook: ``rb_cls.from_config(keras_layer.get_config())`` (after a JSON round trip, as in a file) builds
  a layer with the same weight shapes; with Keras' weights copied in, the outputs agree to 1e-6.
* rnnbook -> Keras: ``keras_cls.from_config(rb_layer.get_config())``, the same checks.
* Round trips keep the config: rnnbook -> Keras -> rnnbook gives back rnnbook's config.
* The nested form (``serialize_layer`` / ``keras.saving.deserialize_keras_object``), both ways.
* Unknown keys, anywhere in a config, raise an error naming the key.
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook.layers as rl  # noqa: E402
from rnnbook import initializers, regularizers, constraints  # noqa: E402
from rnnbook.layer import serialize_layer, deserialize_layer  # noqa: E402

torch.set_num_threads(1)
ATOL = RTOL = 1e-6
K = keras.layers
KERAS_CELLS = {"ConvLSTMCell": __import__("keras.src.layers.rnn.conv_lstm", fromlist=["x"]).ConvLSTMCell}


def knp(v):
    if isinstance(v, (list, tuple)):
        return [knp(a) for a in v]
    return keras.ops.convert_to_numpy(v)


def close(a, b):
    a, b = (a, b) if isinstance(a, (list, tuple)) else ([a], [b])
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"),
                                   atol=ATOL, rtol=RTOL)


def as_json(config):
    "The config as a file holds it: tuples become lists."
    return json.loads(json.dumps(config))


def same_config(a, b):
    "Equal configs; numbers to float32 precision (Keras keeps some regularizer factors as float32)."
    a, b = as_json(a), as_json(b)
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), (sorted(a), sorted(b))
        for k in a:
            same_config(a[k], b[k])
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            same_config(x, y)
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-7), (a, b)
    else:
        assert a == b, (a, b)


def data(shape, seed=1, ints=None):
    rng = np.random.default_rng(seed)
    if ints:
        return rng.integers(0, ints, shape)
    return rng.standard_normal(shape).astype("float32")


def kcls(name):
    return getattr(K, name, None) or KERAS_CELLS[name]


# name, builder (m: keras.layers or rnnbook.layers), input, wrap (a cell is run inside RNN), call kwargs
def _x(*shape):
    return data(shape)


MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
CASES = {
    "Dense": (lambda m: m.Dense(3, activation="relu", use_bias=False,
                                kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}}),
              _x(2, 4), {}),
    "Dense_vs": (lambda m: m.Dense(4, kernel_initializer={"class_name": "VarianceScaling", "config": {
        "scale": 2.0, "mode": "fan_out", "distribution": "uniform", "seed": 1}}, bias_constraint="non_neg"),
        _x(2, 5, 3), {}),
    "Dropout": (lambda m: m.Dropout(0.3, noise_shape=(None, 1, 4), seed=2), _x(2, 5, 4), {}),
    "Embedding": (lambda m: m.Embedding(10, 4, mask_zero=True, embeddings_regularizer="l2"),
                  data((3, 5), ints=10), {}),
    "Masking": (lambda m: m.Masking(0.5), _x(3, 5, 2), {}),
    "BatchNormalization": (lambda m: m.BatchNormalization(momentum=0.9, epsilon=1e-2, center=False),
                           _x(4, 3), {}),
    "SimpleRNNCell": (lambda m: m.SimpleRNNCell(3, activation="relu"), _x(3, 5, 4), {}),
    "GRUCell": (lambda m: m.GRUCell(3, reset_after=False, recurrent_initializer="glorot_normal"),
                _x(3, 5, 4), {}),
    "LSTMCell": (lambda m: m.LSTMCell(3, unit_forget_bias=False, bias_regularizer="l1"), _x(3, 5, 4), {}),
    "StackedRNNCells": (lambda m: m.StackedRNNCells([m.LSTMCell(3), m.GRUCell(2)]), _x(3, 5, 4), {}),
    "RNN": (lambda m: m.RNN(m.LSTMCell(3), return_sequences=True, go_backwards=True), _x(3, 5, 4),
            {"mask": MASK}),
    "RNN_stack": (lambda m: m.RNN([m.LSTMCell(3), m.SimpleRNNCell(2)], return_state=True), _x(3, 5, 4), {}),
    "SimpleRNN": (lambda m: m.SimpleRNN(4, activation="relu", return_sequences=True, go_backwards=True),
                  _x(3, 5, 4), {"mask": MASK}),
    "GRU": (lambda m: m.GRU(3, reset_after=False, return_state=True), _x(3, 5, 4), {"mask": MASK}),
    "GRU_after": (lambda m: m.GRU(3, dropout=0.2, recurrent_dropout=0.1, seed=4, return_sequences=True),
                  _x(3, 5, 4), {}),
    "LSTM": (lambda m: m.LSTM(3, dropout=0.1, seed=2, kernel_regularizer="l2", return_sequences=True,
                              return_state=True, unit_forget_bias=False), _x(3, 5, 4), {"mask": MASK}),
    "LSTM_orth": (lambda m: m.LSTM(2, recurrent_regularizer={"class_name": "OrthogonalRegularizer",
                                                             "config": {"factor": 0.1, "mode": "columns"}},
                                   kernel_constraint={"class_name": "MaxNorm", "config": {"max_value": 1.5}}),
                  _x(3, 5, 4), {}),
    "LSTM_stateful": (lambda m: m.LSTM(3, stateful=True, return_sequences=True), _x(3, 5, 4), {}),
    "Bidirectional": (lambda m: m.Bidirectional(m.LSTM(3, return_sequences=True), merge_mode="sum"),
                      _x(3, 5, 4), {"mask": MASK}),
    "Bidirectional_bw": (lambda m: m.Bidirectional(m.GRU(2), backward_layer=m.GRU(2, go_backwards=True,
                                                                                  activation="relu")),
                         _x(3, 5, 4), {}),
    "Bidirectional_none": (lambda m: m.Bidirectional(m.SimpleRNN(2, return_sequences=True), merge_mode=None),
                           _x(3, 5, 4), {}),
    "TimeDistributed": (lambda m: m.TimeDistributed(m.Dense(3, activation="tanh")), _x(3, 5, 4), {}),
    "ConvLSTM1D": (lambda m: m.ConvLSTM1D(2, 3, padding="same", return_sequences=True), _x(2, 4, 6, 3), {}),
    "ConvLSTM2D": (lambda m: m.ConvLSTM2D(2, (2, 3), strides=(1, 2), recurrent_dropout=0.1), _x(2, 3, 5, 6, 2),
                   {}),
    "ConvLSTM3D": (lambda m: m.ConvLSTM3D(1, 2, return_state=True), _x(2, 3, 3, 4, 3, 1), {}),
    "ConvLSTMCell": (lambda m: m.ConvLSTMCell(1, 2, 3, padding="same") if m is rl
                     else KERAS_CELLS["ConvLSTMCell"](1, 2, 3, padding="same"), _x(2, 4, 6, 3), {}),
}
CELLS = {"SimpleRNNCell", "GRUCell", "LSTMCell", "StackedRNNCells", "ConvLSTMCell"}


def class_of(case):
    return case.split("_")[0]


def run(m, layer, x, kwargs):
    "Build and call `layer` (a cell inside an RNN layer of the same library, returning sequences)."
    if class_of(layer.__class__.__name__) in CELLS:
        layer = m.RNN(layer, return_sequences=True)
    y = layer(x, **kwargs)
    return layer, y


def keras_to_rb(case):
    build, x, kwargs = CASES[case]
    k = build(K)
    rb = getattr(rl, class_of(case)).from_config(as_json(k.get_config()))
    return k, rb, x, kwargs


def rb_to_keras(case):
    build, x, kwargs = CASES[case]
    rb = build(rl)
    k = kcls(class_of(case)).from_config(as_json(rb.get_config()))
    return k, rb, x, kwargs


def same_behaviour(k, rb, x, kwargs):
    "Same weight shapes; Keras' weights copied into rnnbook give the same outputs (inference mode)."
    k_run, yk = run(K, k, x, kwargs)
    rb_run, yr = run(rl, rb, x, kwargs)
    k_shapes = [tuple(w.shape) for w in k_run.get_weights()]
    assert [w.shape for w in rb_run.get_weights()] == k_shapes
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in k_run.get_weights()]
    if class_of(type(k).__name__) == "BatchNormalization":
        weights[-1] = np.abs(weights[-1]) + 0.5          # a moving variance
    k_run.set_weights(weights)
    rb_run.set_weights(weights)
    stateful = getattr(rb_run, "stateful", False)
    if stateful:                                          # start both from zeros, then carry the states over
        k_run.reset_states()
        rb_run.reset_states()
    for _ in range(2 if stateful else 1):
        yk = k_run(x, **kwargs)
        yr = rb_run(x, **kwargs)
        close(yr, knp(yk))


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_config_builds_the_same_rnnbook_layer(case):
    same_behaviour(*keras_to_rb(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_rnnbook_config_builds_the_same_keras_layer(case):
    same_behaviour(*rb_to_keras(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_through_keras_keeps_the_config(case):
    "rnnbook -> Keras -> rnnbook: the same config; Keras -> rnnbook -> Keras: the same Keras config."
    k, rb, _, _ = rb_to_keras(case)
    again = getattr(rl, class_of(case)).from_config(as_json(k.get_config()))
    same_config(again.get_config(), rb.get_config())
    k, rb, _, _ = keras_to_rb(case)
    k_again = kcls(class_of(case)).from_config(as_json(rb.get_config()))
    same_config(k_again.get_config(), k.get_config())


@pytest.mark.parametrize("case", sorted(CASES))
def test_nested_form_both_ways(case):
    "`serialize_layer` output loads in `keras.saving.deserialize_keras_object`, and Keras' in `deserialize_layer`."
    assert serialize_layer(rl.Dense(1))["module"] == "keras.layers"
    build, x, kwargs = CASES[case]
    k = keras.saving.deserialize_keras_object(as_json(serialize_layer(build(rl))))
    assert type(k).__name__ == class_of(case)
    same_behaviour(k, build(rl), x, kwargs)
    rb = deserialize_layer(as_json(keras.saving.serialize_keras_object(build(K))))
    assert type(rb).__name__ == class_of(case)


def test_nested_form_builds_from_build_config():
    "Keras writes `build_config` for a built layer: the layer read from it has its weights, as in Keras."
    k = K.LSTM(3)
    k(data((2, 5, 4)))
    rb = deserialize_layer(as_json(keras.saving.serialize_keras_object(k)))
    assert rb.built
    assert [w.shape for w in rb.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    k_again = keras.saving.deserialize_keras_object(as_json(serialize_layer(rb)))
    assert k_again.built and len(k_again.weights) == 3


def test_input_layer_both_ways():
    k = K.InputLayer(batch_shape=(None, 5, 3), dtype="float64", name="x")
    rb = rl.InputLayer.from_config(as_json(k.get_config()))
    assert rb.get_config()["batch_shape"] == (None, 5, 3) and rb.dtype == "float64"
    k_again = K.InputLayer.from_config(as_json(rb.get_config()))
    same_config(k_again.get_config(), k.get_config())


# ---- dtype policies --------------------------------------------------------------------------------------

def test_dtype_policies():
    k = K.LSTM(3, dtype="float64")
    rb = rl.LSTM.from_config(as_json(k.get_config()))
    assert rb.dtype == "float64"
    rb(data((2, 4, 3)))
    assert all(w.dtype == np.float64 for w in rb.get_weights())
    mixed = rl.GRU.from_config(as_json(K.GRU(3, dtype="mixed_float16").get_config()))
    assert mixed.dtype == "float32"                       # the weights' dtype of Keras' mixed policy
    k64 = K.Dense.from_config(as_json(rl.Dense(2, dtype="float64").get_config()))
    assert k64.dtype_policy.name == "float64"
    config = as_json(K.Dense(2).get_config())
    config["dtype"] = {"module": "keras", "class_name": "QuantizedDTypePolicy",
                       "config": {"name": "int8_from_float32", "source_name": "float32"}, "registered_name": None}
    with pytest.raises(ValueError, match="QuantizedDTypePolicy"):
        rl.Dense.from_config(config)


def test_quantization_config_and_lora():
    config = as_json(K.Dense(2).get_config())
    assert rl.Dense.from_config(config).units == 2
    with pytest.raises(ValueError, match="quantization_config"):
        rl.Dense.from_config({**config, "quantization_config": {"mode": "int8"}})


# ---- initializers, regularizers, constraints in every form Keras writes ------------------------------------

KERAS_INITS = [keras.initializers.GlorotUniform(seed=1), keras.initializers.HeNormal(),
               keras.initializers.LecunUniform(seed=3), keras.initializers.Orthogonal(gain=2.0, seed=1),
               keras.initializers.RandomNormal(0.1, 0.2, seed=5), keras.initializers.TruncatedNormal(seed=1),
               keras.initializers.RandomUniform(-1, 1), keras.initializers.Constant(0.3),
               keras.initializers.Identity(gain=0.5), keras.initializers.Zeros(), keras.initializers.Ones(),
               keras.initializers.VarianceScaling(0.5, "fan_avg", "untruncated_normal", input_axes=[0],
                                                  output_axes=[1])]


@pytest.mark.parametrize("init", KERAS_INITS, ids=lambda i: type(i).__name__)
def test_keras_initializers_both_ways(init):
    config = as_json(keras.initializers.serialize(init))
    ours = initializers.get(config)
    theirs = keras.initializers.deserialize(config)        # what Keras makes of its own config (Identity: no gain)
    assert type(ours).__name__ == type(init).__name__
    back = keras.initializers.deserialize(as_json(initializers.serialize(ours)))
    same_config(back.get_config(), init.get_config())
    if type(init).__name__ in ("Constant", "Identity", "Zeros", "Ones"):
        close(ours((3, 3)), knp(theirs((3, 3))))


def test_keras_constant_array_value():
    init = keras.initializers.Constant(np.arange(3.0))
    config = as_json(keras.saving.serialize_keras_object(init))
    close(initializers.get(config)((2, 3)), knp(init((2, 3))))


@pytest.mark.parametrize("obj", [keras.regularizers.L1(0.1), keras.regularizers.L2(0.2),
                                 keras.regularizers.L1L2(0.1, 0.3), keras.regularizers.L1L2(l1=None, l2=0.3),
                                 keras.regularizers.OrthogonalRegularizer(0.2, "rows")],
                         ids=lambda r: type(r).__name__)
def test_keras_regularizers_both_ways(obj):
    ours = regularizers.get(as_json(keras.regularizers.serialize(obj)))
    w = data((4, 6))
    close(ours(w), knp(obj(keras.ops.convert_to_tensor(w))))
    back = keras.regularizers.deserialize(as_json(regularizers.serialize(ours)))
    same_config(back.get_config(), obj.get_config())


@pytest.mark.parametrize("obj", [keras.constraints.MaxNorm(1.5, axis=1), keras.constraints.NonNeg(),
                                 keras.constraints.UnitNorm(axis=0), keras.constraints.MinMaxNorm(0.5, 1.5, 0.7)],
                         ids=lambda c: type(c).__name__)
def test_keras_constraints_both_ways(obj):
    ours = constraints.get(as_json(keras.constraints.serialize(obj)))
    w = data((4, 6))
    close(ours(w), knp(obj(keras.ops.convert_to_tensor(w))))
    back = keras.constraints.deserialize(as_json(constraints.serialize(ours)))
    assert back.get_config() == obj.get_config()


# ---- unknown keys ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_unknown_key_is_named(case):
    k = CASES[case][0](K)
    config = as_json(k.get_config())
    with pytest.raises((ValueError, TypeError), match="colour"):
        getattr(rl, class_of(case)).from_config({**config, "colour": "red"})


@pytest.mark.parametrize("where", ["kernel_initializer", "recurrent_regularizer", "bias_constraint"])
def test_unknown_key_in_a_nested_object_is_named(where):
    config = as_json(K.LSTM(2, recurrent_regularizer="l2", bias_constraint="non_neg").get_config())
    config[where]["config"]["colour"] = "red"
    with pytest.raises(ValueError, match="Unrecognized key 'colour'"):
        rl.LSTM.from_config(config)


def test_unknown_key_in_a_nested_layer_is_named():
    config = as_json(K.Bidirectional(K.LSTM(2)).get_config())
    config["layer"]["config"]["colour"] = "red"
    with pytest.raises((ValueError, TypeError), match="colour"):
        rl.Bidirectional.from_config(config)
    config = as_json(K.RNN([K.LSTMCell(2), K.GRUCell(2)]).get_config())
    config["cell"]["config"]["cells"][1]["config"]["colour"] = "red"
    with pytest.raises((ValueError, TypeError), match="colour"):
        rl.RNN.from_config(config)


# ---- not portable: rnnbook-only layers ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CuDNNLSTM", "CuDNNGRU"])
def test_cudnn_layers_are_rnnbook_only(name):
    "Keras 3 has no CuDNNLSTM/CuDNNGRU: their configs round-trip in rnnbook, Keras refuses them by name."
    layer = getattr(rl, name)(3)
    again = deserialize_layer(as_json(serialize_layer(layer)))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
    with pytest.raises((TypeError, ValueError), match=name):
        keras.saving.deserialize_keras_object(as_json(serialize_layer(layer)))
