"""Merge layers (`Concatenate`, `Add`, `Multiply`, `Average` and their functional forms), `LayerNormalization`,
`Attention` and `AdditiveAttention` against Keras 3 (torch backend).

For each layer, across its arguments and masks: outputs and output masks (1e-5), weight layout, configs both
ways and round trips, gradients of inputs and weights against torch autograd through Keras (1e-4, float32 and
float64) and against finite differences on the tape, CuPy arrays (the strict emulator of tests/fakes), and the
layers inside functional models (`rb.Input` / `rb.Model`, several inputs, masks from `Embedding`)."""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.backend import get_keras_mask, set_keras_mask  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import ops  # noqa: E402
from rnnbook.autodiff import check_gradients  # noqa: E402
from rnnbook.backend import flatten, is_cupy_array, to_numpy, unwrap  # noqa: E402
from rnnbook.layer import get_mask, with_mask, serialize_layer, deserialize_layer  # noqa: E402
from rnnbook import merging, attention  # noqa: E402
from rnnbook.merging import (Add, Average, Multiply, Concatenate, LayerNormalization,  # noqa: E402
                             add, average, multiply, concatenate)
from rnnbook.attention import Attention, AdditiveAttention  # noqa: E402

torch.set_num_threads(1)
FWD, GRAD = 1e-5, 1e-4
K = keras.layers
RB = {**{n: getattr(merging, n) for n in merging.__all__}, **{n: getattr(attention, n) for n in attention.__all__}}
B, T, F = 3, 5, 4
M1 = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
M2 = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)


def data(shape, seed=1, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def knp(x):
    return keras.ops.convert_to_numpy(x)


def as_json(config):
    return json.loads(json.dumps(config))


def make(name, kwargs, dtype="float32"):
    "A Keras and an rnnbook layer of class `name` with the same arguments."
    kwargs = {**kwargs, "dtype": dtype} if dtype != "float32" else dict(kwargs)
    return getattr(K, name)(**kwargs), RB[name](**kwargs)


def same_weights(k, r, shapes):
    "Build both for `shapes`, random weights (Keras') copied into rnnbook: the same layout required."
    k.build(shapes)
    r.build(shapes)
    r.built = True
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    assert [w.name for w in r.weights] == [w.name for w in k.weights]
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 1.5, tuple(w.shape)).astype(w.dtype) for w in k.get_weights()]
    k.set_weights(weights)
    r.set_weights(weights)


def keras_call(k, xs, masks, grad_weights=None, **kw):
    "Keras' outputs, output masks, and (with `grad_weights`) gradients of sum(out_i * W_i) by torch autograd."
    ts = [torch.tensor(x, requires_grad=grad_weights is not None) for x in xs]
    for t, m in zip(ts, masks or []):
        if m is not None:
            set_keras_mask(t, torch.tensor(m))
    out = k(ts if len(ts) > 1 or not isinstance(k, K.LayerNormalization) else ts[0], **kw)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    out_masks = [get_keras_mask(o) for o in outs]
    out_masks = [None if m is None else knp(m) for m in out_masks]
    grads = None
    if grad_weights is not None:
        loss = sum((o * torch.tensor(w)).sum() for o, w in zip(outs, grad_weights))
        loss.backward()
        grads = [t.grad.numpy() if t.grad is not None else np.zeros(t.shape, t.dtype) for t in ts]
        grads += [v.value.grad.numpy() for v in k.trainable_weights]
    return [o.detach().numpy() for o in outs], out_masks, grads


def rb_call(r, xs, masks, **kw):
    "rnnbook's outputs and output masks, the masks riding on the inputs."
    masks = list(masks or []) + [None] * (len(xs) - len(masks or []))
    xs = [x if m is None else with_mask(x, m) for x, m in zip(xs, masks)]
    out = r(xs if len(xs) > 1 or not isinstance(r, LayerNormalization) else xs[0], **kw)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(unwrap(o)) for o in outs], [get_mask(o) for o in outs]


