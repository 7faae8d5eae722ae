"""rnnbook.models: Input / functional / Sequential / subclassed models, summaries with the guide's numbers, the
training loop (vs Keras 3, torch backend), callbacks, progress bar, stateful models, atomic weights files, configs."""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook.backend import unwrap  # noqa: E402
from rnnbook.core import BatchNormalization  # noqa: E402
from rnnbook.layer import Layer, get_mask, serialize_layer  # noqa: E402
from rnnbook.layers import (GRU, LSTM, RNN, Bidirectional, Dense, Dropout, Embedding, SimpleRNN,  # noqa: E402
                            TimeDistributed)
from rnnbook import saving  # noqa: E402
from rnnbook.callbacks import Callback, EarlyStopping, History, LambdaCallback  # noqa: E402
from rnnbook.models import Input, Model, Sequential, load_model, model_from_config  # noqa: E402

from rnnbook import optimizers, losses  # noqa: E402


def summary_text(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return "\n".join(lines)


def total(text, kind="Total"):
    return int(re.search(rf" {kind} params: ([\d,]+) ", text).group(1).replace(",", ""))


# --- the guide's models ---------------------------------------------------------------------------------------

def guide_encoder_decoder():
    encoder_input = Input(shape=(None,))
    encoder_embedded = Embedding(input_dim=1000, output_dim=64)(encoder_input)
    output, state_h, state_c = LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    decoder_input = Input(shape=(None,))
    decoder_embedded = Embedding(input_dim=2000, output_dim=64)(decoder_input)
    decoder_output = LSTM(64, name="decoder")(decoder_embedded, initial_state=[state_h, state_c])
    output = Dense(10)(decoder_output)
    return Model([encoder_input, decoder_input], output)


from guide_cells import NestedCell  # noqa: E402  (the guide's cell, shared by the tests)


def test_guide_sequential_summaries():
    m = Sequential()
    m.add(Embedding(input_dim=1000, output_dim=64))
    m.add(LSTM(128))
    m.add(Dense(10))
    text = summary_text(m)
    assert total(text) == 164_106 and total(text, "Trainable") == 164_106 and total(text, "Non-trainable") == 0
    assert "Total params: 164,106 (641.04 KB)" in text
    for row in ["(Embedding)", "(None, None, 64)", "64,000", "(LSTM)", "(None, 128)", "98,816", "(None, 10)", "1,290"]:
        assert row in text, row
    assert "Connected to" not in text and "InputLayer" not in text

    m = Sequential([Embedding(input_dim=1000, output_dim=64), GRU(256, return_sequences=True), SimpleRNN(128),
                    Dense(10)])
    text = summary_text(m)
    assert total(text) == 361_866 and "(1.38 MB)" in text
    for row in ["(None, None, 256)", "247,296", "(None, 128)", "49,280"]:
        assert row in text, row

    m = Sequential()
    m.add(Bidirectional(LSTM(64, return_sequences=True), input_shape=(5, 10)))
    m.add(Bidirectional(LSTM(32)))
    m.add(Dense(10))
    text = summary_text(m)
    assert total(text) == 80_266 and [l.count_params() for l in m.layers] == [38_400, 41_216, 650]
    for row in ["(None, 5, 128)", "38,400", "(None, 64)", "41,216", "650", "313.54 KB"]:
        assert row in text, row


def test_guide_encoder_decoder_summary_and_outputs(rng):
    model = guide_encoder_decoder()
    text = summary_text(model)
    assert total(text) == 258_698 and "(1010.54 KB)" in text and "Connected to" in text
    assert text.count("(InputLayer)") == 2 and "encoder[0][1]" in text and "encoder[0][2]" in text
    assert [l.count_params() for l in model.layers] == [0, 0, 64_000, 128_000, 33_024, 33_024, 650]
    src, tgt = rng.integers(0, 1000, (3, 7)), rng.integers(0, 2000, (3, 5))
    enc_emb, dec_emb, enc, dec, dense = model.layers[2:]
    _, h, c = enc(enc_emb(src))
    np.testing.assert_allclose(model([src, tgt]), dense(dec(dec_emb(tgt), initial_state=[h, c])), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(model.predict([src, tgt], verbose=0), model([src, tgt]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch([src, tgt]), model([src, tgt]), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="expects 2 input"):
        model(src)
    with pytest.raises(ValueError, match="incompatible"):
        model([src[..., None], tgt])


def test_guide_nested_cell_model(rng):
    cell = NestedCell(10, 20, 30)
    rnn = RNN(cell)
    input_1, input_2 = Input((None, 8)), Input((None, 6, 5))
    outputs = rnn((input_1, input_2))
    assert [t.shape for t in outputs] == [(None, 10), (None, 20, 30)]
    model = Model([input_1, input_2], outputs)
    assert model.count_params() == 8 * 10 + 6 * 5 * 20 * 30
    a, b = rng.random((4, 7, 8)).astype("float32"), rng.random((4, 7, 6, 5)).astype("float32")
    o1, o2 = model([a, b])
    r1, r2 = rnn((a, b))
    np.testing.assert_allclose(o1, r1, rtol=1e-6); np.testing.assert_allclose(o2, r2, rtol=1e-6)
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    history = model.fit([a, b], [rng.random((4, 10)), rng.random((4, 20, 30))], batch_size=2, verbose=0)
    assert sorted(history.history) == sorted(["loss", f"{rnn.name}_loss", f"{rnn.name}_1_loss",
                                              f"{rnn.name}_accuracy", f"{rnn.name}_1_accuracy"])
    h = history.history
    np.testing.assert_allclose(h["loss"][0], h[f"{rnn.name}_loss"][0] + h[f"{rnn.name}_1_loss"][0], rtol=1e-5)


def test_dict_inputs_and_multiple_outputs_with_loss_weights(rng):
    a, b = Input((3,), name="a_in"), Input((2,), name="b_in")
    merged = Dense(4, name="mix")(a)
    out1 = Dense(1, name="out1")(merged)
    out2 = Dense(2, name="out2")(b)
    model = Model({"a": a, "b": b}, [out1, out2])
    xa, xb = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
    y1, y2 = model({"a": xa, "b": xb})
    np.testing.assert_allclose(y2, model.get_layer("out2")(xb), rtol=1e-6)
    model.compile(optimizers.SGD(0.0), loss={"out1": "mse", "out2": "mae"}, loss_weights={"out1": 2.0, "out2": 0.5})
    t1, t2 = rng.normal(size=(5, 1)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
    logs = model.test_on_batch({"a": xa, "b": xb}, {"out1": t1, "out2": t2}, return_dict=True)
    mse, mae = np.mean((y1 - t1) ** 2), np.mean(np.abs(y2 - t2))
    np.testing.assert_allclose([logs["out1_loss"], logs["out2_loss"]], [mse, mae], rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 2 * mse + 0.5 * mae, rtol=1e-5)
    with pytest.raises(ValueError, match="missing input"):
        model({"a": xa})


def test_subclassed_model_trains_and_summarises(rng):
    class Classifier(Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = Embedding(30, 8, mask_zero=True)
            self.lstm = LSTM(8)
            self.dropout = Dropout(0.1, seed=0)
            self.head = Dense(2)

        def call(self, inputs, training=False):
            return self.head(self.dropout(self.lstm(self.embedding(inputs)), training=training))

    model = Classifier()
    ids = rng.integers(1, 30, (32, 6)) * (np.arange(6) < rng.integers(2, 7, (32, 1)))
    labels = (ids[:, 0] > 15).astype("int64")
    model.compile(optimizers.Adam(0.02), losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(ids, labels, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.name == "classifier" and len(model.layers) == 4 and len(model.weights) == 6
    text = summary_text(model)
    assert f"Total params: {model.count_params():,}" in text and "?" in text
    explicit = Classifier()
    explicit.build((None, 6))
    assert explicit.built and explicit.count_params() == model.count_params()


# --- training vs Keras ----------------------------------------------------------------------------------------

def _keras_and_rb(rng, keras):
    k = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4, mask_zero=True),
                          keras.layers.LSTM(5),
                          keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.01))])
    r = Sequential([Input((6,), dtype="int32"), Embedding(20, 4, mask_zero=True), LSTM(5),
                    Dense(3, kernel_regularizer=rb.regularizers.L2(0.01))])
    r.set_weights([w + rng.normal(0, 0.1, w.shape).astype("float32") for w in k.get_weights()])
    k.set_weights(r.get_weights())
    ids = rng.integers(1, 20, (8, 6)) * (np.arange(6) < np.array([6, 5, 4, 3, 2, 1, 6, 4])[:, None])
    return k, r, ids, rng.integers(0, 3, 8)


def test_keras_parity_predict_and_train_on_batch(rng):
    keras = pytest.importorskip("keras")
    k, r, ids, y = _keras_and_rb(rng, keras)
    np.testing.assert_allclose(r.predict(ids, verbose=0), k.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    k.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    r.compile(optimizers.SGD(0.5), losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for _ in range(2):
        np.testing.assert_allclose(r.train_on_batch(ids, y), k.train_on_batch(ids, y), rtol=1e-5, atol=1e-6)
        for a, b in zip(r.get_weights(), k.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.test_on_batch(ids, y), k.test_on_batch(ids, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.evaluate(ids, y, verbose=0), k.evaluate(ids, y, verbose=0), rtol=1e-5, atol=1e-6)
    assert r.metrics_names == ["loss", "accuracy"]


def test_keras_parity_fit_history(rng):
    keras = pytest.importorskip("keras")
    k, r, ids, y = _keras_and_rb(rng, keras)
    k.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    r.compile(optimizers.Adam(0.05), losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    args = dict(batch_size=3, epochs=3, shuffle=False, verbose=0, validation_data=(ids[:4], y[:4]))
    hk, hr = k.fit(ids, y, **args), r.fit(ids, y, **args)
    assert sorted(hr.history) == sorted(hk.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in hk.history:
        np.testing.assert_allclose(hr.history[key], hk.history[key], rtol=1e-4, atol=1e-5)
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_keras_parity_masked_tagger(rng):
    "Per-step losses and metrics skip the padded steps (the mask rides on the output), as in Keras."
    keras = pytest.importorskip("keras")
    k = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4, mask_zero=True),
                          keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True)),
                          keras.layers.Dense(3)])
    r = Sequential([Input((6,), dtype="int32"), Embedding(20, 4, mask_zero=True),
                    Bidirectional(GRU(3, return_sequences=True)), Dense(3)])
    r.set_weights([w + rng.normal(0, 0.1, w.shape).astype("float32") for w in k.get_weights()])
    k.set_weights(r.get_weights())
    ids = rng.integers(1, 20, (5, 6)) * (np.arange(6) < np.array([6, 4, 3, 2, 5])[:, None])
    tags = rng.integers(0, 3, (5, 6))
    assert get_mask(r(ids)) is not None
    for m in (k, r):
        m.compile(optimizers.SGD(0.3) if m is r else keras.optimizers.SGD(0.3),
                  (losses if m is r else keras.losses).SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    for _ in range(2):
        np.testing.assert_allclose(r.train_on_batch(ids, tags), k.train_on_batch(ids, tags), rtol=1e-5, atol=1e-6)
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# --- fit ------------------------------------------------------------------------------------------------------

def _regression(rng, n=64):
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3).astype("float32")


def test_fit_learns_and_logs(rng):
    x, y = _regression(rng)
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(optimizers.SGD(0.1), "mse", metrics=["mae"])
    history = model.fit(x, y, epochs=5, batch_size=16, validation_split=0.25, verbose=0)
    assert isinstance(history, History) and model.history is history and history.epoch == [0, 1, 2, 3, 4]
    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(v) == 5 for v in history.history.values())
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    loss, mae = model.evaluate(x, y, verbose=0)
    assert loss < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx({"loss": loss, "mae": mae})
    # validation_split keeps the last quarter aside: validating on it with the final weights gives the last val_*
    val = model.evaluate(x[48:], y[48:], verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-6)
    assert val["mae"] == pytest.approx(history.history["val_mae"][-1], rel=1e-6)


class Recorder(Layer):
    "Records the first feature of each training batch."
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, inputs, training=False):
        if training: self.seen.append(np.asarray(unwrap(inputs))[:, 0].copy())
        return inputs


