"""Keras files both ways: files Keras 3 writes (`.weights.h5`, `.keras`, legacy `.h5`) load into the same model
built in rnnbook (weights equal, predictions to 1e-6), and files rnnbook writes load in Keras 3.

The models are built in code on both sides; the config half of `.keras` (rebuilding a model from Keras'
`config.json`, and Keras rebuilding one from rnnbook's) depends on `rnnbook.models.model_from_config` and
`serialize_layer` writing Keras' format (helper B's work, in place when this was written)."""
import json
import os
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
from keras import layers as K  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import keras_files as kf  # noqa: E402
from rnnbook.layer import serialize_layer  # noqa: E402

L = rb.layers
rng = np.random.default_rng(0)
X = rng.normal(size=(2, 5, 3)).astype("float32")
IDS = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]], "int32")


def keras_seq():
    return keras.Sequential([keras.Input((5, 3)), K.LSTM(4, return_sequences=True),
                             K.Bidirectional(K.GRU(2, return_sequences=True)), K.TimeDistributed(K.Dense(2)),
                             K.RNN([K.SimpleRNNCell(3), K.LSTMCell(2)], return_sequences=True), K.LSTM(3),
                             K.Dense(1)])


def rb_seq():
    m = rb.models.Sequential([L.Input((5, 3)), L.LSTM(4, return_sequences=True),
                              L.Bidirectional(L.GRU(2, return_sequences=True)), L.TimeDistributed(L.Dense(2)),
                              L.RNN([L.SimpleRNNCell(3), L.LSTMCell(2)], return_sequences=True), L.LSTM(3),
                              L.Dense(1)])
    m(X)
    return m


def keras_fn():
    i = keras.Input((5,), dtype="int32")
    h = K.Embedding(10, 3, mask_zero=True)(i)
    h = K.LSTM(4, return_sequences=True)(h)
    return keras.Model(i, K.Dense(2)(K.LSTM(3)(h)))


def rb_fn():
    i = L.Input((5,), dtype="int32")
    h = L.Embedding(10, 3, mask_zero=True)(i)
    h = L.LSTM(4, return_sequences=True)(h)
    m = rb.models.Model(i, L.Dense(2)(L.LSTM(3)(h)))
    m(IDS)
    return m


def randomize(km):
    km.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in km.get_weights()])
    return km


def knp(km, x):
    return keras.ops.convert_to_numpy(km(x))


CASES = [(keras_seq, rb_seq, X), (keras_fn, rb_fn, IDS)]


@pytest.mark.parametrize("make_keras,make_rb,x", CASES, ids=["sequential", "functional"])
def test_keras_weights_h5_into_rnnbook(tmp_path, make_keras, make_rb, x):
    km = randomize(make_keras())
    path = str(tmp_path / "m.weights.h5")
    km.save_weights(path)
    m = make_rb()
    kf.load_weights_h5(m, path)
    for a, b in zip(km.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.asarray(m(x)), knp(km, x), atol=1e-6)


