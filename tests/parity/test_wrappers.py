"""Bidirectional, TimeDistributed, Dense, Dropout, Embedding and Masking against Keras 3 (torch backend).

Same setup as the recurrent parity tests: build the Keras layer, give it random weights, copy them with
``set_weights(keras.get_weights())`` and compare outputs at atol=rtol=1e-5.  Also: Keras' own
bidirectional_test.py / time_distributed_test.py golden numbers and error texts, automatic mask flow
(Embedding/Masking -> recurrent layers) compared with Keras' chains, and behaviour Keras does not pin down
(states unchanged after errors, config round trips).
"""

import itertools
import os
import re
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook.layers import (Bidirectional, Dense, Dropout, Embedding, GRU, LSTM, Masking, RNN,  # noqa: E402
                            SimpleRNN, TimeDistributed, LSTMCell, GRUCell)

torch.set_num_threads(1)
ATOL = RTOL = 1e-5
B, T, F, U = 3, 5, 4, 3
MASKS = {
    "none": None,
    "right_padded": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
    "holes": np.array([[0, 1, 1, 0, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], bool),
}
KINDS = ("LSTM", "GRU", "SimpleRNN")


def knp(v):
    if isinstance(v, (list, tuple)):
        return [knp(a) for a in v]
    return keras.ops.convert_to_numpy(v)


def close(a, b, atol=ATOL):
    if not isinstance(a, (list, tuple)):   # one array (b may be nested Python lists of numbers)
        a, b = [a], [b]
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=RTOL)


def randomize(klayer, seed=0):
    rng = np.random.default_rng(seed)
    klayer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype) for w in klayer.get_weights()])


