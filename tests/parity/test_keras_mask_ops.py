"""Keras 3's mask operations as graph nodes, both ways: the `keras.src.ops` nodes Keras writes into a functional
model's config where masks meet merge, attention, pooling and `TimeDistributed` layers (`NotEqual`, `LogicalOr`,
`ExpandDims`, `ZerosLike`, `OnesLike`, the operation `Concatenate`, `Any`, `ConvertToTensor`).

Keras' JSON read by rnnbook gives the same outputs with Keras' weights, the operations stay out of `layers`, the
operation `Concatenate` never becomes the merge layer (nor the layer the operation), and rnnbook's JSON of such a
model is read back by Keras (torch backend) with the same outputs."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import functional  # noqa: E402
from rnnbook.layer import deserialize_layer, serialize_layer  # noqa: E402
from rnnbook.merging import Concatenate  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-5
K = keras.layers
IDS_A = np.array([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [7, 8, 9, 6, 1]])
IDS_B = np.array([[2, 0, 0, 0, 0], [5, 6, 7, 0, 0], [1, 1, 1, 1, 0]])
FEATS = np.random.default_rng(3).standard_normal((3, 5, 4)).astype("float32")


def ids(name):
    return keras.Input((None,), dtype="int32", name=name)


def emb(x, name):
    return K.Embedding(10, 4, mask_zero=True, name=name)(x)


def with_random_weights(km, seed=0):
    rng = np.random.default_rng(seed)
    km.set_weights([rng.uniform(-0.5, 0.5, tuple(w.shape)).astype("float32") for w in km.get_weights()])
    return km


def ops_written(km):
    "{class_name of each `keras.src.ops` node Keras writes} for model `km`."
    return {c["class_name"] for c in json.loads(km.to_json())["config"]["layers"] if ".ops." in c["module"]}


def both_ways(km, inputs):
    "Keras' JSON read by rnnbook, Keras' weights: same outputs; rnnbook's JSON read by Keras: same outputs."
    want = keras.ops.convert_to_numpy(km(inputs))
    rm = rb.models.model_from_json(km.to_json())
    rm.set_weights(km.get_weights())
    np.testing.assert_allclose(rm.predict(inputs, verbose=0), want, rtol=TOL, atol=TOL)
    assert [l.name for l in rm.layers] == [l.name for l in km.layers]     # operations are not layers
    back = keras.models.model_from_json(rm.to_json())
    back.set_weights(rm.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(inputs)), want, rtol=TOL, atol=TOL)
    assert ops_written(back) == ops_written(km)
    return rm


def merged(merge, second="masked"):
    a, b = ids("a"), (ids("b") if second == "masked" else keras.Input((None, 4), name="b"))
    other = emb(b, "eb") if second == "masked" else b
    y = getattr(K, merge)(name="merge")([emb(a, "ea"), other])
    return with_random_weights(keras.Model([a, b], K.LSTM(3, name="lstm")(y)))


@pytest.mark.parametrize("merge", ["Add", "Multiply", "Average", "Concatenate"])
def test_masked_merge_read_from_keras_json(merge):
    km = merged(merge)
    written = ops_written(km)
    assert {"NotEqual", "LogicalOr"} <= written
    if merge == "Concatenate":
        assert {"ExpandDims", "ZerosLike", "Concatenate", "Any"} <= written
    both_ways(km, [IDS_A, IDS_B])


def test_concatenate_of_a_masked_and_an_unmasked_input_uses_ones_like():
    km = merged("Concatenate", second="plain")
    assert "OnesLike" in ops_written(km)
    both_ways(km, [IDS_A, FEATS])


def test_concatenate_along_time_of_two_masked_sequences():
    a, b = ids("a"), ids("b")
    y = K.Concatenate(axis=1, name="cat")([emb(a, "ea"), emb(b, "eb")])
    km = with_random_weights(keras.Model([a, b], K.LSTM(3, name="lstm")(y)))
    both_ways(km, [IDS_A, IDS_B])


def test_three_way_add_chains_logical_or():
    a, b, c = ids("a"), ids("b"), ids("c")
    y = K.Add(name="add")([emb(a, "ea"), emb(b, "eb"), emb(c, "ec")])
    km = with_random_weights(keras.Model([a, b, c], K.GRU(3, name="gru")(y)))
    both_ways(km, [IDS_A, IDS_B, IDS_A[::-1]])


@pytest.mark.parametrize("attention", ["Attention", "AdditiveAttention"])
def test_masked_attention_passes_its_query_mask_through_convert_to_tensor(attention):
    q, v = ids("q"), ids("v")
    ctx = getattr(K, attention)(name="att")([emb(q, "eq"), emb(v, "ev")])
    km = with_random_weights(keras.Model([q, v], K.LSTM(3, name="lstm")(ctx)))
    assert "ConvertToTensor" in ops_written(km)
    both_ways(km, [IDS_B, IDS_A])


def test_masked_pooling_and_time_distributed():
    a = ids("a")
    e = emb(a, "ea")
    pooled = K.GlobalAveragePooling1D(name="gap")(K.TimeDistributed(K.Dense(3), name="td")(e))
    km = with_random_weights(keras.Model(a, K.Dense(2, name="out")(pooled)))
    both_ways(km, IDS_A)


def test_masking_layer_then_concatenate():
    x = keras.Input((None, 4), name="x")
    m = K.Masking(name="masking")(x)
    y = K.Concatenate(name="cat")([m, K.Dense(4, name="d")(m)])
    km = with_random_weights(keras.Model(x, K.LSTM(3, name="lstm")(y)))
    assert {"NotEqual", "Any", "Concatenate"} <= ops_written(km)
    feats = FEATS.copy()
    feats[0, 3:] = 0.0
    feats[1, 1:] = 0.0
    both_ways(km, feats)


def test_operation_and_layer_named_concatenate_stay_apart():
    op = {"module": "keras.src.ops.numpy", "class_name": "Concatenate", "config": {"name": "c", "axis": -1},
          "registered_name": "Concatenate"}
    layer = {"module": "keras.layers", "class_name": "Concatenate", "config": {"name": "cat", "axis": -1},
             "registered_name": None}
    assert type(deserialize_layer(op)) is functional.ConcatenateOp
    assert type(deserialize_layer({**op, "module": "keras.ops"})) is functional.ConcatenateOp
    assert type(deserialize_layer(layer)) is Concatenate
    written = serialize_layer(functional.ConcatenateOp(axis=-1, name="c"))
    assert {k: written[k] for k in op} == op
    assert serialize_layer(Concatenate(name="cat"))["module"] == "keras.layers"
    with pytest.raises(ValueError, match="Unknown operation"):
        deserialize_layer({**op, "class_name": "Einsum"})


@pytest.mark.parametrize("name", ["ConvertToTensor", "ExpandDims", "ZerosLike", "OnesLike", "LogicalOr", "Any",
                                  "Concatenate", "NotEqual"])
def test_keras_reads_each_operation_rnnbook_writes(name):
    from keras.src.saving import serialization_lib
    cls = {"Concatenate": functional.ConcatenateOp}.get(name) or getattr(functional, name)
    args = {"ExpandDims": {"axis": -1}, "Any": {"axis": -1}, "Concatenate": {"axis": -1},
            "ZerosLike": {"dtype": "bool"}, "OnesLike": {"dtype": "bool"}}.get(name, {})
    config = serialize_layer(cls(name="op", **args))
    op = serialization_lib.deserialize_keras_object(config)
    assert type(op).__name__ == name and op.name == "op"
    assert type(deserialize_layer(json.loads(json.dumps(config)))) is cls


@pytest.mark.parametrize("attention", ["Attention", "AdditiveAttention"])
def test_masked_encoder_decoder_with_every_mask_operation(attention):
    "The model of test_merging_attention: attention, then Concatenate, Add, Multiply, Average, TimeDistributed."
    src, tgt = ids("src"), ids("tgt")
    enc = K.LSTM(6, return_sequences=True, name="enc")(emb(src, "emb_s"))
    dec = K.LSTM(6, return_sequences=True, name="dec")(emb(tgt, "emb_t"))
    ctx = getattr(K, attention)(name="att")([dec, enc])
    h = K.LayerNormalization(name="ln")(K.Concatenate(name="cat")([dec, ctx]))
    h = K.Add(name="res")([K.Dense(12, name="proj")(dec), h])
    h = K.Multiply(name="gate")([h, K.Dense(12, activation="sigmoid", name="g")(h)])
    h = K.Average(name="avg")([h, K.Dense(12, name="d2")(h)])
    km = with_random_weights(keras.Model([src, tgt], K.TimeDistributed(K.Dense(3), name="head")(h)))
    assert {"ConvertToTensor", "ExpandDims", "ZerosLike", "LogicalOr", "Concatenate", "Any"} <= ops_written(km)
    rm = both_ways(km, [IDS_A, IDS_B[:, :4]])
    head_mask = rm.get_layer("head")._inbound_nodes[-1].kwargs["mask"]     # Keras' mask chain, as a node
    assert type(head_mask.node.layer) is functional.LogicalOr
