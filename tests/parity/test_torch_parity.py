"""PyTorch as a second oracle: torch.nn.RNN/GRU/LSTM with weights from rnnbook.utils give rnnbook's outputs —
single layers, Keras 2's CuDNN layers (torch's two biases, one to one), stacks (num_layers=2) and both directions."""
import numpy as np
import pytest
import torch

import rnnbook as rb
from rnnbook.layers import SimpleRNN, GRU, LSTM
from rnnbook.cudnn_layers import CuDNNLSTM, CuDNNGRU

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


# ---- Keras 2's CuDNNLSTM / CuDNNGRU are torch.nn.LSTM / GRU, two biases and all -------------------------------
KINDS = {'SimpleRNN': lambda u, **kw: SimpleRNN(u, **kw), 'SimpleRNN-relu': lambda u, **kw: SimpleRNN(u, activation='relu', **kw),
         'GRU': lambda u, **kw: GRU(u, **kw), 'LSTM': lambda u, **kw: LSTM(u, **kw),
         'CuDNNGRU': lambda u, **kw: CuDNNGRU(u, **kw), 'CuDNNLSTM': lambda u, **kw: CuDNNLSTM(u, **kw)}
N_STATES = {'SimpleRNN': 1, 'SimpleRNN-relu': 1, 'GRU': 1, 'LSTM': 2, 'CuDNNGRU': 1, 'CuDNNLSTM': 2}


class Pair:
    "A stand-in for rnnbook's Bidirectional: all that the converters look at."
    def __init__(self, forward_layer, backward_layer):
        self.forward_layer, self.backward_layer = forward_layer, backward_layer


def randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.standard_normal(w.shape).astype('float32') * .4 for w in layer.weights])
    return layer


def make_stack(kind, U, D, num_layers, bidirectional, seed=0, build=True):
    "`[layer or Pair, ...]`: layers returning sequences and states (forward, and go_backwards=True for backward)."
    out = []
    for k in range(num_layers):
        dirs = [KINDS[kind](U, return_sequences=True, return_state=True, go_backwards=bool(r))
                for r in range(2 if bidirectional else 1)]
        for r, l in enumerate(dirs):
            if build:
                l.build((None, None, D if k == 0 else U * len(dirs)))
                randomize(l, seed + 10 * k + r)
        out.append(Pair(*dirs) if bidirectional else dirs[0])
    return out


def run_stack(stack, x):
    "What torch computes for the stack: the last layer's sequence (directions concatenated, in time order) and"
    "the final states in torch's order (layer-major, then direction)."
    h, finals = x, []
    for item in stack:
        dirs = [item.forward_layer, item.backward_layer] if hasattr(item, 'forward_layer') else [item]
        outs = []
        for r, layer in enumerate(dirs):
            seq, *states = layer(h)
            outs.append(seq[:, ::-1] if r else seq)     # the backward layer's outputs back in time order
            finals.append(states)
        h = np.concatenate(outs, axis=-1)
    return h, finals


def torch_run(m, x, n_states):
    with torch.no_grad(): out, hn = m(torch.from_numpy(x))
    hn = hn if n_states == 2 else (hn,)
    return out.numpy(), [[s[i].numpy() for s in hn] for i in range(hn[0].shape[0])]


def assert_stack_equal(stack, m, x, n_states):
    seq, finals = run_stack(stack, x)
    t_seq, t_finals = torch_run(m, x, n_states)
    np.testing.assert_allclose(seq, t_seq, atol=1e-5)
    assert len(finals) == len(t_finals)
    for ours, theirs in zip(finals, t_finals):
        for a, b in zip(ours, theirs): np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize('cls', [CuDNNLSTM, CuDNNGRU])