def test_shuffle_false_feeds_batches_in_order_and_shuffle_true_permutes():
    x = np.arange(10, dtype="float32")[:, None]
    rec = Recorder()
    model = Sequential([Input((1,)), rec, Dense(1)])
    model.compile(optimizers.SGD(0.01), "mse")
    model.fit(x, x, batch_size=3, epochs=2, shuffle=False, verbose=0)
    assert [s.tolist() for s in rec.seen] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]] * 2
    rec.seen.clear()
    rb.set_seed(1)
    model.fit(x, x, batch_size=10, epochs=3, shuffle=True, verbose=0)
    orders = [s.tolist() for s in rec.seen]
    assert all(sorted(o) == list(range(10)) for o in orders) and orders != [list(range(10))] * 3


def test_stateful_model_in_pieces_equals_whole(rng):
    seq = rng.normal(size=(2, 8, 3)).astype("float32")
    stateful = Sequential([Input(batch_shape=(2, None, 3)), LSTM(4, stateful=True), Dense(1)])
    full = Sequential([Input(batch_shape=(2, None, 3)), LSTM(4), Dense(1)])
    full.set_weights(stateful.get_weights())
    for _ in range(2):
        stateful.predict(seq[:, :3], batch_size=2, verbose=0)
        pieces = stateful.predict(seq[:, 3:], batch_size=2, verbose=0)
        np.testing.assert_allclose(pieces, full(seq), rtol=1e-5, atol=1e-6)
        stateful.reset_states()
    # reset_states reaches stateful layers nested in wrappers and inner models
    inner = Sequential([Input(batch_shape=(2, None, 3)), Bidirectional(LSTM(2, stateful=True, return_sequences=True))])
    outer_in = Input(batch_shape=(2, None, 3))
    outer = Model(outer_in, LSTM(2, stateful=True)(inner(outer_in)))
    outer(seq)
    states = [s for l in (inner.layers[0].forward_layer, inner.layers[0].backward_layer, outer.layers[-1])
              for s in l.states]
    assert all(np.abs(s.numpy()).sum() > 0 for s in states)
    outer.reset_states()
    assert all(np.abs(s.numpy()).sum() == 0 for s in states)


