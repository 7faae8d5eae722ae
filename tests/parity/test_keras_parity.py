"""Numerical parity of rnnbook's recurrent layers with Keras 3 (torch backend).

Every test builds a Keras layer and the rnnbook layer with the same config,
gives the Keras layer random weights, copies them over with
``rb_layer.set_weights(keras_layer.get_weights())`` and compares the outputs
(float32, ``atol=rtol=1e-5``).

Layer kinds covered (``KINDS``):
SimpleRNN, GRU(reset_after=True), GRU(reset_after=False), LSTM,
RNN(LSTMCell), RNN(GRUCell), RNN([SimpleRNNCell, LSTMCell]) (list -> stacked)
and RNN(StackedRNNCells([LSTMCell, GRUCell(reset_after=False)])).  The stacked
kinds use cells of different widths (3 then 2) so that shape mix-ups show.

Axes: return_sequences x return_state x go_backwards x unroll (full product
for LSTM, a pairwise covering array for the other kinds), masks (right padded /
arbitrary with holes, a leading masked step and a fully masked sample) with
zero_output_for_mask True/False, initial_state, stateful (3 batches with a
reset in the middle, Keras-2 ``reset_states(states=...)``), non-default
activations / use_bias=False, implementation 1 vs 2, float64, dropout at
inference, weight shapes, get_config keys and round-trip, parameter counts.

Two Keras 3.15 (torch backend) bugs are worked around on the Keras side only:
mask + go_backwards + unroll=True crashes (the reference then uses
unroll=False, which is the same maths), and ``RNN.reset_state()`` fails on the
nested states of stacked cells (the Keras states are zeroed by hand).
"""

import copy
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads only add overhead/noise

B, T, F = 3, 5, 4
UNITS = 3
ATOL = RTOL = 1e-5

KINDS = [
    "SimpleRNN",
    "GRU",
    "GRU_v1",
    "LSTM",
    "RNN(LSTMCell)",
    "RNN(GRUCell)",
    "RNN([SimpleRNNCell,LSTMCell])",
    "RNN(StackedRNNCells)",
]
GATED_KINDS = [k for k in KINDS if k != "SimpleRNN"]  # accept implementation
KERAS_LAYERS = keras.layers

MASKS = {
    # lengths 5, 3, 1
    "right_padded": np.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool
    ),
    # leading masked step + holes; holes + trailing; fully masked sample
    "arbitrary": np.array(
        [[0, 1, 1, 0, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], dtype=bool
    ),
}


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _cell_kwargs(cell_type, opts):
    """Cell constructor kwargs from ``opts``; drops the ones a cell lacks."""
    kw = dict(opts)
    if cell_type == "simple":
        for key in ("recurrent_activation", "implementation", "reset_after"):
            kw.pop(key, None)
    return kw


def build_layer(L, kind, opts=None, cell_extra=None, **layer_kw):
    """Instantiate layer ``kind`` from module ``L`` (keras.layers or rb.layers).

    ``opts`` are cell-level options (activation, use_bias, implementation...)
    applied to every cell; ``cell_extra`` is merged into every cell's kwargs
    as-is (used to give Keras cells a dtype); ``layer_kw`` are RNN-level
    kwargs (return_sequences, stateful, zero_output_for_mask, ...).
    """
    opts = dict(opts or {})
    extra = dict(cell_extra or {})

    def ck(cell_type, **fixed):
        kw = _cell_kwargs(cell_type, opts)
        kw.update(fixed)
        kw.update(extra)
        return kw

    if kind == "SimpleRNN":
        return L.SimpleRNN(UNITS, **_cell_kwargs("simple", opts), **layer_kw)
    if kind == "GRU":
        return L.GRU(UNITS, reset_after=True, **_cell_kwargs("gru", opts), **layer_kw)
    if kind == "GRU_v1":
        return L.GRU(UNITS, reset_after=False, **_cell_kwargs("gru", opts), **layer_kw)
    if kind == "LSTM":
        return L.LSTM(UNITS, **_cell_kwargs("lstm", opts), **layer_kw)
    if kind == "RNN(LSTMCell)":
        return L.RNN(L.LSTMCell(UNITS, **ck("lstm")), **layer_kw)
    if kind == "RNN(GRUCell)":
        return L.RNN(L.GRUCell(UNITS, **ck("gru")), **layer_kw)
    if kind == "RNN([SimpleRNNCell,LSTMCell])":
        cells = [L.SimpleRNNCell(3, **ck("simple")), L.LSTMCell(2, **ck("lstm"))]
        return L.RNN(cells, **layer_kw)
    if kind == "RNN(StackedRNNCells)":
        cells = L.StackedRNNCells(
            [L.LSTMCell(3, **ck("lstm")), L.GRUCell(2, **ck("gru", reset_after=False))],
            **extra,
        )
        return L.RNN(cells, **layer_kw)
    raise ValueError(kind)