def data(shape=(B, T, F), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def pair(kind, **kw):
    return getattr(keras.layers, kind)(U, **kw), getattr(rb.layers, kind)(U, **kw)


def bidi_pair(kind, merge_mode="concat", backward=None, x=None, **kw):
    k_inner, r_inner = pair(kind, **kw)
    bk = br = None
    if backward is not None:
        bkind, bkw = backward
        bk, br = getattr(keras.layers, bkind)(U, **bkw), getattr(rb.layers, bkind)(U, **bkw)
    k = keras.layers.Bidirectional(k_inner, merge_mode=merge_mode, backward_layer=bk)
    r = Bidirectional(r_inner, merge_mode=merge_mode, backward_layer=br)
    shape = (B, T, F) if x is None else x.shape
    k.build(shape)
    randomize(k)
    r.build(shape)
    r.set_weights(k.get_weights())
    return k, r


# ---------------------------------------------------------------------------------------------------------------
# Bidirectional parity
# ---------------------------------------------------------------------------------------------------------------
BIDI_CASES = [(kind, mm, rs, st, m) for kind in KINDS for mm in ("concat", "sum", "mul", "ave", None)
              for rs in (False, True) for st in (False, True) for m in ("none", "right_padded", "holes")
              # full product for LSTM; a covering subset for the others keeps the suite quick
              if kind == "LSTM" or (rs + st + len(m) + len(str(mm))) % 3 == 0]


@pytest.mark.parametrize("kind,merge_mode,rs,st,mask_name", BIDI_CASES)
def test_bidirectional_matches_keras(kind, merge_mode, rs, st, mask_name):
    k, r = bidi_pair(kind, merge_mode, return_sequences=rs, return_state=st)
    x, mask = data(), MASKS[mask_name]
    kout = k(x, mask=mask) if mask is not None else k(x)
    rout = r(x, mask=mask) if mask is not None else r(x)
    close(rout, knp(kout))
    assert type(rout) is tuple if (st or merge_mode is None) else isinstance(rout, np.ndarray)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mask_name", ["none", "right_padded"])
def test_bidirectional_initial_state_matches_keras(kind, mask_name):
    k, r = bidi_pair(kind, return_sequences=True)
    n = 2 if kind == "LSTM" else 1
    init = [np.random.default_rng(i).standard_normal((B, U)).astype("float32") for i in range(2 * n)]
    mask = MASKS[mask_name]
    kw = {} if mask is None else {"mask": mask}
    close(r(data(), initial_state=init, **kw), knp(k(data(), initial_state=init, **kw)))


@pytest.mark.parametrize("merge_mode", ["concat", "mul", None])
@pytest.mark.parametrize("rs,st", [(True, False), (False, True), (True, True)])
def test_bidirectional_backward_layer_matches_keras(merge_mode, rs, st):
    # a backward layer of another kind, with its own settings: weights are forward LSTM then backward GRU
    k, r = bidi_pair("LSTM", merge_mode, backward=("GRU", dict(go_backwards=True, return_sequences=rs,
                     return_state=st, reset_after=False)), return_sequences=rs, return_state=st)
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    mask = MASKS["right_padded"]
    close(r(data(), mask=mask), knp(k(data(), mask=mask)))


def test_bidirectional_stateful_matches_keras():
    k, r = bidi_pair("LSTM", return_sequences=True, stateful=True)
    xs = [data(seed=s) for s in range(3)]
    for i, x in enumerate(xs):
        close(r(x), knp(k(x)))
        if i == 1:
            k.reset_state()
            r.reset_state()
    assert len(r.states) == 4
    close([s.numpy() for s in r.states], knp(list(k.states)))


def test_bidirectional_weights_order_and_paths():
    k, r = bidi_pair("GRU")
    def generic(path):   # name counters differ between the libraries: 'forward_gru_7' -> 'forward_gru'
        return "/".join(re.sub(r"_\d+$", "", part) for part in path.split("/"))

    assert [generic(w.path) for w in r.weights] == [generic(w.path) for w in k.weights]
    assert r.weights[0].path == f"{r.name}/{r.forward_layer.name}/gru_cell/kernel"
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    assert r.count_params() == k.count_params()


def test_bidirectional_compute_output_shape_matches_keras():
    for mm, st in itertools.product(("concat", "sum", None), (False, True)):
        k, r = bidi_pair("LSTM", mm, return_sequences=True, return_state=st)
        assert tuple(r.compute_output_shape((B, T, F))) == tuple(k.compute_output_shape((B, T, F)))
        out = r(data())
        shapes = r.compute_output_shape((B, T, F))
        flat_out = out if isinstance(out, tuple) else [out]
        flat_shapes = shapes if isinstance(shapes[0], tuple) else [shapes]
        assert [o.shape for o in flat_out] == [tuple(s) for s in flat_shapes]


# Keras' bidirectional_test.py, golden numbers ------------------------------------------------------------------
C = rb.initializers.Constant


def _const_layer(cls, k=0.01, r=0.02, b=0.03, **kw):
    return cls(2, kernel_initializer=C(k), recurrent_initializer=C(r), bias_initializer=C(b), **kw)


def test_keras_golden_bidirectional_correctness():
    seq = np.arange(24).reshape((2, 3, 4)).astype("float32")
    fw = _const_layer(SimpleRNN)
    close(Bidirectional(fw)(seq), [[0.39687276, 0.39687276, 0.10004295, 0.10004295],
                                   [0.7237238, 0.7237238, 0.53391594, 0.53391594]])
    close(Bidirectional(fw, merge_mode="ave")(seq), [[0.24845785, 0.24845785], [0.6288199, 0.6288199]])
    o1, o2 = Bidirectional(fw, merge_mode=None)(seq)
    close(o1, [[0.39687276, 0.39687276], [0.7237238, 0.7237238]])
    close(o2, [[0.10004295, 0.10004295], [0.53391594, 0.53391594]])
    bw = _const_layer(SimpleRNN, 0.03, 0.02, 0.01, go_backwards=True)
    close(Bidirectional(fw, backward_layer=bw, merge_mode="mul")(seq),
          [[0.08374989, 0.08374989], [0.6740834, 0.6740834]])
    gru = _const_layer(GRU, return_sequences=True)
    close(Bidirectional(gru, merge_mode="sum")(seq),
          [[[0.20937867] * 2, [0.34462988] * 2, [0.40290534] * 2], [[0.59829646] * 2, [0.6734641] * 2, [0.6479671] * 2]])


def test_keras_golden_bidirectional_statefulness():
    seq = np.arange(24).reshape((2, 4, 3)).astype("float32")
    layer = Bidirectional(_const_layer(LSTM, stateful=True))
    expected = [[0.26234663, 0.26234663, 0.16959146, 0.16959146], [0.6137073, 0.6137073, 0.5381646, 0.5381646]]
    layer(seq)
    close(layer(seq), expected)
    layer.reset_state()
    layer(seq)
    close(layer(seq), expected)


def test_keras_golden_bidirectional_initial_state_masking_return_state():
    seq = np.arange(24).reshape((2, 4, 3)).astype("float32")
    init = [np.arange(4).reshape((2, 2)).astype("float32") * i for i in (1, 2, 3, 4)]
    close(Bidirectional(_const_layer(LSTM))(seq, initial_state=init),
          [[0.20794602, 0.4577124, 0.14046375, 0.48191673], [0.6682636, 0.6711909, 0.60943645, 0.60950446]])
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    close(Bidirectional(_const_layer(GRU))(seq, mask=mask),
          [[0.19393763, 0.19393763, 0.11669192, 0.11669192], [0.30818558, 0.30818558, 0.28380975, 0.28380975]])
    out, h1, c1, h2, c2 = Bidirectional(_const_layer(LSTM, return_state=True))(seq)
    close(out, [[0.1990008, 0.1990008, 0.12659755, 0.12659755], [0.52335435, 0.52335435, 0.44717982, 0.44717982]])
    close([h1, c1, h2, c2], [[[0.1990008] * 2, [0.52335435] * 2], [[0.35567185] * 2, [1.0492687] * 2],
                             [[0.12659755] * 2, [0.44717982] * 2], [[0.2501858] * 2, [0.941473] * 2]])


def test_keras_bidirectional_output_shape_and_use_cudnn():
    x = np.array([[[101, 202], [303, 404]]])
    for mm in ["ave", "concat", "mul", "sum", None]:
        layer = Bidirectional(LSTM(2, return_state=True), merge_mode=mm)
        for out, shape in zip(layer(x), layer.compute_output_shape(x.shape)):
            assert out.shape == tuple(shape)
    for cls in (GRU, LSTM):
        for use_cudnn in (True, False, "auto"):
            bidi = Bidirectional(cls(1, use_cudnn=use_cudnn))
            assert bidi.forward_layer.use_cudnn == use_cudnn and bidi.backward_layer.use_cudnn == use_cudnn
    bidi = Bidirectional(SimpleRNN(1))
    assert not hasattr(bidi.forward_layer, "use_cudnn") and not hasattr(bidi.backward_layer, "use_cudnn")


# Bidirectional: errors and behaviour ---------------------------------------------------------------------------
def test_bidirectional_errors_use_keras_texts():
    with pytest.raises(ValueError, match="should have different `go_backwards` value"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ValueError, match='same value for attribute "return_sequences", got "False" for forward'):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True))
    for attr in ("stateful", "return_state"):
        with pytest.raises(ValueError, match=f'attribute "{attr}"'):
            Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, **{attr: True}))
    with pytest.raises(ValueError, match="Invalid merge mode. Received: 'max'"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="Please initialize `Bidirectional` layer"):
        Bidirectional("lstm")
    with pytest.raises(ValueError, match="`backward_layer` need to be a"):
        Bidirectional(LSTM(2), backward_layer=3)
    with pytest.raises(ValueError, match="expected a recurrent layer"):
        Bidirectional(Dense(2))
    with pytest.raises(ValueError, match="should have different `go_backwards`"):   # as Keras 3: always True backward
        Bidirectional(LSTM(2, go_backwards=True))