def rb_grads(r, xs, masks, grad_weights, **kw):
    "Tape gradients of sum(out_i * W_i) by the inputs and the trainable weights (masks passed as `mask=`)."
    vs = [rb.Variable(x, dtype=str(x.dtype)) for x in xs]
    if masks is not None and any(m is not None for m in masks):
        kw["mask"] = list(masks) if len(xs) > 1 else masks[0]
    with rb.GradientTape() as tape:
        out = r(vs if len(vs) > 1 or not isinstance(r, LayerNormalization) else vs[0], **kw)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        loss = None
        for o, w in zip(outs, grad_weights):
            term = ops.sum(ops.multiply(o, w))
            loss = term if loss is None else ops.add(loss, term)
    return tape.gradient(loss, vs + r.trainable_weights)


def compare(name, kwargs, xs, masks=None, dtype="float32", grads=True, **call_kw):
    "Outputs, output masks and gradients of Keras' and rnnbook's layer `name` on the same inputs and weights."
    xs = [x.astype(dtype) for x in xs]
    k, r = make(name, kwargs, dtype)
    shapes = [tuple(x.shape) for x in xs] if len(xs) > 1 or name != "LayerNormalization" else tuple(xs[0].shape)
    same_weights(k, r, shapes)
    kouts, kmasks, _ = keras_call(k, xs, masks, **call_kw)
    routs, rmasks = rb_call(r, xs, masks, **call_kw)
    assert len(kouts) == len(routs)
    for a, b in zip(routs, kouts):
        assert a.dtype == np.dtype(dtype)
        # Keras 3.15 on torch returns float32 attention for float64 inputs (and float64 layers): its values
        # are compared to rnnbook's float64 at the float32 tolerance
        assert b.dtype == a.dtype or ("Attention" in name and b.dtype == np.float32), (a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=FWD, atol=FWD)
    for a, b in zip(rmasks, kmasks):
        assert (a is None) == (b is None), (a, b)
        if a is not None:
            np.testing.assert_array_equal(to_numpy(a), b)
    if not grads:
        return
    rng = np.random.default_rng(5)
    w = [rng.standard_normal(o.shape).astype(dtype) for o in kouts]
    _, _, kg = keras_call(k, xs, masks, grad_weights=w, **call_kw)
    rg = rb_grads(r, xs, masks, w, **call_kw)
    assert len(rg) == len(kg)
    for i, (a, b) in enumerate(zip(rg, kg)):
        np.testing.assert_allclose(to_numpy(a), b, rtol=GRAD, atol=GRAD, err_msg=f"gradient {i}")


# ---- merge layers --------------------------------------------------------------------------------------------