def random_weights(shapes, rng, dtype="float32"):
    # values are exactly representable in float32 whatever ``dtype`` is
    return [rng.uniform(-0.5, 0.5, size=s).astype("float32").astype(dtype)
            for s in shapes]


def make_pair(kind, rng, opts=None, input_shape=(B, T, F), dtype="float32",
              rb_extra=None, keras_override=None, **layer_kw):
    """(keras_layer, rnnbook_layer) built on ``input_shape`` with equal random
    weights (written into Keras, then copied keras -> rnnbook).

    ``rb_extra`` / ``keras_override`` are layer kwargs given to one side only.
    """
    kextra = {}
    if dtype != "float32":
        kextra = {"dtype": dtype}
    klayer = build_layer(KERAS_LAYERS, kind, opts, cell_extra=kextra,
                         **dict(layer_kw, **kextra, **(keras_override or {})))
    rlayer = build_layer(rb.layers, kind, opts, **dict(layer_kw, **(rb_extra or {})))
    klayer.build(input_shape)
    rlayer.build(input_shape)
    kshapes = [tuple(w.shape) for w in klayer.get_weights()]
    klayer.set_weights(random_weights(kshapes, rng, dtype))
    rlayer.set_weights(klayer.get_weights())
    return klayer, rlayer


def flatten(x):
    if isinstance(x, (list, tuple)):
        out = []
        for v in x:
            out.extend(flatten(v))
        return out
    return [x]


def assert_same(rb_out, k_out, k2np, dtype=np.float32, atol=ATOL, rtol=RTOL,
                what="output"):
    """Compare (possibly nested) rnnbook and Keras results leaf by leaf."""
    k_flat = flatten(k2np(k_out))
    if isinstance(k_out, (list, tuple)):
        assert isinstance(rb_out, (list, tuple)), (
            f"{what}: Keras returned {len(k_out)} items, rnnbook a "
            f"{type(rb_out).__name__}"
        )
        assert len(rb_out) == len(k_out), (
            f"{what}: rnnbook returned {len(rb_out)} items, Keras {len(k_out)}"
        )
    r_flat = flatten(rb_out)
    assert len(r_flat) == len(k_flat), (
        f"{what}: {len(r_flat)} arrays from rnnbook vs {len(k_flat)} from Keras"
    )
    for i, (r, k) in enumerate(zip(r_flat, k_flat)):
        assert isinstance(r, np.ndarray), (
            f"{what}[{i}]: rnnbook returned {type(r).__name__}, not np.ndarray"
        )
        assert r.shape == k.shape, f"{what}[{i}]: shape {r.shape} != Keras {k.shape}"
        if dtype is not None:
            assert r.dtype == dtype, f"{what}[{i}]: dtype {r.dtype} != {np.dtype(dtype)}"
        np.testing.assert_allclose(
            r, k, atol=atol, rtol=rtol,
            err_msg=f"{what}[{i}] (shape {r.shape}) differs from Keras",
        )


def run_both(klayer, rlayer, x, k2np, dtype=np.float32, what="output", **call_kw):
    k_out = klayer(x, **call_kw)
    r_out = rlayer(x, **call_kw)
    assert_same(r_out, k_out, k2np, dtype=dtype, what=what)
    return r_out, k_out


def keras_reset_state(klayer):
    """``klayer.reset_state()``; done by hand because Keras 3.15's
    RNN.reset_state fails on the nested states of stacked cells."""
    for var in flatten(klayer.states):
        var.assign(np.zeros(tuple(var.shape), dtype=var.dtype))


def states_of(layer, k2np=None):
    states = flatten(layer.states)
    if k2np is not None:
        return [np.asarray(s) for s in flatten(k2np(states))]
    return [np.asarray(s) for s in states]


