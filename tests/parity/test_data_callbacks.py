"""Data helpers, `fit` on generators, and the monitoring callbacks, against Keras 3 (torch backend).

- `pad_sequences` equals `keras.utils.pad_sequences` across padding, truncating, maxlen, dtype, value, features.
- `timeseries_dataset_from_array` gives Keras' batches: Keras' NumPy windowing path (`format="grain"`) runs with a
  stand-in for the four `grain` calls it makes (grain is not installed; TensorFlow neither), unshuffled; its argument
  errors are Keras' too. Shuffled: every window once a pass, a new order each pass, reproducible by `seed`.
- `fit` / `evaluate` / `predict` on generators and iterables (`steps_per_epoch`, `validation_data`, `class_weight`)
  equal the same batches given as arrays, and Keras' `fit` on the same generator (losses and weights).
- `EarlyStopping`, `ReduceLROnPlateau`, `ModelCheckpoint` decide as Keras' on the same sequence of logs.
- In a real `fit`: checkpoints written by the model's own `save`/`save_weights` and read back (by Keras for
  `.keras`), `restore_best_weights`, the learning rate logged and put back with everything else when `fit` fails;
  a failing generator or a stateful model's wrong batch from a generator leaves the model as it was.
"""

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.utils import timeseries_dataset_utils as keras_ts  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import callbacks as C  # noqa: E402
from rnnbook.data import pad_sequences, timeseries_dataset_from_array  # noqa: E402

torch.set_num_threads(1)
L = rb.layers


def np_(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


# ---------------------------------------------------------------- pad_sequences

SEQS = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9, 10]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 4, 8])
def test_pad_sequences_as_keras(padding, truncating, maxlen):
    ours = pad_sequences(SEQS, maxlen=maxlen, padding=padding, truncating=truncating)
    theirs = keras.utils.pad_sequences(SEQS, maxlen=maxlen, padding=padding, truncating=truncating)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kwargs", [dict(dtype="float32", value=-1.5), dict(dtype="int64", value=7),
                                    dict(dtype="float64", value=np.nan, maxlen=3), dict(dtype="int32", value=0.7)])
