"""PyTorch as a second oracle: torch.nn.RNN/GRU/LSTM with weights from rnnbook.utils give rnnbook's outputs."""
import numpy as np
import pytest
import torch

import rnnbook as rb
from rnnbook.layers import SimpleRNN, GRU, LSTM

TORCH = {'SimpleRNN': torch.nn.RNN, 'GRU': torch.nn.GRU, 'LSTM': torch.nn.LSTM}


def torch_module(layer, D):
    kind = type(layer).__name__
    kw = {'nonlinearity': getattr(layer.cell.activation, '__name__', 'tanh')} if kind == 'SimpleRNN' else {}
    m = TORCH[kind](D, layer.units, batch_first=True, bias=layer.cell.use_bias, **kw)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in rb.utils.to_torch(layer).items()})
    return m


@pytest.mark.parametrize('make', [lambda: SimpleRNN(5), lambda: SimpleRNN(5, activation='relu', use_bias=False),
                                  lambda: GRU(5), lambda: GRU(5, use_bias=False), lambda: LSTM(5),
                                  lambda: LSTM(5, use_bias=False)])
@pytest.mark.parametrize('B,T,D', [(3, 7, 4), (1, 12, 2)])
def test_outputs_and_states_equal_torch(make, B, T, D):
    rng = np.random.default_rng(0)
    layer = make()
    layer.return_sequences, layer.return_state = True, True
    layer.build((B, T, D))
    layer.set_weights([rng.standard_normal(w.shape).astype('float32') * .4 for w in layer.get_weights()])
    x = rng.standard_normal((B, T, D)).astype('float32')
    n = 2 if isinstance(layer, LSTM) else 1
    init = [rng.standard_normal((B, 5)).astype('float32') for _ in range(n)]
    seq, *states = layer(x, initial_state=init)
    m = torch_module(layer, D)
    with torch.no_grad():
        t_init = tuple(torch.from_numpy(s)[None] for s in init)
        t_seq, t_states = m(torch.from_numpy(x), t_init if n == 2 else t_init[0])
    t_states = t_states if n == 2 else (t_states,)
    np.testing.assert_allclose(seq, t_seq.numpy(), atol=1e-5)
    for s, t in zip(states, t_states): np.testing.assert_allclose(s, t[0].numpy(), atol=1e-5)


def test_torch_weights_load_back():
    m = torch.nn.GRU(3, 4, batch_first=True)
    layer = GRU(4); layer.build((1, 2, 3))
    rb.utils.from_torch(layer, m.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype('float32')
    with torch.no_grad(): expected = m(torch.from_numpy(x))[0][:, -1].numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match='reset_after=False'):
        rb.utils.to_torch(GRU(4, reset_after=False))
    with pytest.raises(ValueError, match="received 'Dense'"):
        rb.utils.torch_weights('Dense', np.ones((2, 2)), np.ones((2, 2)))