def test_bidirectional_copies_do_not_share_with_the_given_layer():
    inner = LSTM(2)
    inner(data())
    bi = Bidirectional(inner)
    bi(data())
    ids = {id(w) for w in inner.weights}
    assert not ids & {id(w) for w in bi.weights}
    assert bi.forward_layer.name == "forward_" + inner.name and bi.backward_layer.name == "backward_" + inner.name
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards


def test_bidirectional_errors_leave_states_unchanged():
    bi = Bidirectional(LSTM(U, stateful=True))
    x = data()
    bi(x)
    before = [s.numpy().copy() for s in bi.states]
    bad_bw = [np.zeros((B, U), "float32")] * 3 + [np.zeros((B, U + 1), "float32")]  # backward half is wrong
    with pytest.raises(ValueError, match="received shape"):
        bi(x, initial_state=bad_bw)
    with pytest.raises(ValueError, match="expects 4 initial states"):
        bi(x, initial_state=bad_bw[:3])
    with pytest.raises(ValueError, match="expected shape=|incompatible"):
        bi.reset_states([np.ones((B, U))] * 3 + [np.ones((B, U + 1))])
    with pytest.raises(ValueError, match="even number"):
        bi.reset_states([np.ones((B, U))] * 3)
    for s, b in zip(bi.states, before):
        np.testing.assert_array_equal(s.numpy(), b)


