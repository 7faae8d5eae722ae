"""Hostile Keras files (`.keras`, `.weights.h5`, legacy `.h5`): wrong members, truncated files, huge declared
shapes, links out of the file, a `Lambda` config -- each refused with an error naming the file and the problem,
before any large allocation, and the model left exactly as it was."""
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
import rnnbook as rb  # noqa: E402
from rnnbook import keras_files as kf  # noqa: E402

L = rb.layers
X = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")


def model():
    m = rb.models.Sequential([L.Input((5, 3)), L.LSTM(4), L.Dense(1)])
    m(X)
    return m


@pytest.fixture
def files(tmp_path):
    m = model()
    weights, archive = str(tmp_path / "m.weights.h5"), str(tmp_path / "m.keras")
    kf.save_weights_h5(m, weights)
    kf.write_keras_archive(archive, {"class_name": "Sequential", "config": {}}, kf.keras_metadata(),
                           lambda h5: kf.write_weights_h5(m, h5))
    return tmp_path, weights, archive


def refused(m, load, contains):
    """`load()` raises a ValueError containing `contains`, allocates little in Python, and `m` is unchanged."""
    before = m.get_weights()
    tracemalloc.start()
    with pytest.raises(ValueError, match=contains):
        load()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def edit_h5(src, dst, edit):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)
    with h5py.File(dst, "a") as h5:
        edit(h5)
    return dst


def rezip(src, dst, members):
    """A copy of the zip `src` with `members` (name -> bytes or None to drop) changed."""
    with zipfile.ZipFile(src) as z:
        old = {n: z.read(n) for n in z.namelist()}
    old.update(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in old.items():
            if data is not None:
                z.writestr(n, data)
    return dst


def test_huge_declared_shape_for_a_variable(files):
    tmp, weights, _ = files
    def edit(h5):
        del h5["layers/lstm/cell/vars/0"]
        h5.create_dataset("layers/lstm/cell/vars/0", shape=(10**6, 10**4), dtype="float32", chunks=(1000, 1000),
                          compression="gzip")                      # 40 GB declared, nothing stored
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, edit_h5(weights, str(tmp / "huge.weights.h5"), edit)),
            r"huge\.weights\.h5.*has shape \(3, 16\), the file holds .* of shape \(1000000, 10000\)")


def test_unlisted_huge_dataset(files):
    tmp, weights, _ = files
    def edit(h5):
        h5.create_dataset("layers/extra/vars/0", shape=(10**9,), dtype="float32", chunks=(10**6,), compression="gzip")
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, edit_h5(weights, str(tmp / "extra.weights.h5"), edit)),
            r"holds weights no layer takes: \['layers/extra/vars/0'\]")


def test_wrong_count_and_text_dataset(files):
    tmp, weights, _ = files
    m = model()
    path = edit_h5(weights, str(tmp / "count.weights.h5"), lambda h5: h5.__delitem__("layers/dense/vars/1"))
    refused(m, lambda: kf.load_weights_h5(m, path), r"expected 2 variables, but received 1 variables")
    def text(h5):
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = "not numbers"
    path = edit_h5(weights, str(tmp / "text.weights.h5"), text)
    refused(m, lambda: kf.load_weights_h5(m, path), r"text\.weights\.h5.*not numbers")


@pytest.mark.parametrize("link", [lambda: h5py.SoftLink("/layers/dense/vars/0"),
                                  lambda: h5py.ExternalLink("/etc/passwd", "/x")], ids=["soft", "external"])
def test_links_out_of_the_file(files, link):
    tmp, weights, _ = files
    def edit(h5):
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = link()
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, edit_h5(weights, str(tmp / "link.weights.h5"), edit)),
            r"link\.weights\.h5.*(soft or external link|through a)")


@pytest.mark.parametrize("keep", [0, 100, 3000, 6000])
def test_truncated_weights_file(files, keep):
    tmp, weights, _ = files
    path = str(tmp / "cut.weights.h5")
    with open(weights, "rb") as f, open(path, "wb") as g:
        g.write(f.read()[:keep])
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, path), r"cut\.weights\.h5")


def test_not_hdf5_nul_and_fifo(files):
    tmp, weights, archive = files
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, archive), r"it is not an HDF5 file")
    refused(m, lambda: kf.load_weights_h5(m, "a\0b.weights.h5"), r"without NUL characters")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp / "pipe.weights.h5")
        refused(m, lambda: kf.load_weights_h5(m, str(tmp / "pipe.weights.h5")), r"expected a regular file")


def test_archive_wrong_members(files):
    tmp, _, archive = files
    cases = {"extra": {"assets/run.py": b"print(1)"}, "missing": {"model.weights.h5": None},
             "npz": {"model.weights.h5": None, "model.weights.npz": b"PK"}}
    for name, members in cases.items():
        path = rezip(archive, str(tmp / f"{name}.keras"), members)
        with pytest.raises(ValueError, match=f"{name}\\.keras.*each once; missing"):
            kf.read_keras_archive(path)