def test_stateful_training_with_shuffle_false_equals_manual_steps(rng):
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    y = rng.normal(size=(2, 1)).astype("float32")
    def make():
        m = Sequential([Input(batch_shape=(2, None, 3)), LSTM(4, stateful=True), Dense(1)])
        m.compile(optimizers.SGD(0.1), "mse")
        return m
    a, b = make(), make()
    b.set_weights(a.get_weights())
    chunks = [x[:, :3], x[:, 3:]]
    for c in chunks: a.fit(c, y, batch_size=2, shuffle=False, verbose=0)
    for c in chunks: b.train_on_batch(c, y)
    for w1, w2 in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-6)
    np.testing.assert_allclose(a.layers[0].states[0].numpy(), b.layers[0].states[0].numpy(), rtol=1e-6)


def test_callbacks_hooks_stop_training_and_early_stopping(rng):
    x, y = _regression(rng, 32)
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(optimizers.SGD(0.0), "mse")                # no learning: the loss never improves
    events = []

    class Spy(Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append(f"batch_end {batch} {sorted(logs)}")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end {epoch} {sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    es = EarlyStopping(monitor="loss", patience=1)
    history = model.fit(x, y, epochs=10, batch_size=16, callbacks=[Spy(), es], shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and es.stopped_epoch == 1
    assert events[:4] == ["train_begin", "epoch_begin 0", "batch_end 0 ['loss']", "batch_end 1 ['loss']"]
    assert events[-1] == "train_end" and "epoch_end 1 ['loss']" in events

    stopper = LambdaCallback(on_train_batch_end=lambda batch, logs: setattr(model, "stop_training", batch == 0))
    history = model.fit(x, y, epochs=3, batch_size=8, callbacks=[stopper], verbose=0)
    assert len(history.history["loss"]) == 1

    model.compile(optimizers.SGD(0.1), "mse")
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=4, validation_data=(x, y), callbacks=[es], verbose=0)
    assert len(history.history["val_loss"]) == 4
    with pytest.raises(ValueError, match="mode='max'"):
        model.fit(x, y, epochs=1, callbacks=[EarlyStopping("perplexity")], verbose=0)


def test_progress_bar_format(rng, capsys):
    x, y = _regression(rng, 40)
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(optimizers.SGD(0.1), "mse", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:8], y[:8]))
    out = capsys.readouterr().out
    line = r"3/3 ━{20} \d+s \d+(us|ms|s)/step - loss: \d+\.\d{4} - mae: \d+\.\d{4} - val_loss: \d+\.\d{4} - val_mae: \d+\.\d{4}"
    assert re.fullmatch(rf"Epoch 1/2\n{line}\nEpoch 2/2\n{line}\n", out), out
    model.fit(x, y, epochs=1, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert re.fullmatch(r"3/3 - \d+s - \d+(us|ms|s)/step - loss: \d+\.\d{4} - mae: \d+\.\d{4}\n", out), out
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.evaluate(x, y, verbose=0); model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, batch_size=16)
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(us|ms|s)/step - loss: \d+\.\d{4} - mae: \d+\.\d{4}\n",
                        capsys.readouterr().out)


