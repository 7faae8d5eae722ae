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


# ---- more invariants (issue 8): stateful chunks, implementations, merge modes, masks, dtypes, stacks ------------
from rnnbook.layers import StackedRNNCells  # noqa: E402
from rnnbook.backend import flatten as rb_flatten  # noqa: E402

FEW = max(1, settings().max_examples // 3)    # the heavier properties: a third of the budget (ci: 66, long: 666)
CELLS = {'simple': SimpleRNNCell, 'gru': GRUCell, 'gru_v1': GRUCell, 'lstm': LSTMCell}


def n_states(kind): return 2 if kind == 'lstm' else 1


@st.composite
def batches(draw, min_b=1, min_t=1):
    B, T, D = draw(st.integers(min_b, 4)), draw(st.integers(min_t, 7)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype('float32')
    mask = rng.random((B, T)) > draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])) if draw(st.booleans()) else None
    return x, mask, rng


@settings(max_examples=FEW)
@given(batches(), st.sampled_from(sorted(KINDS)), st.integers(1, 4), st.data())
def test_stateful_chunks_equal_one_call(batch, kind, U, data):
    "A stateful layer fed the sequence in chunks gives the outputs and final states of one call on all of it."
    x, mask, rng = batch
    B, T, _ = x.shape
    cuts = sorted(set(data.draw(st.lists(st.integers(1, T - 1), max_size=3)) if T > 1 else []))
    layer_cls, _, kw = KINDS[kind]
    whole = layer_cls(U, return_sequences=True, return_state=True, **kw)
    chunked = layer_cls(U, return_sequences=True, return_state=True, stateful=True, **kw)
    whole.build(x.shape); chunked.build(x.shape); chunked.set_weights(whole.get_weights())
    y, *states = whole(x, mask=mask)
    pieces, want = [], y.copy()
    for a, b in zip([0] + cuts, cuts + [T]):
        out, *last = chunked(x[:, a:b], mask=None if mask is None else mask[:, a:b])
        pieces.append(out)
        if mask is not None:     # as Keras: a call's masked steps before its first valid one output 0, not h
            for i in range(B):
                valid = np.flatnonzero(mask[i, a:b])
                want[i, a:a + (valid[0] if len(valid) else b - a)] = 0
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), want, atol=2e-5)
    for s, l, v in zip(states, last, chunked.states):
        np.testing.assert_allclose(l, s, atol=2e-5)
        np.testing.assert_allclose(v.numpy(), s, atol=2e-5)


@settings(max_examples=FEW)
@given(batches(min_b=0, min_t=0), st.sampled_from(['gru', 'gru_v1', 'lstm']), st.integers(1, 4), st.booleans(),
       st.booleans(), st.sampled_from(['tanh', 'relu']))
def test_implementation_1_equals_2(batch, kind, U, go_backwards, return_sequences, activation):
    x, mask, _ = batch
    layer_cls, _, kw = KINDS[kind]
    opts = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, activation=activation)
    one, two = layer_cls(U, implementation=1, **kw, **opts), layer_cls(U, implementation=2, **kw, **opts)
    one.build(x.shape); two.build(x.shape); two.set_weights(one.get_weights())
    for a, b in zip(flat(one(x, mask=mask)), flat(two(x, mask=mask))):
        np.testing.assert_allclose(a, b, atol=2e-5)