def make_x(rng, shape=(B, T, F), dtype="float32"):
    return rng.normal(size=shape).astype(dtype)


def _id(v):
    return "T" if v else "F"


# ----------------------------------------------------------------------------
# return_sequences x return_state x go_backwards x unroll
# ----------------------------------------------------------------------------
_BOOL4 = [(a, b, c, d) for a in (False, True) for b in (False, True)
          for c in (False, True) for d in (False, True)]
# Pairwise covering array for 4 boolean factors (every pair of factors sees
# all 4 value combinations).
_COVER4 = [
    (False, False, False, False),
    (False, True, True, True),
    (True, False, True, True),
    (True, True, False, True),
    (True, True, True, False),
]
_AXES_CASES = [("LSTM",) + c for c in _BOOL4] + [
    (k,) + c for k in KINDS if k != "LSTM" for c in _COVER4
]


@pytest.mark.parametrize(
    "kind,return_sequences,return_state,go_backwards,unroll",
    _AXES_CASES,
    ids=[f"{c[0]}-rs{_id(c[1])}-st{_id(c[2])}-gb{_id(c[3])}-un{_id(c[4])}"
         for c in _AXES_CASES],
)
def test_output_axes(kind, return_sequences, return_state, go_backwards, unroll,
                     rng, k2np):
    kl, rl = make_pair(kind, rng, return_sequences=return_sequences,
                       return_state=return_state, go_backwards=go_backwards,
                       unroll=unroll)
    x = make_x(rng)
    r_out, _ = run_both(kl, rl, x, k2np)
    # a second call with other data through the same (built) layers
    run_both(kl, rl, make_x(rng), k2np, what="second call")
    if return_state:
        out0 = r_out[0]
    else:
        out0 = r_out
    expected_last = (B, T, rl_units(kind)) if return_sequences else (B, rl_units(kind))
    assert out0.shape == expected_last


def rl_units(kind):
    return 2 if kind.startswith("RNN([") or kind == "RNN(StackedRNNCells)" else UNITS


# ----------------------------------------------------------------------------
# masks x zero_output_for_mask
# ----------------------------------------------------------------------------
# (return_sequences, go_backwards, unroll); return_state always True.
_MASK_VARIANTS = {
    "seq-fwd": (True, False, False),
    "last-fwd-unroll": (False, False, True),
    "seq-bwd-unroll": (True, True, True),
    "last-bwd": (False, True, False),
}


@pytest.mark.parametrize("variant", list(_MASK_VARIANTS))
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["zofmF", "zofmT"])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("kind", KINDS)
def test_masking(kind, mask_name, zero_output_for_mask, variant, rng, k2np):
    rs, gb, un = _MASK_VARIANTS[variant]
    # Keras 3.15 (torch backend) crashes on mask + go_backwards + unroll=True
    # (torch.flip applied to a tuple in backend/torch/rnn.py); unroll does not
    # change the maths, so the reference is then the non-unrolled Keras layer.
    keras_override = {"unroll": False} if (gb and un) else None
    kl, rl = make_pair(kind, rng, return_sequences=rs, return_state=True,
                       go_backwards=gb, unroll=un, keras_override=keras_override,
                       zero_output_for_mask=zero_output_for_mask)
    x = make_x(rng)
    mask = MASKS[mask_name]
    r_out, k_out = run_both(kl, rl, x, k2np, mask=mask)
    # masked input values must not matter
    x2 = np.where(mask[:, :, None], x, np.float32(123.0)).astype("float32")
    r_out2 = rl(x2, mask=mask)
    assert_same(r_out2, k_out, k2np, what="output with garbage in masked steps")


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
def test_mask_all_true_equals_no_mask(kind, rng, k2np):
    kl, rl = make_pair(kind, rng, return_sequences=True, return_state=True)
    x = make_x(rng)
    r_plain, k_plain = run_both(kl, rl, x, k2np)
    r_masked = rl(x, mask=np.ones((B, T), dtype=bool))
    assert_same(r_masked, k_plain, k2np, what="all-true mask")


