"""Whole models exchanged with Keras 3 as JSON configs, both ways: Sequential and functional (several inputs and
outputs, shared layers, nested models, the `NotEqual` mask node of `Embedding(mask_zero=True)`), `layers` and
`get_weights()` in Keras' order, `input`/`output` (keras.io's lstm_seq2seq sampling models), model states, and
subclassed models refused whole-model serialization."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
L = keras.layers

import rnnbook as rb  # noqa: E402
from rnnbook.models import Model, Sequential, model_from_config, model_from_json  # noqa: E402


def _flat(x):
    return [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]


def _close(a, b):
    a, b = _flat(a), _flat(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def keras_to_rnnbook(k_model, x):
    "Read Keras' JSON into rnnbook: the same layers in the same order, Keras' weights, the same predictions."
    r_model = model_from_json(k_model.to_json())
    assert [l.name for l in r_model.layers] == [l.name for l in k_model.layers]
    r_model.set_weights(k_model.get_weights())
    _close(r_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    return r_model


def rnnbook_to_keras(r_model, x):
    "Read rnnbook's JSON into Keras: the same layers in the same order, rnnbook's weights, the same predictions."
    k_model = keras.models.model_from_json(r_model.to_json())
    assert [l.name for l in k_model.layers] == [l.name for l in r_model.layers]
    k_model.set_weights(r_model.get_weights())
    _close(k_model.predict(x, verbose=0), r_model.predict(x, verbose=0))
    return k_model


@pytest.fixture
def ids():
    x = np.random.default_rng(0).integers(1, 20, (4, 6))
    x[0, 3:] = 0
    x[2, 5:] = 0
    return x


def test_sequential_masked_lstm_both_ways(ids):
    k = keras.Sequential([keras.Input((6,), dtype="int32"), L.Embedding(20, 4, mask_zero=True), L.LSTM(5),
                          L.Dense(3)])
    r = keras_to_rnnbook(k, ids)
    assert type(r) is Sequential
    back = rnnbook_to_keras(r, ids)
    assert type(back) is keras.Sequential
    config = json.loads(r.to_json())
    assert (config["module"], config["class_name"]) == ("keras", "Sequential")
    assert all(c["module"] == "keras.layers" for c in config["config"]["layers"])


def test_functional_not_equal_mask_node_becomes_the_mask(ids):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(20, 4, mask_zero=True)(inp)
    out = L.Dense(2)(L.Bidirectional(L.GRU(3, return_sequences=True))(x))
    k = keras.Model(inp, out)
    config = json.loads(k.to_json())
    assert "NotEqual" in [c["class_name"] for c in config["config"]["layers"]]
    r = keras_to_rnnbook(k, ids)
    assert "NotEqual" not in [type(l).__name__ for l in r.layers]          # an operation, not a layer (Keras)
    # the mask really is used: padding changes nothing in the unpadded steps of a masked row
    longer = ids.copy()
    longer[0, 3:] = 7
    assert not np.allclose(r.predict(longer, verbose=0)[0, 3:], r.predict(ids, verbose=0)[0, 3:])
    rnnbook_to_keras(r, ids)


def test_functional_several_inputs_outputs_and_state_passing(ids):
    src, tgt = keras.Input((None,), dtype="int32", name="src"), keras.Input((None,), dtype="int32", name="tgt")
    _, h, c = L.LSTM(5, return_state=True, name="encoder")(L.Embedding(20, 4, name="src_emb")(src))
    seq = L.LSTM(5, return_sequences=True, name="decoder")(L.Embedding(20, 4, name="tgt_emb")(tgt),
                                                           initial_state=[h, c])
    k = keras.Model([src, tgt], [L.Dense(3, name="tokens_out")(seq), L.Dense(1, name="score")(h)])
    x = [ids, ids[:, ::-1].copy()]
    r = keras_to_rnnbook(k, x)
    assert [t.node.layer.name for t in r.input] == ["src", "tgt"]
    rnnbook_to_keras(r, x)


def test_shared_layers_at_two_depths_keep_keras_order():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = L.Dense(4, name="shared")
    x = shared(L.Dense(4, name="pre")(shared(a)))
    k = keras.Model([a, b], [x, shared(b)])
    data = [np.random.default_rng(1).normal(size=(3, 4)).astype("float32") for _ in range(2)]
    r = keras_to_rnnbook(k, data)
    assert len(r.weights) == 4
    rnnbook_to_keras(r, data)


def test_nested_models_both_ways():
    inner_in = keras.Input((None, 3))
    inner = keras.Model(inner_in, L.LSTM(4, return_sequences=True)(inner_in), name="inner")
    head = keras.Sequential([keras.Input((None, 4)), L.GRU(2)], name="head")
    x_in = keras.Input((None, 3))
    k = keras.Model(x_in, head(inner(x_in)), name="outer")
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    r = keras_to_rnnbook(k, x)
    assert [type(l).__name__ for l in r.layers] == ["InputLayer", "Functional", "Sequential"]
    config = json.loads(r.to_json())["config"]
    assert config["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["inner", 0, 0]
    rnnbook_to_keras(r, x)


def test_rnnbook_built_model_matches_keras_built_model_order():
    "The same functional model built in both: `set_weights(keras_model.get_weights())` works as is."
    def build(lib, Input, Model):
        enc_in, dec_in = Input((None, 3)), Input((None, 2))
        _, h, c = lib.LSTM(4, return_state=True)(enc_in)
        dec = lib.LSTM(4, return_sequences=True)(dec_in, initial_state=[h, c])
        return Model([enc_in, dec_in], lib.Dense(2)(dec))
    k = build(L, keras.Input, keras.Model)
    r = build(rb.layers, rb.Input, rb.Model)
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    r.set_weights(k.get_weights())
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(2, 5, 3)).astype("float32"), rng.normal(size=(2, 4, 2)).astype("float32")]
    _close(r.predict(x, verbose=0), k.predict(x, verbose=0))


def test_lstm_seq2seq_sampling_models_from_trained_layers():
    "keras.io's lstm_seq2seq: the sampling encoder and decoder built from the trained model's layers."
    n_in, n_out, units = 5, 6, 8
    encoder_inputs = rb.Input((None, n_in))
    _, state_h, state_c = rb.layers.LSTM(units, return_state=True)(encoder_inputs)
    decoder_inputs = rb.Input((None, n_out))
    decoder_lstm = rb.layers.LSTM(units, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = rb.layers.Dense(n_out, activation="softmax")
    model = rb.Model([encoder_inputs, decoder_inputs], decoder_dense(decoder_outputs))
    # as keras.io does after loading the trained model:
    encoder_inputs = model.input[0]
    _, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = rb.Model(encoder_inputs, [state_h_enc, state_c_enc])
    decoder_inputs = model.input[1]
    h_in, c_in = rb.Input((units,)), rb.Input((units,))
    decoder_lstm = model.layers[3]
    dec_out, h, c = decoder_lstm(decoder_inputs, initial_state=[h_in, c_in])
    decoder_model = rb.Model([decoder_inputs, h_in, c_in], [model.layers[4](dec_out), h, c])
    rng = np.random.default_rng(4)
    x_enc, x_dec = rng.normal(size=(2, 7, n_in)).astype("float32"), rng.normal(size=(2, 3, n_out)).astype("float32")
    states = encoder_model.predict(x_enc, verbose=0)
    stepped, _, _ = decoder_model.predict([x_dec] + list(states), verbose=0)
    _close(stepped, model.predict([x_enc, x_dec], verbose=0))
    assert model.layers[2].input is model.input[0]
    with pytest.raises(AttributeError, match="has never been called"):
        rb.layers.Dense(2).output


def test_model_states_get_set_and_reset():
    model = Sequential([rb.Input(batch_shape=(2, None, 3)), rb.layers.GRU(4, stateful=True), rb.layers.Dense(1)])
    x = np.random.default_rng(5).normal(size=(2, 3, 3)).astype("float32")
    model(x)
    saved = model.get_states()
    again = model(x)
    model.set_states(saved)
    _close(model(x), again)
    model.reset_states()
    assert all(not s.any() for s in model.get_states())
    with pytest.raises(ValueError, match="expected 1 arrays"):
        model.set_states(saved + saved)


def test_subclassed_model_refuses_whole_model_config_but_keeps_weights(tmp_path):
    class Tagger(Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.lstm = rb.layers.LSTM(3, return_sequences=True)
            self.head = rb.layers.Dense(2)

        def call(self, x, training=None):
            return self.head(self.lstm(x))

    model = Tagger()
    x = np.ones((1, 4, 2), "float32")
    model(x)
    for action in (model.get_config, model.to_json, lambda: model.save(tmp_path / "m.npz")):
        with pytest.raises(NotImplementedError, match="subclassed model"):
            action()
    assert not (tmp_path / "m.npz").exists()
    model.save_weights(tmp_path / "w.npz")
    other = Tagger()
    other(x)
    other.load_weights(tmp_path / "w.npz")
    _close(other(x), model(x))


def test_layer_configs_written_in_keras_nested_format():
    r = Sequential([rb.Input((None, 3)), rb.layers.Bidirectional(rb.layers.LSTM(2))])
    entry = json.loads(r.to_json())["config"]["layers"][1]
    assert (entry["module"], entry["class_name"], entry["registered_name"]) == ("keras.layers", "Bidirectional", None)
    assert entry["build_config"] == {"input_shape": [None, None, 3]}
    again = model_from_config(json.loads(r.to_json()))
    assert again.count_params() == r.count_params()
    with pytest.raises(ValueError, match="quantization_config"):
        rb.layers.Dense(2, quantization_config={"mode": "int8"})


def test_nested_functional_model_as_an_output():
    "Keras counts a nested functional model's own graph as node 0 in `output_layers` (not in call arguments)."
    i = keras.Input((3,))
    inner = keras.Model(i, L.Dense(2)(i), name="inner_dense")
    x = keras.Input((3,))
    y = inner(x)
    k = keras.Model(x, [y, L.Dense(1, name="after")(y)])
    assert k.get_config()["output_layers"][0] == ["inner_dense", 1, 0]
    data = np.random.default_rng(6).normal(size=(2, 3)).astype("float32")
    r = keras_to_rnnbook(k, data)
    assert r.get_config()["output_layers"] == k.get_config()["output_layers"]
    rnnbook_to_keras(r, data)