@settings(max_examples=FEW)
@given(batches(), st.sampled_from(sorted(KINDS)), st.integers(1, 3), st.booleans())
def test_bidirectional_merges_forward_and_backward_outputs(batch, kind, U, return_sequences):
    "`sum` is forward + backward (time-aligned), `concat` puts them side by side, `ave`/`mul` as named, None the pair."
    x, mask, _ = batch
    layer_cls, _, kw = KINDS[kind]
    bi = Bidirectional(layer_cls(U, return_sequences=return_sequences, **kw), merge_mode=None)
    fw, bw = bi(x, mask=mask)
    f = bi.forward_layer(x, mask=mask)
    b = bi.backward_layer(x, mask=mask)
    if return_sequences: b = b[:, ::-1]                       # back to the input's time order
    np.testing.assert_array_equal(fw, f); np.testing.assert_array_equal(bw, b)
    for mode, want in (('sum', f + b), ('concat', np.concatenate([f, b], -1)), ('ave', (f + b) / 2), ('mul', f * b)):
        other = Bidirectional(layer_cls(U, return_sequences=return_sequences, **kw), merge_mode=mode)
        other.build(x.shape); other.set_weights(bi.get_weights())
        np.testing.assert_allclose(other(x, mask=mask), want, atol=1e-6)


@settings(max_examples=FEW)
@given(batches(), st.sampled_from(sorted(KINDS)), st.integers(1, 3), st.booleans(), st.booleans(), st.booleans())
def test_masked_steps_follow_zero_output_for_mask(batch, kind, U, zero_output_for_mask, go_backwards, fused):
    "At a masked step the state is carried and the output is 0 (zero_output_for_mask) or the previous output."
    x, mask, rng = batch
    if mask is None: mask = rng.random(x.shape[:2]) > 0.5
    layer_cls, cell_cls, kw = KINDS[kind]
    opts = dict(return_sequences=True, return_state=True, go_backwards=go_backwards,
                zero_output_for_mask=zero_output_for_mask)
    layer = layer_cls(U, **kw, **opts) if fused else RNN(cell_cls(U, **kw), **opts)
    y, *states = layer(x, mask=mask)
    plain = layer_cls(U, return_sequences=True, go_backwards=go_backwards, **kw)
    plain.build(x.shape); plain.set_weights(layer.get_weights())
    order = mask[:, ::-1] if go_backwards else mask            # outputs are in processing order
    for b in range(x.shape[0]):
        kept = np.flatnonzero(order[b])
        xs = (x[b:b + 1, ::-1] if go_backwards else x[b:b + 1])[:, kept]      # the sample's valid steps alone
        alone = plain.__class__(U, return_sequences=True, **kw) if len(kept) else None
        if alone is not None:
            alone.build(xs.shape); alone.set_weights(layer.get_weights())
            valid = alone(xs)[0]
            np.testing.assert_allclose(y[b, kept], valid, atol=2e-5)
        last = np.zeros(U, 'float32')
        for k in range(x.shape[1]):
            if order[b, k]: last = y[b, k]; continue
            np.testing.assert_array_equal(y[b, k], 0 if zero_output_for_mask else last)


@settings(max_examples=FEW)
@given(batches(), st.sampled_from(sorted(KINDS)), st.integers(1, 3), st.booleans(), st.booleans())
def test_float64_agrees_with_float32(batch, kind, U, go_backwards, bidirectional):
    "The same weights in float64 (layer dtype and inputs) agree with float32 to float32 precision."
    x, mask, _ = batch
    layer_cls, _, kw = KINDS[kind]
    go_backwards = go_backwards and not bidirectional      # Bidirectional's backward copy has go_backwards=True
    make = lambda dtype: (Bidirectional(layer_cls(U, return_sequences=True, go_backwards=go_backwards, dtype=dtype, **kw))
                          if bidirectional else layer_cls(U, return_sequences=True, go_backwards=go_backwards,
                                                          return_state=True, dtype=dtype, **kw))
    a, b = make('float32'), make('float64')
    a.build(x.shape); b.build(x.shape); b.set_weights([w.astype('float64') for w in a.get_weights()])
    assert all(w.dtype == np.float64 for w in b.get_weights())
    for u, v in zip(flat(a(x, mask=mask)), flat(b(x.astype('float64'), mask=mask))):
        assert u.dtype == np.float32 and v.dtype == np.float64
        np.testing.assert_allclose(u, v, atol=2e-5, rtol=1e-4)


