"""Hand-written BPTT of the fused SimpleRNN / GRU / LSTM loops (``rnnbook.recurrent.*_vjp``).

Oracles:

* central finite differences in float64 of ``sum(ct * outputs)`` w.r.t. every entry of x, the initial states and
  every weight, for the full product kind x mask x go_backwards x return_sequences x zero_output_for_mask x
  use_bias (cotangents random, some of them None), plus every activation the backward knows;
* torch autograd through Keras 3 (torch backend): same weights, inputs and initial states (tensors requiring
  grad), loss = sum(outputs * W) + sum(states * W'), ``.grad`` of x, the states and the Keras weights (1e-4);
* end to end under ``rb.autodiff.GradientTape`` (once that module exists): the layer's gradient equals the VJP
  and the gradient through the reference loop ``RNN(cell, unroll=True)`` recorded op by op.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import activations, ops  # noqa: E402
from rnnbook.recurrent import (ACT_GRADS, fused_grad_ok, fused_ok, gru_fused, gru_vjp, lstm_fused,  # noqa: E402
                               lstm_vjp, simple_rnn_fused, simple_rnn_vjp)

B, T = 3, 5
MASKS = {
    "none": None,
    # lengths 5, 3, 1
    "right_padded": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
    # leading masked step + holes; holes + trailing; a fully masked sample
    "arbitrary": np.array([[0, 1, 1, 0, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], bool),
}
KINDS = ["SimpleRNN", "GRU", "GRU_v1", "LSTM"]          # GRU: reset_after=True, GRU_v1: reset_after=False
GATES = {"SimpleRNN": 1, "GRU": 3, "GRU_v1": 3, "LSTM": 4}
# which cotangents are given: (last_output, outputs, states...); 0 = None
CT_PATTERNS = [(1, 1, 1, 1), (0, 1, 1, 0), (1, 0, 0, 1), (0, 0, 1, 1), (1, 1, 0, 0), (0, 1, 0, 1)]


def n_states(kind):
    return 2 if kind == "LSTM" else 1


def make_args(kind, rng, use_bias=True, D=2, U=2, dtype="float64", b=B, t=T, scale=0.6):
    """Positional arrays of the fused op: x, h0, (c0), kernel, recurrent_kernel, bias."""
    g = GATES[kind] * U
    x = rng.standard_normal((b, t, D))
    states = [rng.uniform(-0.8, 0.8, (b, U)) for _ in range(n_states(kind))]
    K, R = rng.uniform(-scale, scale, (D, g)), rng.uniform(-scale, scale, (U, g))
    bias = None
    if use_bias:
        bias = rng.uniform(-scale, scale, (2, g) if kind == "GRU" else (g,))
    return [None if a is None else a.astype(dtype) for a in [x, *states, K, R, bias]]


def op_of(kind):
    return {"SimpleRNN": (simple_rnn_fused, simple_rnn_vjp), "LSTM": (lstm_fused, lstm_vjp),
            "GRU": (gru_fused, gru_vjp), "GRU_v1": (gru_fused, gru_vjp)}[kind]


def options(kind, **kw):
    if kind == "GRU_v1":
        kw["reset_after"] = False
    if kind == "SimpleRNN":
        kw.pop("recurrent_activation", None)
    return kw


def leaves(out):
    last, outputs, states = out
    return [last, outputs, *states]


def random_cts(out, rng, pattern):
    flat = leaves(out)
    cts = [rng.standard_normal(o.shape).astype(o.dtype) if p else None for o, p in zip(flat, pattern)]
    return cts, (cts[0], cts[1], cts[2:])


def loss(op, args, kw, cts):
    return sum(float((np.asarray(o, np.float64) * c).sum()) for o, c in zip(leaves(op(*args, **kw)), cts)
               if c is not None)


def numeric_grads(op, args, kw, cts, eps=1e-6):
    grads = []
    for a in args:
        if a is None:
            grads.append(None)
            continue
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss(op, args, kw, cts)
            a[idx] = old - eps
            down = loss(op, args, kw, cts)
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def assert_grads_close(got, want, atol, rtol=0, names=None):
    assert len(got) >= len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        name = names[i] if names else i
        if w is None:
            assert g is None, f"{name}: expected no cotangent"
            continue
        assert g is not None and g.shape == w.shape, f"{name}: shape {None if g is None else g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, err_msg=str(name))


# ----------------------------------------------------------------------------------------------------------------
# finite differences, float64, every combination
# ----------------------------------------------------------------------------------------------------------------
FD_CASES = list(itertools.product(KINDS, MASKS, [False, True], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("case", range(len(FD_CASES)),
                         ids=["-".join(map(str, c)) for c in FD_CASES])
def test_vjp_matches_finite_differences(case):
    kind, mask_name, go_backwards, return_sequences, zero_output, use_bias = FD_CASES[case]
    rng = np.random.default_rng(case)
    op, vjp = op_of(kind)
    args = make_args(kind, rng, use_bias)
    kw = options(kind, mask=MASKS[mask_name], go_backwards=go_backwards, return_sequences=return_sequences,
                 zero_output_for_mask=zero_output)
    out, saved = op(*args, keep=True, **kw)
    for o, p in zip(leaves(out), leaves(op(*args, **kw))):     # the kept forward computes the same outputs
        np.testing.assert_array_equal(o, p)
    pattern = CT_PATTERNS[case % len(CT_PATTERNS)][:2 + n_states(kind)]
    cts, ct = random_cts(out, rng, pattern)
    got = vjp(ct, saved, *args)
    assert len(got) == len(args)
    want = numeric_grads(op, args, kw, cts)
    assert_grads_close(got, want, atol=1e-7, rtol=1e-6)


ACTS = [(a, r) for a in ACT_GRADS for r in (ops.sigmoid, activations.hard_sigmoid)]
ACTS += [(ops.tanh, r) for r in ACT_GRADS if r not in (ops.sigmoid, activations.hard_sigmoid)]
ACT_CASES = [(k, a, r) for k in KINDS for a, r in ACTS if k != "SimpleRNN" or r is ops.sigmoid]


@pytest.mark.parametrize("kind,act,ract", ACT_CASES, ids=[f"{k}-{a.__name__}-{r.__name__}" for k, a, r in ACT_CASES])
def test_vjp_activations_finite_differences(kind, act, ract):
    rng = np.random.default_rng(7)
    op, vjp = op_of(kind)
    args = make_args(kind, rng, t=4, scale=0.9)
    kw = options(kind, activation=act, recurrent_activation=ract, mask=MASKS["arbitrary"][:, :4],
                 go_backwards=True)
    out, saved = op(*args, keep=True, **kw)
    cts, ct = random_cts(out, rng, (1,) * (2 + n_states(kind)))
    want = numeric_grads(op, args, kw, cts)
    assert_grads_close(vjp(ct, saved, *args), want, atol=2e-6, rtol=1e-5)


def test_vjp_all_cotangents_none_and_float32():
    rng = np.random.default_rng(3)
    for kind in KINDS:
        op, vjp = op_of(kind)
        args = make_args(kind, rng, dtype="float32")
        out, saved = op(*args, keep=True, **options(kind))
        got = vjp((None, None, [None] * n_states(kind)), saved, *args)
        for g, a in zip(got, args):
            assert g.dtype == a.dtype and not g.any()


def test_vjp_extra_positional_arguments_get_none():
    "The CuDNN layers pass the activations positionally: one None per extra positional argument."
    rng = np.random.default_rng(4)
    args = make_args("LSTM", rng)
    out, saved = lstm_fused(*args, ops.tanh, ops.sigmoid, keep=True)
    got = lstm_vjp((out[0], None, [None, None]), saved, *args, ops.tanh, ops.sigmoid)
    assert len(got) == len(args) + 2 and got[-1] is None and got[-2] is None


def test_vjp_does_not_modify_cotangents():
    rng = np.random.default_rng(5)
    for kind in KINDS:
        op, vjp = op_of(kind)
        args = make_args(kind, rng, b=1, U=1)            # (U, B) transposes of (1, 1) cotangents are contiguous
        out, saved = op(*args, keep=True, **options(kind))
        cts, ct = random_cts(out, rng, (1,) * (2 + n_states(kind)))
        before = [c.copy() for c in cts]
        vjp(ct, saved, *args)
        for c, b in zip(cts, before):
            np.testing.assert_array_equal(c, b)


# ----------------------------------------------------------------------------------------------------------------
# torch autograd through Keras 3
# ----------------------------------------------------------------------------------------------------------------
KERAS_CASES = list(itertools.product(KINDS, MASKS, [False, True], [False, True], [False, True], [False, True]))


def keras_layer(kind, units, use_bias, **kw):
    import keras
    cls = {"SimpleRNN": keras.layers.SimpleRNN, "LSTM": keras.layers.LSTM,
           "GRU": keras.layers.GRU, "GRU_v1": keras.layers.GRU}[kind]
    if kind.startswith("GRU"):
        kw["reset_after"] = kind == "GRU"
    return cls(units, use_bias=use_bias, return_state=True, **kw)


@pytest.mark.parametrize("case", range(len(KERAS_CASES)), ids=["-".join(map(str, c)) for c in KERAS_CASES])
def test_vjp_matches_torch_autograd_through_keras(case):
    import torch
    torch.set_num_threads(1)
    kind, mask_name, go_backwards, return_sequences, zero_output, use_bias = KERAS_CASES[case]
    rng = np.random.default_rng(100 + case)
    U = 3
    args = make_args(kind, rng, use_bias, D=4, U=U, dtype="float32")
    x, states, weights = args[0], args[1:1 + n_states(kind)], [a for a in args[1 + n_states(kind):] if a is not None]
    mask = MASKS[mask_name]

    kl = keras_layer(kind, U, use_bias, go_backwards=go_backwards, return_sequences=return_sequences,
                     zero_output_for_mask=zero_output)
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    kl(xt[:, :1].detach(), initial_state=[s.detach() for s in st])
    kl.set_weights(weights)
    call = {"initial_state": st}
    if mask is not None:
        call["mask"] = torch.tensor(mask)
    kout = kl(xt, **call)
    w_out = [rng.standard_normal(tuple(o.shape)).astype("float32") for o in kout]
    torch_loss = sum((o * torch.tensor(w)).sum() for o, w in zip(kout, w_out))
    torch_loss.backward()
    want = [xt.grad.numpy()] + [s.grad.numpy() for s in st]
    want += [v.value.grad.numpy() if v.value.grad is not None else np.zeros(v.shape, "float32")
             for v in kl.trainable_weights]

    op, vjp = op_of(kind)
    kw = options(kind, mask=mask, go_backwards=go_backwards, return_sequences=return_sequences,
                 zero_output_for_mask=zero_output)
    out, saved = op(*args, keep=True, **kw)
    np.testing.assert_allclose(out[1] if return_sequences else out[0], kout[0].detach().numpy(), atol=1e-5)
    # Keras' output is the sequence or the last output: give its cotangent to either of our two leaves
    seq_ct = w_out[0] if return_sequences else (w_out[0][:, None] if case % 2 else None)
    last_ct = None if (return_sequences or case % 2) else w_out[0]
    got = vjp((last_ct, seq_ct, w_out[1:]), saved, *args)
    got = [g for g in got if g is not None]
    assert_grads_close(got, want, atol=1e-4, rtol=1e-4,
                       names=["x", *[f"state{i}" for i in range(len(st))], "kernel", "recurrent_kernel", "bias"])


LSTM_CASES = [i for i, c in enumerate(KERAS_CASES) if c[0] == "LSTM"]


@pytest.mark.parametrize("library", ["0", "openblas", "mkl"], ids=["numpy-passes", "compiled-openblas", "compiled-mkl"])
@pytest.mark.parametrize("case", LSTM_CASES, ids=["-".join(map(str, KERAS_CASES[i][1:])) for i in LSTM_CASES])
def test_lstm_every_path_matches_torch_autograd_through_keras(case, library, monkeypatch):
    """The float32 LSTM's three ways through its steps: the NumPy passes (RNNBOOK_COMPILED=0) and the compiled
    kernel with each product library, cut into one slice per core even at batch 3, against Keras' gradients."""
    from rnnbook import compiled
    if library != "0" and isinstance(compiled._setup(library), str):
        pytest.skip(compiled._setup(library))
    monkeypatch.setenv("RNNBOOK_COMPILED", library)
    monkeypatch.setattr(compiled, "SPLIT_FLOPS", 0)
    monkeypatch.setattr(compiled, "MIN_SLICE", 1)
    x = np.zeros((3, 5, 4), "float32")
    assert compiled.reason('lstm', x, ops.tanh, ops.sigmoid) == (
        "RNNBOOK_COMPILED=0" if library == "0" else None)
    test_vjp_matches_torch_autograd_through_keras(case)