MASKINGS = {"none": None, "both": [M1, M2], "first": [M1, None], "second": [None, M2]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masking", sorted(MASKINGS))
@pytest.mark.parametrize("name,kwargs", [("Add", {}), ("Average", {}), ("Multiply", {}), ("Concatenate", {}),
                                         ("Concatenate", {"axis": 1}), ("Concatenate", {"axis": -2})])
def test_merge_layers_match_keras(name, kwargs, masking, dtype):
    xs = [data((B, T, F), 1), data((B, T, F), 2)]
    compare(name, kwargs, xs, MASKINGS[masking], dtype)


@pytest.mark.parametrize("name", ["Add", "Average", "Multiply", "Concatenate"])
def test_three_inputs_and_broadcasting_match_keras(name):
    xs = [data((B, T, F), 1), data((B, T, F), 2), data((B, T, F), 3)]
    compare(name, {}, xs, [M1, M2, M1 & M2])
    if name != "Concatenate":
        compare(name, {}, [data((B, T, F), 1), data((B, 1, F), 2)])      # size-1 axes broadcast
        compare(name, {}, [data((B, T, F), 1), data((B, F), 2)], grads=False)   # ranks differ: expanded at 1


def test_concatenate_of_different_widths_and_lengths():
    compare("Concatenate", {}, [data((B, T, 2), 1), data((B, T, 5), 2)], [M1, M2])
    compare("Concatenate", {"axis": 1}, [data((B, 2, F), 1), data((B, 6, F), 2)], [M1[:, :2], None])


def test_functional_forms_are_the_layers():
    x1, x2 = data((B, T, F), 1), data((B, T, F), 2)
    for fn, cls, kfn in ((add, Add, keras.layers.add), (average, Average, keras.layers.average),
                         (multiply, Multiply, keras.layers.multiply)):
        np.testing.assert_allclose(fn([x1, x2]), cls()([x1, x2]), rtol=0, atol=0)
        np.testing.assert_allclose(fn([x1, x2]), knp(kfn([x1, x2])), rtol=FWD, atol=FWD)
        y = fn([with_mask(x1, M1), with_mask(x2, M2)], name="merged")
        np.testing.assert_array_equal(get_mask(y), M1 | M2)
    np.testing.assert_allclose(concatenate([x1, x2], axis=1), knp(keras.layers.concatenate([x1, x2], axis=1)),
                               rtol=FWD, atol=FWD)


def test_merge_errors_name_what_is_wrong():
    x = data((B, T, F))
    with pytest.raises(ValueError, match="not a list of shapes"):
        Add()(x)
    with pytest.raises(ValueError, match="different batch sizes"):
        Add()([x, data((2, T, F))])
    with pytest.raises(ValueError, match="incompatible shapes"):
        Add()([x, data((B, T, 3))])
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        Concatenate()([x, data((B, 2, F))])
    with pytest.raises(ValueError, match="should have the same length"):
        Add()([x, x], mask=[M1])
    with pytest.raises(ValueError, match="received axis="):
        Concatenate(axis=1.5)


# ---- LayerNormalization ---------------------------------------------------------------------------------------

LN_CASES = [({}, (B, T, F)), ({"epsilon": 1e-5}, (B, F)), ({"axis": 1}, (B, F)), ({"axis": [1, 2]}, (B, T, F)),
            ({"axis": (-1, 1)}, (B, T, F)), ({"center": False}, (B, T, F)), ({"scale": False}, (B, T, F)),
            ({"center": False, "scale": False}, (B, T, F)), ({"axis": [-2, -1]}, (2, 3, T, F))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(LN_CASES)))
def test_layer_normalization_matches_keras(case, dtype):
    kwargs, shape = LN_CASES[case]
    compare("LayerNormalization", kwargs, [data(shape) * 3 + 1], None, dtype)


def test_layer_normalization_over_a_middle_axis():
    "Keras on torch cannot (F.layer_norm normalises trailing axes only): checked against NumPy."
    x = data((B, T, F)) * 3 + 1
    r = LayerNormalization(axis=1)
    r.build(x.shape)
    gamma, beta = data((T,), 2), data((T,), 3)
    r.set_weights([gamma, beta])
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma[:, None] + beta[:, None]
    np.testing.assert_allclose(r(x), expected, rtol=FWD, atol=FWD)


def test_layer_normalization_passes_masks_and_rms_scaling():
    compare("LayerNormalization", {}, [data((B, T, F))], [M1])
    with pytest.warns(UserWarning, match="rms_scaling"):
        compare("LayerNormalization", {"rms_scaling": True}, [data((B, T, F)) + 2], None)


def test_layer_normalization_float16_in_float32():
    k, r = make("LayerNormalization", {})
    x = data((B, F)).astype("float16")
    y = r(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, knp(k(x)), rtol=1e-3, atol=1e-3)


# ---- attention -------------------------------------------------------------------------------------------------