@pytest.mark.parametrize("make_keras,make_rb,x", CASES, ids=["sequential", "functional"])
def test_rnnbook_weights_h5_into_keras(tmp_path, make_keras, make_rb, x):
    m = make_rb()
    m.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in m.get_weights()])
    path = str(tmp_path / "m.weights.h5")
    kf.save_weights_h5(m, path)
    km = make_keras()
    km.load_weights(path)
    for a, b in zip(km.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(knp(km, x), np.asarray(m(x)), atol=1e-6)


def test_group_names_match_keras(tmp_path):
    """rnnbook writes the same datasets, of the same shapes, under the same paths as Keras."""
    def tree(path):
        out = {}
        with h5py.File(path) as h5:
            h5.visititems(lambda n, o: out.update({n: o.shape}) if isinstance(o, h5py.Dataset) else None)
        return out
    for make_keras, make_rb, _ in CASES:
        km = make_keras()
        km.save_weights(str(tmp_path / "k.weights.h5"))
        kf.save_weights_h5(make_rb(), str(tmp_path / "r.weights.h5"))
        assert tree(tmp_path / "r.weights.h5") == tree(tmp_path / "k.weights.h5")


def test_snake_case_is_keras():
    from keras.src.utils.naming import to_snake_case
    from rnnbook.variable import snake_case
    for name in L.__all__:
        assert snake_case(name) == to_snake_case(name), name


def test_keras_archive_weights_into_rnnbook(tmp_path):
    km = randomize(keras_seq())
    path = str(tmp_path / "m.keras")
    km.save(path)
    config, metadata, weights = kf.read_keras_archive(path)
    assert config["class_name"] == "Sequential" and metadata["keras_version"] == keras.__version__
    m = rb_seq()
    kf.load_weights_h5(m, weights)
    np.testing.assert_allclose(np.asarray(m(X)), knp(km, X), atol=1e-6)


@pytest.mark.parametrize("make_keras,make_rb,x", CASES, ids=["sequential", "functional"])
def test_keras_archive_config_into_rnnbook(tmp_path, make_keras, make_rb, x):
    km = randomize(make_keras())
    path = str(tmp_path / "m.keras")
    km.save(path)
    config, _, weights = kf.read_keras_archive(path)
    m = rb.models.model_from_config(config)
    m(x)
    kf.load_weights_h5(m, weights)
    np.testing.assert_allclose(np.asarray(m(x)), knp(km, x), atol=1e-6)


def test_rnnbook_archive_weights_into_keras(tmp_path):
    m = rb_seq()
    path = str(tmp_path / "m.keras")
    kf.write_keras_archive(path, {"class_name": "Sequential"}, kf.keras_metadata(),
                           lambda h5: kf.write_weights_h5(m, h5))
    km = keras_seq()
    km.load_weights(path)                    # Keras reads the weights of a `.keras` without its config
    np.testing.assert_allclose(knp(km, X), np.asarray(m(X)), atol=1e-6)


@pytest.mark.parametrize("make_keras,make_rb,x", CASES, ids=["sequential", "functional"])
def test_rnnbook_archive_loads_in_keras(tmp_path, make_keras, make_rb, x):
    m = make_rb()
    path = str(tmp_path / "m.keras")
    kf.write_keras_archive(path, serialize_layer(m), kf.keras_metadata(), lambda h5: kf.write_weights_h5(m, h5))
    km = keras.models.load_model(path)
    np.testing.assert_allclose(knp(km, x), np.asarray(m(x)), atol=1e-6)


def test_stateful_states_kept_and_keras_ignores_them(tmp_path):
    m = rb.models.Sequential([L.Input((5, 3), batch_size=2), L.LSTM(4, stateful=True, return_sequences=True),
                              L.GRU(2, stateful=True)])
    m(X)
    path = str(tmp_path / "s.weights.h5")
    kf.save_weights_h5(m, path)
    km = keras.Sequential([keras.Input((5, 3), batch_size=2), K.LSTM(4, stateful=True, return_sequences=True),
                           K.GRU(2, stateful=True)])
    km.load_weights(path)                    # the `rnnbook_states` groups are not Keras' business
    for a, b in zip(km.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    m2 = rb.models.Sequential([L.Input((5, 3), batch_size=2), L.LSTM(4, stateful=True, return_sequences=True),
                               L.GRU(2, stateful=True)])
    m2(np.zeros_like(X))
    kf.load_weights_h5(m2, path)
    np.testing.assert_allclose(np.asarray(m2(X)), np.asarray(m(X)), atol=1e-6)   # carries on from the states


def test_optimizer_state_from_keras(tmp_path):
    km = keras_seq()
    km.compile(optimizer="adam", loss="mse")
    km.fit(X, np.ones((2, 1), "float32"), epochs=2, verbose=0)
    path = str(tmp_path / "t.weights.h5")
    km.save_weights(path)
    m = rb_seq()
    m.compile(optimizer="adam", loss="mse")
    m.optimizer.build(m.trainable_weights)
    kf.load_weights_h5(m, path)
    kvars = [keras.ops.convert_to_numpy(v) for v in km.optimizer.variables]
    assert len(kvars) == len(m.optimizer.variables)
    for a, v in zip(kvars, m.optimizer.variables):
        np.testing.assert_allclose(v.numpy(), a, atol=1e-7)


def test_keras3_legacy_h5_full_model(tmp_path):
    km = randomize(keras_seq())
    path = str(tmp_path / "m.h5")
    km.save(path)                            # Keras 3 still writes the legacy HDF5 format for `.h5`
    model_config, training_config = kf.read_legacy_h5(path)
    assert model_config["class_name"] == "Sequential" and training_config is None
    m = rb_seq()
    kf.load_legacy_weights(m, path)
    np.testing.assert_allclose(np.asarray(m(X)), knp(km, X), atol=1e-6)


def test_legacy_weights_only_file(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format
    km = randomize(keras_fn())
    path = str(tmp_path / "w.h5")
    with h5py.File(path, "w") as h5:
        legacy_h5_format.save_weights_to_hdf5_group(h5, km)
    m = rb_fn()
    kf.load_legacy_weights(m, path)
    np.testing.assert_allclose(np.asarray(m(IDS)), knp(km, IDS), atol=1e-6)


def _keras2_cudnn_file(path, layer, name, input_name="input_1"):
    """A Keras 2 full-model file of Sequential([CuDNN layer]) in Keras 2's layout (h5py): config and weights."""
    kind = type(layer).__name__
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5, 3], "name": input_name}},
        {"class_name": kind, "config": {"name": name, "units": layer.units}}]}}
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = b"2.15.0"
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["model_config"] = json.dumps(config).encode()
        g = h5.create_group("model_weights")
        g.attrs["layer_names"] = np.array([name.encode()])
        lg = g.create_group(name)
        names = [f"{name}/{w}:0".encode() for w in ("kernel", "recurrent_kernel", "bias")]
        lg.attrs["weight_names"] = np.array(names)
        for n, w in zip(names, layer.get_weights()):
            lg[n.decode()] = w