INFERENCE_CASES = [i for i, c in enumerate(KERAS_CASES) if c[0] in ("GRU", "SimpleRNN")]


@pytest.mark.parametrize("library", ["openblas", "mkl"], ids=["compiled-openblas", "compiled-mkl"])
@pytest.mark.parametrize("case", INFERENCE_CASES, ids=["-".join(map(str, KERAS_CASES[i])) for i in INFERENCE_CASES])
def test_gru_and_simple_rnn_compiled_inference_match_keras(case, library, monkeypatch):
    """Float32 inference of GRU (reset_after=True) and SimpleRNN by the compiled kernel, with each product library,
    cut into one slice per core even at batch 3: outputs and final states equal Keras' (masks included)."""
    import torch
    from rnnbook import compiled
    if isinstance(compiled._setup(library), str):
        pytest.skip(compiled._setup(library))
    monkeypatch.setenv("RNNBOOK_COMPILED", library)
    monkeypatch.setattr(compiled, "SPLIT_FLOPS", 0)
    monkeypatch.setattr(compiled, "MIN_SLICE", 1)
    kind, mask_name, go_backwards, return_sequences, zero_output, use_bias = KERAS_CASES[case]
    rng = np.random.default_rng(300 + case)
    args = make_args(kind, rng, use_bias, D=4, U=3, dtype="float32")
    x, state = args[0], args[1]
    mask = MASKS[mask_name]
    assert compiled.reason({"GRU": "gru", "SimpleRNN": "simple_rnn"}[kind], x, ops.tanh) is None
    kl = keras_layer(kind, 3, use_bias, go_backwards=go_backwards, return_sequences=return_sequences,
                     zero_output_for_mask=zero_output)
    kl(torch.tensor(x[:, :1]), initial_state=[torch.tensor(state)])
    kl.set_weights([a for a in args[2:] if a is not None])
    call = {"initial_state": [torch.tensor(state)]}
    if mask is not None:
        call["mask"] = torch.tensor(mask)
    with torch.no_grad():
        want = [o.numpy() for o in kl(torch.tensor(x), **call)]
    op, _ = op_of(kind)
    last, outputs, states = op(*args, **options(kind, mask=mask, go_backwards=go_backwards,
                                                  return_sequences=return_sequences, zero_output_for_mask=zero_output))
    np.testing.assert_allclose(outputs if return_sequences else last, want[0], atol=1e-5)
    np.testing.assert_allclose(states[0], want[1], atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# the layers: which loop runs
# ----------------------------------------------------------------------------------------------------------------
def test_fused_ok_activation_rules():
    x = np.zeros((2, 3, 4), "float32")
    lstm = rb.layers.LSTM(3, activation="softsign", recurrent_activation="hard_sigmoid")
    lstm.build(x.shape)
    assert fused_grad_ok(lstm) and fused_ok(lstm, False)
    custom = rb.layers.GRU(3, activation=lambda z: ops.tanh(z) * 2)
    custom.build(x.shape)
    assert not fused_grad_ok(custom) and fused_ok(custom, False)   # fused forward; reference loop under a tape
    soft = rb.layers.SimpleRNN(3, activation="softmax")
    soft.build(x.shape)
    assert not fused_ok(soft, False)                                # normalises over units: reference loop
    ref = rb.layers.RNN(rb.layers.SimpleRNNCell(3, activation="softmax"))
    ref.build(x.shape)
    ref.set_weights(soft.get_weights())
    xr = np.random.default_rng(0).standard_normal(x.shape).astype("float32")
    np.testing.assert_allclose(soft(xr), ref(xr), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# end to end under a GradientTape
# ----------------------------------------------------------------------------------------------------------------
def _cell(kind, units, **kw):
    if kind == "SimpleRNN":
        return rb.layers.SimpleRNNCell(units, **kw)
    if kind == "LSTM":
        return rb.layers.LSTMCell(units, **kw)
    return rb.layers.GRUCell(units, reset_after=kind == "GRU", **kw)


def _layer(kind, units, **kw):
    if kind == "SimpleRNN":
        return rb.layers.SimpleRNN(units, **kw)
    if kind == "LSTM":
        return rb.layers.LSTM(units, **kw)
    return rb.layers.GRU(units, reset_after=kind == "GRU", **kw)


def _tape_grads(layer, x, states, w_out, mask=None, training=False):
    from rnnbook import autodiff
    xv = rb.Variable(x)
    sv = [rb.Variable(s) for s in states]
    with autodiff.GradientTape() as tape:
        out = layer(xv, initial_state=sv, mask=mask, training=training)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = None
        for o, w in zip(outs, w_out):
            term = ops.sum(ops.multiply(o, w))
            loss = term if loss is None else ops.add(loss, term)
    grads = tape.gradient(loss, [xv, *sv, *layer.trainable_weights])
    ops_used = {getattr(getattr(o, "_node", None), "op", None) for o in outs}
    fused_used = bool(ops_used & {simple_rnn_fused, lstm_fused, gru_fused})
    return [np.asarray(rb.backend.unwrap(o)) for o in outs], grads, fused_used


TAPE_CASES = [(k, m, gb, rs) for k in KINDS for m, gb, rs in
              [("none", False, True), ("arbitrary", True, False), ("right_padded", False, False),
               ("arbitrary", False, True)]]


@pytest.mark.parametrize("kind,mask_name,go_backwards,return_sequences", TAPE_CASES)
def test_tape_layer_equals_vjp_and_reference_loop(kind, mask_name, go_backwards, return_sequences):
    import rnnbook.autodiff  # noqa: F401
    rng = np.random.default_rng(11)
    U = 3
    args = make_args(kind, rng, D=4, U=U, dtype="float64")
    x, states = args[0], args[1:1 + n_states(kind)]
    mask = MASKS[mask_name]
    kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, dtype="float64")
    fused = _layer(kind, U, **kw)
    ref = rb.layers.RNN(_cell(kind, U, dtype="float64"), unroll=True, **kw)
    fused.build(x.shape)
    ref.build(x.shape)
    weights = [a for a in args[1 + n_states(kind):]]
    fused.set_weights(weights)
    ref.set_weights(weights)
    assert fused_ok(fused, False) and not fused_ok(ref, False)
    y = fused(x, initial_state=states, mask=mask)
    w_out = [rng.standard_normal(np.shape(o)) for o in y]
    out_f, g_f, used_f = _tape_grads(fused, x, states, w_out, mask)
    out_r, g_r, used_r = _tape_grads(ref, x, states, w_out, mask)
    assert used_f and not used_r
    for a, b in zip(out_f, out_r):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert_grads_close(g_f, g_r, atol=1e-10)
    # and the layer's gradient is the VJP's
    op, vjp = op_of(kind)
    out, saved = op(*args, keep=True, **options(kind, mask=mask, go_backwards=go_backwards,
                                                return_sequences=return_sequences))
    ct = (None if return_sequences else w_out[0], w_out[0] if return_sequences else None, w_out[1:])
    assert_grads_close(g_f, vjp(ct, saved, *args), atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_tape_input_dropout_recorded(kind):
    "Input dropout while training: the mask applied by a recorded multiply, the same mask in both passes."
    import rnnbook.autodiff  # noqa: F401
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 6, 5))
    kw = dict(return_sequences=True, dtype="float64")
    fused = _layer(kind, 3, dropout=0.4, seed=5, **kw)
    ref = rb.layers.RNN(_cell(kind, 3, dropout=0.4, seed=5, dtype="float64"), **kw)
    fused.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(fused.get_weights())
    assert fused_ok(fused, True)
    states = [np.zeros((4, 3)) for _ in range(n_states(kind))]
    w_out = [rng.standard_normal((4, 6, 3))]
    out_f, g_f, used_f = _tape_grads(fused, x, states, w_out, training=True)
    out_r, g_r, used_r = _tape_grads(ref, x, states, w_out, training=True)
    assert used_f and not used_r
    np.testing.assert_allclose(out_f[0], out_r[0], atol=1e-12)
    assert_grads_close(g_f, g_r, atol=1e-10)
    assert (g_f[0] == 0).any()                              # dropped inputs get no gradient


def test_tape_unknown_activation_takes_reference_loop():
    from rnnbook import autodiff
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 4, 3))
    act = lambda z: ops.multiply(ops.tanh(z), 2.0)             # noqa: E731 (a user's own activation)
    layer = rb.layers.SimpleRNN(3, activation=act, return_sequences=True, dtype="float64")
    ref = rb.layers.RNN(rb.layers.SimpleRNNCell(3, activation=act, dtype="float64"), return_sequences=True)
    layer.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())
    assert fused_ok(layer, False)
    with autodiff.GradientTape():
        assert not fused_ok(layer, False)
    w_out = [rng.standard_normal((2, 4, 3))]
    _, g, used = _tape_grads(layer, x, [np.zeros((2, 3))], w_out)
    _, g_ref, _ = _tape_grads(ref, x, [np.zeros((2, 3))], w_out)
    assert not used
    assert_grads_close(g, g_ref, atol=1e-12)