def test_bidirectional_reset_states_with_values_reaches_both_directions():
    bi = Bidirectional(LSTM(U, stateful=True, return_state=True))
    x = data()
    bi(x)
    values = [np.full((B, U), float(i), "float32") for i in range(4)]
    bi.reset_state(states=values)
    close([s.numpy() for s in bi.states], values)
    bi.reset_states()
    close([s.numpy() for s in bi.states], [0 * v for v in values])
    bi.reset_states(values)
    # the next call starts from those states: equal to passing them as initial_state to a fresh copy
    ref = Bidirectional(LSTM(U, return_state=True))
    ref.build(x.shape)
    ref.set_weights(bi.get_weights())
    close(bi(x), ref(x, initial_state=values))
    with pytest.raises(AttributeError, match="must be stateful"):
        Bidirectional(LSTM(2)).reset_states()


def test_bidirectional_config_round_trip_and_weights_argument():
    bi = Bidirectional(GRU(U, return_sequences=True, reset_after=False), merge_mode="ave",
                       backward_layer=LSTM(U, return_sequences=True, go_backwards=True))
    x = data()
    y = bi(x)
    again = Bidirectional.from_config(bi.get_config())
    again(x)
    again.set_weights(bi.get_weights())
    close(again(x), y)
    cfg = bi.get_config()
    assert cfg["merge_mode"] == "ave" and cfg["layer"]["class_name"] == "GRU"
    assert cfg["backward_layer"]["class_name"] == "LSTM"
    given = Bidirectional(GRU(U, return_sequences=True, reset_after=False), merge_mode="ave",
                          backward_layer=LSTM(U, return_sequences=True, go_backwards=True), weights=bi.get_weights())
    close(given(x), y)


def test_bidirectional_padding_reads_valid_steps_backwards():
    """A right-padded sample's backward half equals a backward layer on the sample cut to its length."""
    x, mask = data(), MASKS["right_padded"]
    bi = Bidirectional(GRU(U, return_sequences=True))
    y = bi(x, mask=mask)
    bw = GRU(U, return_sequences=True, go_backwards=True)
    bw.build(x.shape)
    bw.set_weights(bi.backward_layer.get_weights())
    for b, n in enumerate(mask.sum(1)):
        close(y[b, :n, U:], bw(x[b:b + 1, :n])[0, ::-1], atol=1e-6)
        np.testing.assert_array_equal(y[b, n:], 0)


def test_bidirectional_passes_mask_on_only_with_return_sequences():
    x, mask = data(), MASKS["holes"]
    np.testing.assert_array_equal(rb.get_mask(Bidirectional(LSTM(2, return_sequences=True))(x, mask=mask)), mask)
    assert rb.get_mask(Bidirectional(LSTM(2))(x, mask=mask)) is None
    a, b = Bidirectional(LSTM(2, return_sequences=True), merge_mode=None)(x, mask=mask)
    np.testing.assert_array_equal(rb.get_mask(a), mask)
    np.testing.assert_array_equal(rb.get_mask(b), mask)
    out = Bidirectional(LSTM(2, return_sequences=True, return_state=True))(x, mask=mask)
    assert [rb.get_mask(o) is not None for o in out] == [True, False, False, False, False]


def test_bidirectional_of_stacked_cells_and_custom_cell():
    x = data()
    bi = Bidirectional(RNN([LSTMCell(3), GRUCell(2)], return_sequences=True))
    y = bi(x)
    assert y.shape == (B, T, 4)
    k = keras.layers.Bidirectional(keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)],
                                                    return_sequences=True))
    k.build(x.shape)
    randomize(k)
    bi.set_weights(k.get_weights())
    close(bi(x, mask=MASKS["holes"]), knp(k(x, mask=MASKS["holes"])))