def test_archive_repeated_member(files):
    tmp, _, archive = files
    path = str(tmp / "twice.keras")
    rezip(archive, path, {})
    with zipfile.ZipFile(path, "a") as z, pytest.warns(UserWarning):
        z.writestr("config.json", b"{}")
    with pytest.raises(ValueError, match=r"repeated \['config.json'\]"):
        kf.read_keras_archive(path)


def test_archive_truncated_and_not_json(files):
    tmp, _, archive = files
    with open(archive, "rb") as f:
        data = f.read()
    for keep in (0, 10, len(data) // 2, len(data) - 10):
        path = str(tmp / f"cut{keep}.keras")
        with open(path, "wb") as g:
            g.write(data[:keep])
        with pytest.raises(ValueError, match=f"cut{keep}\\.keras"):
            config, _, weights = kf.read_keras_archive(path)
            kf.load_weights_h5(model(), weights)
    path = rezip(archive, str(tmp / "bad.keras"), {"config.json": b"{not json"})
    with pytest.raises(ValueError, match=r"bad\.keras.*config.json is not JSON"):
        kf.read_keras_archive(path)
    path = rezip(archive, str(tmp / "deep.keras"), {"config.json": b"[" * 100_000})
    with pytest.raises(ValueError, match=r"deep\.keras.*nests deeper"):
        kf.read_keras_archive(path)


def test_archive_bombs(files):
    tmp, _, archive = files
    path = rezip(archive, str(tmp / "bomb.keras"), {})
    with zipfile.ZipFile(path, "w") as z:
        with zipfile.ZipFile(archive) as src:
            for n in ("metadata.json", "model.weights.h5"):
                z.writestr(n, src.read(n))
        info = zipfile.ZipInfo("config.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            for _ in range(kf.RECORD_BYTES // 2**20 + 1):
                f.write(b" " * 2**20)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"bomb\.keras.*config.json declares .* bytes; expected at most"):
        kf.read_keras_archive(path)
    assert tracemalloc.get_traced_memory()[1] < 2**20
    tracemalloc.stop()
    wbomb = str(tmp / "wbomb.keras")
    with zipfile.ZipFile(wbomb, "w") as z:
        z.writestr("metadata.json", b"{}")
        z.writestr("config.json", b"{}")
        info = zipfile.ZipInfo("model.weights.h5")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            for _ in range(64):
                f.write(bytes(2**20))
    _, _, weights = kf.read_keras_archive(wbomb)
    m = model()
    refused(m, lambda: kf.load_weights_h5(m, weights), r"decompression bomb")


@pytest.mark.parametrize("config", [
    {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": "f"}}]}},
    {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {
        "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}}}]}}])
def test_archive_lambda_config(files, config):
    tmp, _, archive = files
    path = rezip(archive, str(tmp / "lambda.keras"), {"config.json": json.dumps(config).encode()})
    with pytest.raises(ValueError, match=r"lambda\.keras.*holds a `(Lambda|__lambda__)`"):
        kf.read_keras_archive(path)


def test_legacy_huge_and_missing(tmp_path):
    m = model()
    lstm, dense = m.layers
    path = str(tmp_path / "legacy.h5")
    with h5py.File(path, "w", libver="latest") as h5:                        # "latest": attributes over 64 KiB
        h5.attrs["layer_names"] = np.array([b"lstm", b"dense"])
        g = h5.create_group("lstm")
        g.attrs["weight_names"] = np.array([b"lstm/k:0", b"lstm/r:0", b"lstm/b:0"])
        g.create_dataset("lstm/k:0", shape=(10**9,), dtype="float32", chunks=(10**6,), compression="gzip")
        g["lstm/r:0"] = np.zeros((4, 16), "float32")
        g["lstm/b:0"] = np.zeros(16, "float32")
        d = h5.create_group("dense")
        d.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/missing:0"])
        d["dense/kernel:0"] = np.zeros((4, 1), "float32")
    refused(m, lambda: kf.load_legacy_weights(m, path), r"legacy\.h5.*layer #0 .* declaring 4000000320 bytes")
    with h5py.File(path, "a") as h5:
        del h5["lstm/lstm/k:0"]
        h5["lstm/lstm/k:0"] = np.zeros((3, 16), "float32")
    refused(m, lambda: kf.load_legacy_weights(m, path), r"layer #1 .* missing \['dense/missing:0'\]")
    with h5py.File(path, "a", libver="latest") as h5:
        h5.attrs["model_config"] = np.zeros(kf.RECORD_BYTES // 8 + 1)          # declared: refused unread
    with pytest.raises(ValueError, match=r"legacy\.h5.*attribute 'model_config' .* declares 16777224 bytes"):
        kf.read_legacy_h5(path)
    with h5py.File(path, "a", libver="latest") as h5:
        del h5.attrs["model_config"]
        h5.attrs["training_config"] = b" " * (kf.RECORD_BYTES + 1)              # variable length: measured
    with pytest.raises(ValueError, match=r"legacy\.h5.*attribute 'training_config' .* holds more than"):
        kf.read_legacy_h5(path)
