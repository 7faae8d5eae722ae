"""Weight files that fight back, and saving that respects the file it replaces.

Loading: zip bombs (unlisted members, listed ones forged to look consistent, a huge `__config__`) are refused
before their data is decompressed -- peak memory measured in a child process; a `.npy` header declaring 10**12
elements, a FIFO, a device, a deeply nested `__meta__`, a path with a NUL are refused with a ValueError naming the
file or argument; no refusal changes the model or leaves a file open.
Saving: the mode and owner of the file are kept, symbolic links are written through (chains, relative, dangling),
hard links keep pointing at one file."""
import gc
import io
import json
import os
import signal
import stat
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnnbook as rb
from test_weight_files import assert_same, bad_files, small_model, weights_of

LIB = Path(rb.__file__).resolve().parents[1]          # the rnnbook this test imports: the child imports the same


# ---- building hostile files -----------------------------------------------------------------------------------

def npy_header(shape, descr='<f4'):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {'descr': descr, 'fortran_order': False, 'shape': shape})
    return buf.getvalue()


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def zeros_member(z, name, nbytes, header):
    "A deflated member `name`: `header`, then `nbytes` zero bytes (about a thousandth of that on disk)."
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with z.open(info, 'w', force_zip64=True) as f:
        f.write(header)
        for _ in range(nbytes // 2**20): f.write(bytes(2**20))


def copy_members(src, z, skip=()):
    with zipfile.ZipFile(src) as s:
        for name in s.namelist():
            if name not in skip: z.writestr(name, s.read(name))


def meta_record(entries):
    return np.array(json.dumps({'format': 'rnnbook.weights', 'version': 1, 'name': 'm', 'class_name': 'Sequential',
                                'weights': entries}))


GiB = 2**30


def hostile_files(tmp_path):
    "`name -> path`: three ~1 MiB files each holding 1 GiB of deflated zeros, and the good files they are made from."
    model = small_model()
    good_w, good_m = tmp_path / 'good.weights.npz', tmp_path / 'good.model.npz'
    model.save_weights(good_w)
    model.save(good_m)
    unlisted = tmp_path / 'unlisted.npz'                 # a good model file plus a member `__meta__` does not list
    with zipfile.ZipFile(unlisted, 'w') as z:
        copy_members(good_m, z)
        zeros_member(z, 'bomb.npy', GiB, npy_header((GiB // 4,)))
    forged = tmp_path / 'forged.npz'                     # w0000 declares 1 GiB; record, header and zip agree
    entries = [{'path': 'embedding/embeddings', 'name': 'embeddings', 'shape': [GiB // 16, 4], 'dtype': 'float32'}]
    entries += [{'path': w.path, 'name': w.name, 'shape': list(w.shape), 'dtype': w.dtype.name}
                for w in model.weights[1:]]
    with zipfile.ZipFile(forged, 'w') as z:
        z.writestr('__meta__.npy', npy(meta_record(entries)))
        copy_members(good_m, z, skip=('__meta__.npy', 'w0000.npy'))
        zeros_member(z, 'w0000.npy', GiB, npy_header((GiB // 16, 4)))
    config = tmp_path / 'config.npz'                     # a model file whose `__config__` declares 1 GiB of text
    with zipfile.ZipFile(config, 'w') as z:
        copy_members(good_m, z, skip=('__config__.npy',))
        zeros_member(z, '__config__.npy', GiB, npy_header((), descr=f'<U{GiB // 4}'))
    for p in (unlisted, forged, config): assert p.stat().st_size < 2 * 2**20
    return {'unlisted': unlisted, 'forged': forged, 'config': config, 'good_weights': good_w, 'good_model': good_m}


CHILD = r'''
import json, resource, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import rnnbook as rb
from test_weight_files import small_model
files = json.loads(sys.argv[2])
model = small_model(seed=7)
model.load_weights(files['good_weights'])               # warm up: every import and code path a load needs
rb.models.load_model(files['good_model'])
before_w = [w.copy() for w in model.get_weights()]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for name in ('unlisted', 'forged', 'config'):
    for how in ('load_weights', 'load_model'):
        try:
            model.load_weights(files[name]) if how == 'load_weights' else rb.models.load_model(files[name])
            out[f'{name}/{how}'] = 'loaded'
        except Exception as e:
            out[f'{name}/{how}'] = f'{type(e).__name__}: {e}'
        assert all(np.array_equal(a, b) for a, b in zip(before_w, model.get_weights())), (name, how)
out['baseline_mib'] = rss / 1024
out['growth_mib'] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
print(json.dumps(out))
'''


def test_hostile_files_are_refused_in_bounded_memory(tmp_path):
    files = hostile_files(tmp_path)
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    env = {**os.environ, 'PYTHONPATH': str(LIB), 'KERAS_BACKEND': 'torch'}
    r = subprocess.run([sys.executable, str(script), str(Path(__file__).parent),
                        json.dumps({k: str(v) for k, v in files.items()})],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\npeak memory grew by {out['growth_mib']:.1f} MiB (from {out['baseline_mib']:.0f} MiB) while refusing "
          "3 files of 1 GiB of zeros each")
    for name, (weights_says, model_says) in {
            'unlisted': ("received ['bomb.npy'] besides", "received ['bomb.npy'] besides"),
            'forged': ("'embedding/embeddings' with shape (67108864, 4)", "with shape (67108864, 4)"),
            'config': ("its `__config__` record declares 1073741952 bytes; expected at most 16777216",
                       "array '__config__' of")}.items():
        for how, says in (('load_weights', weights_says), ('load_model', model_says)):
            got = out[f'{name}/{how}']
            assert got.startswith('ValueError') and str(files[name]) in got and says in got, (name, how, got)
    assert out['growth_mib'] < 100, out


# ---- headers, FIFOs, devices, deep records, NUL ----------------------------------------------------------------

def refused(model, path, text, models_too=True):
    "Loading `path` raises a ValueError containing `text` (and naming the file) and leaves `model` as it was."
    before = weights_of(model)
    with pytest.raises(ValueError) as e:
        model.load_weights(path)
    assert text in str(e.value) and os.fsdecode(path) in str(e.value), str(e.value)
    assert_same(model.get_weights(), before)
    if models_too:
        with pytest.raises(ValueError):
            rb.models.load_model(path)
    return str(e.value)


def test_a_header_declaring_10_12_elements_is_refused_naming_the_file(tmp_path):
    model = small_model()
    entries = [{'path': 'embedding/embeddings', 'name': 'embeddings', 'shape': [10**12], 'dtype': 'float32'}]
    path = tmp_path / 'huge.npz'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('__meta__.npy', npy(meta_record(entries)))
        z.writestr('w0000.npy', npy_header((10**12,)) + bytes(64))
    refused(model, path, "array 'w0000' declares shape (1000000000000,) of float32 (4000000000000 bytes), but the "
                         "file holds 64 bytes")


def test_headers_must_agree_with_the_record(tmp_path):
    "A header that says otherwise than `__meta__` is refused, even when the array would fit the layer."
    model = small_model()
    path = tmp_path / 'w.npz'
    model.save_weights(path)
    with zipfile.ZipFile(path) as z: members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(str(np.load(io.BytesIO(members['__meta__.npy']))))
    meta['weights'][0]['shape'] = [4, 30]
    forged = tmp_path / 'forged.npz'
    with zipfile.ZipFile(forged, 'w') as z:
        for n, data in members.items(): z.writestr(n, npy(np.array(json.dumps(meta))) if n == '__meta__.npy' else data)
    refused(model, forged, "is float32 of shape (4, 30) in `__meta__`, but its array header says float32 of shape "
                           "(30, 4)", models_too=False)
    bz2 = tmp_path / 'bz2.npz'                           # bzip2 decompresses without bound: only stored/deflated
    with zipfile.ZipFile(bz2, 'w', compression=zipfile.ZIP_BZIP2) as z:
        for n, data in members.items(): z.writestr(n, data)
    refused(model, bz2, "is compressed with method 12; expected stored or deflated")


class Hang(Exception):
    pass


def _hang(signum, frame): raise Hang("loading blocked for 10 s")


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    model = small_model()
    fifo = tmp_path / 'pipe.npz'
    os.mkfifo(fifo)
    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(10)                                      # opening a FIFO with no writer blocks forever
    try:
        refused(model, fifo, 'expected a regular file, received a FIFO (named pipe)')
        refused(model, '/dev/zero', 'expected a regular file, received a character device')
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    with pytest.raises(IsADirectoryError):
        model.load_weights(tmp_path)


def test_a_deeply_nested_meta_is_a_value_error_naming_the_file(tmp_path):
    model = small_model()
    for i, text in enumerate(('[' * 100_000, '{"a": ' * 100_000, '[' * 100_000 + ']' * 100_000)):
        path = tmp_path / f'deep{i}.npz'
        np.savez(path, __meta__=np.array(text))
        refused(model, path, 'its `__meta__` record nests deeper than Python can decode')


def test_a_deeply_nested_model_config_is_a_value_error_naming_the_file(tmp_path):
    model = small_model()
    model.save(tmp_path / 'model.npz')
    with zipfile.ZipFile(tmp_path / 'model.npz') as z: members = {n: z.read(n) for n in z.namelist()}
    members['__config__.npy'] = npy(np.array('[' * 100_000))
    path = tmp_path / 'deep_config.npz'
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in members.items(): z.writestr(name, data)
    with pytest.raises(ValueError) as e: rb.models.load_model(path)
    assert str(path) in str(e.value) and 'its `__config__` record nests deeper' in str(e.value)


def test_a_path_with_a_nul_is_refused_naming_the_argument(tmp_path):
    model = small_model()
    before = weights_of(model)
    for bad in (str(tmp_path / 'a\0b.npz'), os.fsencode(tmp_path / 'a\0b.npz')):
        for call in (model.save_weights, model.load_weights, model.save, rb.models.load_model):
            with pytest.raises(ValueError) as e:
                call(bad)
            assert "Invalid value for argument `filepath`: expected a path without NUL characters, received " \
                   f"{os.fsdecode(bad)!r}" in str(e.value), str(e.value)
    assert_same(model.get_weights(), before)
    assert list(tmp_path.iterdir()) == []


def test_unlisted_and_duplicate_members_are_refused(tmp_path):
    model = small_model()
    path = tmp_path / 'w.npz'
    model.save_weights(path)
    extra = tmp_path / 'extra.npz'
    with zipfile.ZipFile(extra, 'w') as z:
        copy_members(path, z)
        z.writestr('notes.txt', b'hello')
    refused(model, extra, "received ['notes.txt'] besides or again")
    twice = tmp_path / 'twice.npz'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                   # zipfile warns of the duplicate name
        with zipfile.ZipFile(twice, 'w') as z:
            copy_members(path, z)
            z.writestr('w0001.npy', npy(np.zeros((30, 4), 'float32')))
    refused(model, twice, "received ['w0001.npy'] besides or again")


# ---- no failed load leaves a file open ---------------------------------------------------------------------------

def open_files(under):
    "The files under the folder `under` this process has open (from /proc/self/fd, Linux)."
    found = []
    for fd in os.listdir('/proc/self/fd'):
        try: target = os.readlink(f'/proc/self/fd/{fd}')
        except FileNotFoundError: continue               # the descriptor listdir itself used, closed by now
        if target.startswith(str(under)): found.append(target)
    return found


def test_failed_loads_leave_no_file_open(tmp_path):
    "The errors are kept alive (as a notebook's `sys.last_exc` would keep them): still no file may stay open."
    model = small_model()
    path = tmp_path / 'good.npz'
    small_model(seed=3).save_weights(path)
    errors = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ResourceWarning)
        for name, (data, _) in bad_files(path.read_bytes()).items():
            bad = tmp_path / f'{name}.npz'
            bad.write_bytes(data)
            for load in (model.load_weights, rb.models.load_model):
                try: load(bad)
                except ValueError as e: errors.append(e)
        assert open_files(tmp_path) == []
        errors.clear()
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


# ---- saving keeps the file's mode, owner and links -------------------------------------------------------------

def test_saving_keeps_the_mode_and_owner_of_the_file(tmp_path):
    model = small_model()
    path = tmp_path / 'w.npz'
    model.save_weights(path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask            # a new file: what `open` would give
    for mode in (0o600, 0o640, 0o444):
        os.chmod(path, mode)
        model.save_weights(path)
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)
    if os.geteuid() == 0:                                                # only root may give a file away
        os.chown(path, 4321, 4322)
        model.save_weights(path)
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)
    other = small_model(seed=5)
    other.load_weights(path)
    assert_same(other.get_weights(), model.get_weights())


def test_saving_writes_through_symbolic_links(tmp_path):
    old, new = small_model(seed=1), small_model(seed=2)
    (tmp_path / 'data').mkdir()
    real = tmp_path / 'data' / 'real.npz'
    old.save_weights(real)
    os.symlink('data/real.npz', tmp_path / 'link1')                     # relative, and a chain: link2 -> link1 -> real
    os.symlink('link1', tmp_path / 'link2')
    new.save_weights(tmp_path / 'link2')
    assert (tmp_path / 'link1').is_symlink() and (tmp_path / 'link2').is_symlink()
    assert os.readlink(tmp_path / 'link2') == 'link1'
    other = small_model(seed=5)
    other.load_weights(real)
    assert_same(other.get_weights(), new.get_weights())
    os.symlink('data/later.npz', tmp_path / 'dangling')                 # a dangling link: its target is created
    new.save(tmp_path / 'dangling')
    assert (tmp_path / 'dangling').is_symlink() and (tmp_path / 'data' / 'later.npz').is_file()
    assert_same(rb.models.load_model(tmp_path / 'dangling').get_weights(), new.get_weights())
    assert sorted(p.name for p in (tmp_path / 'data').iterdir()) == ['later.npz', 'real.npz']   # no temporary left


def test_saving_keeps_hard_links(tmp_path):
    "A file with several names is rewritten in place: every name sees the new weights (one inode)."
    old, new = small_model(seed=1), small_model(seed=2)
    a, b = tmp_path / 'a.npz', tmp_path / 'b.npz'
    old.save_weights(a)
    os.link(a, b)
    os.chmod(a, 0o640)
    new.save_weights(b)
    assert a.stat().st_ino == b.stat().st_ino and a.stat().st_nlink == 2
    assert stat.S_IMODE(a.stat().st_mode) == 0o640
    for p in (a, b):
        other = small_model(seed=5)
        other.load_weights(p)
        assert_same(other.get_weights(), new.get_weights())
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.npz', 'b.npz']


def test_saving_never_replaces_a_fifo_or_device(tmp_path):
    "Saving over a FIFO (or through a link to one) is refused: a rename would put a plain file in its place."
    model = small_model()
    fifo = tmp_path / 'pipe.npz'
    os.mkfifo(fifo)
    os.symlink('pipe.npz', tmp_path / 'link.npz')
    for path in (fifo, tmp_path / 'link.npz'):
        with pytest.raises(ValueError, match=f"Refusing to save over '{fifo}': expected a regular file, received "
                                             r"a FIFO \(named pipe\)"):
            model.save_weights(path)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and (tmp_path / 'link.npz').is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['link.npz', 'pipe.npz']