ATT_CASES = {
    "dot": ("Attention", {}),
    "dot_scaled": ("Attention", {"use_scale": True}),
    "concat": ("Attention", {"score_mode": "concat"}),
    "concat_scaled": ("Attention", {"score_mode": "concat", "use_scale": True}),
    "additive": ("AdditiveAttention", {}),
    "additive_unscaled": ("AdditiveAttention", {"use_scale": False}),
}
ATT_MASKS = {"none": None, "query": [M1[:, :3], None], "value": [None, M2], "both": [M1[:, :3], M2]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masking", sorted(ATT_MASKS))
@pytest.mark.parametrize("case", sorted(ATT_CASES))
def test_attention_matches_keras(case, masking, dtype):
    name, kwargs = ATT_CASES[case]
    q, v = data((B, 3, F), 1), data((B, T, F), 2)
    compare(name, kwargs, [q, v], ATT_MASKS[masking], dtype, return_attention_scores=True)


@pytest.mark.parametrize("case", sorted(ATT_CASES))
def test_attention_with_key_and_causal_mask_matches_keras(case):
    name, kwargs = ATT_CASES[case]
    q, v, k = data((B, T, F), 1), data((B, T, F), 2), data((B, T, F), 3)
    compare(name, kwargs, [q, v, k], [M1, M2])
    compare(name, kwargs, [q, v], [M1, M2], use_causal_mask=True, return_attention_scores=True)
    compare(name, kwargs, [q, q], None, use_causal_mask=True)


def test_attention_dropout_only_in_training():
    att = Attention(dropout=0.5, seed=3)
    q, v = data((B, 3, F), 1), data((B, T, F), 2)
    _, a = att([q, v], return_attention_scores=True)
    np.testing.assert_allclose(a.sum(-1), 1, rtol=1e-6)                  # inference: no dropout
    _, a = att([q, v], training=True, return_attention_scores=True)
    assert (a == 0).any() and not np.allclose(a.sum(-1), 1)


def test_attention_errors_name_what_is_wrong():
    q = data((B, 3, F))
    with pytest.raises(ValueError, match="must be called on a list of inputs"):
        Attention()(q)
    with pytest.raises(ValueError, match="Received length: 4"):
        Attention()([q, q, q, q])
    with pytest.raises(ValueError, match="mask must be a list"):
        Attention()([q, q], mask=M1[:, :3])
    with pytest.raises(ValueError, match="Received: score_mode=general"):
        Attention(score_mode="general")


# ---- configs ----------------------------------------------------------------------------------------------------

CONFIG_CASES = {
    "Add": ({}, [(B, T, F)] * 2), "Average": ({"name": "avg"}, [(B, T, F)] * 2),
    "Multiply": ({"trainable": False}, [(B, T, F)] * 2), "Concatenate": ({"axis": 1}, [(B, T, F)] * 2),
    "LayerNormalization": ({"axis": [1, 2], "epsilon": 1e-5, "center": False, "gamma_regularizer": "l2",
                            "beta_constraint": "non_neg"}, (B, T, F)),
    "Attention": ({"use_scale": True, "score_mode": "concat", "dropout": 0.1, "seed": 4}, [(B, 3, F), (B, T, F)]),
    "AdditiveAttention": ({"use_scale": False, "dropout": 0.2}, [(B, 3, F), (B, T, F)]),
}


def _same_config(a, b):
    a, b = as_json(a), as_json(b)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-7), key
        else:
            assert a[key] == b[key], (key, a[key], b[key])