# ---------------------------------------------------------------------------------------------------------------
# Embedding / Masking and automatic mask flow
# ---------------------------------------------------------------------------------------------------------------
IDS = np.array([[4, 7, 2, 9, 0, 0], [3, 3, 8, 0, 0, 0], [5, 1, 6, 2, 7, 4], [0, 0, 1, 2, 0, 3]])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rs,st", [(False, False), (True, False), (True, True), (False, True)])
def test_embedding_mask_flows_into_recurrent_layer_like_keras(kind, rs, st):
    ke, re = keras.layers.Embedding(10, 4, mask_zero=True), Embedding(10, 4, mask_zero=True)
    kl, rl = pair(kind, return_sequences=rs, return_state=st)
    ke.build(IDS.shape)
    re.build(IDS.shape)
    re.set_weights(ke.get_weights())
    kl.build((4, 6, 4))
    randomize(kl)
    rl.build((4, 6, 4))
    rl.set_weights(kl.get_weights())
    kout, rout = kl(ke(IDS)), rl(re(IDS))   # no mask passed by hand
    close(rout, knp(kout))
    first = rout[0] if st else rout
    if rs:
        np.testing.assert_array_equal(rb.get_mask(first), IDS != 0)
    else:
        assert rb.get_mask(first) is None
    # the same as passing the mask explicitly, and different from no mask at all
    close(rl(re.call(IDS), mask=IDS != 0), rout)
    assert not np.allclose(np.asarray(first), np.asarray(rl(re.call(IDS))[0] if st else rl(re.call(IDS))))


def test_embedding_bidirectional_timedistributed_chain_like_keras():
    ke, re = keras.layers.Embedding(10, 4, mask_zero=True), Embedding(10, 4, mask_zero=True)
    kb = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))
    kd = keras.layers.TimeDistributed(keras.layers.Dense(2))
    rbd, rd = Bidirectional(LSTM(3, return_sequences=True)), TimeDistributed(Dense(2))
    ky = kd(kb(ke(IDS)))
    for kl, rl in ((ke, re), (kb, rbd), (kd, rd)):
        randomize(kl)
    ry = rd(rbd(re(IDS)))
    for kl, rl in ((ke, re), (kb, rbd), (kd, rd)):
        rl.set_weights(kl.get_weights())
    ky, ry = kd(kb(ke(IDS))), rd(rbd(re(IDS)))
    close(ry, knp(ky))
    np.testing.assert_array_equal(rb.get_mask(ry), IDS != 0)


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_masking_then_recurrent_like_keras(mask_value, kind):
    x = data((B, T, F))
    x[1, 3:] = mask_value
    x[2, 0] = mask_value
    x[0, 2, 1] = mask_value  # one feature equal to the value does not mask the step
    km, rm = keras.layers.Masking(mask_value), Masking(mask_value)
    np.testing.assert_array_equal(np.asarray(rm(x)), knp(km(x)))
    np.testing.assert_array_equal(rb.get_mask(rm(x)), knp(km.compute_mask(x)))
    kl, rl = pair(kind, return_sequences=True)
    kl.build(x.shape)
    randomize(kl)
    rl.build(x.shape)
    rl.set_weights(kl.get_weights())
    close(rl(rm(x)), knp(kl(km(x))))


def test_embedding_matches_keras_and_rejects_bad_ids():
    ke, re = keras.layers.Embedding(7, 3), Embedding(7, 3)
    ids = np.array([[1, 2, 6], [0, 5, 5]])
    ke.build(ids.shape)
    randomize(ke)
    re.build(ids.shape)
    re.set_weights(ke.get_weights())
    close(re(ids), knp(ke(ids)))
    close(re(ids.astype("float32")), knp(ke(ids)))          # whole-number floats are ids
    close(re(ids[0]), knp(ke(ids[0])))                       # any rank
    assert rb.get_mask(re(ids)) is None
    for bad, msg in ((ids + 1, "received id 7"), (ids - 1, "received id -1"), (ids + 0.5, "non-integer"),
                     (ids > 0, "integer token ids")):
        with pytest.raises(ValueError, match=msg):
            re(bad)
    with pytest.raises(ValueError, match="`input_dim` must be a positive integer. Received: input_dim=0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="`output_dim` must be a positive integer"):
        Embedding(3, 2.5)
    assert re.get_weights()[0].shape == (7, 3) and re.weights[0].path == f"{re.name}/embeddings"
    w = np.arange(21.).reshape(7, 3)
    np.testing.assert_array_equal(Embedding(7, 3, weights=[w])(np.array([[2]])), [[w[2]]])


def test_embedding_and_masking_config_round_trip():
    for layer in (Embedding(5, 2, mask_zero=True, embeddings_initializer="ones"), Masking(-3.0)):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == {**layer.get_config(), "name": again.name}
    e = Embedding(5, 2, mask_zero=True)
    keys = set(keras.layers.Embedding(5, 2, mask_zero=True).get_config())
    assert keys - {"quantization_config", "embeddings_initializer", "lora_rank", "lora_alpha"} <= set(e.get_config())


def test_masking_nan_value_and_non_numeric():
    x = data()
    x[0, 1] = np.nan
    y = Masking(np.nan)(x)
    np.testing.assert_array_equal(rb.get_mask(y)[0], [True, False, True, True, True])
    assert np.isfinite(np.asarray(y)).all()
    with pytest.raises(ValueError, match="mask_value"):
        Masking("zero")


def test_non_masking_layer_warns_that_the_mask_stops():
    class Plain(rb.layers.Layer):
        def call(self, x):
            return x * 2

    with pytest.warns(UserWarning, match="destroy the mask"):
        y = Plain()(Embedding(10, 2, mask_zero=True)(IDS))
    assert rb.get_mask(y) is None


def test_masked_array_is_plain_for_computation():
    e = Embedding(10, 2, mask_zero=True)(IDS)
    assert isinstance(e, np.ndarray) and rb.get_mask(e) is not None
    for derived in (e + 1, e[:, :2], np.concatenate([e, e]), e.sum(1), np.tanh(e), e.copy(), e @ np.ones((2, 1))):
        assert rb.get_mask(derived) is None and type(derived) is np.ndarray
    for derived in (e.reshape(-1, 2), e.astype("float64"), e.T):   # ndarray methods: the class stays, no mask
        assert rb.get_mask(derived) is None
    import pickle
    assert type(pickle.loads(pickle.dumps(e))) is np.ndarray
    m = rb.with_mask(np.ones((2, 3)), np.ones((2, 3), bool))
    assert rb.get_mask(m).shape == (2, 3) and rb.get_mask(rb.with_mask(m, None)) is None


# ---------------------------------------------------------------------------------------------------------------
# Dense, Dropout, TimeDistributed
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation,use_bias,shape", [(None, True, (3, 4)), ("relu", True, (2, 5, 4)),
                                                      ("tanh", False, (2, 3, 2, 4)), ("sigmoid", True, (1, 4))])