def test_regularization_enters_the_loss(rng):
    x, y = _regression(rng, 8)
    dense = Dense(1, kernel_regularizer=rb.regularizers.L2(0.1))
    model = Sequential([Input((3,)), dense])
    model.compile(optimizers.SGD(0.0), "mse")
    W, b = dense.get_weights()
    expected = np.mean((x @ W + b - y) ** 2) + 0.1 * np.sum(W ** 2)
    np.testing.assert_allclose(model.test_on_batch(x, y), expected, rtol=1e-5)


def test_frozen_layer_is_not_trained(rng):
    x, y = _regression(rng, 16)
    first, last = Dense(4), Dense(1)
    model = Sequential([Input((3,)), first, BatchNormalization(), last])
    first.trainable = False
    assert len(model.trainable_weights) == 2 + 2 and len(model.non_trainable_weights) == 2 + 2
    before = first.get_weights()
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(before, first.get_weights()): np.testing.assert_array_equal(a, b)
    assert "Non-trainable params: 24 (96.00 B)" in summary_text(model)     # frozen Dense 16 + moving stats 8


def test_errors_name_what_is_wrong(rng):
    model = Sequential([Input((3,)), Dense(1)])
    with pytest.raises(ValueError, match="compile"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="cardinality"):
        model.fit(np.ones((4, 3)), np.ones((3, 1)), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="unique names"):
        d = Dense(2)
        Sequential([d, d])
    with pytest.raises(ValueError, match="Only instances of `Layer`"):
        Sequential([np.ones(3)])
    with pytest.raises(ValueError, match="No such layer"):
        model.get_layer("nope")