@pytest.mark.parametrize("built", [False, True])
@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_configs_both_ways(name, built):
    kwargs, shapes = CONFIG_CASES[name]
    k, r = make(name, {"name": f"my_{name.lower()}", **kwargs})
    if built:
        k.build(shapes)
        r.build(shapes)
    kc, rc = as_json(k.get_config()), as_json(r.get_config())
    _same_config({**rc, "dtype": None}, {**kc, "dtype": None})           # the same keys and values but the
    assert rc["dtype"] == kc["dtype"]["config"]["name"]                    # dtype (Keras: a DTypePolicy)
    r2 = RB[name].from_config(kc)                                          # Keras -> rnnbook
    k2 = getattr(K, name).from_config(rc)                                  # rnnbook -> Keras
    _same_config(r2.get_config(), rc)
    _same_config(k2.get_config(), kc)
    _same_config(RB[name].from_config(as_json(k2.get_config())).get_config(), rc)   # round trips
    _same_config(getattr(K, name).from_config(as_json(r2.get_config())).get_config(), kc)
    again = deserialize_layer(as_json(serialize_layer(r)))                 # the nested form
    assert type(again) is RB[name]
    back = keras.saving.deserialize_keras_object(as_json(serialize_layer(r)))
    assert type(back).__name__ == name
    with pytest.raises((ValueError, TypeError), match="colour"):
        RB[name].from_config({**kc, "colour": "red"})


# ---- gradients by finite differences ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [("Add", {}), ("Average", {}), ("Multiply", {}), ("Concatenate", {"axis": 1}),
                                         ("Attention", {"use_scale": True}), ("Attention", {"score_mode": "concat"}),
                                         ("AdditiveAttention", {})])
def test_tape_gradients_match_finite_differences(name, kwargs):
    layer = RB[name](dtype="float64", **kwargs)
    x1, x2 = data((2, 3, F), 1, "float64"), data((2, 3, F), 2, "float64")
    layer([x1, x2])
    masks = [M1[:2, :3], M2[:2, :3]]
    check_gradients(lambda a, b: layer([a, b], mask=masks), x1, x2)


def test_layer_normalization_tape_gradients_match_finite_differences():
    layer = LayerNormalization(axis=[1, 2], dtype="float64")
    x = data((2, 3, F), 1, "float64")
    layer(x)
    layer.set_weights([data(w.shape, 4, "float64") for w in layer.get_weights()])
    check_gradients(layer, x)


# ---- CuPy arrays (the strict emulator) ---------------------------------------------------------------------------

@pytest.fixture
def cp():
    import fake_cupy
    with fake_cupy.installed() as module:
        yield module


GPU_CASES = [("Add", {}, 2), ("Average", {}, 2), ("Multiply", {}, 2), ("Concatenate", {"axis": 1}, 2),
             ("Concatenate", {}, 2), ("LayerNormalization", {"axis": [1, 2]}, 1),
             ("Attention", {"use_scale": True, "score_mode": "concat"}, 2), ("AdditiveAttention", {}, 3)]


@pytest.mark.parametrize("name,kwargs,n", GPU_CASES)
def test_cupy_arrays_in_cupy_arrays_out(cp, name, kwargs, n):
    xs = [data((B, T, F), i + 1) for i in range(n)]
    masks = [M1, M2, M1][:n]
    cpu, gpu = RB[name](**kwargs), RB[name](**kwargs)
    one = (lambda v: v[0]) if n == 1 else (lambda v: v)
    kw = {"return_attention_scores": True, "use_causal_mask": True} if "Attention" in name else {}
    y_cpu = cpu(one([with_mask(x, m) for x, m in zip(xs, masks)]), **kw)
    gpu(one([cp.asarray(x) for x in xs]))
    gpu.set_weights(cpu.get_weights())
    for w in gpu.weights:
        assert is_cupy_array(w.value), w.path
    y_gpu = gpu(one([with_mask(cp.asarray(x), cp.asarray(m)) for x, m in zip(xs, masks)]), **kw)
    for a, b in zip(flatten(y_gpu), flatten(y_cpu)):
        assert is_cupy_array(a)
        np.testing.assert_allclose(a.get(), b, rtol=1e-6, atol=1e-6)
    m_gpu, m_cpu = get_mask(flatten(y_gpu)[0]), get_mask(flatten(y_cpu)[0])
    assert (m_gpu is None) == (m_cpu is None)
    if m_cpu is not None:
        assert is_cupy_array(m_gpu)
        np.testing.assert_array_equal(m_gpu.get(), m_cpu)