def test_dense_matches_keras(activation, use_bias, shape):
    kd, rd = keras.layers.Dense(3, activation=activation, use_bias=use_bias), Dense(3, activation=activation,
                                                                                     use_bias=use_bias)
    x = data(shape)
    kd.build(shape)
    randomize(kd)
    rd.build(shape)
    rd.set_weights(kd.get_weights())
    close(rd(x), knp(kd(x)))
    assert [w.shape for w in rd.get_weights()] == [tuple(w.shape) for w in kd.get_weights()]
    assert tuple(rd.compute_output_shape(shape)) == tuple(kd.compute_output_shape(shape))
    again = Dense.from_config(rd.get_config())
    assert again.get_config() == {**rd.get_config(), "name": again.name}


def test_dense_errors():
    d = Dense(2)
    d(np.ones((3, 4)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        d(np.ones((3, 5)))
    with pytest.raises(ValueError, match="expected min_ndim=2, found ndim=1"):
        Dense(2)(np.ones(4))
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="expected a positive integer"):
            Dense(bad)
    with pytest.raises(ValueError, match="lora_rank"):
        Dense(2, lora_rank=4)


def test_dropout_semantics():
    x = np.ones((50, 40, 10), "float32")
    layer = Dropout(0.3, seed=3)
    assert layer(x) is x or np.array_equal(layer(x), x)
    y = np.asarray(layer(x, training=True))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    y2 = np.asarray(Dropout(0.3, noise_shape=(None, 1, None), seed=1)(x, training=True))
    np.testing.assert_array_equal(y2[:, 0], y2[:, 7])
    np.testing.assert_array_equal(Dropout(0.3, seed=9)(x, training=True), Dropout(0.3, seed=9)(x, training=True))
    np.testing.assert_array_equal(Dropout(1.0)(x, training=True), 0 * x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)
    with pytest.raises(ValueError, match="Received: rate=1.5"):
        Dropout(1.5)
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape="abc")
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape=(1, 0))
    with pytest.raises(ValueError, match="expected 3 entries"):
        Dropout(0.5, noise_shape=(1, 1))(x, training=True)
    kd = keras.layers.Dropout(0.3, noise_shape=(None, 1, 5), seed=2)
    assert Dropout(0.3, noise_shape=(None, 1, 5), seed=2).get_config().keys() >= kd.get_config().keys() - {"dtype"}
    # masks pass through
    e = Embedding(10, 2, mask_zero=True)(IDS)
    np.testing.assert_array_equal(rb.get_mask(Dropout(0.5)(e, training=True)), IDS != 0)