# ----------------------------------------------------------------------------
# initial_state
# ----------------------------------------------------------------------------
def _initial_state_for(klayer, rng, dtype="float32"):
    """Random initial state with Keras' (possibly nested) structure."""
    template = klayer.get_initial_state(B)

    def fill(t):
        if isinstance(t, (list, tuple)):
            return [fill(v) for v in t]
        return rng.normal(size=tuple(t.shape)).astype(dtype)

    return fill(list(template))


@pytest.mark.parametrize(
    "go_backwards,mask_name", [(False, None), (True, "arbitrary"), (False, "right_padded")],
    ids=["fwd", "bwd-arbitrary-mask", "fwd-right-padded"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_initial_state(kind, go_backwards, mask_name, rng, k2np):
    kl, rl = make_pair(kind, rng, return_sequences=True, return_state=True,
                       go_backwards=go_backwards)
    x = make_x(rng)
    init = _initial_state_for(kl, rng)
    init_copy = copy.deepcopy(init)
    mask = None if mask_name is None else MASKS[mask_name]
    k_out = kl(x, initial_state=init, mask=mask)
    r_out = rl(x, initial_state=init, mask=mask)
    assert_same(r_out, k_out, k2np)
    # the caller's arrays must not be modified in place
    for a, b in zip(flatten(init), flatten(init_copy)):
        np.testing.assert_array_equal(a, b)
    # and the initial state must actually matter
    r_zero = rl(x, mask=mask)
    assert not np.allclose(flatten(r_zero)[0], flatten(r_out)[0])


# ----------------------------------------------------------------------------
# stateful
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "bwd"])
@pytest.mark.parametrize("kind", KINDS)
def test_stateful_three_batches_with_reset(kind, go_backwards, rng, k2np):
    kl, rl = make_pair(kind, rng, stateful=True, return_state=True,
                       return_sequences=not go_backwards, go_backwards=go_backwards)
    xs = [make_x(rng) for _ in range(3)]

    run_both(kl, rl, xs[0], k2np, what="batch 1")
    assert_same([np.asarray(s) for s in flatten(rl.states)],
                states_of(kl, k2np), k2np, what="states after batch 1")
    r2, _ = run_both(kl, rl, xs[1], k2np, what="batch 2 (carries state)")
    assert_same([np.asarray(s) for s in flatten(rl.states)],
                states_of(kl, k2np), k2np, what="states after batch 2")

    keras_reset_state(kl)
    rl.reset_state()
    for s in states_of(rl):
        np.testing.assert_array_equal(s, np.zeros_like(s))
    run_both(kl, rl, xs[2], k2np, what="batch 3 (after reset_state)")
    assert_same([np.asarray(s) for s in flatten(rl.states)],
                states_of(kl, k2np), k2np, what="states after batch 3")

    # state really carried over: batch 2 differs from batch 2 on fresh state
    rl.reset_state()
    r2_fresh = rl(xs[1])
    assert not np.allclose(flatten(r2)[0], flatten(r2_fresh)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_stateful_states_exist_after_build(kind, rng, k2np):
    """Like Keras, build() of a stateful layer creates zero states."""
    kl, rl = make_pair(kind, rng, stateful=True)
    assert rl.states is not None
    assert_same([np.asarray(s) for s in flatten(rl.states)],
                states_of(kl, k2np), k2np, what="states after build")


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM", "RNN(LSTMCell)"])
def test_stateful_keras2_reset_states_with_values(kind, rng, k2np):
    kl, rl = make_pair(kind, rng, stateful=True, return_sequences=True)
    x = make_x(rng)
    run_both(kl, rl, x, k2np, what="batch 1")
    new_states = [rng.normal(size=tuple(np.asarray(s).shape)).astype("float32")
                  for s in states_of(rl)]
    rl.reset_states(states=new_states)
    for got, want in zip(states_of(rl), new_states):
        np.testing.assert_allclose(got, want)
    for var, val in zip(flatten(kl.states), new_states):
        var.assign(val)
    run_both(kl, rl, make_x(rng), k2np, what="batch after reset_states(states)")
    # Keras-2 alias without arguments zeroes the states
    rl.reset_states()
    keras_reset_state(kl)
    for s in states_of(rl):
        np.testing.assert_array_equal(s, np.zeros_like(s))
    run_both(kl, rl, x, k2np, what="batch after reset_states()")


@pytest.mark.parametrize(
    "kind,rb_extra",
    [("LSTM", {"batch_input_shape": (B, T, F)}),
     ("GRU", {"batch_size": B, "input_shape": (T, F)}),
     ("SimpleRNN", {"input_shape": (T, F)})],
    ids=["LSTM-batch_input_shape", "GRU-batch_size+input_shape", "SimpleRNN-input_shape"],
)
def test_keras2_shape_kwargs_accepted(kind, rb_extra, rng, k2np):
    kl, rl = make_pair(kind, rng, stateful=True, rb_extra=rb_extra)
    for i in range(2):
        run_both(kl, rl, make_x(rng), k2np, what=f"call {i}")


# ----------------------------------------------------------------------------
# activations, use_bias, implementation
# ----------------------------------------------------------------------------
_ACT_OPTS = {
    "relu-hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    "nobias": {"use_bias": False},
    "linear-hard_sigmoid-nobias": {"activation": "linear",
                                   "recurrent_activation": "hard_sigmoid",
                                   "use_bias": False},
}


@pytest.mark.parametrize("opts_name", list(_ACT_OPTS))
@pytest.mark.parametrize("kind", KINDS)
def test_activations_and_use_bias(kind, opts_name, rng, k2np):
    opts = _ACT_OPTS[opts_name]
    kl, rl = make_pair(kind, rng, opts=opts, return_sequences=True, return_state=True)
    assert len(rl.get_weights()) == len(kl.get_weights())
    run_both(kl, rl, make_x(rng), k2np)


@pytest.mark.parametrize("implementation", [1, 2])
@pytest.mark.parametrize("kind", GATED_KINDS)
def test_implementation(kind, implementation, rng, k2np):
    kl, rl = make_pair(kind, rng, opts={"implementation": implementation},
                       return_sequences=True, return_state=True)
    run_both(kl, rl, make_x(rng), k2np)
    run_both(kl, rl, make_x(rng), k2np, mask=MASKS["arbitrary"], what="masked")


def test_implementation_1_and_2_agree(rng):
    """Same weights, different implementation -> same rnnbook output."""
    x = make_x(rng)
    for kind in ("LSTM", "GRU", "GRU_v1"):
        l1 = build_layer(rb.layers, kind, {"implementation": 1}, return_sequences=True)
        l2 = build_layer(rb.layers, kind, {"implementation": 2}, return_sequences=True)
        l1.build(x.shape)
        l2.build(x.shape)
        l2.set_weights(l1.get_weights())
        np.testing.assert_allclose(l1(x), l2(x), atol=ATOL, rtol=RTOL, err_msg=kind)


# ----------------------------------------------------------------------------
# dtype
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_float64(kind, rng, k2np):
    kl, rl = make_pair(kind, rng, dtype="float64", return_sequences=True,
                       return_state=True)
    x = make_x(rng, dtype="float64")
    r_out, _ = run_both(kl, rl, x, k2np, dtype=np.float64)
    # float32 input still gives float32 out of the same layer
    out32 = flatten(rl(x.astype("float32")))
    assert all(o.dtype == np.float32 for o in out32), [o.dtype for o in out32]


# ----------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
def test_dropout_is_identity_at_inference(kind, rng, k2np):
    opts = {"dropout": 0.4, "recurrent_dropout": 0.3, "seed": 7}
    kl, rl = make_pair(kind, rng, opts=opts, return_sequences=True)
    x = make_x(rng)
    run_both(kl, rl, x, k2np, training=False, what="training=False")
    r_none, _ = run_both(kl, rl, x, k2np, what="training=None")
    r_train = rl(x, training=True)
    assert r_train.shape == r_none.shape
    assert np.all(np.isfinite(r_train))
    assert not np.allclose(r_train, r_none), "dropout had no effect with training=True"


# ----------------------------------------------------------------------------
# weights, config, parameter counts
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_weight_shapes_and_roundtrip(kind, rng):
    kl = build_layer(KERAS_LAYERS, kind)
    rl = build_layer(rb.layers, kind)
    kl.build((B, T, F))
    rl.build((B, T, F))
    k_shapes = [tuple(w.shape) for w in kl.get_weights()]
    r_weights = rl.get_weights()
    assert [tuple(np.shape(w)) for w in r_weights] == k_shapes
    assert all(np.asarray(w).dtype == np.float32 for w in r_weights)
    new = random_weights(k_shapes, rng)
    rl.set_weights(new)
    for got, want in zip(rl.get_weights(), new):
        np.testing.assert_array_equal(np.asarray(got), want)
    # set_weights must copy: mutating the source list must not change the layer
    new[0][...] = 99.0
    assert not np.any(np.asarray(rl.get_weights()[0]) == 99.0)


@pytest.mark.parametrize("kind", KINDS)
def test_set_weights_rejects_wrong_shapes(kind, rng):
    rl = build_layer(rb.layers, kind)
    rl.build((B, T, F))
    weights = [np.asarray(w) for w in rl.get_weights()]
    bad = [np.zeros(tuple(d + 1 for d in weights[0].shape), "float32")] + weights[1:]
    with pytest.raises(ValueError):
        rl.set_weights(bad)
    with pytest.raises(ValueError):
        rl.set_weights(weights[:-1])


_CONFIG_CASES = {
    "SimpleRNN": lambda L: L.SimpleRNN(UNITS),
    "GRU": lambda L: L.GRU(UNITS),
    "LSTM": lambda L: L.LSTM(UNITS),
    "RNN": lambda L: L.RNN(L.LSTMCell(UNITS)),
    "SimpleRNNCell": lambda L: L.SimpleRNNCell(UNITS),
    "GRUCell": lambda L: L.GRUCell(UNITS),
    "LSTMCell": lambda L: L.LSTMCell(UNITS),
    "StackedRNNCells": lambda L: L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2)]),
}