# ---- inside functional models --------------------------------------------------------------------------------------

def _encoder_decoder(m, Input, Model, attention_cls, mask_zero=True):
    "Two token inputs (masked by Embedding), two LSTMs, attention of the decoder over the encoder, merges."
    src, tgt = Input((None,), dtype="int32", name="src"), Input((None,), dtype="int32", name="tgt")
    enc = m.LSTM(6, return_sequences=True, name="enc")(m.Embedding(20, 5, mask_zero=mask_zero, name="emb_s")(src))
    dec = m.LSTM(6, return_sequences=True, name="dec")(m.Embedding(20, 5, mask_zero=mask_zero, name="emb_t")(tgt))
    ctx = attention_cls(name="att")([dec, enc])
    h = m.Concatenate(name="cat")([dec, ctx])
    h = m.LayerNormalization(name="ln")(h)
    h = m.Add(name="res")([m.Dense(12, name="proj")(dec), h])
    h = m.Multiply(name="gate")([h, m.Dense(12, activation="sigmoid", name="g")(h)])
    h = m.Average(name="avg")([h, m.Dense(12, name="d2")(h)])
    out = m.TimeDistributed(m.Dense(3), name="head")(h)
    return Model([src, tgt], out)


class _RB:
    "rnnbook's layers and models under Keras' names, to build the same model from one function."
    def __getattr__(self, name):
        import rnnbook.layers as rl
        return RB.get(name) or getattr(rl, name)


@pytest.mark.parametrize("mask_zero", [True, False])
@pytest.mark.parametrize("attention_name", ["Attention", "AdditiveAttention"])
def test_functional_model_with_several_inputs_matches_keras(attention_name, mask_zero):
    km = _encoder_decoder(K, keras.Input, keras.Model, getattr(K, attention_name), mask_zero)
    rm = _encoder_decoder(_RB(), rb.Input, rb.Model, RB[attention_name], mask_zero)
    assert [l.name for l in rm.layers] == [l.name for l in km.layers]
    assert [w.shape for w in rm.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.5, 0.5, tuple(w.shape)).astype("float32") for w in km.get_weights()]
    km.set_weights(weights)
    rm.set_weights(weights)
    src = np.array([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [7, 8, 9, 10, 11]])
    tgt = np.array([[2, 3, 0, 0], [5, 6, 7, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(rm.predict([src, tgt], verbose=0), knp(km([src, tgt])), rtol=FWD, atol=FWD)
    back = keras.models.model_from_json(rm.to_json())                    # rnnbook's JSON read by Keras
    back.set_weights(weights)
    np.testing.assert_allclose(rm.predict([src, tgt], verbose=0), knp(back([src, tgt])), rtol=FWD, atol=FWD)
    if mask_zero:   # Keras' JSON then holds its mask operations as nodes (ExpandDims, LogicalOr, ...): see below
        return
    again = rb.models.model_from_json(km.to_json())                     # Keras' JSON read by rnnbook
    again.set_weights(weights)
    np.testing.assert_allclose(again.predict([src, tgt], verbose=0), knp(km([src, tgt])), rtol=FWD, atol=FWD)


def test_keras_json_of_a_masked_attention_model_is_read():
    km = _encoder_decoder(K, keras.Input, keras.Model, K.Attention)
    rb.models.model_from_json(km.to_json())


def test_functional_merge_of_two_inputs_trains():
    a, b = rb.Input((4,), name="a"), rb.Input((4,), name="b")
    y = rb.layers.Dense(1)(concatenate([add([a, b]), multiply([a, b]), average([a, b])]))
    model = rb.Model([a, b], y)
    model.compile(optimizer="adam", loss="mse")
    x1, x2 = data((32, 4), 1), data((32, 4), 2)
    target = (x1 * x2).sum(-1, keepdims=True)
    first = model.evaluate([x1, x2], target, verbose=0)
    model.fit([x1, x2], target, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate([x1, x2], target, verbose=0) < first
