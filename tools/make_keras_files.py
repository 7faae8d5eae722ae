#!/usr/bin/env python
"""Make the small trained Keras model files that rnnbook's tests and tutorial read: `tests/data/keras/`.

    python tools/make_keras_files.py [--keras3-only | --keras2-only]

Run it with the project's `.venv` python. Two writers, each in its own interpreter:

- **Keras 3** (the `.venv`'s keras on the CPU torch backend): `k3_*.keras` (config, metadata, weights and
  optimizer state in one zip) and `k3_*.weights.h5` (weights only).
- **Keras 2** (`tf-keras` with `tensorflow-cpu`, pinned below): installed by this script, and only by it, into
  `build/keras2-venv` (git-ignored; never into `.venv`): `k2_*.h5` (legacy full model: `model.save('x.h5')`) and
  `k2_*_weights.h5` (`save_weights('x.h5')`), including Keras 2's `CuDNNLSTM` and `CuDNNGRU`, which build and
  save on a CPU but cannot run there.

Beside each model, `<name>.npz` holds the inputs and the predictions the writing library computed (for stateful
models, the inputs, predictions and states of two consecutive calls), plus what wrote it. Every array is plain
numeric or text, so `np.load(path, allow_pickle=False)` reads it. `README.md` is rewritten from the `.npz` files
after each run. Seeds are fixed and both libraries run single-threaded and deterministic, so a rerun records the
same numbers (`.keras` zips still differ byte for byte: Keras stamps the save date into `metadata.json`).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'tests' / 'data' / 'keras'
KERAS2_VENV = ROOT / 'build' / 'keras2-venv'
KERAS2_PINS = {'tensorflow-cpu': '2.21.0', 'tf-keras': '2.21.0'}
SEED = 1234
SCRIPT = 'python tools/make_keras_files.py'


# -------------------------------------------------------------------------------------------------
# Synthetic data: NumPy only, the same for both writers.
# -------------------------------------------------------------------------------------------------

def token_rows(rng, n, T, vocab, min_len=1):
    "n post-padded rows of tokens in 1..vocab-1 with random lengths in min_len..T: (x (n, T) int32, lengths)."
    import numpy as np
    lengths = rng.integers(min_len, T + 1, size=n)
    x = rng.integers(1, vocab, size=(n, T)).astype('int32')
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return x, lengths


def classifier_data(rng, n, T=8, vocab=12):
    "Label 1 when token 1 occurs before the padding: an LSTM must remember it."
    x, _ = token_rows(rng, n, T, vocab, min_len=2)
    y = (x == 1).any(axis=1).astype('float32')[:, None]
    return x, y


def classifier_probe():
    "Rows that test the masking rule: post- and pre-padded, full, a zero inside, and fully masked."
    import numpy as np
    return np.array([[3, 1, 5, 0, 0, 0, 0, 0],       # post-padded, holds a 1
                     [0, 0, 0, 0, 7, 2, 9, 4],       # pre-padded, no 1
                     [0, 0, 0, 1, 2, 3, 4, 5],       # pre-padded, holds a 1
                     [2, 4, 6, 8, 10, 11, 9, 7],     # full length, no 1
                     [5, 0, 1, 0, 6, 0, 0, 0],       # zeros inside: masked steps carry the state
                     [0, 0, 0, 0, 0, 0, 0, 0]],      # fully masked
                    dtype='int32')


def tagger_data(rng, n, T=7, vocab=10):
    "Tag 0: the last token; 1: the next token is larger; 2: it is not. The backward direction sees the next."
    import numpy as np
    x, _ = token_rows(rng, n, T, vocab, min_len=2)
    nxt = np.concatenate([x[:, 1:], np.zeros((n, 1), 'int32')], axis=1)
    y = np.where(nxt == 0, 0, np.where(nxt > x, 1, 2)).astype('int32')
    return x, y


def stateful_windows(batch=2, T=3, F=2, windows=12):
    "Two long sine waves cut into consecutive windows: row b of window k continues row b of window k-1."
    import numpy as np
    t = np.arange(windows * T + 1, dtype='float32') * 0.4
    phase = np.arange(batch, dtype='float32')[:, None] * 1.3
    wave = np.stack([np.sin(t + phase), np.cos(0.5 * t + phase)], axis=-1)     # (B, windows*T+1, F)
    x = wave[:, :-1].reshape(batch, windows, T, F).transpose(1, 0, 2, 3)       # (windows, B, T, F)
    y = wave[:, 1:, :1].reshape(batch, windows, T, 1).transpose(1, 0, 2, 3)    # (windows, B, T, 1)
    return x.astype('float32'), y.astype('float32')


def two_input_data(rng, n, T=6, vocab=8):
    "score: token 1 occurs and feature 0 > 0; kind: argmax of (feature 1, count of 2s, count of 3s)."
    import numpy as np
    tokens, _ = token_rows(rng, n, T, vocab, min_len=2)
    features = rng.normal(size=(n, 2)).astype('float32')
    score = ((tokens == 1).any(axis=1) & (features[:, 0] > 0)).astype('float32')[:, None]
    votes = np.stack([features[:, 1] * 2, (tokens == 2).sum(1), (tokens == 3).sum(1)], axis=1)
    kind = votes.argmax(axis=1).astype('int32')
    return {'tokens': tokens, 'features': features}, {'score': score, 'kind': kind}


# -------------------------------------------------------------------------------------------------
# Models: one builder per kind, written against the API Keras 2 (tf_keras) and Keras 3 share.
# -------------------------------------------------------------------------------------------------

def lstm_classifier(keras):
    "Embedding(mask_zero=True) -> LSTM -> Dense(sigmoid), Sequential."
    L = keras.layers
    model = keras.Sequential([keras.Input((8,), dtype='int32', name='tokens'),
                              L.Embedding(12, 4, mask_zero=True, name='embedding'),
                              L.LSTM(5, name='lstm'),
                              L.Dense(1, activation='sigmoid', name='dense')], name='lstm_classifier')
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss='binary_crossentropy')
    return model


def bigru_tagger(keras):
    "Embedding(mask_zero=True) -> Bidirectional(GRU(return_sequences)) -> TimeDistributed(Dense(softmax))."
    L = keras.layers
    model = keras.Sequential([keras.Input((7,), dtype='int32', name='tokens'),
                              L.Embedding(10, 4, mask_zero=True, name='embedding'),
                              L.Bidirectional(L.GRU(3, return_sequences=True, name='gru'),
                                              name='bidirectional'),
                              L.TimeDistributed(L.Dense(3, activation='softmax', name='dense'),
                                                name='time_distributed')], name='bigru_tagger')
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss='sparse_categorical_crossentropy')
    return model


def stateful_lstm(keras, batch_shape=(2, 3, 2)):
    "Stateful LSTM(return_sequences) -> Dense, batch 2, not compiled; batch_shape=None: its trained twin."
    L = keras.layers
    stateful = batch_shape is not None
    x = keras.Input(batch_shape=batch_shape, name='x') if stateful else keras.Input((None, 2), name='x')
    model = keras.Sequential([x,
                              L.LSTM(4, stateful=stateful, return_sequences=True, name='lstm'),
                              L.Dense(1, name='dense')], name='stateful_lstm')
    if not stateful:
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss='mse')
    return model


def two_input(keras):
    "Functional: features set the LSTM's initial state [h0, c0]; tokens run through it; two outputs."
    L = keras.layers
    tokens = keras.Input((6,), dtype='int32', name='tokens')
    features = keras.Input((2,), name='features')
    h0 = L.Dense(4, activation='tanh', name='h0')(features)
    c0 = L.Dense(4, name='c0')(features)
    embedding = L.Embedding(8, 3, mask_zero=True, name='embedding')
    embedded = embedding(tokens)
    # Keras 3.15 drops the Embedding's mask when an RNN is called with initial_state in a functional model;
    # passed explicitly, it is kept (a NotEqual node and a `mask` keyword in the config). Keras 2 needs nothing.
    mask = dict(mask=embedding.compute_mask(tokens)) if keras.__version__.startswith('3.') else {}
    h = L.LSTM(4, name='lstm')(embedded, initial_state=[h0, c0], **mask)
    score = L.Dense(1, activation='sigmoid', name='score')(h)
    kind = L.Dense(3, activation='softmax', name='kind')(h)
    model = keras.Model([tokens, features], [score, kind], name='two_input')
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss={'score': 'binary_crossentropy', 'kind': 'sparse_categorical_crossentropy'})
    return model


# -------------------------------------------------------------------------------------------------
# Training and recording, shared by both writers.
# -------------------------------------------------------------------------------------------------

def to_numpy(variable):
    "A Keras 3 variable (torch backend) or a TensorFlow variable as a NumPy array."
    import numpy as np
    value = variable.value
    value = value() if callable(value) else value           # tf.Variable.value is a method
    return np.array(value.detach().numpy() if hasattr(value, 'detach') else value.numpy())


def layer_states(model):
    "The states of every stateful layer, {'<layer>_state<i>': array}."
    found = {}
    for layer in model.layers:
        if getattr(layer, 'stateful', False):
            for i, v in enumerate(layer.states):
                found[f'{layer.name}_state{i}'] = to_numpy(v)
    return found


def reset_all_states(model):
    "Keras 3's Sequential has no reset_states: reset each stateful layer."
    for layer in model.layers:
        if getattr(layer, 'stateful', False):
            layer.reset_states()


def train_and_record(keras, kind):
    "Build, train a few epochs, and return (model, {npz arrays}, description)."
    import numpy as np
    rng = np.random.default_rng(SEED)
    if kind == 'lstm_classifier':
        model = lstm_classifier(keras)
        x, y = classifier_data(rng, 256)
        model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
        probe = classifier_probe()
        return model, {'x': probe, 'y': model.predict(probe, verbose=0)}, (
            'Sequential: Embedding(12, 4, mask_zero=True) -> LSTM(5) -> Dense(1, sigmoid); trained 6 epochs '
            '(Adam) to say whether token 1 occurs. x: post- and pre-padded rows, a zero inside a row, and a '
            'fully masked row.')
    if kind == 'bigru_tagger':
        model = bigru_tagger(keras)
        x, y = tagger_data(rng, 256)
        model.fit(x, y, batch_size=32, epochs=15, shuffle=False, verbose=0)
        probe, _ = tagger_data(rng, 5)
        return model, {'x': probe, 'y': model.predict(probe, verbose=0)}, (
            'Sequential: Embedding(10, 4, mask_zero=True) -> Bidirectional(GRU(3, return_sequences=True), '
            'merge_mode="concat") -> TimeDistributed(Dense(3, softmax)); trained 15 epochs to tag each '
            'token 0 (last), 1 (the next token is larger) or 2 (it is not), on post-padded rows. y holds '
            'the outputs at masked steps too.')
    if kind == 'stateful_lstm':
        return record_stateful(keras)
    if kind == 'two_input':
        model = two_input(keras)
        x, y = two_input_data(rng, 256)
        model.fit(x, y, batch_size=32, epochs=8, shuffle=False, verbose=0)
        probe, _ = two_input_data(rng, 5)
        score, kind_ = model.predict(probe, verbose=0)
        arrays = {'x_tokens': probe['tokens'], 'x_features': probe['features'],
                  'y_score': score, 'y_kind': kind_}
        return model, arrays, (
            'Functional, two inputs and two outputs, no merge layer: features (2,) -> Dense(4, tanh) = h0 '
            'and Dense(4) = c0, the initial state of LSTM(4) over tokens (6,) int32 -> Embedding(8, 3, '
            'mask_zero=True); the LSTM output -> score Dense(1, sigmoid) and kind Dense(3, softmax); trained '
            '8 epochs. Inputs in the order [tokens, features], outputs [score, kind]. Keras 3 only: the '
            'mask is passed to the LSTM explicitly (mask=embedding.compute_mask(tokens)), as Keras 3.15.1 '
            'otherwise drops it when initial_state is given; Keras 2 propagates it by itself.')
    raise ValueError(f'unknown model kind {kind!r}')


def record_stateful(keras):
    "Train the stateless twin on whole waves, copy its weights, record two consecutive stateful calls."
    xs, ys = stateful_windows()
    twin = stateful_lstm(keras, batch_shape=None)
    whole_x = xs.transpose(1, 0, 2, 3).reshape(2, -1, 2)    # (B, windows*T, F)
    whole_y = ys.transpose(1, 0, 2, 3).reshape(2, -1, 1)    # (B, windows*T, 1)
    twin.fit(whole_x, whole_y, batch_size=2, epochs=80, shuffle=False, verbose=0)
    model = stateful_lstm(keras)
    model.set_weights(twin.get_weights())
    reset_all_states(model)
    arrays = {}
    for call, x in enumerate(xs[:2], start=1):
        arrays[f'x_call{call}'] = x
        arrays[f'y_call{call}'] = model.predict_on_batch(x)
        for name, value in layer_states(model).items():
            arrays[f'{name}_after_call{call}'] = value
    reset_all_states(model)   # the saved file holds zero states, as after reset_states()
    return model, arrays, (
        'Sequential: Input(batch_shape=(2, 3, 2)) -> LSTM(4, stateful=True, return_sequences=True) -> '
        'Dense(1), predicting the next step of two sine waves. Trained as its stateless twin, the same '
        'layers on whole 36-step waves for 80 epochs, whose weights were copied in (both writers do this: '
        'Keras 3.15.1 on the torch CPU backend cannot fit a stateful LSTM with the default '
        'use_cudnn="auto", an in-place state update breaks autograd, cf. keras-team/keras#20875, #23462); '
        'saved without compiling. Recorded after reset_states(): two consecutive calls (x_call1, then '
        'x_call2, which continues it), their predictions, and the LSTM states after each call '
        '(lstm_state0 = h, lstm_state1 = c). Saved after a final reset, so a file '
        'holding states holds zeros.')


def library_versions():
    "numpy's and h5py's versions, which every writer uses."
    import h5py
    import numpy as np
    return f'numpy {np.__version__}, h5py {h5py.__version__}, Python {sys.version.split()[0]}'


def save_npz(name, arrays, description, writer, files):
    "Write <name>.npz: arrays plus text fields describing who wrote what."
    import numpy as np
    meta = {'description': description, 'written_by': writer, 'files': json.dumps(files),
            'seed': str(SEED)}
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload.update({f'meta_{k}': np.array(v) for k, v in meta.items()})
    np.savez_compressed(OUT / f'{name}.npz', **payload)
    return [f'{name}.npz'] + files


def clear(prefix):
    "Remove what an earlier run of this writer left, so a rerun leaves no stale file."
    for path in OUT.glob(f'{prefix}*'):
        path.unlink()


def report(written):
    for name in written:
        path = OUT / name
        print(f'  wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)')


# -------------------------------------------------------------------------------------------------
# Keras 3 writer (runs in the .venv with KERAS_BACKEND=torch).
# -------------------------------------------------------------------------------------------------

def keras3_worker():
    import keras
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    writer = (f'keras {keras.__version__} (backend {keras.backend.backend()}, torch {torch.__version__}, '
              f'{library_versions()})')
    print(f'Keras 3 writer: {writer}')
    clear('k3_')
    for kind in ['lstm_classifier', 'bigru_tagger', 'stateful_lstm', 'two_input']:
        keras.utils.set_random_seed(SEED)
        model, arrays, description = train_and_record(keras, kind)
        name = f'k3_{kind}'
        model.save(OUT / f'{name}.keras')
        model.save_weights(OUT / f'{name}.weights.h5')
        files = [f'{name}.keras', f'{name}.weights.h5']
        report(save_npz(name, arrays, description, writer, files))


# -------------------------------------------------------------------------------------------------
# Keras 2 writer (runs in build/keras2-venv with TF_USE_LEGACY_KERAS=1).
# -------------------------------------------------------------------------------------------------

def cudnn_model(keras, kind):
    "Keras 2's cuDNN layers (tf.compat.v1.keras.layers): build and save on a CPU, but no CPU kernel runs them."
    import tensorflow as tf
    V1 = tf.compat.v1.keras.layers
    L = keras.layers
    if kind == 'cudnn_lstm':
        rnn = L.Bidirectional(V1.CuDNNLSTM(4, return_sequences=True, name='cudnn_lstm'),
                              name='bidirectional')
    else:
        rnn = V1.CuDNNGRU(4, name='cudnn_gru')
    return keras.Sequential([keras.Input((5, 3), name='x'), rnn, L.Dense(2, name='dense')], name=kind)


def builtin_twin(keras, kind):
    "The same model with LSTM / GRU(reset_after=True): what Keras 2 converts cuDNN weights into on loading."
    L = keras.layers
    if kind == 'cudnn_lstm':
        rnn = L.Bidirectional(L.LSTM(4, return_sequences=True, name='lstm'), name='bidirectional')
    else:
        rnn = L.GRU(4, reset_after=True, recurrent_activation='sigmoid', name='gru')
    return keras.Sequential([keras.Input((5, 3), name='x'), rnn, L.Dense(2, name='dense')], name=kind)


def record_cudnn(keras, kind, writer):
    "Random weights (both cuDNN bias halves non-zero), saved; predictions from tf-keras' own conversion."
    import numpy as np
    rng = np.random.default_rng(SEED)
    model = cudnn_model(keras, kind)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype('float32') for w in model.weights])
    name = f'k2_{kind}'
    model.save(OUT / f'{name}.h5')
    model.save_weights(OUT / f'{name}_weights.h5')
    twin = builtin_twin(keras, kind)
    twin.load_weights(OUT / f'{name}_weights.h5')   # hdf5_format._convert_rnn_weights converts here
    x = rng.standard_normal((4, 5, 3)).astype('float32')
    layer = 'Bidirectional(CuDNNLSTM(4, return_sequences=True))' if kind == 'cudnn_lstm' else 'CuDNNGRU(4)'
    twin_layer = ('Bidirectional(LSTM(4, return_sequences=True))' if kind == 'cudnn_lstm'
                  else 'GRU(4, reset_after=True)')
    description = (
        f'Sequential: Input((5, 3)) -> {layer} (tf.compat.v1.keras.layers) -> Dense(2). Not trained: weights '
        'drawn N(0, 0.5^2), both halves of the cuDNN biases non-zero. The cuDNN layer has no CPU kernel, so y '
        f'was computed by tf-keras itself: {twin_layer} with the same names, load_weights() of the '
        '_weights.h5 file (Keras 2 converts cuDNN weights while loading: hdf5_format._convert_rnn_weights), '
        'then predict. y_note says this.')
    arrays = {'x': x, 'y': twin.predict(x, verbose=0),
              'y_note': np.array(f'predicted by tf-keras {twin_layer} after its cuDNN weight conversion')}
    report(save_npz(name, arrays, description, writer, [f'{name}.h5', f'{name}_weights.h5']))


def keras2_worker():
    import warnings
    import tensorflow as tf
    import tf_keras as keras
    tf.get_logger().setLevel('ERROR')
    warnings.filterwarnings('ignore', message='You are saving your model as an HDF5 file')
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    writer = f'tf-keras {keras.__version__} (tensorflow-cpu {tf.__version__}, {library_versions()})'
    print(f'Keras 2 writer: {writer}')
    clear('k2_')
    for kind in ['lstm_classifier', 'bigru_tagger', 'stateful_lstm', 'two_input']:
        keras.utils.set_random_seed(SEED)
        model, arrays, description = train_and_record(keras, kind)
        name = f'k2_{kind}'
        model.save(OUT / f'{name}.h5')
        model.save_weights(OUT / f'{name}_weights.h5')
        report(save_npz(name, arrays, description, writer, [f'{name}.h5', f'{name}_weights.h5']))
    for kind in ['cudnn_lstm', 'cudnn_gru']:
        keras.utils.set_random_seed(SEED)
        record_cudnn(keras, kind, writer)


# -------------------------------------------------------------------------------------------------
# Driver: one interpreter per writer, then the README.
# -------------------------------------------------------------------------------------------------

def quiet_env(**extra):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONHASHSEED='0', TF_CPP_MIN_LOG_LEVEL='3',
               TF_ENABLE_ONEDNN_OPTS='0', OMP_NUM_THREADS='1')
    env.update(extra)
    return env


def keras2_python():
    "build/keras2-venv's python with the pinned tf-keras and tensorflow-cpu; created or repaired as needed."
    python = KERAS2_VENV / 'bin' / 'python'
    if not python.exists():
        print(f'creating {KERAS2_VENV.relative_to(ROOT)}')
        subprocess.run([sys.executable, '-m', 'venv', '--clear', str(KERAS2_VENV)], check=True)
    pins = [f'{name}=={version}' for name, version in KERAS2_PINS.items()]
    check = ('import importlib.metadata as m, sys; '
             f'sys.exit(any(m.version(n) != v for n, v in {KERAS2_PINS!r}.items()))')
    if subprocess.run([str(python), '-c', check], capture_output=True).returncode != 0:
        print(f'installing {" ".join(pins)} into {KERAS2_VENV.relative_to(ROOT)}')
        subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', *pins], check=True)
    return python


def run_worker(python, worker, env):
    subprocess.run([str(python), str(Path(__file__).resolve()), '--worker', worker], check=True, env=env,
                   cwd=ROOT)


def write_readme():
    "README.md from the .npz files present (the .npz is the one home of what each file is)."
    import numpy as np
    lines = ['# Keras model files for rnnbook\'s tests and tutorial', '',
             f'Made by `{SCRIPT}` (`--keras3-only` / `--keras2-only` remake one half); do not edit by hand. '
             'Each `<name>.npz` holds the inputs (`x…`) and the predictions (`y…`) the writing library computed, '
             'and `meta_*` text fields (description, writer, files, seed); load it with '
             '`np.load(path, allow_pickle=False)`.', '',
             '- Keras 3 files (`k3_*`): `.keras` (`model.save`: config, compile config and optimizer state, '
             'but for the uncompiled stateful model) and `.weights.h5` (`model.save_weights`), written by the '
             'project `.venv`\'s Keras on the CPU torch backend (`KERAS_BACKEND=torch`).',
             '- Keras 2 files (`k2_*`): legacy HDF5 full model `.h5` (`model.save(\'x.h5\')`, with the '
             'optimizer, but for the stateful and cuDNN models) and weights-only `_weights.h5` '
             '(`model.save_weights(\'x.h5\')`), written by tf-keras in '
             f'`{KERAS2_VENV.relative_to(ROOT)}`, which only this script installs '
             f'({", ".join(f"{n}=={v}" for n, v in KERAS2_PINS.items())}).', '',
             'What these files show about the formats (checked when they were made):', '',
             '- Neither Keras saves a stateful layer\'s states: the `k*_stateful_lstm` files hold weights only; '
             'the states after each recorded call are in the `.npz`.',
             '- Keras 2 stores `CuDNNLSTM`/`CuDNNGRU` weights in cuDNN\'s layout, not `LSTM`\'s: per gate, the '
             'input kernel `k` (in, U) is `W.T` read in cuDNN order (`W = k.reshape(U, in).T`), the recurrent '
             'kernel is transposed, and the bias holds the input and recurrent biases (8U for LSTM, summed; '
             '6U for GRU, `reshape(2, 3U)`); gates i, f, c, o and z, r, h as in Keras.',
             '- Keras 3 names `vars/<i>` datasets by number: sort them as numbers (`0, 1, 2, ..., 10`), not as '
             'text. Its `config.json` carries `shared_object_id` keys (a Python `id()`, different at each '
             'save) and, for a functional model over `Embedding(mask_zero=True)`, a `NotEqual` operation node '
             'whose output is the next layer\'s `mask` keyword.', '']
    for npz in sorted(OUT.glob('k*.npz')):
        with np.load(npz, allow_pickle=False) as data:
            meta = {k[len('meta_'):]: str(data[k]) for k in data.files if k.startswith('meta_')}
            arrays = [f'`{k}` {data[k].shape} {data[k].dtype}' for k in data.files
                      if not k.startswith('meta_') and data[k].dtype.kind != 'U']
        files = json.loads(meta['files']) + [npz.name]
        sizes = ', '.join(f'`{f}` ({(OUT / f).stat().st_size:,} B)' for f in files)
        lines += [f'## {npz.stem}', '', meta['description'], '', f'- files: {sizes}',
                  f'- written by: {meta["written_by"]}; seed {meta["seed"]}',
                  f'- arrays: {", ".join(arrays)}', '']
    (OUT / 'README.md').write_text('\n'.join(lines))
    print(f'  wrote {(OUT / "README.md").relative_to(ROOT)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--keras3-only', action='store_true', help='remake the Keras 3 files only')
    which.add_argument('--keras2-only', action='store_true', help='remake the Keras 2 files only')
    parser.add_argument('--worker', choices=['keras3', 'keras2'], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == 'keras3':
        return keras3_worker()
    if args.worker == 'keras2':
        return keras2_worker()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.keras2_only:
        run_worker(sys.executable, 'keras3', quiet_env(KERAS_BACKEND='torch'))
    if not args.keras3_only:
        run_worker(keras2_python(), 'keras2', quiet_env(TF_USE_LEGACY_KERAS='1'))
    write_readme()


if __name__ == '__main__':
    main()
