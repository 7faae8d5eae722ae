"""CuPy in, CuPy out, same numbers as NumPy. Skipped (with the reason) where CuPy or a GPU is missing."""
import numpy as np
import pytest

import rnnbook as rb
from rnnbook.layers import RNN, SimpleRNN, GRU, LSTM, LSTMCell, SimpleRNNCell

cp = pytest.importorskip('cupy', reason='CuPy is not installed (GPU tests need `pip install rnnbook[gpu]`)')
try:
    cp.cuda.runtime.getDeviceCount()
except Exception as e:  # noqa: BLE001 - any CUDA failure means no usable GPU
    pytest.skip(f'no usable CUDA device: {e}', allow_module_level=True)


@pytest.mark.parametrize('make', [lambda **k: SimpleRNN(4, **k), lambda **k: GRU(4, **k),
                                  lambda **k: GRU(4, reset_after=False, **k), lambda **k: LSTM(4, **k),
                                  lambda **k: RNN([SimpleRNNCell(3), LSTMCell(4)], **k)])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('go_backwards', [False, True])
def test_cupy_matches_numpy(make, masked, go_backwards):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 5)).astype('float32')
    mask = rng.random((3, 6)) > .3 if masked else None
    cpu = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    gpu = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    cpu.build(x.shape)
    gpu(cp.asarray(x))                       # built on the GPU by its first input
    gpu.set_weights(cpu.get_weights())
    out_gpu = gpu(cp.asarray(x), mask=None if mask is None else cp.asarray(mask))
    out_cpu = cpu(x, mask=mask)
    for a, b in zip(rb.backend.flatten(out_gpu), rb.backend.flatten(out_cpu)):
        assert rb.backend.is_cupy_array(a)
        np.testing.assert_allclose(cp.asnumpy(a), b, atol=1e-5)


def test_stateful_and_dropout_on_gpu_are_deterministic():
    x = cp.asarray(np.random.default_rng(1).standard_normal((2, 5, 3)).astype('float32'))
    a, b = (LSTM(3, stateful=True, dropout=.3, seed=4) for _ in range(2))
    a(x); b(x); b.set_weights(a.get_weights()); a.reset_state(); b.reset_state()
    np.testing.assert_array_equal(cp.asnumpy(a(x, training=True)), cp.asnumpy(b(x, training=True)))
    assert all(rb.backend.is_cupy_array(s.value) for s in a.states)