@settings(max_examples=FEW)
@given(batches(), st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=3), st.booleans(), st.booleans())
def test_stacked_cells_equal_a_stack_of_layers(batch, kinds, go_backwards, nested_list):
    "RNN([c1, c2, ...]) equals RNN(c1, return_sequences) -> RNN(c2) ... with the same weights (one step at a time)."
    x, mask, rng = batch
    units = [int(rng.integers(1, 4)) for _ in kinds]
    cells = [CELLS[k](u, **KINDS[k][2]) for k, u in zip(kinds, units)]
    stacked = RNN(cells if nested_list else StackedRNNCells(cells), return_sequences=True, return_state=True,
                  go_backwards=go_backwards)
    y, *states = stacked(x, mask=mask)
    weights, h = stacked.get_weights(), x
    offset, got_states = 0, []
    for i, (k, u) in enumerate(zip(kinds, units)):
        layer_cls, _, kw = KINDS[k]
        layer = layer_cls(u, return_sequences=True, return_state=True, go_backwards=go_backwards and i == 0, **kw)
        layer.build(h.shape)
        n = len(layer.get_weights()); layer.set_weights(weights[offset:offset + n]); offset += n
        h, *s = layer(h, mask=mask if i == 0 else (mask[:, ::-1] if (go_backwards and mask is not None) else mask))
        got_states += s
    np.testing.assert_allclose(y, h, atol=2e-5)
    states = [np.asarray(a) for a in rb_flatten(states)]      # nested per cell, as Keras returns them
    assert len(states) == len(got_states)
    for a, b in zip(states, got_states): np.testing.assert_allclose(a, b, atol=2e-5)


@settings(max_examples=FEW)
@given(batches(min_b=2), st.sampled_from(sorted(KINDS)), st.integers(1, 3), st.booleans(), st.booleans())
def test_a_sample_does_not_depend_on_the_others_with_masks(batch, kind, U, go_backwards, bidirectional):
    x, mask, rng = batch
    layer_cls, _, kw = KINDS[kind]
    inner = layer_cls(U, return_sequences=True, go_backwards=go_backwards and not bidirectional, **kw)
    layer = Bidirectional(inner) if bidirectional else inner
    whole = layer(x, mask=mask)
    i = int(rng.integers(x.shape[0]))
    other = x.copy(); other[np.arange(len(x)) != i] = rng.standard_normal(other[np.arange(len(x)) != i].shape)
    np.testing.assert_allclose(layer(other, mask=mask)[i], whole[i], atol=2e-5)
    np.testing.assert_allclose(layer(x[i:i + 1], mask=None if mask is None else mask[i:i + 1])[0], whole[i], atol=2e-5)


@settings(max_examples=FEW)
@given(batches(), st.sampled_from(sorted(KINDS)), st.integers(1, 3), st.booleans(), st.booleans())
def test_go_backwards_with_a_mask_equals_the_reversed_input_and_mask(batch, kind, U, unroll, fused):
    "Keras' definition: go_backwards processes the reversed sequence; the outputs come in processing order."
    x, mask, _ = batch
    layer_cls, cell_cls, kw = KINDS[kind]
    opts = dict(return_sequences=True, return_state=True, unroll=unroll)
    bwd = layer_cls(U, go_backwards=True, **kw, **opts) if fused else RNN(cell_cls(U, **kw), go_backwards=True, **opts)
    fwd = layer_cls(U, **kw, **opts)
    bwd.build(x.shape); fwd.build(x.shape); fwd.set_weights(bwd.get_weights())
    rev_mask = None if mask is None else mask[:, ::-1]
    for a, b in zip(flat(bwd(x, mask=mask)), flat(fwd(x[:, ::-1], mask=rev_mask))):
        np.testing.assert_allclose(a, b, atol=2e-5)
    ones = np.ones(x.shape[:2], bool)
    for a, b in zip(flat(bwd(x, mask=ones)), flat(bwd(x))): np.testing.assert_array_equal(a, b)
