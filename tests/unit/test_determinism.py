"""Determinism: the same seed gives bit-identical initial weights, dropout masks and training results -- twice in
one process, and in two separate processes (with different hash seeds)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnbook as rb
from rnnbook.layers import (SimpleRNN, GRU, LSTM, RNN, LSTMCell, GRUCell, Bidirectional, TimeDistributed, ConvLSTM2D,
                            Dense, Dropout, CuDNNGRU)

ROOT = Path(__file__).resolve().parents[2]

LAYERS = {
    'simple_rnn': (lambda: SimpleRNN(4, dropout=0.3, recurrent_dropout=0.3), (3, 5, 2)),
    'gru': (lambda: GRU(4, dropout=0.3, recurrent_dropout=0.2), (3, 5, 2)),
    'gru_impl1': (lambda: GRU(4, dropout=0.3, implementation=1, reset_after=False), (3, 5, 2)),
    'lstm': (lambda: LSTM(4, dropout=0.3, recurrent_dropout=0.3, return_sequences=True), (3, 5, 2)),
    'rnn_stacked': (lambda: RNN([LSTMCell(3, dropout=0.5), GRUCell(2, recurrent_dropout=0.5)]), (3, 5, 2)),
    'bidirectional': (lambda: Bidirectional(LSTM(3, dropout=0.4, return_sequences=True)), (3, 5, 2)),
    'time_distributed': (lambda: TimeDistributed(Dense(3)), (3, 5, 2)),
    'conv_lstm2d': (lambda: ConvLSTM2D(2, 3, padding='same', dropout=0.3, recurrent_dropout=0.3), (2, 3, 4, 4, 1)),
    'dense': (lambda: Dense(5), (3, 2)),
    'dropout': (lambda: Dropout(0.5), (3, 5, 2)),
    'cudnn_gru': (lambda: CuDNNGRU(3), (3, 5, 2)),
}


def run(name, seed):
    "Weights and two training-mode outputs (dropout masks drawn) of layer `name` after `rb.set_seed(seed)`."
    make, shape = LAYERS[name]
    rb.set_seed(seed)
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype('float32')
    first = np.asarray(layer(x, training=True))
    second = np.asarray(layer(x, training=True))
    return layer.get_weights(), first, second, np.asarray(layer(x))


@pytest.mark.parametrize('name', list(LAYERS))
def test_same_seed_same_weights_and_dropout_masks(name):
    w1, a1, b1, c1 = run(name, 7)
    w2, a2, b2, c2 = run(name, 7)
    assert len(w1) == len(w2)
    for u, v in zip(w1 + [a1, b1, c1], w2 + [a2, b2, c2]): np.testing.assert_array_equal(u, v)
    w3, a3, *_ = run(name, 8)
    if w1:                                          # another seed: other weights
        assert any(not np.array_equal(u, v) for u, v in zip(w1, w3))
    elif name == 'dropout':
        assert not np.array_equal(a1, a3)


def test_layer_seed_fixes_the_dropout_masks_whatever_the_global_stream():
    "`seed=` on a layer: its dropout masks repeat, whatever `rb.set_seed` was (the weights come from the stream)."
    x = np.random.default_rng(1).standard_normal((4, 6, 3)).astype('float32')
    outs = []
    for global_seed in (1, 2):
        rb.set_seed(global_seed)
        layer = LSTM(5, dropout=0.5, recurrent_dropout=0.5, seed=123, return_sequences=True)
        layer.build(x.shape)
        layer.set_weights([np.full(w.shape, 0.1, w.dtype) for w in layer.get_weights()])
        outs.append([np.asarray(layer(x, training=True)) for _ in range(2)])
    for a, b in zip(*outs): np.testing.assert_array_equal(a, b)
    assert not np.array_equal(outs[0][0], outs[0][1])     # a new mask per call, the same sequence of masks
    drop = [Dropout(0.5, seed=9)(x, training=True) for _ in range(2)]
    np.testing.assert_array_equal(*drop)


def test_unseeded_layers_draw_from_the_global_stream():
    rb.set_seed(3)
    a, b = Dense(4), Dense(4)
    a.build((1, 3)); b.build((1, 3))
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])     # one stream: different draws
    rb.set_seed(3)                                                          # the same steps again: the same draws
    c, d = Dense(4), Dense(4)
    c.build((1, 3)); d.build((1, 3))
    np.testing.assert_array_equal(a.get_weights()[0], c.get_weights()[0])
    np.testing.assert_array_equal(b.get_weights()[0], d.get_weights()[0])


TRAIN_SCRIPT = r'''
import json, hashlib, sys
import numpy as np
import rnnbook as rb
from rnnbook.layers import Embedding, LSTM, GRU, Bidirectional, Dropout, Dense, BatchNormalization

def train(seed):
    rb.set_seed(seed)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, (24, 7)); ids[:, 5:] = 0
    y = rng.integers(0, 3, 24)
    model = rb.Sequential([Embedding(20, 6, mask_zero=True), Bidirectional(LSTM(5, dropout=0.2, recurrent_dropout=0.2,
                           return_sequences=True)), GRU(4, dropout=0.3), BatchNormalization(), Dropout(0.3), Dense(3)])
    model.compile(rb.optimizers.Adam(0.01), rb.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    history = model.fit(ids, y, batch_size=8, epochs=3, shuffle=True, validation_split=0.25, verbose=0)
    digest = hashlib.sha256(b''.join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    return {'history': history.history, 'weights': digest,
            'predict': hashlib.sha256(np.ascontiguousarray(model.predict(ids, verbose=0)).tobytes()).hexdigest()}

if __name__ == '__main__':
    print(json.dumps(train(int(sys.argv[1]))))
'''


def _train_in_process(seed):
    namespace = {}
    exec(compile(TRAIN_SCRIPT, 'train_script', 'exec'), namespace)
    return json.loads(json.dumps(namespace['train'](seed)))     # the same JSON round trip as the subprocess


def _train_in_subprocess(seed, hash_seed, tmp_path):
    script = tmp_path / 'train_script.py'
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, 'PYTHONHASHSEED': str(hash_seed), 'PYTHONPATH': str(ROOT)}
    r = subprocess.run([sys.executable, str(script), str(seed)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_two_fit_runs_with_the_same_seed_are_bit_identical():
    a, b = _train_in_process(11), _train_in_process(11)
    assert a == b
    c = _train_in_process(12)
    assert c['weights'] != a['weights']


def test_training_is_bit_identical_across_processes(tmp_path):
    here = _train_in_process(11)
    one = _train_in_subprocess(11, 1, tmp_path)
    two = _train_in_subprocess(11, 2, tmp_path)
    assert one == two == here