@pytest.mark.parametrize("name", list(_CONFIG_CASES))
def test_get_config_keys_superset_of_keras(name):
    k_keys = set(_CONFIG_CASES[name](KERAS_LAYERS).get_config())
    r_cfg = _CONFIG_CASES[name](rb.layers).get_config()
    assert isinstance(r_cfg, dict)
    missing = k_keys - set(r_cfg)
    assert not missing, f"rnnbook {name}.get_config() lacks Keras keys {sorted(missing)}"


def _strip_names(cfg):
    if isinstance(cfg, dict):
        return {k: _strip_names(v) for k, v in cfg.items() if k != "name"}
    if isinstance(cfg, (list, tuple)):
        return [_strip_names(v) for v in cfg]
    return cfg


_ROUNDTRIP_OPTS = {"activation": "relu", "recurrent_activation": "hard_sigmoid",
                   "use_bias": True, "kernel_initializer": "ones",
                   "dropout": 0.25}


@pytest.mark.parametrize("kind", KINDS)
def test_config_roundtrip(kind, rng):
    rl = build_layer(rb.layers, kind, _ROUNDTRIP_OPTS, return_sequences=True,
                     go_backwards=True, zero_output_for_mask=True)
    cfg = rl.get_config()
    rl2 = type(rl).from_config(copy.deepcopy(cfg))  # Keras' from_config mutates
    assert type(rl2) is type(rl)
    assert _strip_names(rl2.get_config()) == _strip_names(cfg)
    for key in ("return_sequences", "go_backwards", "zero_output_for_mask"):
        assert cfg[key] is True and getattr(rl2, key) is True
    x = make_x(rng)
    rl.build(x.shape)
    rl2.build(x.shape)
    w = random_weights([np.shape(v) for v in rl.get_weights()], rng)
    rl.set_weights(w)
    rl2.set_weights(w)
    np.testing.assert_allclose(rl2(x), rl(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(
    "kind,units,features,expected",
    [("LSTM", 128, 64, 98_816), ("GRU", 256, 64, 247_296), ("SimpleRNN", 128, 256, 49_280)],
)
def test_param_counts_keras_guide(kind, units, features, expected):
    kl = getattr(KERAS_LAYERS, kind)(units)
    rl = getattr(rb.layers, kind)(units)
    kl.build((None, 10, features))
    rl.build((2, 10, features))
    assert kl.count_params() == expected  # sanity of the reference
    assert sum(np.asarray(w).size for w in rl.get_weights()) == expected
    assert [tuple(np.shape(w)) for w in rl.get_weights()] == [
        tuple(w.shape) for w in kl.get_weights()
    ]
    assert hasattr(rl, "count_params"), "rnnbook layers should have count_params()"
    assert rl.count_params() == expected