# --- saving ---------------------------------------------------------------------------------------------------

def _two_lstm_models():
    def make():
        return Sequential([Embedding(50, 4, mask_zero=True), LSTM(5, return_sequences=True),
                           BatchNormalization(), Dense(2)])
    a, b = make(), make()
    a.layers[2].moving_mean.assign(np.arange(5, dtype="float32"))
    return a, b


def test_save_and_load_weights_round_trip(tmp_path, rng):
    a, b = _two_lstm_models()
    assert [l.name for l in a.layers] != [l.name for l in b.layers]      # fresh names: matched by position
    path = tmp_path / "model.weights.npz"
    a.save_weights(path)
    b.load_weights(path)
    for w1, w2 in zip(a.get_weights(), b.get_weights()): np.testing.assert_array_equal(w1, w2)
    ids = rng.integers(0, 50, (3, 6))
    np.testing.assert_array_equal(a(ids), b(ids))
    with np.load(path) as z:                                            # the documented format
        meta = __import__("json").loads(str(z["__meta__"]))
        assert meta["format"] == "rnnbook.weights" and meta["version"] == 1
        assert [e["name"] for e in meta["weights"]][-4:] == ["moving_mean", "moving_variance", "kernel", "bias"]
        np.testing.assert_array_equal(z["w0000"], a.weights[0].numpy())
    with pytest.raises(FileExistsError):
        a.save_weights(path, overwrite=False)


