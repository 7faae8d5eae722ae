"""The seed guide's examples (shared/seeds/002_*.txt) run with rnnbook in place of Keras.

Summaries and parameter counts are in test_models.py; here the examples that train or carry state: the
row-by-row digit classifier (scikit-learn's bundled 8x8 digits stand in for MNIST, which cannot be downloaded
here), the NestedCell model with two inputs and two outputs trained by `fit`, the stateful paragraph example
and the state-reuse example.
"""

import numpy as np
import pytest

import rnnbook as rb
from rnnbook.layers import LSTM, LSTMCell, RNN, BatchNormalization, Dense


def build_model(allow_cudnn_kernel=True, input_dim=8, units=64, output_size=10):
    """The guide's `build_model`: LSTM over image rows -> BatchNormalization -> Dense."""
    if allow_cudnn_kernel:
        lstm_layer = LSTM(units, input_shape=(None, input_dim))
    else:
        lstm_layer = RNN(LSTMCell(units), input_shape=(None, input_dim))
    return rb.Sequential([lstm_layer, BatchNormalization(), Dense(output_size)])


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype("float32")                     # (1797, 8, 8): 8 rows of 8 pixels
    y = d.target.astype("int64")
    idx = np.random.default_rng(0).permutation(len(x))
    tr, te = idx[:1400], idx[1400:]
    return x[tr], y[tr], x[te], y[te]


def test_row_by_row_digit_classifier_trains_to_090(digits):
    x_train, y_train, x_test, y_test = digits
    rb.set_seed(0)
    model = build_model(allow_cudnn_kernel=True)
    model.compile(loss=rb.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=rb.optimizers.Adam(learning_rate=0.01), metrics=["accuracy"])
    history = model.fit(x_train, y_train, validation_data=(x_test, y_test), batch_size=64, epochs=10, verbose=0)
    val = history.history["val_accuracy"]
    assert len(val) == 10 and history.history["loss"][-1] < history.history["loss"][0]
    assert val[-1] >= 0.90, val
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert acc == pytest.approx(val[-1], abs=1e-6)

    # the guide: a model built on RNN(LSTMCell) with the same weights gives the same numbers
    noncudnn_model = build_model(allow_cudnn_kernel=False)
    noncudnn_model.set_weights(model.get_weights())
    np.testing.assert_allclose(noncudnn_model.predict(x_test, verbose=0), model.predict(x_test, verbose=0),
                               atol=1e-5, rtol=1e-5)
    result = np.argmax(model.predict_on_batch(x_test[:1]), axis=1)          # the guide's single-sample predict
    assert result.shape == (1,) and result[0] == np.argmax(model.predict(x_test[:1], verbose=0))


def test_same_steps_as_keras_on_the_digit_model(digits):
    """Two epochs of the guide's model in Keras 3 and rnnbook from the same weights, batches in order."""
    keras = pytest.importorskip("keras")
    x_train, y_train, x_test, y_test = digits
    x, y = x_train[:256], y_train[:256]
    km = keras.Sequential([keras.Input((None, 8)), keras.layers.LSTM(16), keras.layers.BatchNormalization(),
                           keras.layers.Dense(10)])
    rm = rb.Sequential([LSTM(16, input_shape=(None, 8)), BatchNormalization(), Dense(10)])
    rm.set_weights(km.get_weights())
    for m, lib in ((km, keras), (rm, rb)):
        m.compile(loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=lib.optimizers.Adam(learning_rate=0.01), metrics=["accuracy"])
    kh = km.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    rh = rm.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(rh.history["loss"], kh.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(rh.history["accuracy"], kh.history["accuracy"], atol=1e-6)
    for a, b in zip(rm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), atol=2e-4, rtol=1e-3)


from guide_cells import NestedCell  # noqa: E402  (the guide's cell, shared by the tests)


def test_nested_cell_model_fits():
    unit_1, unit_2, unit_3 = 10, 20, 30
    i1, i2, i3 = 32, 64, 32
    batch_size, num_batches, timestep = 64, 2, 50
    cell = NestedCell(unit_1, unit_2, unit_3)
    rnn = RNN(cell)
    input_1 = rb.Input((None, i1))
    input_2 = rb.Input((None, i2, i3))
    outputs = rnn((input_1, input_2))
    model = rb.Model([input_1, input_2], outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    input_1_data = rng.random((batch_size * num_batches, timestep, i1)).astype("float32")
    input_2_data = rng.random((batch_size * num_batches, timestep, i2, i3)).astype("float32")
    target_1_data = rng.random((batch_size * num_batches, unit_1)).astype("float32")
    target_2_data = rng.random((batch_size * num_batches, unit_2, unit_3)).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit([input_1_data, input_2_data], [target_1_data, target_2_data], batch_size=batch_size,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert [o.shape for o in model.predict([input_1_data[:3], input_2_data[:3]], verbose=0)] == \
        [(3, unit_1), (3, unit_2, unit_3)]


def test_stateful_paragraphs_and_state_reuse():
    rng = np.random.default_rng(0)
    paragraph1, paragraph2, paragraph3 = (rng.random((20, 10, 50)).astype("float32") for _ in range(3))
    lstm_layer = LSTM(64, stateful=True)
    lstm_layer(paragraph1)
    output = lstm_layer(paragraph2)
    whole = LSTM(64)
    whole.build((20, 20, 50))
    whole.set_weights(lstm_layer.get_weights())
    np.testing.assert_allclose(output, whole(np.concatenate([paragraph1, paragraph2], axis=1)), atol=1e-5)
    lstm_layer.reset_states()
    np.testing.assert_array_equal([s.numpy() for s in lstm_layer.states], np.zeros((2, 20, 64)))
    # state reuse: a new layer starts from the stateful layer's states
    lstm_layer(paragraph1)
    lstm_layer(paragraph2)
    existing_state = lstm_layer.states
    new_lstm_layer = LSTM(64)
    new_output = new_lstm_layer(paragraph3, initial_state=existing_state)
    assert new_output.shape == (20, 64)
    new_lstm_layer.set_weights(lstm_layer.get_weights())
    np.testing.assert_allclose(new_lstm_layer(paragraph3, initial_state=existing_state), lstm_layer(paragraph3),
                               atol=1e-6)