def test_pad_sequences_dtypes_values_and_features(kwargs):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((t, 2, 3)) for t in (3, 1, 5)]        # steps of shape (2, 3)
    for s in (SEQS, seqs):
        ours, theirs = pad_sequences(s, **kwargs), keras.utils.pad_sequences(s, **kwargs)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_errors():
    for bad in (dict(padding="mid"), dict(truncating="x")):
        with pytest.raises(ValueError, match=f"`{next(iter(bad))}`: expected one of"):
            pad_sequences(SEQS, **bad)
    with pytest.raises(ValueError, match="Found non-iterable: 3"):
        pad_sequences([[1], 3])
    with pytest.raises(ValueError, match="is different from expected shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="x")


# ---------------------------------------------------------------- timeseries_dataset_from_array

from fake_grain import Grain as _Grain                      # tests/fakes: Keras' grain path, over lists


def keras_windows(monkeypatch, *args, **kwargs):
    monkeypatch.setattr(keras_ts, "grain", _Grain)
    return list(keras.utils.timeseries_dataset_from_array(*args, format="grain", **kwargs))


def as_list(batches):
    return [tuple(np_(a) for a in b) if isinstance(b, tuple) else (np_(b),) for b in batches]


TS_CASES = [
    dict(sequence_length=5),
    dict(sequence_length=4, sequence_stride=3, batch_size=7),
    dict(sequence_length=3, sampling_rate=2, batch_size=4),
    dict(sequence_length=6, sequence_stride=2, sampling_rate=3, start_index=5, end_index=80, batch_size=16),
    dict(sequence_length=2, start_index=90, batch_size=3),
    dict(sequence_length=10, batch_size=None, end_index=20),
]


@pytest.mark.parametrize("case", TS_CASES)
@pytest.mark.parametrize("with_targets", [True, False])
def test_timeseries_batches_as_keras(monkeypatch, case, with_targets):
    data = np.arange(100 * 3, dtype="float32").reshape(100, 3)
    targets = np.arange(100) * 10 if with_targets else None
    ours = as_list(timeseries_dataset_from_array(data, targets, **case))
    theirs = as_list(keras_windows(monkeypatch, data, targets, **case))
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert u.shape == v.shape
            np.testing.assert_array_equal(u, v)


def test_timeseries_fewer_targets_and_a_dataset_too_short(monkeypatch):
    data = np.arange(30.)
    for targets in (np.arange(12), np.arange(40)):
        ours = as_list(timeseries_dataset_from_array(data, targets, 4, batch_size=5))
        theirs = as_list(keras_windows(monkeypatch, data, targets, 4, batch_size=5))
        assert [len(b[0]) for b in ours] == [len(b[0]) for b in theirs]
        for a, b in zip(ours, theirs): np.testing.assert_array_equal(a[1], b[1])
    assert len(list(timeseries_dataset_from_array(np.arange(5.), None, 8))) == 0


@pytest.mark.parametrize("bad", [dict(sampling_rate=0), dict(sequence_stride=0), dict(sequence_stride=200),
                                 dict(start_index=-1), dict(start_index=100), dict(start_index=10, end_index=5),
                                 dict(end_index=150)])
def test_timeseries_errors_as_keras(monkeypatch, bad):
    data = np.arange(100.)
    with pytest.raises(ValueError) as ours:
        timeseries_dataset_from_array(data, None, 3, **bad)
    with pytest.raises(ValueError) as theirs:
        keras_windows(monkeypatch, data, None, 3, **bad)
    name = str(theirs.value).split("`")[1]
    assert f"`{name}`" in str(ours.value), (ours.value, theirs.value)


def test_timeseries_shuffle_every_window_once_a_pass_and_by_seed():
    data, targets = np.arange(50.), np.arange(50)
    ds = timeseries_dataset_from_array(data, targets, 5, shuffle=True, seed=3, batch_size=8)
    passes = [np.concatenate([y for _, y in ds]) for _ in range(3)]
    for p in passes: np.testing.assert_array_equal(np.sort(p), np.arange(46))
    assert not np.array_equal(passes[0], passes[1])
    again = timeseries_dataset_from_array(data, targets, 5, shuffle=True, seed=3, batch_size=8)
    np.testing.assert_array_equal(np.concatenate([y for _, y in again]), passes[0])
    keras_first = np.arange(46)                                   # Keras shuffles the starts the same way first
    np.random.RandomState(3).shuffle(keras_first)
    np.testing.assert_array_equal(passes[0], keras_first)
    for x, y in timeseries_dataset_from_array(data, targets, 5, shuffle=True, seed=1, batch_size=8):
        np.testing.assert_array_equal(x[:, 0], y)                  # windows stay with their targets


# ---------------------------------------------------------------- fit / evaluate / predict on generators

def rb_model(seed=0, lr=0.1):
    rb.set_seed(seed)
    m = rb.Sequential([rb.Input(shape=(5, 2)), L.LSTM(4), L.Dense(1)])
    m.compile(rb.optimizers.SGD(lr), "mse")
    return m


def keras_model(weights, lr=0.1):
    m = keras.Sequential([keras.Input(shape=(5, 2)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    m.set_weights(weights)
    m.compile(keras.optimizers.SGD(lr), "mse")
    return m


def batches(n=4, size=6, seed=1, weights=False):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y = rng.standard_normal((size, 5, 2)).astype("float32"), rng.standard_normal((size, 1)).astype("float32")
        out.append((x, y, rng.uniform(0.5, 2, size).astype("float32")) if weights else (x, y))
    return out


def endless(items):
    while True: yield from items


def test_fit_on_a_generator_as_keras():
    data = batches(weights=True)
    ours = rb_model()
    theirs = keras_model(ours.get_weights())
    h_ours = ours.fit(endless(data), steps_per_epoch=3, epochs=3, verbose=0).history["loss"]
    h_theirs = theirs.fit(endless(data), steps_per_epoch=3, epochs=3, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()): np.testing.assert_allclose(a, np_(b), atol=1e-5)
    x = data[0][0]
    np.testing.assert_allclose(ours.evaluate(iter(data), verbose=0), theirs.evaluate((b for b in data), verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.predict(iter([x[:2], x[2:]]), verbose=0), np_(theirs.predict(x, verbose=0)),
                               atol=1e-5)


def test_fit_on_a_timeseries_dataset_as_keras():
    rng = np.random.default_rng(2)
    series = rng.standard_normal((60, 2)).astype("float32")
    ds = timeseries_dataset_from_array(series, series[5:, :1], sequence_length=5, batch_size=16)
    ours = rb_model(lr=0.05)
    theirs = keras_model(ours.get_weights(), lr=0.05)
    h_ours = ours.fit(ds, epochs=2, verbose=0).history["loss"]           # re-iterated each epoch
    h_theirs = theirs.fit(endless(list(ds)), steps_per_epoch=len(ds), epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-5)


def test_a_generator_gives_what_the_same_arrays_give():
    data = batches(weights=True)
    x, y, w = (np.concatenate(a) for a in zip(*data))
    a, b = rb_model(), rb_model()
    ha = a.fit(x, y, sample_weight=w, batch_size=6, shuffle=False, epochs=2, verbose=0,
               validation_data=(x[:6], y[:6])).history
    hb = b.fit(endless(data), steps_per_epoch=4, epochs=2, verbose=0, validation_data=data[0][:2]).history
    for k in ("loss", "val_loss"): np.testing.assert_allclose(ha[k], hb[k], rtol=1e-6)
    for u, v in zip(a.get_weights(), b.get_weights()): np.testing.assert_allclose(u, v, atol=1e-6)
    cw = {0: 2., 1: .5}
    labels = [(xb, (yb > 0).astype("float32")) for xb, yb in batches(2)]
    xl, yl = (np.concatenate(t) for t in zip(*labels))
    c, d = rb_model(), rb_model()
    hc = c.fit(xl, yl, batch_size=6, shuffle=False, class_weight=cw, verbose=0).history["loss"]
    hd = d.fit(iter(labels), class_weight=cw, verbose=0).history["loss"]
    np.testing.assert_allclose(hc, hd, rtol=1e-6)


def test_a_used_up_generator_stops_fit_with_keras_warning():
    m = rb_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit((b for b in batches(2)), epochs=3, verbose=0).history
    assert len(h["loss"]) == 1 and int(m.optimizer.iterations.numpy()) == 2
    with pytest.raises(ValueError, match="yields none"):
        m.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.fit(iter(batches(1)), np.ones((6, 1)), verbose=0)


def test_a_failing_generator_leaves_the_model_as_it_was():
    m = rb_model()
    m.fit(iter(batches(1)), verbose=0)                              # built, optimizer slots made

    def bad():
        yield from batches(3)
        yield np.ones((6, 5, 2), "float32"), np.array(["a"] * 6)   # targets that are not numbers
    before = [w.copy() for w in m.get_weights()], int(m.optimizer.iterations.numpy())
    with pytest.raises(ValueError, match="expected real numbers"):
        m.fit(bad(), verbose=0)
    for a, b in zip(before[0], m.get_weights()): np.testing.assert_array_equal(a, b)
    assert int(m.optimizer.iterations.numpy()) == before[1]


def test_a_stateful_model_checks_each_generator_batch():
    rb.set_seed(0)
    m = rb.Sequential([rb.Input(batch_shape=(6, 5, 2)), L.LSTM(3, stateful=True), L.Dense(1)])
    m.compile("sgd", "mse")
    before = [w.copy() for w in m.get_weights()]
    data = batches(2) + [(np.ones((4, 5, 2), "float32"), np.ones((4, 1), "float32"))]
    with pytest.raises(ValueError, match="stateful layer .* needs batches of 6 samples"):
        m.fit(iter(data), verbose=0)
    for a, b in zip(before, m.get_weights()): np.testing.assert_array_equal(a, b)
    assert int(m.optimizer.iterations.numpy()) == 0


# ---------------------------------------------------------------- callbacks on the same logs as Keras

class FakeOptimizer:
    def __init__(self): self.learning_rate = 1.0


class FakeModel:
    "What the callbacks touch: a stop flag, an optimizer, weights (the epoch number), save methods."
    def __init__(self):
        self.stop_training, self.optimizer, self.epoch, self.saved, self.restored = False, FakeOptimizer(), 0, [], None
    def get_weights(self): return [np.array(self.epoch)]
    def set_weights(self, w): self.restored = int(w[0])
    def save(self, filepath, overwrite=True): self.saved.append(("model", filepath))
    def save_weights(self, filepath, overwrite=True): self.saved.append(("weights", filepath))


def sequences():
    rng = np.random.default_rng(5)
    walk = 1 + np.cumsum(rng.normal(-.02, .05, 40))
    return [walk, np.r_[1., .9, .9, .9, .85, .86, .84, .9, .9, .9, .9, .8, .8, .8, .8], 1 - walk]


def drive(cb, values, key="val_loss", batches_per_epoch=0):
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    record = []
    for epoch, v in enumerate(values):
        model.epoch = epoch
        cb.on_epoch_begin(epoch)
        for b in range(batches_per_epoch): cb.on_train_batch_end(b, {"loss": float(v)})
        logs = {key: float(v), "loss": float(v)}
        cb.on_epoch_end(epoch, logs)
        record.append((model.stop_training, logs.get("learning_rate"), float(model.optimizer.learning_rate)))
        if model.stop_training: break
    cb.on_train_end()
    return record, model


ES_CASES = [dict(), dict(patience=3), dict(patience=2, min_delta=.03), dict(patience=3, baseline=.9),
            dict(patience=2, start_from_epoch=4, restore_best_weights=True), dict(patience=4, restore_best_weights=True),
            dict(patience=1, mode="max", restore_best_weights=True)]


@pytest.mark.parametrize("kwargs", ES_CASES)
@pytest.mark.parametrize("seq", range(3))
def test_early_stopping_as_keras(kwargs, seq):
    values = sequences()[seq]
    ours, om = drive(C.EarlyStopping(**kwargs), values)
    k = keras.callbacks.EarlyStopping(**kwargs)
    theirs, tm = drive(k, values)
    assert ours == theirs
    assert (om.restored, om.stop_training) == (tm.restored, tm.stop_training)


RL_CASES = [dict(factor=.5, patience=2), dict(factor=.5, patience=1, cooldown=2), dict(factor=.1, patience=2, min_lr=.02),
            dict(factor=.5, patience=2, min_delta=.05), dict(factor=.8, patience=1, mode="max")]


@pytest.mark.parametrize("kwargs", RL_CASES)
@pytest.mark.parametrize("seq", range(3))
def test_reduce_lr_on_plateau_as_keras(kwargs, seq):
    values = sequences()[seq]
    ours, _ = drive(C.ReduceLROnPlateau(**kwargs), values)
    theirs, _ = drive(keras.callbacks.ReduceLROnPlateau(**kwargs), values)
    np.testing.assert_allclose(np.array(ours)[:, 1:].astype(float), np.array(theirs)[:, 1:].astype(float), rtol=1e-6)


CK_CASES = [dict(filepath="m{epoch:02d}.keras"),
            dict(filepath="m.keras", save_best_only=True),
            dict(filepath="w{epoch}-{val_loss:.3f}.weights.h5", save_best_only=True, save_weights_only=True),
            dict(filepath="m{epoch}.keras", save_best_only=True, mode="max"),
            dict(filepath="m{epoch}.keras", save_best_only=True, initial_value_threshold=.9),
            dict(filepath="b{batch}e{epoch}.keras", save_freq=3)]


@pytest.mark.parametrize("kwargs", CK_CASES)
@pytest.mark.parametrize("seq", range(3))
def test_model_checkpoint_as_keras(kwargs, seq):
    values = sequences()[seq][:12]
    _, om = drive(C.ModelCheckpoint(**kwargs), values, batches_per_epoch=2)
    _, tm = drive(keras.callbacks.ModelCheckpoint(**kwargs), values, batches_per_epoch=2)
    assert om.saved == tm.saved and om.saved


@pytest.mark.parametrize("kwargs", [dict(filepath="m.h5x"), dict(filepath="w.h5", save_weights_only=True),
                                    dict(filepath="m.keras", save_freq="batch")])
def test_model_checkpoint_refuses_what_keras_refuses(kwargs):
    with pytest.raises(ValueError):
        keras.callbacks.ModelCheckpoint(**kwargs)
    with pytest.raises(ValueError):
        C.ModelCheckpoint(**kwargs)


# ---------------------------------------------------------------- callbacks in a real fit

def test_model_checkpoint_files_read_back(tmp_path):
    data = batches(3)
    x, y = (np.concatenate(a) for a in zip(*data))
    m = rb_model()
    cbs = [C.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss", save_best_only=True),
           C.ModelCheckpoint(str(tmp_path / "w" / "e{epoch}.weights.h5"), save_weights_only=True),
           C.ModelCheckpoint(str(tmp_path / "e{epoch}.npz"))]
    kept = C.LambdaCallback(on_epoch_end=lambda e, logs: snaps.append([w.copy() for w in m.get_weights()]))
    snaps = []
    h = m.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0, callbacks=cbs + [kept]).history["loss"]
    assert sorted(os.listdir(tmp_path / "w")) == ["e1.weights.h5", "e2.weights.h5", "e3.weights.h5"]
    best = int(np.argmin(h))
    k = keras.saving.load_model(str(tmp_path / "best.keras"))
    for a, b in zip(snaps[best], k.get_weights()): np.testing.assert_allclose(a, np_(b), atol=1e-7)
    again = rb_model(seed=9)
    again.load_weights(str(tmp_path / "w" / "e2.weights.h5"))
    for a, b in zip(snaps[1], again.get_weights()): np.testing.assert_array_equal(a, b)
    whole = rb.models.load_model(str(tmp_path / "e1.npz"))
    for a, b in zip(snaps[0], whole.get_weights()): np.testing.assert_array_equal(a, b)


def test_restore_best_weights_in_fit():
    data = batches(2)
    x, y = (np.concatenate(a) for a in zip(*data))
    m = rb_model(lr=3.0)                                          # a rate high enough to make the loss go up
    snaps = []
    kept = C.LambdaCallback(on_epoch_end=lambda e, logs: snaps.append([w.copy() for w in m.get_weights()]))
    es = C.EarlyStopping("loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, batch_size=12, epochs=12, shuffle=False, verbose=0, callbacks=[kept, es]).history["loss"]
    best = int(np.argmin(h))
    assert es.best_epoch == best
    for a, b in zip(snaps[best], m.get_weights()): np.testing.assert_array_equal(a, b)


def test_reduce_lr_logged_and_put_back_when_fit_fails():
    data = batches(2)
    x, y = (np.concatenate(a) for a in zip(*data))
    m = rb_model()
    rl = C.ReduceLROnPlateau("loss", factor=.5, patience=1, min_delta=10.)     # every epoch after the first: reduce
    h = m.fit(x, y, batch_size=6, epochs=3, verbose=0, callbacks=[rl]).history
    np.testing.assert_allclose(h["learning_rate"], [.1, .1, .05])
    np.testing.assert_allclose(float(m.optimizer.learning_rate.numpy()), .025)
    weights = [w.copy() for w in m.get_weights()]

    def fail(epoch, logs):
        if epoch == 2: raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        m.fit(x, y, batch_size=6, epochs=4, verbose=0, callbacks=[C.ReduceLROnPlateau("loss", factor=.5, patience=1,
                                                                               min_delta=10.),
                                                                   C.LambdaCallback(on_epoch_end=fail)])
    np.testing.assert_allclose(float(m.optimizer.learning_rate.numpy()), .025)    # the rate put back too
    for a, b in zip(weights, m.get_weights()): np.testing.assert_array_equal(a, b)