def test_cudnn_layers_equal_torch(cls):
    rng = np.random.default_rng(5)
    B, T, D, U = 3, 7, 4, 5
    layer = randomize(cls(U, return_sequences=True, return_state=True), 1)
    layer.build((B, T, D)); randomize(layer, 1)
    x = rng.standard_normal((B, T, D)).astype('float32')
    n = 2 if cls is CuDNNLSTM else 1
    init = [rng.standard_normal((B, U)).astype('float32') for _ in range(n)]
    seq, *states = layer(x, initial_state=init)
    m = rb.utils.torch_module(layer)
    with torch.no_grad():
        t_init = tuple(torch.from_numpy(s)[None] for s in init)
        t_seq, t_states = m(torch.from_numpy(x), t_init if n == 2 else t_init[0])
    t_states = t_states if n == 2 else (t_states,)
    np.testing.assert_allclose(seq, t_seq.numpy(), atol=1e-5)
    for s, t in zip(states, t_states): np.testing.assert_allclose(s, t[0].numpy(), atol=1e-5)
    # go_backwards is torch on the reversed sequence
    back = cls(U, return_sequences=True, go_backwards=True); back.build((B, T, D)); back.set_weights(layer.get_weights())
    with torch.no_grad(): t_rev = m(torch.from_numpy(x[:, ::-1].copy()))[0].numpy()
    np.testing.assert_allclose(back(x), t_rev, atol=1e-5)


@pytest.mark.parametrize('cls', [CuDNNLSTM, CuDNNGRU])
def test_cudnn_weights_are_torch_weights_byte_for_byte(cls):
    "cuDNN's memory layout: each (D, U) gate block of a Keras 2 kernel holds torch's (U, D) gate block; two biases 1:1."
    D, U = 3, 4
    layer = cls(U); layer.build((1, 2, D)); randomize(layer, 2)
    K, R, b = layer.get_weights()
    g = 4 if cls is CuDNNLSTM else 3
    keras_gates = list(range(g)) if g == 4 else [1, 0, 2]      # torch's (r, z, n) from Keras' (z, r, h)
    sd = rb.utils.to_torch(layer)
    for t_gate, k_gate in enumerate(keras_gates):
        rows, cols = slice(t_gate * U, (t_gate + 1) * U), slice(k_gate * U, (k_gate + 1) * U)
        np.testing.assert_array_equal(sd['weight_ih_l0'][rows], K[:, cols].reshape(U, D))
        np.testing.assert_array_equal(sd['weight_hh_l0'][rows], R[:, cols])
        np.testing.assert_array_equal(sd['bias_ih_l0'][rows], b[:g * U][cols])
        np.testing.assert_array_equal(sd['bias_hh_l0'][rows], b[g * U:][cols])
    twin = cls(U)
    rb.utils.from_torch(twin, sd)                          # unbuilt: built from the state_dict's shapes
    for a, c in zip(twin.get_weights(), layer.get_weights()): np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize('kind', ['LSTM', 'GRU'])
def test_torch_module_loads_into_cudnn_layer(kind):
    torch.manual_seed(0)
    m = getattr(torch.nn, kind)(4, 6, batch_first=True)
    layer = (CuDNNLSTM if kind == 'LSTM' else CuDNNGRU)(6, return_sequences=True)
    rb.utils.from_torch(layer, m)                          # the module itself, tensors inside
    x = np.random.default_rng(3).standard_normal((2, 5, 4)).astype('float32')
    with torch.no_grad(): expected = m(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)


# ---- stacks and directions ---------------------------------------------------------------------------------------
STACK_KINDS = ['SimpleRNN', 'SimpleRNN-relu', 'GRU', 'LSTM', 'CuDNNGRU', 'CuDNNLSTM']


@pytest.mark.parametrize('bidirectional', [False, True], ids=['uni', 'bi'])
@pytest.mark.parametrize('num_layers', [1, 2])
@pytest.mark.parametrize('kind', STACK_KINDS)
def test_stacks_to_torch(kind, num_layers, bidirectional):
    D, U = 4, 5
    stack = make_stack(kind, U, D, num_layers, bidirectional)
    x = np.random.default_rng(7).standard_normal((3, 6, D)).astype('float32')
    arg = stack if num_layers > 1 else stack[0]            # a single item is accepted as is
    m = rb.utils.torch_module(arg)
    assert (m.num_layers, m.bidirectional, m.hidden_size, m.input_size) == (num_layers, bidirectional, U, D)
    assert_stack_equal(stack, m, x, N_STATES[kind])
    # the plain state_dict loads into torch's own module too (arrays in, keys torch's)
    sd = rb.utils.to_torch(arg)
    assert list(sd) == list(m.state_dict())