@pytest.mark.parametrize("mask_name", ["none", "holes"])
@pytest.mark.parametrize("shape", [(B, T, F), (B, T, 2, F)])
def test_time_distributed_dense_matches_keras(mask_name, shape):
    kt, rt = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="tanh")), \
        TimeDistributed(Dense(3, activation="tanh"))
    x, mask = data(shape), MASKS[mask_name]
    kt.build(shape)
    randomize(kt)
    rt.build(shape)
    rt.set_weights(kt.get_weights())
    kw = {} if mask is None else {"mask": mask}
    y = rt(x, **kw)
    close(y, knp(kt(x, **kw)))
    close(rt.step_loop(x), y, atol=1e-6)   # the folded fast path equals the per-step reference
    assert tuple(rt.compute_output_shape(shape)) == tuple(kt.compute_output_shape(shape))


def test_time_distributed_after_lstm_like_keras():
    x = data()
    kl, rl = pair("LSTM", return_sequences=True)
    kt, rt = keras.layers.TimeDistributed(keras.layers.Dense(2)), TimeDistributed(Dense(2))
    ky = kt(kl(x))
    randomize(kl)
    randomize(kt, 5)
    rt(rl(x))
    rl.set_weights(kl.get_weights())
    rt.set_weights(kt.get_weights())
    close(rt(rl(x)), knp(kt(kl(x))))
    del ky


def test_time_distributed_mask_validation_keras_texts():
    td = TimeDistributed(Dense(2))
    x = data()
    with pytest.raises(ValueError, match=r"must be at least 2D \(e.g., `\(batch_size, timesteps\)`\), but it has 1"):
        td(x, mask=np.ones(B, bool))
    with pytest.raises(ValueError, match=r"Expected mask shape prefix: \(3, 5\)"):
        td(x, mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="should be passed an `input_shape` with at least 3 dimensions"):
        TimeDistributed(Dense(2))(np.ones((2, 3)))
    with pytest.raises(ValueError, match="Please initialize `TimeDistributed` layer"):
        TimeDistributed(np.tanh)


def test_time_distributed_loop_path_layers_and_masks():
    """A layer that takes a mask per step receives mask[:, t]; Dropout in training goes through the loop."""
    seen = []

    class StepMask(rb.layers.Layer):
        def call(self, x, mask=None):
            seen.append(None if mask is None else np.asarray(mask).copy())
            return x * 2

    x, mask = data(), MASKS["holes"]
    y = TimeDistributed(StepMask())(x, mask=mask)
    np.testing.assert_allclose(y, 2 * x)
    assert len(seen) == T and all(np.array_equal(s, mask[:, t]) for t, s in enumerate(seen))
    d = TimeDistributed(Dropout(0.5, seed=1))
    y = np.asarray(d(np.ones((2, 4, 100), "float32"), training=True))
    assert not np.array_equal(y[:, 0], y[:, 1])    # a fresh draw per step, as Keras' per-step call
    np.testing.assert_array_equal(rb.get_mask(TimeDistributed(Dense(2))(x, mask=mask)), mask)


def test_time_distributed_of_embedding_makes_its_own_mask():
    ids = np.array([[[1, 0], [2, 3]], [[0, 0], [4, 0]]])   # (B, T, L)
    y = TimeDistributed(Embedding(5, 2, mask_zero=True))(ids)
    assert y.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(rb.get_mask(y), ids != 0)


def test_time_distributed_config_round_trip():
    td = TimeDistributed(Dense(3, activation="relu"))
    x = data()
    y = td(x)
    again = TimeDistributed.from_config(td.get_config())
    again(x)
    again.set_weights(td.get_weights())
    close(again(x), y)
    assert td.get_config()["layer"]["class_name"] == "Dense"


def test_layers_namespace_has_every_wrapper():
    for name in ("Bidirectional", "TimeDistributed", "Dense", "Dropout", "Embedding", "Masking"):
        assert name in rb.layers.__all__ and getattr(rb.layers, name).__name__ == name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import rnnbook.layers  # noqa: F401


# Keras' time_distributed_test.py ------------------------------------------------------------------------------
def test_keras_time_distributed_basics_and_correctness():
    td = TimeDistributed(Dense(1, use_bias=False))
    assert td(np.ones((3, 2, 4), "float32")).shape == (3, 2, 1)
    assert len(td.trainable_weights) == 1 and len(td.non_trainable_weights) == 0
    seq = np.arange(24).reshape((3, 2, 4)).astype("float32")
    td = TimeDistributed(Dense(1, kernel_initializer=C(0.01), use_bias=False))
    close(td(seq), [[[0.06], [0.22]], [[0.38], [0.53999996]], [[0.7], [0.86]]])


