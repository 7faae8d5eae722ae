"""Weight files under failure: a save killed midway (SIGKILL, in a child process) leaves the old file intact;
truncated, corrupted or mismatched files are refused with a clear error and change nothing; loading never runs
code from the file (no pickle)."""
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnnbook as rb
from rnnbook.layers import Embedding, LSTM, Dense, BatchNormalization

ROOT = Path(__file__).resolve().parents[2]


def small_model(seed=0, stateful=False):
    rb.set_seed(seed)
    model = rb.Sequential([Embedding(30, 4), LSTM(5, return_sequences=True, stateful=stateful), BatchNormalization(),
                           Dense(2)])
    model(np.random.default_rng(seed).integers(0, 30, (2, 6)))
    return model


def weights_of(model): return [w.copy() for w in model.get_weights()]


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b): np.testing.assert_array_equal(u, v)


# ---- a save killed midway ---------------------------------------------------------------------------------------

CHILD = r'''
import sys, numpy as np, rnnbook as rb
from rnnbook.layers import Embedding, Dense
path, rows = sys.argv[1], int(sys.argv[2])
rb.set_seed(1)
model = rb.Sequential([Embedding(rows, 1000), Dense(2)])      # rows x 1000 float32: a large file
model(np.zeros((1, 1), 'int64'))
print('ready', flush=True)
model.save_weights(path)
print('saved', flush=True)
'''


