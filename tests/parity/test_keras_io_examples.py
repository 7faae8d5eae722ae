"""keras.io's RNN examples (issue 16, item 3), each built in Keras 3 (torch backend) and in rnnbook from one builder.

Every example is written once, as keras.io writes it, against a library `lib` (``keras`` or ``rnnbook``): the same
code builds both models, which is what a Keras user porting the example does. For each example:

1. Parameter counts: equal in both libraries, and equal to keras.io's published count where the example prints
   one (``model.summary()`` or its text), built at the example's real sizes (building without training is cheap).
2. Outputs: Keras' weights copied in (``rb_model.set_weights(keras_model.get_weights())``), predictions equal at
   1e-5 (float32), on small synthetic data of the right shapes.
3. Training: the same optimizer and three ``train_on_batch`` steps on the same batches, losses equal at 1e-4.
   Dropout layers get rate 0 in this step only (their random masks cannot be shared across libraries).

Small sizes (vocabularies, units, frames) keep each test to a few seconds; the real sizes appear only in the
parameter counts. The examples (keras.io/examples/...):

- nlp/addition_rnn: LSTM encoder, RepeatVector, LSTM decoder, Dense softmax.
- vision/conv_lstm: next-frame prediction, a ConvLSTM2D stack with BatchNormalization, a Conv3D output.
- nlp/active_learning_review_classification: Embedding, Bidirectional LSTM, GlobalMaxPool1D, Dense, Dropout.
- timeseries/multivariate_timeseries_forecasting_using_lstm: three LSTMs, LeakyReLU(alpha=0.5), Dropout.
- nlp/lstm_seq2seq: the training model, saved by Keras, loaded by ``rb.models.load_model``, and the sampling
  encoder/decoder models built from the loaded model's ``input`` and its layers' ``output``; greedy decoding.
- nlp/bidirectional_lstm_imdb: Embedding, two Bidirectional LSTMs, Dense, on ``pad_sequences`` input.
- generative/lstm_character_level_text_generation: LSTM(128) + Dense softmax, RMSprop(0.01), temperature sampling.
- timeseries/timeseries_weather_forecasting: LSTM(32) + Dense on ``timeseries_dataset_from_array`` batches.
- vision/video_classification: two GRUs over frame features with a boolean frame-mask input.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.utils import timeseries_dataset_utils as keras_ts  # noqa: E402

import rnnbook as rb  # noqa: E402

torch.set_num_threads(1)
OUT_TOL = 1e-5                     # forward, Keras' weights copied in
LOSS_TOL = 1e-4                    # three training steps
STEPS = 3


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    "OpenBLAS threads fighting torch's on a loaded 2-core machine make a 1600x256 QR (Orthogonal) take seconds."
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------------------------------------
# shared checks
# ---------------------------------------------------------------------------------------------------------------
def to_np(x):
    if isinstance(x, (list, tuple)):
        return [to_np(a) for a in x]
    return np.asarray(keras.ops.convert_to_numpy(x))


def assert_close(ours, theirs, tol=OUT_TOL):
    ours, theirs = to_np(ours), to_np(theirs)
    if not isinstance(ours, list):
        ours, theirs = [ours], [theirs]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def same_counts(build, published=None, **sizes):
    "Both libraries' parameter counts for `build(lib, **sizes)`; keras.io's published count where there is one."
    keras.utils.set_random_seed(0)
    k, r = build(keras, **sizes), build(rb, **sizes)
    assert r.count_params() == k.count_params()
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    if published is not None:
        assert k.count_params() == published
    return k.count_params()


def copied(build, **sizes):
    "The Keras model and the rnnbook one with Keras' weights copied in."
    keras.utils.set_random_seed(1)
    k, r = build(keras, **sizes), build(rb, **sizes)
    r.set_weights(k.get_weights())
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_array_equal(a, to_np(b))
    return k, r


def same_predictions(k, r, x):
    assert_close(r.predict(x, verbose=0), k.predict(x, verbose=0))
    assert_close(r(x), k(x))                                     # __call__ too (inference mode)


def same_training(k, r, compile_args, batches):
    "Three `train_on_batch` steps, each model compiled with `compile_args(lib)`, on the same batches: equal losses."
    k.compile(**compile_args(keras))
    r.compile(**compile_args(rb))
    r.set_weights(k.get_weights())
    ours, theirs = [], []
    for x, y in batches[:STEPS]:
        theirs.append(k.train_on_batch(x, y, return_dict=True)["loss"])
        ours.append(r.train_on_batch(x, y, return_dict=True)["loss"])
    np.testing.assert_allclose(ours, theirs, rtol=LOSS_TOL, atol=LOSS_TOL)
    assert len(set(np.round(ours, 6))) > 1                       # the weights moved
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, to_np(b), rtol=LOSS_TOL, atol=LOSS_TOL)
    return ours


def one_hot(ids, depth):
    return np.eye(depth, dtype="float32")[ids]


# ---------------------------------------------------------------------------------------------------------------
# addition_rnn
# ---------------------------------------------------------------------------------------------------------------
def addition_rnn(lib, digits=3, chars=12, units=128, num_layers=1):
    maxlen = digits + 1 + digits
    model = lib.Sequential()
    model.add(lib.layers.Input((maxlen, chars)))
    model.add(lib.layers.LSTM(units))
    model.add(lib.layers.RepeatVector(digits + 1))
    for _ in range(num_layers):
        model.add(lib.layers.LSTM(units, return_sequences=True))
    model.add(lib.layers.Dense(chars, activation="softmax"))
    return model


def addition_batches(rng, n=16, digits=3):
    "Questions '12+345 ' reversed and answers '357 ', one-hot over '0123456789+ ', as the example encodes them."
    chars = "0123456789+ "
    maxlen = 2 * digits + 1
    batches = []
    for _ in range(STEPS):
        a, b = rng.integers(0, 10 ** digits, n), rng.integers(0, 10 ** digits, n)
        q = [f"{u}+{v}".ljust(maxlen)[::-1] for u, v in zip(a, b)]
        s = [str(u + v).ljust(digits + 1) for u, v in zip(a, b)]
        x = np.stack([one_hot([chars.index(c) for c in t], len(chars)) for t in q])
        y = np.stack([one_hot([chars.index(c) for c in t], len(chars)) for t in s])
        batches.append((x, y))
    return batches


def test_addition_rnn():
    assert same_counts(addition_rnn, published=205_324) == 205_324
    k, r = copied(addition_rnn)
    batches = addition_batches(np.random.default_rng(0))
    same_predictions(k, r, batches[0][0])
    same_training(k, r, lambda lib: dict(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]),
                  batches)


# ---------------------------------------------------------------------------------------------------------------
# conv_lstm (next-frame prediction)
# ---------------------------------------------------------------------------------------------------------------
def conv_lstm(lib, frame=(64, 64, 1), filters=64):
    L = lib.layers
    inp = L.Input(shape=(None, *frame))
    x = L.ConvLSTM2D(filters=filters, kernel_size=(5, 5), padding="same", return_sequences=True,
                     activation="relu")(inp)
    x = L.BatchNormalization()(x)
    x = L.ConvLSTM2D(filters=filters, kernel_size=(3, 3), padding="same", return_sequences=True,
                     activation="relu")(x)
    x = L.BatchNormalization()(x)
    x = L.ConvLSTM2D(filters=filters, kernel_size=(1, 1), padding="same", return_sequences=True,
                     activation="relu")(x)
    x = L.Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same")(x)
    return lib.models.Model(inp, x)


def conv_lstm_compile(lib):
    return dict(loss=lib.losses.binary_crossentropy, optimizer=lib.optimizers.Adam())


def test_conv_lstm_compiled_with_keras_loss_function_trains_or_is_refused():
    keras.utils.set_random_seed(1)
    k, r = copied(conv_lstm, frame=(8, 8, 1), filters=2)
    x, y = shifted_frames(moving_squares(np.random.default_rng(0)))
    k.compile(loss=keras.losses.binary_crossentropy, optimizer=keras.optimizers.Adam())
    try:
        r.compile(loss=keras.losses.binary_crossentropy, optimizer=rb.optimizers.Adam())
        ours = [r.train_on_batch(x, y) for _ in range(2)]
    except (TypeError, ValueError):
        return                                                   # refusing a foreign loss is fine too
    theirs = [k.train_on_batch(x, y) for _ in range(2)]
    np.testing.assert_allclose(ours, theirs, rtol=LOSS_TOL, atol=LOSS_TOL)


def shifted_frames(data):
    "The example's `create_shifted_frames`: x is frames 0..n-2, y frames 1..n-1."
    return data[:, :-1], data[:, 1:]


def moving_squares(rng, n=2, frames=5, size=8):
    "A square moving one pixel a frame, in [0, 1] like the example's scaled Moving MNIST."
    movies = np.zeros((n, frames, size, size, 1), "float32")
    for i in range(n):
        r0, c0 = rng.integers(0, size - 3, 2)
        for t in range(frames):
            c = (c0 + t) % (size - 2)
            movies[i, t, r0:r0 + 2, c:c + 2, 0] = 1.0
    return np.minimum(movies + 0.05 * rng.random(movies.shape, dtype="float32"), 1.0)


def test_conv_lstm_next_frame():
    # No summary on keras.io; Keras' count at its sizes (64x64x1 frames, 64 filters) is 746,689, 256 of them
    # BatchNormalization's moving statistics. The count does not depend on the frame size: rnnbook builds at
    # 16x16 frames, since its functional build runs each layer on example batches (about 35 s at 64x64 here).
    assert conv_lstm(keras).count_params() == 746_689
    assert same_counts(conv_lstm, frame=(16, 16, 1)) == 746_689
    k, r = copied(conv_lstm, frame=(8, 8, 1), filters=4)
    rng = np.random.default_rng(0)
    batches = [shifted_frames(moving_squares(rng)) for _ in range(STEPS)]
    same_predictions(k, r, batches[0][0])
    same_training(k, r, conv_lstm_compile, batches)
    # BatchNormalization's moving statistics (non-trainable weights) moved the same way in training.
    assert_close(r.non_trainable_weights, k.non_trainable_weights, LOSS_TOL)
    # The example's frame-by-frame prediction: feed the frames so far, append the last predicted frame.
    frames_k = frames_r = batches[0][0][:1, :2]
    for _ in range(2):
        new_k = to_np(k.predict(frames_k, verbose=0))[:, -1:]
        new_r = r.predict(frames_r, verbose=0)[:, -1:]
        assert_close(new_r, new_k)
        frames_k = np.concatenate([frames_k, new_k], axis=1)
        frames_r = np.concatenate([frames_r, new_r], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# active_learning_review_classification
# ---------------------------------------------------------------------------------------------------------------
def review_classifier(lib, length=150, vocab=3000, dim=128, units=32, dropout=0.5, pool="GlobalMaxPooling1D"):
    L = lib.layers
    return lib.models.Sequential([
        L.Input(shape=(length,)),
        L.Embedding(input_dim=vocab, output_dim=dim),
        L.Bidirectional(L.LSTM(units, return_sequences=True)),
        getattr(L, pool)(),
        L.Dense(20, activation="relu"),
        L.Dropout(dropout),
        L.Dense(1, activation="sigmoid"),
    ])


SMALL_REVIEWS = dict(length=12, vocab=50, dim=8, units=6)


def review_batches(rng, n=8, length=12, vocab=50):
    "Token ids as TextVectorization gives them (float input, right-padded with 0), and 0/1 labels."
    batches = []
    for _ in range(STEPS):
        x = rng.integers(2, vocab, (n, length)).astype("float32")
        for row, cut in zip(x, rng.integers(3, length + 1, n)):
            row[cut:] = 0
        batches.append((x, rng.integers(0, 2, (n, 1)).astype("float32")))
    return batches


def test_active_learning_review_classification():
    assert same_counts(review_classifier, published=426_537) == 426_537
    k, r = copied(review_classifier, **SMALL_REVIEWS)
    batches = review_batches(np.random.default_rng(0))
    same_predictions(k, r, batches[0][0])
    k, r = copied(review_classifier, dropout=0.0, **SMALL_REVIEWS)
    same_training(k, r, lambda lib: dict(loss="binary_crossentropy", optimizer="rmsprop",
                                         metrics=[lib.metrics.BinaryAccuracy()]), batches)


def test_active_learning_as_written_uses_the_alias_GlobalMaxPool1D():
    keras.utils.set_random_seed(0)
    k = review_classifier(keras, pool="GlobalMaxPool1D", **SMALL_REVIEWS)
    r = review_classifier(rb, pool="GlobalMaxPool1D", **SMALL_REVIEWS)
    assert r.count_params() == k.count_params()


def test_active_learning_as_written_compiles_with_false_negatives_and_positives():
    k, r = copied(review_classifier, dropout=0.0, **SMALL_REVIEWS)
    same_training(k, r, lambda lib: dict(loss="binary_crossentropy", optimizer="rmsprop",
                                         metrics=[lib.metrics.BinaryAccuracy(), lib.metrics.FalseNegatives(),
                                                  lib.metrics.FalsePositives()]),
                  review_batches(np.random.default_rng(0)))


# ---------------------------------------------------------------------------------------------------------------
# multivariate_timeseries_forecasting_using_lstm
# ---------------------------------------------------------------------------------------------------------------
def stock_forecaster(lib, win_length=60, num_features=5, units=(128, 128, 64), dropout=0.3):
    L = lib.layers
    model = lib.Sequential()
    model.add(L.Input((win_length, num_features)))
    model.add(L.LSTM(units[0], return_sequences=True))
    model.add(L.LeakyReLU(alpha=0.5))
    model.add(L.LSTM(units[1], return_sequences=True))
    model.add(L.LeakyReLU(alpha=0.5))
    model.add(L.Dropout(dropout))
    model.add(L.LSTM(units[2], return_sequences=False))
    model.add(L.Dropout(dropout))
    model.add(L.Dense(1))
    return model


def generator_batches(features, target, length, batch_size):
    "Keras 2's TimeseriesGenerator(features, target, length, sampling_rate=1, batch_size): windows, next target."
    starts = np.arange(length, len(features))
    for i in range(0, len(starts), batch_size):
        idx = starts[i:i + batch_size]
        yield np.stack([features[j - length:j] for j in idx]), target[idx]


@pytest.mark.filterwarnings("ignore:Argument `alpha` is deprecated")
def test_multivariate_timeseries_forecasting():
    # Input shape (60, 5) given in the first LSTM (`input_shape=`) there; an Input layer here: the same model.
    assert same_counts(stock_forecaster) == 249_665
    small = dict(win_length=10, units=(12, 10, 8))
    k, r = copied(stock_forecaster, **small)
    rng = np.random.default_rng(0)
    scaled = rng.standard_normal((60, 5)).astype("float32")          # StandardScaler output: 5 columns
    batches = list(generator_batches(scaled, scaled[:, 0], 10, 16))
    same_predictions(k, r, batches[0][0])
    k, r = copied(stock_forecaster, dropout=0.0, **small)
    same_training(k, r, lambda lib: dict(loss=lib.losses.MeanSquaredError(), optimizer=lib.optimizers.Adam(),
                                         metrics=[lib.metrics.MeanAbsoluteError()]), batches)


# ---------------------------------------------------------------------------------------------------------------
# lstm_seq2seq
# ---------------------------------------------------------------------------------------------------------------
def seq2seq(lib, num_encoder_tokens=71, num_decoder_tokens=93, latent_dim=256):
    encoder_inputs = lib.Input(shape=(None, num_encoder_tokens))
    encoder = lib.layers.LSTM(latent_dim, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    decoder_inputs = lib.Input(shape=(None, num_decoder_tokens))
    decoder_lstm = lib.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = lib.layers.Dense(num_decoder_tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    return lib.Model([encoder_inputs, decoder_inputs], decoder_outputs)


def sampling_models(lib, model, latent_dim):
    "The example's inference models, from the trained (here: loaded) model's `input` and its layers' `output`."
    encoder_inputs = model.input[0]
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output
    encoder_states = [state_h_enc, state_c_enc]
    encoder_model = lib.Model(encoder_inputs, encoder_states)

    decoder_inputs = model.input[1]
    decoder_state_input_h = lib.Input(shape=(latent_dim,))
    decoder_state_input_c = lib.Input(shape=(latent_dim,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(decoder_inputs, initial_state=decoder_states_inputs)
    decoder_states = [state_h_dec, state_c_dec]
    decoder_dense = model.layers[4]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = lib.Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)
    return encoder_model, decoder_model


def decode_sequence(encoder_model, decoder_model, input_seq, num_decoder_tokens, max_steps):
    "The example's greedy `decode_sequence` (token 0 stands for '\\t'), returning tokens and each step's output."
    states_value = to_np(encoder_model.predict(input_seq, verbose=0))
    target_seq = np.zeros((1, 1, num_decoder_tokens), "float32")
    target_seq[0, 0, 0] = 1.0
    tokens, steps = [], []
    for _ in range(max_steps):
        output_tokens, h, c = to_np(decoder_model.predict([target_seq] + states_value, verbose=0))
        sampled = int(np.argmax(output_tokens[0, -1, :]))
        tokens.append(sampled)
        steps.append((output_tokens, h, c))
        target_seq = np.zeros((1, 1, num_decoder_tokens), "float32")
        target_seq[0, 0, sampled] = 1.0
        states_value = [h, c]
    return tokens, steps


def test_lstm_seq2seq_training_and_sampling_models(tmp_path):
    # No summary on keras.io; at its sizes (71 input and 93 output characters, latent_dim 256): 718,173.
    assert same_counts(seq2seq) == 718_173
    small = dict(num_encoder_tokens=7, num_decoder_tokens=9, latent_dim=16)
    k, r = copied(seq2seq, **small)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(STEPS):
        enc = one_hot(rng.integers(0, 7, (6, 5)), 7)
        dec = one_hot(rng.integers(0, 9, (6, 7)), 9)
        target = np.concatenate([dec[:, 1:], one_hot(np.full((6, 1), 8), 9)], axis=1)
        batches.append(([enc, dec], target))
    same_predictions(k, r, batches[0][0])
    same_training(k, r, lambda lib: dict(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"]),
                  batches)

    # The example saves the trained model and reloads it before building the sampling models: each library
    # here saves and reloads its own (as the example does, in one process), and rnnbook also reads Keras' file.
    k.save(tmp_path / "keras_s2s.keras")
    r.save(tmp_path / "rnnbook_s2s.keras")
    k_loaded = keras.models.load_model(tmp_path / "keras_s2s.keras")
    r_from_keras = rb.models.load_model(tmp_path / "keras_s2s.keras")
    assert [l.name for l in r_from_keras.layers] == [l.name for l in k_loaded.layers]
    same_predictions(k_loaded, r_from_keras, batches[1][0])
    r_loaded = rb.models.load_model(tmp_path / "rnnbook_s2s.keras")
    assert [type(l).__name__ for l in r_loaded.layers] == [type(l).__name__ for l in k_loaded.layers]
    r_loaded.set_weights(k_loaded.get_weights())

    k_enc, k_dec = sampling_models(keras, k_loaded, 16)
    r_enc, r_dec = sampling_models(rb, r_loaded, 16)
    assert r_enc.count_params() == k_enc.count_params()
    assert r_dec.count_params() == k_dec.count_params()
    for i in range(2):
        seq = batches[2][0][0][i:i + 1]
        k_tokens, k_steps = decode_sequence(k_enc, k_dec, seq, 9, max_steps=4)
        r_tokens, r_steps = decode_sequence(r_enc, r_dec, seq, 9, max_steps=4)
        assert r_tokens == k_tokens
        for ours, theirs in zip(r_steps, k_steps):
            assert_close(list(ours), list(theirs))


# ---------------------------------------------------------------------------------------------------------------
# bidirectional_lstm_imdb
# ---------------------------------------------------------------------------------------------------------------
def imdb_classifier(lib, max_features=20000, dim=128, units=64):
    L = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(max_features, dim)(inputs)
    x = L.Bidirectional(L.LSTM(units, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(units))(x)
    outputs = L.Dense(1, activation="sigmoid")(x)
    return lib.Model(inputs, outputs)


def test_bidirectional_lstm_imdb():
    assert same_counts(imdb_classifier, published=2_757_761) == 2_757_761
    small = dict(max_features=100, dim=8, units=6)
    k, r = copied(imdb_classifier, **small)
    rng = np.random.default_rng(0)
    maxlen = 12
    batches = []
    for _ in range(STEPS):
        reviews = [list(rng.integers(1, 100, n)) for n in rng.integers(3, 20, 8)]   # some longer than maxlen
        x = rb.utils.pad_sequences(reviews, maxlen=maxlen)
        np.testing.assert_array_equal(x, keras.utils.pad_sequences(reviews, maxlen=maxlen))
        batches.append((x, rng.integers(0, 2, (8, 1)).astype("float32")))
    same_predictions(k, r, batches[0][0])
    same_training(k, r, lambda lib: dict(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"]),
                  batches)


# ---------------------------------------------------------------------------------------------------------------
# lstm_character_level_text_generation
# ---------------------------------------------------------------------------------------------------------------
def char_model(lib, maxlen=40, chars=56, units=128):
    return lib.Sequential([
        lib.Input(shape=(maxlen, chars)),
        lib.layers.LSTM(units),
        lib.layers.Dense(chars, activation="softmax"),
    ])


def sample(preds, temperature, rng):
    "The example's `sample`, with a seeded generator in place of np.random."
    preds = np.asarray(preds).astype("float64")
    preds = np.log(preds) / temperature
    exp_preds = np.exp(preds)
    preds = exp_preds / np.sum(exp_preds)
    return int(np.argmax(rng.multinomial(1, preds, 1)))


def test_lstm_character_level_text_generation():
    # No summary on keras.io; at its sizes (maxlen 40, 56 characters, LSTM(128)): 101,944.
    assert same_counts(char_model) == 101_944
    k, r = copied(char_model, maxlen=20)
    rng = np.random.default_rng(0)
    batches = [(one_hot(rng.integers(0, 56, (16, 20)), 56), one_hot(rng.integers(0, 56, 16), 56))
               for _ in range(STEPS)]
    same_predictions(k, r, batches[0][0])
    same_training(k, r, lambda lib: dict(loss="categorical_crossentropy",
                                         optimizer=lib.optimizers.RMSprop(learning_rate=0.01)), batches)
    # Generation: the same next characters at each diversity when both draw from the same generator.
    sentence = list(rng.integers(0, 56, 20))
    for diversity in (0.2, 1.0):
        ours, theirs = list(sentence), list(sentence)
        g_ours, g_theirs = np.random.default_rng(5), np.random.default_rng(5)
        for _ in range(3):
            p_ours = r.predict(one_hot(ours[-20:], 56)[None], verbose=0)[0]
            p_theirs = to_np(k.predict(one_hot(theirs[-20:], 56)[None], verbose=0))[0]
            assert_close(p_ours, p_theirs)
            ours.append(sample(p_ours, diversity, g_ours))
            theirs.append(sample(p_theirs, diversity, g_theirs))
        assert ours == theirs


# ---------------------------------------------------------------------------------------------------------------
# timeseries_weather_forecasting
# ---------------------------------------------------------------------------------------------------------------
from fake_grain import Grain as _Grain                      # tests/fakes: Keras' grain path, over lists


def weather_model(lib, sequence_length=120, num_features=7, units=32):
    inputs = lib.layers.Input(shape=(sequence_length, num_features))
    lstm_out = lib.layers.LSTM(units)(inputs)
    outputs = lib.layers.Dense(1)(lstm_out)
    return lib.Model(inputs=inputs, outputs=outputs)


def test_timeseries_weather_forecasting(monkeypatch):
    assert same_counts(weather_model, published=5_153) == 5_153
    # The example's windowing, scaled down: past 60, future 12, step 6 (sequence_length 10), batch_size 16.
    rng = np.random.default_rng(0)
    past, future, step, batch_size = 60, 12, 6, 16
    features = rng.standard_normal((300, 7)).astype("float32")
    features = (features - features[:200].mean(0)) / features[:200].std(0)      # the example's `normalize`
    train_split = 200
    start = past + future
    x_train = features[:train_split]
    y_train = features[start:start + train_split][:, [1]]
    sequence_length = past // step
    ours = list(rb.utils.timeseries_dataset_from_array(x_train, y_train, sequence_length=sequence_length,
                                                       sampling_rate=step, batch_size=batch_size))
    monkeypatch.setattr(keras_ts, "grain", _Grain)
    theirs = list(keras.utils.timeseries_dataset_from_array(x_train, y_train, sequence_length=sequence_length,
                                                            sampling_rate=step, batch_size=batch_size,
                                                            format="grain"))
    assert len(ours) == len(theirs) >= STEPS
    for (xo, yo), (xt, yt) in zip(ours, theirs):
        np.testing.assert_array_equal(xo, to_np(xt))
        np.testing.assert_array_equal(yo, to_np(yt))
    inputs, targets = ours[0]
    assert inputs.shape == (batch_size, sequence_length, 7) and targets.shape == (batch_size, 1)

    k, r = copied(weather_model, sequence_length=sequence_length)
    same_predictions(k, r, inputs)
    same_training(k, r, lambda lib: dict(optimizer=lib.optimizers.Adam(learning_rate=0.001), loss="mse"), ours)


# ---------------------------------------------------------------------------------------------------------------
# video_classification
# ---------------------------------------------------------------------------------------------------------------
def video_model(lib, max_seq_length=20, num_features=2048, classes=5, dropout=0.4):
    frame_features_input = lib.Input((max_seq_length, num_features))
    mask_input = lib.Input((max_seq_length,), dtype="bool")
    x = lib.layers.GRU(16, return_sequences=True)(frame_features_input, mask=mask_input)
    x = lib.layers.GRU(8)(x)
    x = lib.layers.Dropout(dropout)(x)
    x = lib.layers.Dense(8, activation="relu")(x)
    output = lib.layers.Dense(classes, activation="softmax")(x)
    return lib.Model([frame_features_input, mask_input], output)


def video_batches(rng, n=6, frames=6, features=24, classes=5):
    "Frame features zero past each video's length and its mask (1 = a frame, 0 = padding), as `prepare_all_videos`."
    batches = []
    for _ in range(STEPS):
        lengths = rng.integers(1, frames + 1, n)
        lengths[0] = frames
        mask = np.arange(frames)[None] < lengths[:, None]
        x = rng.standard_normal((n, frames, features)).astype("float32") * mask[..., None]
        batches.append(([x, mask], rng.integers(0, classes, n)))
    return batches


def test_video_classification():
    # keras.io: "the sequence model being used that has 99,909 trainable parameters".
    assert same_counts(video_model, published=99_909) == 99_909
    small = dict(max_seq_length=6, num_features=24)
    k, r = copied(video_model, **small)
    batches = video_batches(np.random.default_rng(0))
    same_predictions(k, r, batches[0][0])
    # The mask matters: the same features with every frame marked valid give other outputs, in both libraries.
    (x, mask), _ = batches[0]
    full = np.ones_like(mask)
    assert not np.allclose(r.predict([x, full], verbose=0), r.predict([x, mask], verbose=0), atol=1e-4)
    assert_close(r.predict([x, full], verbose=0), k.predict([x, full], verbose=0))
    k, r = copied(video_model, dropout=0.0, **small)
    same_training(k, r, lambda lib: dict(loss="sparse_categorical_crossentropy", optimizer="adam",
                                         metrics=["accuracy"]), batches)