def test_keras_time_distributed_masking():
    class MaskedDense(rb.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.layer = Dense(units, kernel_initializer=C(0.01), use_bias=False)
            self.supports_masking = True

        def build(self, input_shape):
            self.layer.build(input_shape)

        def call(self, inputs, training=False, mask=None):
            unmasked = self.layer.call(inputs)
            return unmasked if mask is None else (unmasked.T * mask.astype(inputs.dtype)).T

    seq = np.arange(24).reshape((3, 2, 4)).astype("float32")
    mask = np.array([[False, True], [True, False], [True, True]])
    close(TimeDistributed(MaskedDense(1))(seq, mask=mask), [[[0], [0.22]], [[0.38], [0]], [[0.7], [0.86]]])


def test_keras_time_distributed_mask_shapes():
    td = TimeDistributed(Dense(units=5, activation="softmax"))
    inputs = np.zeros((4, 5, 3))
    assert td(inputs, mask=np.ones((4, 5), bool)).shape == (4, 5, 5)
    assert td(inputs, mask=np.ones((4, 5, 1), bool)).shape == (4, 5, 5)
    assert td(inputs, mask=np.ones((4, 5, 3), bool)).shape == (4, 5, 5)
    for bad in ((4, 6), (5, 5)):
        with pytest.raises(ValueError, match="The `mask` passed to the `TimeDistributed` layer has a shape"):
            td(inputs, mask=np.ones(bad, bool))


def test_keras_bidirectional_basics_weight_counts():
    layer = Bidirectional(SimpleRNN(4))
    assert layer(np.ones((3, 2, 4), "float32")).shape == (3, 8)
    assert len(layer.trainable_weights) == 6 and len(layer.non_trainable_weights) == 0
    layer = Bidirectional(SimpleRNN(4), backward_layer=SimpleRNN(4, go_backwards=True), merge_mode="sum")
    assert layer(np.ones((3, 2, 4), "float32")).shape == (3, 4)
    assert len(layer.trainable_weights) == 6


def test_time_distributed_lstm_over_sub_sequences_like_keras():
    x = data((2, 3, 4, 5))
    k, r = keras.layers.TimeDistributed(keras.layers.LSTM(3)), TimeDistributed(LSTM(3))
    k.build(x.shape)
    randomize(k)
    r.build(x.shape)
    r.set_weights(k.get_weights())
    close(r(x), knp(k(x)))
    assert tuple(r.compute_output_shape(x.shape)) == tuple(k.compute_output_shape(x.shape))


# The seed guide's models (param counts printed by its model.summary()) ----------------------------------------
def test_guide_bidirectional_model_param_counts():
    x = np.random.default_rng(0).random((2, 5, 10)).astype("float32")
    first = Bidirectional(LSTM(64, return_sequences=True), input_shape=(5, 10))
    second, head = Bidirectional(LSTM(32)), Dense(10)
    y = head(second(first(x)))
    assert (first(x).shape, second(first(x)).shape, y.shape) == ((2, 5, 128), (2, 64), (2, 10))
    assert [first.count_params(), second.count_params(), head.count_params()] == [38400, 41216, 650]


def test_guide_embedding_lstm_dense_and_encoder_decoder():
    ids = np.random.default_rng(0).integers(0, 1000, (3, 7))
    emb, lstm, dense = Embedding(input_dim=1000, output_dim=64), LSTM(128), Dense(10)
    assert dense(lstm(emb(ids))).shape == (3, 10)
    assert [emb.count_params(), lstm.count_params(), dense.count_params()] == [64000, 98816, 1290]
    # encoder-decoder: the encoder's states start the decoder
    enc_emb, dec_emb = Embedding(1000, 64), Embedding(2000, 64)
    encoder, decoder, out = LSTM(64, return_state=True, name="encoder"), LSTM(64, name="decoder"), Dense(10)
    _, h, c = encoder(enc_emb(ids))
    y = out(decoder(dec_emb(ids * 2), initial_state=[h, c]))
    assert y.shape == (3, 10)
    assert [enc_emb.count_params(), dec_emb.count_params(), encoder.count_params(), decoder.count_params(),
            out.count_params()] == [64000, 128000, 33024, 33024, 650]