@pytest.mark.parametrize('bidirectional', [False, True], ids=['uni', 'bi'])
@pytest.mark.parametrize('kind', ['SimpleRNN', 'SimpleRNN-relu', 'GRU', 'LSTM', 'CuDNNLSTM'])
@pytest.mark.parametrize('as_tensors', [True, False], ids=['tensors', 'arrays'])
def test_stacks_from_torch(kind, bidirectional, as_tensors):
    D, U = 3, 4
    torch.manual_seed(1)
    base = kind.replace('CuDNN', '').split('-')[0]
    kw = {'nonlinearity': 'relu'} if kind == 'SimpleRNN-relu' else {}
    m = {'SimpleRNN': torch.nn.RNN, 'GRU': torch.nn.GRU, 'LSTM': torch.nn.LSTM}[base](
        D, U, num_layers=2, batch_first=True, bidirectional=bidirectional, **kw)
    sd = m.state_dict() if as_tensors else {k: v.numpy() for k, v in m.state_dict().items()}
    stack = make_stack(kind, U, D, 2, bidirectional, build=False)
    rb.utils.from_torch(stack, sd)
    x = np.random.default_rng(8).standard_normal((2, 5, D)).astype('float32')
    assert_stack_equal(stack, m, x, N_STATES[kind])
    # and back out: the same weights; the biases' sum (a CuDNN layer keeps both biases: the same arrays)
    out = rb.utils.to_torch(stack)
    assert list(out) == list(sd)
    arr = lambda v: v.numpy() if hasattr(v, 'numpy') else v
    for k, v in out.items():
        if k.startswith('weight') or kind.startswith('CuDNN'): np.testing.assert_array_equal(v, arr(sd[k]))
        elif k.startswith('bias_ih'):
            hh = k.replace('bias_ih', 'bias_hh')
            np.testing.assert_allclose(v + out[hh], arr(sd[k]) + arr(sd[hh]), atol=1e-7)


@pytest.mark.parametrize('cls', [LSTM, GRU, CuDNNLSTM, CuDNNGRU])
def test_real_bidirectional_wrapper_if_present(cls):
    "rnnbook's Bidirectional has `forward_layer` / `backward_layer`: torch's bidirectional module equals it."
    bidirectional = pytest.importorskip('rnnbook.bidirectional')
    torch.manual_seed(2)
    m = (torch.nn.LSTM if 'LSTM' in cls.__name__ else torch.nn.GRU)(3, 4, batch_first=True, bidirectional=True)
    layer = bidirectional.Bidirectional(cls(4, return_sequences=True))
    x = np.random.default_rng(9).standard_normal((2, 5, 3)).astype('float32')
    layer(x)
    rb.utils.from_torch(layer, m)
    with torch.no_grad(): expected = m(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)
    assert set(rb.utils.to_torch(layer)) == set(m.state_dict())


def test_torch_module_float64():
    layer = LSTM(3, return_sequences=True, dtype='float64'); layer.build((1, 2, 2)); randomize(layer, 3)
    m = rb.utils.torch_module(layer)
    assert next(m.parameters()).dtype == torch.float64
    x = np.random.default_rng(1).standard_normal((2, 4, 2))
    with torch.no_grad(): expected = m(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-10)


# ---- what cannot convert -------------------------------------------------------------------------------------------
def built(layer, D=3):
    layer.build((None, None, D)); return layer


