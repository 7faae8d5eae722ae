"""Whole models through Keras' files, both ways (`model.save`, `load_model`, `save_weights`, `load_weights`):
Keras 3 writes and rnnbook reads, rnnbook writes and Keras 3 reads, the real files shipped in tests/data/keras
(Keras 3.15 and Keras 2's tf-keras 2.21) against the predictions their writers recorded, training that goes on
where it stopped, and the way out to Keras and back ("when a user outgrows one machine")."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from pathlib import Path

import keras
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.models import load_model

DATA = Path(__file__).resolve().parents[1] / "data" / "keras"
RNG = np.random.default_rng(11)
TOKENS = RNG.integers(1, 12, (6, 7))
TOKENS[:2, 4:] = 0                                  # padded rows
LABELS = RNG.integers(0, 2, (6, 1)).astype("float32")


def classifier(lib):
    "The same small masked LSTM classifier in Keras or rnnbook."
    L = lib.layers
    m = lib.Sequential([lib.Input((7,), dtype="int32"), L.Embedding(12, 4, mask_zero=True), L.LSTM(5),
                        L.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return m


def tagger(lib):
    L = lib.layers
    inputs = lib.Input((7,), dtype="int32")
    h = L.Embedding(12, 4, mask_zero=True)(inputs)
    h = L.Bidirectional(L.GRU(3, return_sequences=True))(h)
    return lib.Model(inputs, L.TimeDistributed(L.Dense(2))(h))


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=tol, rtol=0)


def test_keras_dot_keras_loads_in_rnnbook_compiled(tmp_path):
    k = classifier(keras)
    k.fit(TOKENS, LABELS, epochs=2, verbose=0)
    k.save(tmp_path / "k.keras")
    r = load_model(tmp_path / "k.keras")
    close(r.predict(TOKENS, verbose=0), k.predict(TOKENS, verbose=0))
    assert r.compiled and type(r.optimizer).__name__ == "Adam"
    assert int(r.optimizer.iterations.numpy()) == int(k.optimizer.iterations.numpy())
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]


def test_training_goes_on_where_keras_stopped(tmp_path):
    "One more batch in both libraries from the same `.keras` file (Adam's slots included) gives the same weights."
    k = classifier(keras)
    k.fit(TOKENS, LABELS, epochs=3, verbose=0)
    k.save(tmp_path / "k.keras")
    r = load_model(tmp_path / "k.keras")
    k2 = keras.models.load_model(tmp_path / "k.keras")
    r.train_on_batch(TOKENS, LABELS)
    k2.train_on_batch(TOKENS, LABELS)
    for a, b in zip(r.get_weights(), k2.get_weights()): close(a, b, 1e-5)


def test_rnnbook_dot_keras_loads_in_keras(tmp_path):
    r = classifier(rb)
    r.fit(TOKENS, LABELS, epochs=2, verbose=0)
    r.save(tmp_path / "r.keras")
    k = keras.models.load_model(tmp_path / "r.keras")
    close(k.predict(TOKENS, verbose=0), r.predict(TOKENS, verbose=0))
    assert type(k.optimizer).__name__ == "Adam"
    assert int(k.optimizer.iterations.numpy()) == int(r.optimizer.iterations.numpy())


def test_functional_bidirectional_both_ways(tmp_path):
    r = tagger(rb)
    r.save(tmp_path / "r.keras")
    k = keras.models.load_model(tmp_path / "r.keras")
    close(k.predict(TOKENS, verbose=0), r.predict(TOKENS, verbose=0))
    k.save(tmp_path / "k.keras")
    back = load_model(tmp_path / "k.keras")
    close(back.predict(TOKENS, verbose=0), r.predict(TOKENS, verbose=0))


def test_weights_h5_through_model_methods_both_ways(tmp_path):
    k, r = tagger(keras), tagger(rb)
    k.save_weights(tmp_path / "k.weights.h5")
    r.load_weights(tmp_path / "k.weights.h5")
    close(r.predict(TOKENS, verbose=0), k.predict(TOKENS, verbose=0))
    r2 = tagger(rb)
    r2.save_weights(tmp_path / "r.weights.h5")
    k.load_weights(tmp_path / "r.weights.h5")
    close(k.predict(TOKENS, verbose=0), r2.predict(TOKENS, verbose=0))


def test_out_to_keras_and_back(tmp_path):
    "rnnbook -> `.keras` -> Keras trains a few steps -> `.keras` -> rnnbook: Keras' weights, to look inside."
    r = classifier(rb)
    r.fit(TOKENS, LABELS, epochs=1, verbose=0)
    r.save(tmp_path / "out.keras")
    k = keras.models.load_model(tmp_path / "out.keras")
    k.fit(TOKENS, LABELS, epochs=3, verbose=0)
    k.save(tmp_path / "back.keras")
    back = load_model(tmp_path / "back.keras")
    for a, b in zip(back.get_weights(), k.get_weights()): np.testing.assert_array_equal(a, np.asarray(b))
    assert rb.trace(back.layers[1], back.layers[0](TOKENS)).values["f"].shape == (6, 7, 5)


def test_extension_picks_the_format(tmp_path):
    r = classifier(rb)
    with pytest.raises(ValueError, match="Invalid filepath extension for saving"): r.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="does not write them"): r.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="must end in `.weights.h5`"): r.save_weights(tmp_path / "w.h5")
    r.save(tmp_path / "m.npz")                                   # rnnbook's own format stays
    close(load_model(tmp_path / "m.npz").predict(TOKENS, verbose=0), r.predict(TOKENS, verbose=0))
    os.replace(tmp_path / "m.npz", tmp_path / "m.keras")        # what older rnnbook versions wrote under Keras' names
    close(load_model(tmp_path / "m.keras").predict(TOKENS, verbose=0), r.predict(TOKENS, verbose=0))
    r.save_weights(tmp_path / "w.weights.h5")
    os.replace(tmp_path / "w.weights.h5", tmp_path / "w.npz")   # loading goes by what the file holds
    r.load_weights(tmp_path / "w.npz")


def test_subclassed_model_refuses_whole_saving(tmp_path):
    class Sub(rb.Model):
        def __init__(self):
            super().__init__()
            self.dense = rb.layers.Dense(2)
        def call(self, x): return self.dense(x)
    m = Sub()
    m(np.ones((1, 3), "float32"))
    with pytest.raises(NotImplementedError, match="subclassed model"): m.save(tmp_path / "s.keras")
    m.save_weights(tmp_path / "s.weights.h5")
    other = Sub()
    other(np.ones((1, 3), "float32"))
    other.load_weights(tmp_path / "s.weights.h5")
    close(other(np.ones((1, 3), "float32")), m(np.ones((1, 3), "float32")))


SHIPPED = sorted(p.stem for p in DATA.glob("*.npz"))


def recorded(name):
    "The arrays of `<name>.npz` in the order they were written (inputs, then outputs, as the model takes them)."
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as z: return {k: z[k] for k in z.files}


def inputs_of(z):
    xs = [v for k, v in z.items() if k.startswith("x")]
    return xs[0] if len(xs) == 1 else xs


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_predict_what_their_writer_recorded(name):
    z = recorded(name)
    files = [DATA / f for f in json.loads(str(z["meta_files"]))]
    models = [f for f in files if f.suffix == ".keras" or (f.suffix == ".h5" and not f.name.endswith("_weights.h5")
                                                            and not f.name.endswith(".weights.h5"))]
    assert models, f"{name}: no model file listed"
    for path in models:
        model = load_model(path)
        if name.endswith("stateful_lstm"):                       # call 2 goes on from call 1's states
            for call in (1, 2):
                close(model.predict_on_batch(z[f"x_call{call}"]), z[f"y_call{call}"], 1e-5)
                h, c = model.get_states()[0] if isinstance(model.get_states()[0], list) else model.get_states()
                close(h, z[f"lstm_state0_after_call{call}"], 1e-5)
                close(c, z[f"lstm_state1_after_call{call}"], 1e-5)
            continue
        y = model.predict(inputs_of(z), verbose=0)
        expected = [v for k, v in z.items() if k.startswith("y") and not k.endswith("note")]
        for got, want in zip(y if isinstance(y, list) else [y], expected): close(got, want, 1e-5)
    for path in files:                                           # weights-only files, into the model built from config
        if not (path.name.endswith("_weights.h5") or path.name.endswith(".weights.h5")): continue
        model = load_model(models[0], compile=False)
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])
        model.load_weights(path)
        if name.endswith("stateful_lstm"):
            model.reset_states()
            close(model.predict_on_batch(z["x_call1"]), z["y_call1"], 1e-5)
            continue
        y = model.predict(inputs_of(z), verbose=0)
        expected = [v for k, v in z.items() if k.startswith("y") and not k.endswith("note")]
        for got, want in zip(y if isinstance(y, list) else [y], expected): close(got, want, 1e-5)


def guide_models(lib):
    "The seed guide's models (Keras' RNN guide), with its layer sizes."
    L = lib.layers
    ids = lib.Input((None,), dtype="int32")
    yield "lstm", lib.Sequential([ids, L.Embedding(1000, 64), L.LSTM(128), L.Dense(10)]), np.arange(12).reshape(2, 6)
    ids = lib.Input((None,), dtype="int32")
    yield "gru_simple_rnn", lib.Sequential([ids, L.Embedding(1000, 64), L.GRU(256, return_sequences=True),
                                            L.SimpleRNN(128), L.Dense(10)]), np.arange(12).reshape(2, 6)
    enc_in, dec_in = lib.Input((None,), dtype="int32"), lib.Input((None,), dtype="int32")
    _, h, c = L.LSTM(64, return_state=True)(L.Embedding(1000, 64)(enc_in))
    dec = L.LSTM(64)(L.Embedding(2000, 64)(dec_in), initial_state=[h, c])
    yield "encoder_decoder", lib.Model([enc_in, dec_in], L.Dense(10)(dec)), [np.arange(10).reshape(2, 5),
                                                                              np.arange(8).reshape(2, 4)]
    yield "bidirectional", lib.Sequential([lib.Input((5, 10)), L.Bidirectional(L.LSTM(64, return_sequences=True)),
                                           L.Bidirectional(L.LSTM(32)), L.Dense(10)]), \
        RNG.standard_normal((2, 5, 10)).astype("float32")
    yield "digits", lib.Sequential([lib.Input((None, 28)), L.LSTM(64), L.BatchNormalization(), L.Dense(10)]), \
        RNG.standard_normal((2, 7, 28)).astype("float32")


@pytest.mark.parametrize("which", ["lstm", "gru_simple_rnn", "encoder_decoder", "bidirectional", "digits"])
def test_seed_guide_models_both_ways(tmp_path, which):
    (_, r, x), = [m for m in guide_models(rb) if m[0] == which]
    (_, k, _), = [m for m in guide_models(keras) if m[0] == which]
    r.save(tmp_path / "r.keras")
    close(keras.models.load_model(tmp_path / "r.keras").predict(x, verbose=0), r.predict(x, verbose=0), 1e-5)
    k.save(tmp_path / "k.keras")
    close(load_model(tmp_path / "k.keras").predict(x, verbose=0), k.predict(x, verbose=0), 1e-5)