def _kill_during_save(tmp_path, path, rows):
    "Start a child that saves a large model over `path`; SIGKILL it once its temporary file is being written."
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    child = subprocess.Popen([sys.executable, str(script), str(path), str(rows)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert child.stdout.readline().strip() == 'ready'
        deadline, seen = time.monotonic() + 60, None
        while time.monotonic() < deadline and child.poll() is None:
            tmp = [p for p in tmp_path.iterdir() if p.name.startswith('.' + path.name) and p.name.endswith('.tmp')]
            try: size = tmp[0].stat().st_size if tmp else 0
            except FileNotFoundError: size = 0                # renamed into place meanwhile
            if size > 4 * 2**20:                              # a few MiB of the new file out: midway
                seen = tmp[0]
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        if child.poll() is None: child.kill(); child.wait()
        child.stdout.close()
    return seen, child.returncode


def test_a_save_killed_midway_leaves_the_old_file_intact(tmp_path):
    model = small_model()
    path = tmp_path / 'model.weights.npz'
    model.save_weights(path)
    old = path.read_bytes()
    for rows in (25_000, 100_000):              # ~100 MB, then ~400 MB if the first save outran the watcher
        seen, code = _kill_during_save(tmp_path, path, rows)
        if seen is not None: break
        assert path.read_bytes() == old or code == 0
        path.write_bytes(old)
    assert seen is not None, "the child finished its save before it could be killed"
    assert code == -signal.SIGKILL
    assert path.read_bytes() == old                          # the old file, byte for byte
    other = small_model(seed=5)
    other.load_weights(path)                                 # ... and it loads
    assert_same(other.get_weights(), model.get_weights())
    leftover = [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    assert leftover == [seen]                                # only the half-written temporary file remains
    print(f"\nkilled the child with {seen.stat().st_size / 2**20:.1f} MiB of its temporary file written")
    with pytest.raises(ValueError, match='truncated or corrupted|not an .npz'):
        other.load_weights(seen)                             # ... and it is refused, not half-loaded
    seen.unlink()


# ---- truncated, corrupted, mismatched files ------------------------------------------------------------------------

def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _meta(n, version=1, **extra):
    return np.array(json.dumps({'format': 'rnnbook.weights', 'version': version, 'name': 'm', 'class_name': 'Sequential',
                                'weights': [{'path': f'w{i}', 'name': 'kernel', 'shape': [1], 'dtype': 'float32'}
                                            for i in range(n)], **extra}))


def bad_files(good: bytes):
    "`name -> (file bytes, what the error says)`: files that must be refused."
    files = {f'truncated_{n}': (good[:n], 'empty, truncated or corrupted|truncated or corrupted|may be truncated')
             for n in (0, 1, 30, len(good) // 3, len(good) // 2, len(good) - 22, len(good) - 1)}
    for frac in (0.2, 0.5, 0.8, 0.97):
        pos = int(len(good) * frac)
        flipped = bytearray(good); flipped[pos:pos + 16] = bytes(b ^ 0xFF for b in flipped[pos:pos + 16])
        files[f'corrupted_at_{frac}'] = (bytes(flipped), 'truncated or corrupted|not an rnnbook weights file|'
                                                          'not JSON|Cannot load|Nothing was changed')
    files.update({
        'text': (b'hello, I am not a weights file\n', 'not an .npz file'),
        'npy': (_npy_bytes(np.ones(3)), 'one .npy array'),
        'plain_npz': (_npz_bytes(x=np.ones(3)), 'no `__meta__` record'),
        'meta_not_json': (_npz_bytes(__meta__=np.array('{oops')), 'not JSON'),
        'meta_a_list': (_npz_bytes(__meta__=np.array('[1, 2]')), 'not an rnnbook weights file'),
        'newer_version': (_npz_bytes(__meta__=_meta(0, version=99)), 'newer rnnbook'),
        'no_weights_list': (_npz_bytes(__meta__=np.array(json.dumps({'format': 'rnnbook.weights', 'version': 1}))),
                            'no valid `weights` list'),
        'arrays_missing': (_npz_bytes(__meta__=_meta(10)), 'are missing'),
        'string_weights': (_npz_bytes(__meta__=_meta(10), **{f'w{i:04d}': np.array(['a']) for i in range(10)}),
                           'not numbers'),
        'wrong_count': (_npz_bytes(__meta__=_meta(2), w0000=np.ones(1, 'float32'), w0001=np.ones(1, 'float32')),
                        'holds 2 weights'),
    })
    return files


def _npy_bytes(a):
    buf = io.BytesIO(); np.save(buf, a); return buf.getvalue()


def test_bad_files_are_refused_with_a_clear_error_and_change_nothing(tmp_path):
    model = small_model(stateful=True)
    model(np.ones((2, 6), 'int64'))                          # states that must survive too
    path = tmp_path / 'good.npz'
    small_model(seed=3).save_weights(path)
    good = path.read_bytes()
    before, states = weights_of(model), [v.numpy() for v in model.layers[1].states]
    for name, (data, text) in bad_files(good).items():
        bad = tmp_path / f'{name}.npz'
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=text):
            model.load_weights(bad)
        assert_same(model.get_weights(), before)
        assert_same([v.numpy() for v in model.layers[1].states], states)
        with pytest.raises(ValueError):
            rb.models.load_model(bad)
    model.load_weights(path)                                 # the good file still loads
    assert_same(model.get_weights(), small_model(seed=3).get_weights())


def test_mismatched_models_are_refused_position_by_position(tmp_path):
    path = tmp_path / 'a.npz'
    small_model().save_weights(path)
    for other in (rb.Sequential([Embedding(30, 4), LSTM(6, return_sequences=True), BatchNormalization(), Dense(2)]),
                  rb.Sequential([Embedding(30, 4), LSTM(5), Dense(2)]),
                  rb.Sequential([Embedding(31, 4), LSTM(5, return_sequences=True), BatchNormalization(), Dense(2)])):
        other(np.zeros((1, 6), 'int64'))
        before = weights_of(other)
        with pytest.raises(ValueError, match=r'Nothing was changed|holds \d+ weights, but'):
            other.load_weights(path)
        assert_same(other.get_weights(), before)


def test_missing_paths_and_bad_path_arguments():
    model = small_model()
    with pytest.raises(FileNotFoundError):
        model.load_weights('/nonexistent/dir/w.npz')
    with pytest.raises(FileNotFoundError):
        model.save_weights('/nonexistent/dir/w.npz')
    for bad in (3, None, ['w.npz']):
        with pytest.raises(ValueError, match=re.escape(f"received {bad!r}")):
            model.save_weights(bad)
        with pytest.raises(ValueError, match="argument `filepath`"):
            model.load_weights(bad)


# ---- loading never runs code --------------------------------------------------------------------------------

class _Payload:
    "Unpickling this object runs code: it writes a marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (Path.write_text, (Path(self.marker), 'the file ran code'))


def _pickled_object_array(marker):
    a = np.empty(1, object); a[0] = _Payload(marker)
    return a


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / 'pwned.txt'
    model = small_model()
    before = weights_of(model)
    pkl = tmp_path / 'weights.pkl'
    pkl.write_bytes(pickle.dumps({'weights': _Payload(marker)}))
    pickle.loads(pickle.dumps(_Payload(tmp_path / 'check.txt')))          # the payload does run when unpickled
    assert (tmp_path / 'check.txt').exists()
    cases = {
        'a pickle file': pkl,
        'an npz with an object array': _write(tmp_path / 'obj.npz', _npz_bytes(__meta__=_meta(6), w0000=_pickled_object_array(marker),
                                                                   **{f'w{i:04d}': np.ones(1) for i in range(1, 6)})),
        'an object array as the meta record': _write(tmp_path / 'meta.npz', _npz_bytes(__meta__=_pickled_object_array(marker))),
        'an .npy of objects': _write(tmp_path / 'obj.npy', _npy_bytes(_pickled_object_array(marker))),
        'a model file with an object config': _write(tmp_path / 'model.npz', _npz_bytes(__meta__=_meta(0),
                                                                        __config__=_pickled_object_array(marker))),
    }
    for what, path in cases.items():
        with pytest.raises(ValueError, match='never unpickles|not an .npz file|one .npy array') as e:
            model.load_weights(path)
        with pytest.raises(ValueError):
            rb.models.load_model(path)
        assert not marker.exists(), f"loading {what} ran code"
        assert_same(model.get_weights(), before)
    assert 'allow_pickle=False' in str(e.value) or 'npy' in str(e.value)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_saved_files_hold_no_pickles(tmp_path):
    "What `save_weights` and `save` write is plain arrays: every member loads with allow_pickle=False."
    model = small_model()
    model.save_weights(tmp_path / 'w.npz')
    model.save(tmp_path / 'm.npz')
    for name in ('w.npz', 'm.npz'):
        with zipfile.ZipFile(tmp_path / name) as z:
            assert all(n.endswith('.npy') for n in z.namelist())
        with np.load(tmp_path / name, allow_pickle=False) as z:
            for k in z.files: assert z[k].dtype.kind != 'O'
    again = rb.models.load_model(tmp_path / 'm.npz')
    assert_same(again.get_weights(), model.get_weights())
