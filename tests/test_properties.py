"""Property tests on random shapes, masks and arguments (bounded example budget; HYPOTHESIS_PROFILE=long for more)."""
import os

import numpy as np

from hypothesis import given, settings, strategies as st, HealthCheck

from rnnbook.layers import RNN, SimpleRNN, GRU, LSTM, SimpleRNNCell, GRUCell, LSTMCell

settings.register_profile('ci', max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('long', max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))

KINDS = {'simple': (SimpleRNN, SimpleRNNCell, {}), 'gru': (GRU, GRUCell, {}),
         'gru_v1': (GRU, GRUCell, {'reset_after': False}), 'lstm': (LSTM, LSTMCell, {})}


@st.composite
def cases(draw):
    B, T, D, U = draw(st.integers(0, 4)), draw(st.integers(0, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kind = draw(st.sampled_from(sorted(KINDS)))
    opts = dict(return_sequences=draw(st.booleans()), return_state=draw(st.booleans()),
                go_backwards=draw(st.booleans()), zero_output_for_mask=draw(st.booleans()))
    extra = draw(st.sampled_from([{}, {'activation': 'relu'}, {'use_bias': False},
                                  {'recurrent_activation': 'hard_sigmoid'} if kind != 'simple' else {}]))
    seed = draw(st.integers(0, 2**31))
    use_mask = draw(st.booleans())
    return B, T, D, U, kind, opts, extra, seed, use_mask


def flat(out): return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


@given(cases())
def test_fused_layer_equals_reference_loop(case):
    B, T, D, U, kind, opts, extra, seed, use_mask = case
    layer_cls, cell_cls, kw = KINDS[kind]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype('float32')
    mask = rng.random((B, T)) > 0.4 if use_mask else None
    fused = layer_cls(U, **kw, **extra, **opts)
    ref = RNN(cell_cls(U, **kw, **extra), unroll=True, **opts)
    fused.build((B, T, D)); ref.build((B, T, D)); ref.set_weights(fused.get_weights())
    a, b = flat(fused(x, mask=mask)), flat(ref(x, mask=mask))
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype == np.float32
        np.testing.assert_allclose(u, v, atol=2e-5, rtol=0)


@given(cases())
def test_samples_are_independent_and_reversal_is_a_flip(case):
    B, T, D, U, kind, opts, extra, seed, use_mask = case
    if B == 0 or T == 0: return
    layer_cls, _, kw = KINDS[kind]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype('float32')
    fwd = layer_cls(U, return_sequences=True, **kw, **extra)
    bwd = layer_cls(U, return_sequences=True, go_backwards=True, **kw, **extra)
    fwd.build(x.shape); bwd.build(x.shape); bwd.set_weights(fwd.get_weights())
    np.testing.assert_allclose(bwd(x), fwd(x[:, ::-1]), atol=2e-5)
    whole = fwd(x)
    i = int(rng.integers(B))
    np.testing.assert_allclose(fwd(x[i:i + 1])[0], whole[i], atol=2e-5)
    np.testing.assert_allclose(fwd(x, mask=np.ones((B, T), bool)), whole, atol=0)
    np.testing.assert_allclose(fwd(x.astype('float64')), whole, atol=5e-5)


KERAS_NAMES = {'simple': 'SimpleRNN', 'gru': 'GRU', 'gru_v1': 'GRU', 'lstm': 'LSTM'}


@settings(max_examples=min(settings().max_examples, 80))
@given(cases())
def test_random_cases_match_keras(case):
    "Random shapes, options and masks: same outputs and states as Keras 3 on the same weights."
    os.environ.setdefault('KERAS_BACKEND', 'torch')
    import keras
    B, T, D, U, kind, opts, extra, seed, use_mask = case
    if B == 0 or T == 0: return   # Keras' torch loop cannot run an empty batch or sequence
    layer_cls, _, kw = KINDS[kind]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype('float32')
    mask = rng.random((B, T)) > 0.4 if use_mask else None
    klayer = getattr(keras.layers, KERAS_NAMES[kind])(U, **kw, **extra, **opts)
    klayer.build((B, T, D))
    klayer.set_weights([rng.standard_normal(w.shape).astype('float32') * .5 for w in klayer.get_weights()])
    ours = layer_cls(U, **kw, **extra, **opts)
    ours.build((B, T, D)); ours.set_weights(klayer.get_weights())
    kout = klayer(x, mask=mask)
    kout = [keras.ops.convert_to_numpy(o) for o in (kout if isinstance(kout, (list, tuple)) else [kout])]
    for u, v in zip(flat(ours(x, mask=mask)), kout):
        np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-5)


# ---- wrappers -------------------------------------------------------------------------------------------------
from rnnbook.layers import Bidirectional, Embedding  # noqa: E402
from rnnbook import get_mask  # noqa: E402


@given(st.integers(1, 4), st.integers(1, 6), st.sampled_from(sorted(KINDS)), st.sampled_from(['concat', 'sum', 'ave']),
       st.integers(0, 2**31))
def test_bidirectional_padded_sample_equals_the_sample_alone(B, T, kind, merge_mode, seed):
    """Right padding is invisible: each sample's outputs equal those of the sample cut to its length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B)
    mask = np.arange(T)[None] < lengths[:, None]
    x = rng.standard_normal((B, T, 3)).astype('float32')
    layer_cls, _, kw = KINDS[kind]
    bi = Bidirectional(layer_cls(2, return_sequences=True, **kw), merge_mode=merge_mode)
    y = bi(x, mask=mask)
    last = Bidirectional(layer_cls(2, return_state=True, **kw), merge_mode=merge_mode)
    last.build(x.shape); last.set_weights(bi.get_weights())
    _, *states = last(x, mask=mask)
    for b, n in enumerate(lengths):
        alone = bi(x[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], alone[0], atol=1e-5)
        np.testing.assert_array_equal(y[b, n:], 0)
        _, *alone_states = last(x[b:b + 1, :n])
        for s, a in zip(states, alone_states): np.testing.assert_allclose(s[b], a[0], atol=1e-5)
    np.testing.assert_array_equal(get_mask(y), mask)


@given(st.integers(1, 4), st.integers(1, 6), st.sampled_from(sorted(KINDS)), st.booleans(), st.integers(0, 2**31))
def test_mask_from_embedding_equals_mask_by_hand(B, T, kind, go_backwards, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 4, (B, T))
    emb = Embedding(4, 3, mask_zero=True)
    layer_cls, _, kw = KINDS[kind]
    layer = layer_cls(2, return_sequences=True, go_backwards=go_backwards, **kw)
    auto = layer(emb(ids))
    np.testing.assert_array_equal(auto, layer(emb.call(ids), mask=ids != 0))
    np.testing.assert_array_equal(get_mask(auto), ids != 0)