@pytest.mark.parametrize("cudnn,builtin", [(L.CuDNNLSTM, L.LSTM), (L.CuDNNGRU, L.GRU)])
def test_keras2_cudnn_into_builtin_and_cudnn(tmp_path, cudnn, builtin):
    ref = cudnn(4)
    ref(X)
    ref.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in ref.get_weights()])
    path = str(tmp_path / "cudnn.h5")
    _keras2_cudnn_file(path, ref, "cu_dnn")
    config, _ = kf.read_legacy_h5(path)
    assert config["config"]["layers"][1]["class_name"] == cudnn.__name__
    extra = {"reset_after": True} if builtin is L.GRU else {}
    for layer in (builtin(4, **extra), cudnn(4)):
        m = rb.models.Sequential([L.Input((5, 3)), layer])
        m(X)
        kf.load_legacy_weights(m, path)
        np.testing.assert_allclose(np.asarray(m(X)), np.asarray(ref(X)), atol=1e-5)


def test_keras2_bidirectional_cudnn_into_keras3_layout(tmp_path):
    """A Keras 2 Bidirectional(CuDNNLSTM) file: forward weights then backward, each converted."""
    ref = rb.models.Sequential([L.Input((5, 3)), L.Bidirectional(L.CuDNNLSTM(4))])
    ref(X)
    ref.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in ref.get_weights()])
    path = str(tmp_path / "bi.h5")
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"bidirectional"])       # a Keras 2 weights-only file
        lg = h5.create_group("bidirectional")
        names = [f"bidirectional/{d}_cu_dnnlstm/{w}:0".encode() for d in ("forward", "backward")
                 for w in ("kernel", "recurrent_kernel", "bias")]
        lg.attrs["weight_names"] = np.array(names)
        for n, w in zip(names, ref.get_weights()):
            lg[n.decode()] = w
    m = rb.models.Sequential([L.Input((5, 3)), L.Bidirectional(L.LSTM(4))])
    m(X)
    kf.load_legacy_weights(m, path)
    np.testing.assert_allclose(np.asarray(m(X)), np.asarray(ref(X)), atol=1e-5)
