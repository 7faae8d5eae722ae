"""ConvLSTM1D/2D/3D and ConvLSTMCell against Keras 3 (torch backend) and against a naive convolution.

Parity tests give a Keras layer random weights, copy them with
``rb_layer.set_weights(keras_layer.get_weights())`` and compare every output
(float32, ``atol=rtol=1e-5``). Axes: rank x padding x (strides, dilation) x
return_sequences x return_state (full product), channels_first, go_backwards,
masks (with zero_output_for_mask), initial_state, stateful with reset,
use_bias / unit_forget_bias / activations, dropout at inference, float64.
Keras' own conv_lstm*_test.py numbers and error checks are ported. The im2col
convolution is checked against a loop-over-positions reference written here.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import conv_lstm as cl  # noqa: E402
from rnnbook.conv_lstm import (ConvLSTM, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell,  # noqa: E402
                               conv, gate_conv, im2col, patch_index)

torch.set_num_threads(1)

ATOL = RTOL = 1e-5
RB = {1: ConvLSTM1D, 2: ConvLSTM2D, 3: ConvLSTM3D}
KERAS = {1: keras.layers.ConvLSTM1D, 2: keras.layers.ConvLSTM2D, 3: keras.layers.ConvLSTM3D}
SHAPES = {1: (2, 4, 9, 3), 2: (2, 3, 7, 6, 2), 3: (2, 3, 5, 6, 4, 2)}       # (B, T, *S, C), channels last
KERNELS = {1: 3, 2: (3, 2), 3: (3, 2, 2)}
FILTERS = 3


def to_np(v):
    if isinstance(v, (list, tuple)): return [to_np(e) for e in v]
    if isinstance(v, keras.Variable): v = v.value
    return np.asarray(keras.ops.convert_to_numpy(v))


def channels_first(x):
    "(B, T, *S, C) -> (B, T, C, *S)"
    return np.moveaxis(x, -1, 2)


def data(rank, rng, cf=False, dtype='float32', shape=None):
    x = rng.standard_normal(shape or SHAPES[rank]).astype(dtype)
    return channels_first(x) if cf else x


def make_pair(rank, input_shape, rng, scale=0.4, **kw):
    "A Keras layer and an rnnbook layer with the same config and the same random weights."
    k = KERAS[rank](**kw)
    k.build(input_shape)
    weights = [(rng.standard_normal(w.shape) * scale).astype(w.dtype) for w in k.get_weights()]
    k.set_weights(weights)
    r = RB[rank](**kw)
    r.build(input_shape)
    r.set_weights(k.get_weights())
    return k, r


def assert_same(kout, rout, atol=ATOL, rtol=RTOL):
    kout = kout if isinstance(kout, (list, tuple)) else [kout]
    rout = rout if isinstance(rout, (list, tuple)) else [rout]
    assert len(kout) == len(rout)
    for a, b in zip(kout, rout):
        a = to_np(a)
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(b, a, atol=atol, rtol=rtol)


def default_kw(rank, **kw):
    return dict(dict(filters=FILTERS, kernel_size=KERNELS[rank]), **kw)


# ---------------------------------------------------------------------------------------------------------------
# Keras parity
# ---------------------------------------------------------------------------------------------------------------
CONV = {'s1d1': dict(), 's2': dict(strides=2), 'd2': dict(dilation_rate=2)}


@pytest.mark.parametrize('return_state', [False, True])
@pytest.mark.parametrize('return_sequences', [False, True])
@pytest.mark.parametrize('conv_kw', list(CONV))
@pytest.mark.parametrize('padding', ['valid', 'same'])
@pytest.mark.parametrize('rank', [1, 2, 3])
def test_parity_grid(rank, padding, conv_kw, return_sequences, return_state, rng):
    x = data(rank, rng)
    kw = default_kw(rank, padding=padding, return_sequences=return_sequences, return_state=return_state,
                    **CONV[conv_kw])
    k, r = make_pair(rank, x.shape, rng, **kw)
    out = r(x)
    assert_same(k(x), out)
    assert all(isinstance(o, np.ndarray) and o.dtype == np.float32 for o in (out if return_state else [out]))


@pytest.mark.parametrize('rank,kw', [(1, dict(strides=2, padding='same')), (2, dict(strides=(2, 1))),
                                     (2, dict(dilation_rate=(1, 2), padding='same')),
                                     (3, dict(strides=(1, 2, 1), padding='same'))])
def test_parity_channels_first(rank, kw, rng):
    x = data(rank, rng, cf=True)
    k, r = make_pair(rank, x.shape, rng, **default_kw(rank, data_format='channels_first', return_sequences=True,
                                                          return_state=True, **kw))
    out = r(x)
    assert_same(k(x), out)
    assert out[1].shape[1] == FILTERS                                      # (B, F, *O)


MASKS = {'right_padded': [[1, 1, 1, 1], [1, 1, 0, 0]],
         'holes_leading_masked': [[0, 1, 0, 1], [1, 0, 1, 1]],
         'fully_masked_sample': [[1, 1, 1, 1], [0, 0, 0, 0]]}


@pytest.mark.parametrize('go_backwards', [False, True])
@pytest.mark.parametrize('mask,zero_output_for_mask', [(None, False)] + [(m, z) for m in MASKS for z in (False, True)])
def test_parity_masks_go_backwards(mask, zero_output_for_mask, go_backwards, rng):
    x = data(2, rng, shape=(2, 4, 6, 5, 2))
    kw = default_kw(2, padding='same', return_sequences=True, return_state=True, go_backwards=go_backwards,
                    zero_output_for_mask=zero_output_for_mask)
    k, r = make_pair(2, x.shape, rng, **kw)
    m = None if mask is None else np.array(MASKS[mask], bool)
    assert_same(k(x, mask=m), r(x, mask=m))


@pytest.mark.parametrize('go_backwards', [False, True])
def test_parity_masks_rank1_channels_first(go_backwards, rng):
    x = data(1, rng, cf=True)
    kw = default_kw(1, data_format='channels_first', strides=2, return_sequences=True, return_state=True,
                    go_backwards=go_backwards)
    k, r = make_pair(1, x.shape, rng, **kw)
    m = np.array(MASKS['holes_leading_masked'], bool)
    assert_same(k(x, mask=m), r(x, mask=m))


@pytest.mark.parametrize('data_format', ['channels_last', 'channels_first'])
@pytest.mark.parametrize('rank', [1, 2, 3])
def test_parity_initial_state(rank, data_format, rng):
    cf = data_format == 'channels_first'
    x = data(rank, rng, cf=cf)
    kw = default_kw(rank, padding='same', data_format=data_format, return_sequences=True, return_state=True)
    k, r = make_pair(rank, x.shape, rng, **kw)
    state_shape = r.compute_output_shape(x.shape)[1]
    h0, c0 = (rng.standard_normal(state_shape).astype('float32') for _ in range(2))
    assert_same(k(x, initial_state=[h0, c0]), r(x, initial_state=[h0, c0]))
    # and the Keras conv_lstm_test initial states are not modified
    h1 = h0.copy(); r(x, initial_state=[h0, c0]); np.testing.assert_array_equal(h0, h1)


@pytest.mark.parametrize('data_format', ['channels_last', 'channels_first'])
def test_parity_stateful_with_reset(data_format, rng):
    cf = data_format == 'channels_first'
    xs = [data(2, rng, cf=cf) for _ in range(3)]
    kw = default_kw(2, strides=(2, 1), padding='same', data_format=data_format, stateful=True,
                    return_sequences=True)
    k, r = make_pair(2, xs[0].shape, rng, **kw)
    for i, x in enumerate(xs):
        assert_same(k(x), r(x))
        assert_same([to_np(s) for s in k.states], [s.numpy() for s in r.states])
        if i == 1:
            k.reset_state(); r.reset_state()
            assert all(not s.numpy().any() for s in r.states)
    # Keras 2's reset_states(states=...) with the conv state shapes
    h = rng.standard_normal(r.states[0].shape).astype('float32')
    r.reset_states([h, h])
    np.testing.assert_array_equal(r.states[0].numpy(), h)


@pytest.mark.parametrize('kw', [dict(use_bias=False),
                                dict(activation='relu', recurrent_activation='hard_sigmoid'),
                                dict(activation='softsign', recurrent_activation='tanh', padding='same'),
                                dict(unit_forget_bias=False, strides=2),
                                dict(dropout=0.4, recurrent_dropout=0.3, seed=1)],   # inference: no dropout
                         ids=['no_bias', 'relu_hard_sigmoid', 'softsign_tanh', 'no_unit_forget_bias',
                              'dropout_at_inference'])
@pytest.mark.parametrize('rank', [1, 2, 3])
def test_parity_options(rank, kw, rng):
    x = data(rank, rng)
    k, r = make_pair(rank, x.shape, rng, **default_kw(rank, return_sequences=True, return_state=True, **kw))
    assert_same(k(x, training=False), r(x, training=False))
    assert len(r.weights) == (2 if kw.get('use_bias') is False else 3)


def test_dropout_at_inference_equals_no_dropout(rng):
    x = data(2, rng)
    a = ConvLSTM2D(4, 3, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    b = ConvLSTM2D(4, 3, return_sequences=True)
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_array_equal(a(x, training=False), b(x))


def test_float64(rng):
    x32 = data(2, rng)
    k, r = make_pair(2, x32.shape, rng, **default_kw(2, padding='same', return_sequences=True))
    y = r(x32.astype('float64'))
    assert y.dtype == np.float64
    assert_same(k(x32), y)
    # float64 weights on both sides: agreement far below float32 precision
    k64 = keras.layers.ConvLSTM2D(**default_kw(2, padding='same', return_sequences=True), dtype='float64')
    k64.build(x32.shape)
    k64.set_weights([w.astype('float64') for w in k.get_weights()])
    r64 = ConvLSTM2D(**default_kw(2, padding='same', return_sequences=True), dtype='float64')
    r64.build(x32.shape); r64.set_weights(k64.get_weights())
    assert all(w.dtype == np.float64 for w in r64.get_weights())
    x64 = x32.astype('float64')
    assert_same(k64(x64), r64(x64), atol=1e-12, rtol=1e-12)


def test_cell_parity_with_keras(rng):
    "The cell alone, one step from given states, both layouts."
    for data_format in ('channels_last', 'channels_first'):
        x = rng.standard_normal((2, 6, 5, 3)).astype('float32')
        from keras.src.layers.rnn.conv_lstm import ConvLSTMCell as KerasCell
        kw = dict(rank=2, filters=4, kernel_size=(3, 2), strides=(1, 2), padding='same', data_format=data_format)
        if data_format == 'channels_first': x = np.moveaxis(x, -1, 1)
        kc = KerasCell(**kw); kc.build(x.shape)
        kc.set_weights([(rng.standard_normal(w.shape) * .4).astype('float32') for w in kc.get_weights()])
        rc = ConvLSTMCell(**kw); rc.build(x.shape); rc.set_weights(kc.get_weights())
        shape = rc.compute_output_shape(x.shape)[0]
        assert shape == tuple(kc.compute_output_shape(x.shape)[0])
        h, c = (rng.standard_normal(shape).astype('float32') for _ in range(2))
        ky, (kh, kc_) = kc(x, [h, c])
        ry, (rh, rc_) = rc(x, [h, c])
        assert_same([ky, kh, kc_], [ry, rh, rc_])


# ---------------------------------------------------------------------------------------------------------------
# Keras' own tests (conv_lstm_test.py, conv_lstm{1,2,3}d_test.py)
# ---------------------------------------------------------------------------------------------------------------
GOLDEN = dict(kernel_initializer=rb.initializers.Constant(0.01), recurrent_initializer=rb.initializers.Constant(0.02),
              bias_initializer=rb.initializers.Constant(0.03))


@pytest.mark.parametrize('cf', [False, True])
def test_keras_golden_conv_lstm1d(cf):
    seq = np.arange(120).reshape((2, 3, 4, 5)).astype('float32') / 10
    expected = np.array([[[0.40807986, 0.40807986], [0.46421072, 0.46421072]],
                         [[0.80933154, 0.80933154], [0.8233646, 0.8233646]]])
    if cf: seq, expected = seq.transpose((0, 1, 3, 2)), expected.transpose((0, 2, 1))
    out = ConvLSTM1D(filters=2, kernel_size=3, data_format='channels_first' if cf else None, **GOLDEN)(seq)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('cf', [False, True])
def test_keras_golden_conv_lstm2d(cf):
    seq = np.arange(480).reshape((2, 3, 4, 4, 5)).astype('float32') / 100
    expected = np.array([[[[0.48694518, 0.48694518], [0.50237733, 0.50237733]],
                          [[0.5461202, 0.5461202], [0.5598283, 0.5598283]]],
                         [[[0.8661607, 0.8661607], [0.86909103, 0.86909103]],
                          [[0.8774414, 0.8774414], [0.8800861, 0.8800861]]]])
    if cf: seq, expected = seq.transpose((0, 1, 4, 2, 3)), expected.transpose((0, 3, 1, 2))
    out = ConvLSTM2D(filters=2, kernel_size=3, data_format='channels_first' if cf else None, **GOLDEN)(seq)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('cf', [False, True])
def test_keras_golden_conv_lstm3d(cf):
    seq = np.arange(1920).reshape((2, 3, 4, 4, 4, 5)).astype('float32') / 100
    expected = np.array([[[[[0.99149036, 0.99149036], [0.99180907, 0.99180907]],
                           [[0.99258363, 0.99258363], [0.9927925, 0.9927925]]],
                          [[[0.99413764, 0.99413764], [0.99420583, 0.99420583]],
                           [[0.9943788, 0.9943788], [0.9944278, 0.9944278]]]],
                         np.full((2, 2, 2, 2), 0.9950547)])
    if cf: seq, expected = seq.transpose((0, 1, 5, 2, 3, 4)), expected.transpose((0, 4, 1, 2, 3))
    out = ConvLSTM3D(filters=2, kernel_size=3, data_format='channels_first' if cf else None, **GOLDEN)(seq)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('cf', [False, True])
def test_keras_golden_cell(cf):
    x = np.arange(150).reshape((2, 5, 5, 3)).astype('float32') / 10
    s1 = np.arange(200).reshape((2, 5, 5, 4)).astype('float32') / 10
    s2 = s1.copy()
    if cf: x, s1, s2 = (a.transpose((0, 3, 1, 2)) for a in (x, s1, s2))
    cell = ConvLSTMCell(rank=2, filters=4, kernel_size=3, padding='same',
                        data_format='channels_first' if cf else 'channels_last',
                        kernel_initializer=rb.initializers.Constant(0.01),
                        recurrent_initializer=rb.initializers.Constant(0.02))
    out = cell(x, [s1, s2])
    np.testing.assert_allclose(np.sum(out[0]), 188.89502, rtol=1e-5)
    np.testing.assert_allclose(np.sum(out[1][0]), 188.89502, rtol=1e-5)
    np.testing.assert_allclose(np.sum(out[1][1]), 2170.444, rtol=1e-5)


@pytest.mark.parametrize('cf', [False, True])
def test_keras_golden_conv_lstm_base(cf):
    x = np.arange(450).reshape((2, 3, 5, 5, 3)).astype('float32') / 100
    s1 = np.arange(200).reshape((2, 5, 5, 4)).astype('float32') / 100
    s2 = s1.copy()
    if cf: x, s1, s2 = x.transpose((0, 1, 4, 2, 3)), s1.transpose((0, 3, 1, 2)), s2.transpose((0, 3, 1, 2))
    layer = ConvLSTM(rank=2, filters=4, kernel_size=3, padding='same',
                     data_format='channels_first' if cf else None,
                     kernel_initializer=rb.initializers.Constant(0.01),
                     recurrent_initializer=rb.initializers.Constant(0.02))
    np.testing.assert_allclose(np.sum(layer(x, initial_state=[s1, s2])), 119.812454, rtol=1e-5)


BASICS = {  # rank: [(init_kwargs, input_shape (channels last), expected output shape, call kwargs)]
    1: [(dict(filters=5, kernel_size=3, padding='same'), (3, 2, 4, 3), (3, 4, 5), {}),
        (dict(filters=5, kernel_size=3, padding='valid', recurrent_dropout=0.5), (3, 2, 8, 3), (3, 6, 5),
         dict(training=True)),
        (dict(filters=5, kernel_size=3, padding='valid', return_sequences=True), (3, 2, 8, 3), (3, 2, 6, 5), {})],
    2: [(dict(filters=5, kernel_size=3, padding='same'), (3, 2, 4, 4, 3), (3, 4, 4, 5), {}),
        (dict(filters=5, kernel_size=3, padding='valid', recurrent_dropout=0.5), (3, 2, 8, 8, 3), (3, 6, 6, 5),
         dict(training=True)),
        (dict(filters=5, kernel_size=3, padding='valid', return_sequences=True), (3, 2, 8, 8, 3), (3, 2, 6, 6, 5),
         {})],
    3: [(dict(filters=5, kernel_size=3, padding='same'), (3, 2, 4, 4, 4, 3), (3, 4, 4, 4, 5), {}),
        (dict(filters=5, kernel_size=3, padding='valid', recurrent_dropout=0.5), (3, 2, 8, 8, 8, 3),
         (3, 6, 6, 6, 5), dict(training=True)),
        (dict(filters=5, kernel_size=3, padding='valid', return_sequences=True), (3, 2, 8, 8, 8, 3),
         (3, 2, 6, 6, 6, 5), {})],
}


@pytest.mark.parametrize('cf', [False, True])
@pytest.mark.parametrize('rank', [1, 2, 3])
def test_keras_basics(rank, cf, rng):
    for init_kwargs, in_shape, out_shape, call_kwargs in BASICS[rank]:
        if cf:
            in_shape = in_shape[:2] + (in_shape[-1],) + in_shape[2:-1]
            out_shape = out_shape[:-rank - 1] + (out_shape[-1],) + out_shape[-rank - 1:-1]
        layer = RB[rank](**init_kwargs, data_format='channels_first' if cf else 'channels_last')
        y = layer(rng.standard_normal(in_shape).astype('float32'), **call_kwargs)
        assert y.shape == out_shape
        assert tuple(layer.compute_output_shape(in_shape)) == out_shape
        assert len(layer.trainable_weights) == 3 and len(layer.non_trainable_weights) == 0
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == {**layer.get_config(), 'name': clone.name}


@pytest.mark.parametrize('rank', [1, 2, 3])
def test_keras_invalid_strides_dilation_rate(rank):
    dil = (1, 2, 2) if rank == 3 else 3
    with pytest.raises(ValueError) as expected:
        KERAS[rank](filters=1, kernel_size=1, strides=2, padding='same', dilation_rate=dil, return_sequences=True)
    with pytest.raises(ValueError) as got:
        RB[rank](filters=1, kernel_size=1, strides=2, padding='same', dilation_rate=dil, return_sequences=True)
    assert str(got.value) == str(expected.value)
    assert "Specifying `strides > 1` is not compatible with `dilation_rate > 1`" in str(got.value)


# ---------------------------------------------------------------------------------------------------------------
# Weights, shapes, config
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('rank', [1, 2, 3])
def test_weights_shapes_order_and_count(rank, rng):
    x = data(rank, rng)
    k, r = make_pair(rank, x.shape, rng, **default_kw(rank))
    assert [w.shape for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    assert [w.path.split('/', 1)[1] for w in r.weights] == [w.path.split('/', 1)[1] for w in k.weights]
    kern = KERNELS[rank] if rank > 1 else (KERNELS[1],)
    C, F = x.shape[-1], FILTERS
    assert r.get_weights()[0].shape == kern + (C, 4 * F)
    assert r.get_weights()[1].shape == kern + (F, 4 * F)
    assert r.count_params() == k.count_params()
    assert r.name.startswith(f'conv_lstm{rank}d') and r.cell.name == 'conv_lstm_cell'


def test_bias_initialization_matches_keras():
    for ufb in (True, False):
        for init in ('zeros', 'ones', keras.initializers.Constant(0.03)):
            rinit = rb.initializers.Constant(0.03) if not isinstance(init, str) else init
            k = keras.layers.ConvLSTM2D(3, 3, bias_initializer=init, unit_forget_bias=ufb)
            k.build((None, 2, 5, 5, 2))
            r = ConvLSTM2D(3, 3, bias_initializer=rinit, unit_forget_bias=ufb)
            r.build((None, 2, 5, 5, 2))
            np.testing.assert_array_equal(r.get_weights()[2], k.get_weights()[2])


def test_default_initializers_statistics():
    r = ConvLSTM2D(8, 3)
    r.build((None, 2, 9, 9, 4))
    kernel, rec, bias = r.get_weights()
    limit = np.sqrt(6 / (9 * 4 + 9 * 32))                                   # glorot_uniform with conv fans
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
    flat = rec.reshape(-1, 32)                                              # orthogonal over (prod(k)*F, 4F)
    np.testing.assert_allclose(flat.T @ flat, np.eye(32), atol=1e-5)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])


CONFIGS = [(1, dict(padding='same', strides=2)), (2, dict(dilation_rate=(2, 1), data_format='channels_first')),
           (3, dict(kernel_size=(1, 2, 3), return_state=True)), (2, dict(return_sequences=True, return_state=True,
                                                                       strides=(2, 3), padding='same'))]


@pytest.mark.parametrize('rank,kw', CONFIGS)
def test_compute_output_shape_matches_keras(rank, kw):
    kw = {**default_kw(rank), **kw}
    k, r = KERAS[rank](**kw), RB[rank](**kw)
    for shape in [(None, None) + (9, 8, 7)[:rank] + (3,), (4, 5) + (6, 11, 10)[:rank] + (2,)]:
        if kw.get('data_format') == 'channels_first': shape = shape[:2] + (shape[-1],) + shape[2:-1]
        expected, got = k.compute_output_shape(shape), r.compute_output_shape(shape)
        if kw.get('return_state'):
            assert tuple(map(tuple, got)) == tuple(map(tuple, expected))
        else:
            assert tuple(got) == tuple(expected)


@pytest.mark.parametrize('rank,kw', CONFIGS)
def test_config_round_trip_and_keras_keys(rank, kw, rng):
    kw = {**default_kw(rank), **kw, 'activation': 'relu', 'dropout': 0.25, 'seed': 7,
          'kernel_regularizer': 'l2', 'bias_constraint': 'non_neg', 'stateful': True}
    k, r = KERAS[rank](**kw), RB[rank](**kw)
    kc, rc = k.get_config(), r.get_config()
    assert set(rc) == set(kc)
    for key in ('filters', 'kernel_size', 'strides', 'padding', 'data_format', 'dilation_rate', 'activation',
                'recurrent_activation', 'use_bias', 'unit_forget_bias', 'dropout', 'recurrent_dropout', 'seed',
                'return_sequences', 'return_state', 'go_backwards', 'stateful', 'unroll', 'zero_output_for_mask'):
        assert rc[key] == kc[key], key
    clone = RB[rank].from_config(rc)
    assert clone.get_config() == {**rc, 'name': clone.name}
    x = data(rank, rng, cf=kw.get('data_format') == 'channels_first')
    r.stateful = clone.stateful = False
    y = r(x); clone.build(x.shape); clone.set_weights(r.get_weights())
    for a, b in zip(rb.backend.flatten(y), rb.backend.flatten(clone(x))): np.testing.assert_array_equal(a, b)


def test_base_conv_lstm_config_keeps_rank():
    layer = ConvLSTM(3, 2, (1, 2, 3), padding='same')
    config = layer.get_config()
    assert config['rank'] == 3 and 'cell' not in config
    assert ConvLSTM.from_config(config).kernel_size == (1, 2, 3)
    cell = ConvLSTMCell(2, 4, 3, strides=2)
    assert ConvLSTMCell.from_config(cell.get_config()).get_config() == cell.get_config()


def test_layer_properties_read_the_cell():
    layer = ConvLSTM2D(4, (3, 2), strides=(1, 2), padding='SAME', dilation_rate=1, recurrent_activation='tanh',
                       dropout=0.1)
    assert (layer.filters, layer.kernel_size, layer.strides, layer.padding, layer.data_format) == \
        (4, (3, 2), (1, 2), 'same', 'channels_last')
    assert layer.recurrent_activation is rb.activations.get('tanh') and layer.dropout == 0.1
    assert layer.rank == 2 and layer.unit_forget_bias is True


def test_compute_mask():
    m = np.ones((2, 3), bool)
    assert ConvLSTM2D(2, 3).compute_mask(None, m) is None
    assert ConvLSTM2D(2, 3, return_sequences=True).compute_mask(None, m) is m
    assert ConvLSTM2D(2, 3, return_sequences=True, return_state=True).compute_mask(None, m) == [m, None, None]


def test_regularizer_losses(rng):
    layer = ConvLSTM1D(2, 3, kernel_regularizer=rb.regularizers.L2(0.1), activity_regularizer='l1')
    x = data(1, rng)
    y = layer(x)
    kernel = layer.get_weights()[0]
    assert len(layer.losses) == 2
    np.testing.assert_allclose(layer.losses[0], 0.1 * np.sum(kernel ** 2), rtol=1e-6)
    np.testing.assert_allclose(layer.losses[1], 0.01 * np.abs(y).sum(), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Fast path, the cell as a pure step, dropout
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw', [dict(), dict(go_backwards=True, strides=2, padding='same'),
                                dict(data_format='channels_first', dilation_rate=2),
                                dict(dropout=0.3, recurrent_dropout=0.3, seed=5),
                                dict(dropout=0.3, seed=5, data_format='channels_first', go_backwards=True),
                                dict(zero_output_for_mask=True, use_bias=False)])
def test_fast_path_equals_cell_loop(kw, rng):
    cf = kw.get('data_format') == 'channels_first'
    x = data(2, rng, cf=cf, shape=(3, 5, 7, 6, 2))
    mask = np.array([[1, 1, 1, 1, 1], [0, 1, 0, 1, 1], [1, 1, 1, 0, 0]], bool)
    a = ConvLSTM2D(4, (3, 2), return_sequences=True, return_state=True, **kw)
    b = ConvLSTM2D(4, (3, 2), return_sequences=True, return_state=True, unroll=True, **kw)
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    for m in (None, mask):
        for training in (False, True):
            for u, v in zip(a(x, mask=m, training=training), b(x, mask=m, training=training)):
                np.testing.assert_allclose(u, v, atol=1e-6, rtol=1e-6)


def test_fast_path_chunks_over_time(rng, monkeypatch):
    x = data(2, rng, shape=(2, 7, 6, 5, 3))
    def run(weights=None):
        layer = ConvLSTM2D(3, 3, padding='same', return_sequences=True, return_state=True, dropout=0.2, seed=2)
        layer.build(x.shape)
        if weights is not None: layer.set_weights(weights)
        return layer, layer(x, training=True)                                 # same seed: same masks
    a, full = run()
    monkeypatch.setattr(cl, '_PATCH_BUDGET', 1)                              # one step per gathered matrix
    for u, v in zip(full, run(a.get_weights())[1]): np.testing.assert_allclose(u, v, atol=1e-6)
    monkeypatch.setattr(cl, '_PATCH_BUDGET', 3 * 2 * 30 * 9 * 3 * 4)          # three steps, then a short chunk
    for u, v in zip(full, run(a.get_weights())[1]): np.testing.assert_allclose(u, v, atol=1e-6)


def test_cell_is_a_pure_step(rng):
    x = data(2, rng)
    layer = ConvLSTM2D(3, 3, padding='same', return_state=True)
    y, h, c = layer(x[:, :1])
    cell = layer.cell
    zeros = [np.zeros_like(h), np.zeros_like(c)]
    states = [s.copy() for s in zeros]
    y1, (h1, c1) = cell(x[:, 0], states)
    np.testing.assert_allclose(y1, y, atol=1e-6); np.testing.assert_allclose(c1, c, atol=1e-6)
    assert y1 is h1
    np.testing.assert_array_equal(states[0], zeros[0])                      # inputs untouched
    # two steps of the cell = the layer on two steps
    y2, _ = cell(x[:, 1], [h1, c1])
    np.testing.assert_allclose(y2, layer(x[:, :2])[0], atol=1e-6)
    assert cell.get_initial_state(batch_size=5)[0].shape == (5,) + h.shape[1:]


@pytest.mark.parametrize('kw', [dict(dropout=0.5), dict(recurrent_dropout=0.5), dict(dropout=0.3, recurrent_dropout=0.3)])
def test_training_dropout_changes_outputs_and_is_seeded(kw, rng):
    x = data(2, rng)
    make = lambda seed: ConvLSTM2D(3, 3, padding='same', return_sequences=True, seed=seed, **kw)
    a, b, c = make(11), make(11), make(12)
    for l in (a, b, c): l.build(x.shape)
    b.set_weights(a.get_weights()); c.set_weights(a.get_weights())
    inference = a(x)
    ya, yb, yc = a(x, training=True), b(x, training=True), c(x, training=True)
    assert not np.allclose(ya, inference)
    np.testing.assert_array_equal(ya, yb)                                    # same seed, same masks
    assert not np.allclose(ya, yc)                                           # another seed, other masks
    assert not np.allclose(a(x, training=True), ya)                          # new masks for every call
    np.testing.assert_array_equal(a(x), inference)                           # inference unaffected


def test_dropout_mask_is_per_gate_and_constant_over_time(rng):
    cell = ConvLSTMCell(2, 2, 3, dropout=0.5, seed=0)
    cell.build((2, 5, 5, 3))
    m = cell.get_dropout_mask(np.ones((2, 5, 5, 3), 'float32'))
    assert m.shape == (4, 2, 5, 5, 3) and set(np.unique(m)) <= {0.0, 2.0}
    assert not np.array_equal(m[0], m[1])
    assert cell.get_dropout_mask(np.ones((2, 5, 5, 3), 'float32')) is m    # cached for the sequence


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw,words', [
    (dict(filters=0), ['`filters`', 'positive integer', 'got 0']),
    (dict(filters=-2), ['`filters`', 'got -2']),
    (dict(filters=2.5), ['`filters`', 'got 2.5']),
    (dict(kernel_size=(3, 3, 3)), ['`kernel_size`', 'tuple of 2 integers', 'kernel_size=(3, 3, 3)']),
    (dict(kernel_size=0), ['`kernel_size`', 'value > 0']),
    (dict(kernel_size='3'), ['`kernel_size`', 'kernel_size=3']),
    (dict(strides=(1, -1)), ['`strides`', '{-1}']),
    (dict(dilation_rate=(1, 2, 1)), ['`dilation_rate`', 'tuple of 2 integers']),
    (dict(padding='causal'), ['`padding`', "'causal'"]),
    (dict(padding=None), ['`padding`', 'None']),
    (dict(data_format='NHWC'), ['`data_format`', 'NHWC']),
    (dict(dropout=1.5), ['`dropout`', '1.5']),
    (dict(recurrent_dropout=-0.1), ['`recurrent_dropout`', '-0.1']),
    (dict(use_bias='yes'), ['`use_bias`', "'yes'"]),
    (dict(return_sequences=1), ['`return_sequences`', '1']),
    (dict(activation='nope'), ['activation', "'nope'"]),
    (dict(strides=(2, 1), dilation_rate=(1, 2)), ['Specifying `strides > 1` is not compatible with `dilation_rate > 1`',
                                                   'strides=(2, 1)', 'dilation_rate=(1, 2)']),
    (dict(bogus=1), ['bogus']),
])
def test_bad_arguments(kw, words):
    kw = {'filters': 2, 'kernel_size': 3, **kw}
    with pytest.raises(ValueError) as e:
        ConvLSTM2D(**kw)
    for w in words: assert w in str(e.value), (w, str(e.value))


def test_bad_rank_argument():
    for rank in (0, 4, 2.0, None):
        with pytest.raises(ValueError, match="`rank`, expected 1, 2 or 3"):
            ConvLSTM(rank, 2, 3)
    with pytest.raises(ValueError, match="`rank`"):
        ConvLSTMCell(4, 2, 3)


@pytest.mark.parametrize('rank', [1, 2, 3])
def test_wrong_input_rank(rank, rng):
    layer = RB[rank](2, 1)
    for ndim in (rank + 2, rank + 4):
        x = np.zeros((2,) * ndim, 'float32')
        with pytest.raises(ValueError, match=f"expected ndim={rank + 3}, found ndim={ndim}"):
            layer(x)
        assert not layer.built
    layer(data(rank, rng))
    with pytest.raises(ValueError, match=f"expected ndim={rank + 3}, found ndim={rank + 2}"):
        layer(np.zeros((2,) * (rank + 2), 'float32'))


def test_output_size_zero_or_negative(rng):
    with pytest.raises(ValueError) as e:
        ConvLSTM2D(2, 7)(data(2, rng))
    assert "Computed output size would be zero or negative" in str(e.value) and "(2, 7, 6, 2)" in str(e.value)
    with pytest.raises(ValueError, match="zero or negative"):
        ConvLSTM1D(2, 3, dilation_rate=5).compute_output_shape((None, 3, 9, 2))
    ConvLSTM2D(2, 7, padding='same')(data(2, rng))                           # 'same' always fits


@pytest.mark.parametrize('data_format', ['channels_last', 'channels_first'])
def test_channel_and_spatial_mismatch_on_second_call_leave_states(data_format, rng):
    cf = data_format == 'channels_first'
    x = data(2, rng, cf=cf)
    layer = ConvLSTM2D(3, 3, stateful=True, data_format=data_format)
    layer(x)
    states = [s.numpy() for s in layer.states]
    weights = layer.get_weights()
    wrong_c = data(2, rng, cf=cf, shape=x.shape[:2] + (7, 6, 3))
    with pytest.raises(ValueError) as e:
        layer(wrong_c)
    axis = 2 if cf else -1
    assert f"expected axis {axis} (channels) of input shape to have value 2, found 3" in str(e.value)
    assert str(tuple(wrong_c.shape)) in str(e.value)
    wrong_s = data(2, rng, cf=cf, shape=x.shape[:2] + (7, 5, 2))
    with pytest.raises(ValueError, match="spatial size is fixed"):
        layer(wrong_s)
    with pytest.raises(ValueError, match="batch size"):
        layer(x[:1])                                                          # stateful: batch fixed
    with pytest.raises(ValueError, match="`mask`"):
        layer(x, mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="`initial_state`"):
        layer(x, initial_state=[np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 3))])
    with pytest.raises(ValueError, match="expects 2 initial state"):
        layer(x, initial_state=[np.zeros((2, 5, 4, 3))])
    for s, before in zip(layer.states, states): np.testing.assert_array_equal(s.numpy(), before)
    for w, before in zip(layer.get_weights(), weights): np.testing.assert_array_equal(w, before)
    layer(x[:, :2])                                                           # other lengths are fine
    assert not np.array_equal(layer.states[0].numpy(), states[0])


def test_nested_inputs_rejected(rng):
    x = data(1, rng)
    with pytest.raises(ValueError, match="one input array"):
        ConvLSTM1D(2, 3)([x, x])


def test_initial_state_before_build_and_cell_state_size():
    cell = ConvLSTMCell(2, 4, 3, strides=2, padding='same', data_format='channels_first')
    assert cell.state_size == -1
    with pytest.raises(ValueError, match="built"):
        cell.get_initial_state(2)
    cell.build((None, 3, 9, 8))
    assert cell.state_size == [(4, 5, 4), (4, 5, 4)] and cell.output_size == (4, 5, 4)


# ---------------------------------------------------------------------------------------------------------------
# im2col against a naive convolution
# ---------------------------------------------------------------------------------------------------------------
def naive_conv(x, w, strides, padding, dilation):
    "The definition: every output position, every tap; 'same' pads TensorFlow's way."
    N, S = x.shape[0], x.shape[1:-1]
    k, F = w.shape[:-2], w.shape[-1]
    if padding == 'same':
        out = [-(-n // s) for n, s in zip(S, strides)]
        pads = []
        for n, o, kd, s, d in zip(S, out, k, strides, dilation):
            total = max((o - 1) * s + (kd - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    else:
        out = [(n - (kd - 1) * d - 1) // s + 1 for n, kd, s, d in zip(S, k, strides, dilation)]
    y = np.zeros((N, *out, F))
    for p in itertools.product(*map(range, out)):
        for tap in itertools.product(*map(range, k)):
            pos = tuple(pd * s + t * d for pd, s, t, d in zip(p, strides, tap, dilation))
            for n in range(N):
                y[(n,) + p] += x[(n,) + pos] @ w[tap]
    return y


def random_conv_case(rng):
    rank = int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 4, rank))
    if rng.random() < .5: s, d = tuple(int(v) for v in rng.integers(1, 4, rank)), (1,) * rank
    else: s, d = (1,) * rank, tuple(int(v) for v in rng.integers(1, 4, rank))
    padding = 'same' if rng.random() < .5 else 'valid'
    span = [(kd - 1) * dd + 1 for kd, dd in zip(k, d)]
    S = tuple(int(sp + rng.integers(0, 5)) for sp in span)
    N, C, F = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    return rank, (N,) + S + (C,), k + (C, F), s, d, padding


def test_im2col_conv_matches_naive_convolution():
    rng = np.random.default_rng(7)
    for _ in range(60):
        _, xs, ws, s, d, padding = random_conv_case(rng)
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        got = conv(x, w, s, padding, d)
        np.testing.assert_allclose(got, naive_conv(x, w, s, padding, d), atol=1e-10,
                                   err_msg=f"x{xs} w{ws} s{s} d{d} {padding}")
        cols = im2col(x, ws[:-2], s, padding, d)
        assert cols.shape == got.shape[:-1] + (int(np.prod(ws[:-1])),)


def test_conv_matches_keras_conv_op():
    "Another reference: keras.ops.conv (torch), with its own 'same' padding, strides and dilation."
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, xs, ws, s, d, padding = random_conv_case(rng)
        x, w = rng.standard_normal(xs).astype('float32'), rng.standard_normal(ws).astype('float32')
        expected = to_np(keras.ops.conv(x, w, strides=s, padding=padding, dilation_rate=d))
        np.testing.assert_allclose(conv(x, w, s, padding, d), expected, atol=1e-4, rtol=1e-5)


def test_patch_index_and_gate_conv():
    np.testing.assert_array_equal(patch_index((9,), (3,), (2,), (1,)), [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]])
    np.testing.assert_array_equal(patch_index((4, 5), (2, 2), (2, 3), (1, 1)), [[0, 1, 5, 6], [3, 4, 8, 9],
                                                                                [10, 11, 15, 16], [13, 14, 18, 19]])
    assert not patch_index((9,), (3,), (2,), (1,)).flags.writeable          # cached: read-only
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 4, 3))
    w = rng.standard_normal((2, 3, 1, 3, 8))
    masks = (rng.random((4,) + x.shape) > .4) * 2.0
    z = gate_conv(x[None] * masks, w, (2, 1, 1), 'same', 1)
    for g in range(4):
        np.testing.assert_allclose(z[..., 2 * g:2 * g + 2], conv(x * masks[g], w[..., 2 * g:2 * g + 2], (2, 1, 1), 'same'),
                                   atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# CuPy (skipped where CuPy or a GPU is missing)
# ---------------------------------------------------------------------------------------------------------------
def _cupy():
    cp = pytest.importorskip('cupy', reason='CuPy is not installed')
    try: cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - any CUDA failure means no usable GPU
        pytest.skip(f'no usable CUDA device: {e}')
    return cp


@pytest.mark.parametrize('kw', [dict(), dict(data_format='channels_first', strides=2, padding='same', go_backwards=True),
                                dict(dilation_rate=2, stateful=True)])
def test_cupy_matches_numpy(kw, rng):
    cp = _cupy()
    cf = kw.get('data_format') == 'channels_first'
    x = data(2, rng, cf=cf)
    mask = np.array(MASKS['holes_leading_masked'][:1] * 2, bool)[:, :3]
    cpu = ConvLSTM2D(3, 3, return_sequences=True, return_state=True, **kw)
    gpu = ConvLSTM2D(3, 3, return_sequences=True, return_state=True, **kw)
    cpu.build(x.shape)
    gpu(cp.asarray(x)); gpu.reset_state()
    gpu.set_weights(cpu.get_weights())
    for m in (None, mask):
        out_gpu = gpu(cp.asarray(x), mask=None if m is None else cp.asarray(m))
        out_cpu = cpu(x, mask=m)
        for a, b in zip(out_gpu, out_cpu):
            assert rb.backend.is_cupy_array(a)
            np.testing.assert_allclose(cp.asnumpy(a), b, atol=1e-5)
    y = gpu(cp.asarray(x), training=True)   # no dropout configured: same as inference
    assert rb.backend.is_cupy_array(y[0])
    drop = ConvLSTM2D(3, 3, dropout=.3, recurrent_dropout=.3, seed=1)
    assert rb.backend.is_cupy_array(drop(cp.asarray(x), training=True))