def test_stack_errors():
    utils = rb.utils
    with pytest.raises(ValueError, match='reset_after=False'):
        utils.to_torch([built(GRU(4, return_sequences=True)), built(GRU(4, reset_after=False), 4)])
    with pytest.raises(ValueError, match="no activation 'sigmoid'"): utils.to_torch(built(SimpleRNN(2, activation='sigmoid')))
    with pytest.raises(ValueError, match="no activation 'relu'"): utils.to_torch(built(GRU(2, activation='relu')))
    with pytest.raises(ValueError, match='module type'): utils.to_torch([built(GRU(4)), built(LSTM(4), 4)])
    with pytest.raises(ValueError, match=r"hidden_size \(units\).*units=5.*4"): utils.to_torch([built(GRU(4)), built(GRU(5), 4)])
    with pytest.raises(ValueError, match='bias'): utils.to_torch([built(GRU(4)), built(GRU(4, use_bias=False), 4)])
    with pytest.raises(ValueError, match='nonlinearity'):
        utils.to_torch([built(SimpleRNN(4)), built(SimpleRNN(4, activation='relu'), 4)])
    with pytest.raises(ValueError, match=r"layer 1 'lstm\w*' reads 3 input features.*gives it 4"):
        utils.to_torch([built(LSTM(4)), built(LSTM(4), 3)])
    with pytest.raises(ValueError, match=r'\(backward\).*reads 5 input features.*gives it 3'):
        utils.to_torch(Pair(built(LSTM(4)), built(LSTM(4, go_backwards=True), 5)))
    with pytest.raises(ValueError, match='is not built'): utils.to_torch(LSTM(4))
    with pytest.raises(ValueError, match='bidirectional in every layer or in none'):
        utils.to_torch([Pair(built(GRU(2)), built(GRU(2, go_backwards=True))), built(GRU(2), 4)])
    with pytest.raises(ValueError, match="Cannot convert Pair|Cannot convert"): utils.to_torch(object())
    with pytest.raises(ValueError, match='non-empty'): utils.to_torch([])


def test_state_dict_errors_name_the_key_and_change_nothing():
    utils = rb.utils
    torch.manual_seed(3)
    m = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    sd = m.state_dict()
    stack = [built(LSTM(4, return_sequences=True)), built(LSTM(4), 4)]
    before = [l.get_weights() for l in stack]
    missing = {k: v for k, v in sd.items() if k != 'weight_hh_l1'}
    with pytest.raises(ValueError, match=r"Missing key 'weight_hh_l1'.*layer 1"): utils.from_torch(stack, missing)
    wrong = {**sd, 'bias_ih_l1': torch.zeros(12)}
    with pytest.raises(ValueError, match=r"state_dict\['bias_ih_l1'\].*expected shape \(16,\), received \(12,\)"):
        utils.from_torch(stack, wrong)
    wrong_in = {**sd, 'weight_ih_l0': torch.zeros(16, 5)}
    with pytest.raises(ValueError, match=r"'weight_ih_l0'.*expected shape \(16, 3\), received \(16, 5\)"):
        utils.from_torch(stack, wrong_in)
    with pytest.raises(ValueError, match=r"Unexpected key\(s\) \['weight_ih_l1'"): utils.from_torch(stack[:1], sd)
    bi = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True).state_dict()
    with pytest.raises(ValueError, match='_reverse'): utils.from_torch(built(LSTM(4)), bi)
    with pytest.raises(ValueError, match=r"Unexpected key\(s\) \['bias_ih_l0'"):
        utils.from_torch(built(LSTM(4, use_bias=False)), torch.nn.LSTM(3, 4).state_dict())
    with pytest.raises(ValueError, match="Missing key 'bias_ih_l0'"):
        utils.from_torch(built(LSTM(4)), torch.nn.LSTM(3, 4, bias=False).state_dict())
    with pytest.raises(ValueError, match='weight_hr_l0'):                       # proj_size: no Keras equivalent
        utils.from_torch(built(LSTM(2)), torch.nn.LSTM(3, 4, proj_size=2).state_dict())
    with pytest.raises(ValueError, match='reset_after=False'):
        utils.from_torch(built(GRU(4, reset_after=False)), torch.nn.GRU(3, 4).state_dict())
    for layer, weights in zip(stack, before):
        for a, b in zip(layer.get_weights(), weights): np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="Missing key 'weight_ih_l0'"): utils.keras_weights('LSTM', {})