def test_save_is_atomic(tmp_path, monkeypatch):
    a, b = _two_lstm_models()
    path = tmp_path / "model.weights.npz"
    a.save_weights(path)
    before = path.read_bytes()

    def broken(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(saving, "_write_npz", broken)
    with pytest.raises(OSError, match="disk full"):
        b.save_weights(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.weights.npz"]
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(saving.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        b.save_weights(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.weights.npz"]
    b.save_weights(tmp_path / "new.npz")                                 # a new file gets ordinary permissions
    mode = os.stat(tmp_path / "new.npz").st_mode & 0o777
    umask = os.umask(0); os.umask(umask)
    assert mode == 0o666 & ~umask


def test_load_errors_change_nothing(tmp_path, rng):
    a, _ = _two_lstm_models()
    path = tmp_path / "a.npz"
    a.save_weights(path)
    other = Sequential([Embedding(50, 4, mask_zero=True), LSTM(6, return_sequences=True), BatchNormalization(),
                        Dense(2)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"weight 1: .* has shape \(4, 24\).*Nothing was changed"):
        other.load_weights(path)
    for w1, w2 in zip(before, other.get_weights()): np.testing.assert_array_equal(w1, w2)
    fewer = Sequential([Embedding(50, 4, mask_zero=True), LSTM(5, return_sequences=True), Dense(2)])
    with pytest.raises(ValueError, match="holds 10 weights, but .* has 6"):
        fewer.load_weights(path)
    with pytest.raises(ValueError, match="has not been built"):
        Sequential([LSTM(3)]).load_weights(path)
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="not an rnnbook weights file"):
        a.load_weights(tmp_path / "plain.npz")


# --- config ---------------------------------------------------------------------------------------------------

def test_sequential_config_round_trip(rng):
    model = Sequential([Bidirectional(LSTM(4, return_sequences=True), input_shape=(5, 3)), BatchNormalization(),
                        TimeDistributed(Dense(2))])
    config = model.get_config()
    again = Sequential.from_config(config)
    assert again.get_config() == config
    again.set_weights(model.get_weights())
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6)
    rebuilt = model_from_config(serialize_layer(model))
    assert type(rebuilt) is Sequential and rebuilt.count_params() == model.count_params()
    lazy = Sequential([LSTM(3), Dense(1)])
    assert not Sequential.from_config(lazy.get_config()).built


def test_functional_config_round_trip(rng, tmp_path):
    model = guide_encoder_decoder()
    config = model.get_config()
    assert config["input_layers"] == [[model.layers[0].name, 0, 0], [model.layers[1].name, 0, 0]]
    decoder = next(e for e in config["layers"] if e["name"] == "decoder")
    assert decoder["inbound_nodes"][0]["kwargs"]["initial_state"][1]["config"]["keras_history"] == ["encoder", 0, 2]
    again = Model.from_config(config)
    assert again.get_config() == config
    again.set_weights(model.get_weights())
    src, tgt = rng.integers(0, 1000, (2, 4)), rng.integers(0, 2000, (2, 3))
    np.testing.assert_allclose(again([src, tgt]), model([src, tgt]), rtol=1e-6)
    # the whole model in one file: config + weights
    model.save(tmp_path / "encdec.npz")
    loaded = load_model(tmp_path / "encdec.npz")
    np.testing.assert_allclose(loaded([src, tgt]), model([src, tgt]), rtol=1e-6)
    with pytest.raises(ValueError, match="holds no model config"):
        model.save_weights(tmp_path / "w.npz"); load_model(tmp_path / "w.npz")


def test_nested_cell_model_config_and_shared_layer(rng):
    rnn = RNN(NestedCell(3, 2, 2))
    i1, i2 = Input((None, 4)), Input((None, 2, 2))
    model = Model([i1, i2], rnn((i1, i2)))
    again = model_from_config(serialize_layer(model))
    again.set_weights(model.get_weights())
    a, b = rng.random((2, 3, 4)).astype("float32"), rng.random((2, 3, 2, 2)).astype("float32")
    for u, v in zip(again([a, b]), model([a, b])): np.testing.assert_allclose(u, v, rtol=1e-6)
    # a layer used twice: two nodes, one set of weights
    shared = Dense(3, name="shared")
    x1, x2 = Input((4,)), Input((4,))
    twice = Model([x1, x2], [shared(x1), shared(x2)])
    text = summary_text(twice)
    assert len(twice.weights) == 2 and text.count("shared (Dense)") == 1
    assert f"{twice.layers[0].name}[0][0]" in text and f"{twice.layers[1].name}[0][0]" in text
    again = Model.from_config(twice.get_config())
    assert len(again.weights) == 2
