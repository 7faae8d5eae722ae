"""Every error rnnbook raises for bad input, as one table: `ERRORS` below is the source of docs/errors.md.

Each row triggers its error, and the test checks the exception type, that the message names the argument and
the value received, and -- where the error is about a layer or model -- that its weights and stateful states are
unchanged afterwards. `test_docs_table_mirrors_the_list` keeps docs/errors.md in step with the list:

    .venv/bin/python tests/docs/test_errors.py --write     # regenerate docs/errors.md after changing ERRORS
"""
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

os.environ.setdefault('KERAS_BACKEND', 'torch')
import rnnbook as rb  # noqa: E402
from rnnbook import layers as L, losses, metrics, optimizers, initializers, regularizers  # noqa: E402
from rnnbook.backend import flatten  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / 'docs' / 'errors.md'
TMP = Path(tempfile.gettempdir()) / 'rnnbook_error_table'


class Row(NamedTuple):
    area: str             # the part of the API
    exc: type             # the exception type raised
    when: str             # what triggers it (the docs' "When" column)
    setup: Callable       # () -> (trigger, subject): calling trigger() raises; subject (or None) must not change
    names: tuple          # what the message must contain: the argument's name and the value received


def x3(B=2, T=3, D=4, dtype='float32'): return np.random.default_rng(0).standard_normal((B, T, D)).astype(dtype)


def call(make, *args, build=None, **kwargs):
    "Setup for 'layer call raises': the layer is built first (on `build`, else on the call's own shape when valid)."
    def setup():
        layer = make()
        if build is not None: layer(build)
        return (lambda: layer(*args, **kwargs)), layer
    return setup


def run(fn, subject=None): return lambda: (fn, subject() if callable(subject) else subject)


def fresh(factory): return lambda: (factory(), None)     # a new trigger each time (e.g. a new tape)


def built(layer, x):
    layer(x)
    return layer


def stateful_lstm():
    return built(L.LSTM(3, stateful=True, name='lstm'), x3())


def model(stateful=False, compiled=True, loss='mse', metrics_=None):
    m = rb.Sequential([L.LSTM(3, stateful=stateful, name='lstm'), L.Dense(2, name='dense')], name='model')
    m(x3())
    if compiled: m.compile('adam', loss, metrics=metrics_)
    return m


def on_model(method, *args, stateful=False, compiled=True, loss='mse', metrics_=None, **kwargs):
    def setup():
        m = model(stateful, compiled, loss, metrics_)
        return (lambda: getattr(m, method)(*args, **kwargs)), m
    return setup


def tmp(name):
    TMP.mkdir(exist_ok=True)
    return TMP / name


def weights_file(name, data: bytes = None, arrays: dict = None):
    "A file under TMP (made when the row runs)."
    TMP.mkdir(exist_ok=True)
    path = TMP / name
    if arrays is not None:
        np.savez(path, **arrays)
        path = path if path.suffix == '.npz' else path.with_suffix(path.suffix + '.npz')
    else:
        path.write_bytes(data)
    return path



def keras_archive(name, config):
    "A `.keras` zip under TMP holding `config` (and empty weights)."
    import zipfile, json as _json
    path = tmp(name)
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('metadata.json', _json.dumps({'keras_version': '3.15.1'}))
        z.writestr('config.json', _json.dumps(config))
        z.writestr('model.weights.h5', b'')
    return path


def zip_file(name, members: dict):
    import zipfile
    path = tmp(name)
    with zipfile.ZipFile(path, 'w') as z:
        for k, v in members.items(): z.writestr(k, v)
    return path

def load_into_model(make_file, method='load_weights'):
    def setup():
        m = model()
        path = make_file()
        return (lambda: getattr(m, method)(path) if method == 'load_weights' else rb.models.load_model(path)), m
    return setup


def saved_bytes():
    TMP.mkdir(exist_ok=True)
    path = TMP / 'good.npz'
    model(compiled=False).save_weights(path)
    return path.read_bytes()


def meta(n, **extra):
    return np.array(json.dumps({'format': 'rnnbook.weights', 'version': 1, 'name': 'model', 'class_name': 'Sequential',
                                'weights': [{'path': f'w{i}', 'name': 'kernel', 'shape': [1], 'dtype': 'float32'}
                                            for i in range(n)], **extra}))


def object_array():
    a = np.empty(1, object); a[0] = {'a': 1}
    return a


def forged_npz(name, shape):
    "A weights file under TMP whose `w0000.npy` header declares `shape` (float32) over 8 bytes of data."
    import io, zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {'descr': '<f4', 'fortran_order': False, 'shape': shape})
    path = tmp(name)
    with zipfile.ZipFile(path, 'w') as z:
        with z.open('__meta__.npy', 'w') as f: np.save(f, meta(1))
        z.writestr('w0000.npy', header.getvalue() + bytes(8))
    return path


def taped(fn):
    def go():
        v = rb.Variable(np.ones(3, 'float32'))
        with rb.GradientTape() as tape:
            y = fn(v)
        return tape, v, y
    return go


def second_gradient():
    tape, v, y = taped(lambda v: rb.ops.sum(v * v))()
    tape.gradient(y, [v])
    return lambda: tape.gradient(y, [v])


def unconnected():
    tape, v, y = taped(lambda v: rb.ops.sum(v * v))()
    return lambda: tape.gradient(y, [v], unconnected_gradients='nan')


def no_gradient_rule():
    @rb.ops.primitive
    def opaque(x): return rb.backend.unwrap(x) * 2
    v = rb.Variable(np.ones(3, 'float32'))
    def go():
        with rb.GradientTape():
            opaque(v)
    return go


def optimizer_apply(grads_of, method='apply_gradients'):
    def setup():
        v = rb.Variable(np.ones((2, 3), 'float32'), name='v')
        opt = optimizers.SGD(0.1)
        if method == 'apply': return (lambda: opt.apply(*grads_of(v))), None
        return (lambda: opt.apply_gradients(grads_of(v))), None
    return setup


E = ValueError
ERRORS = {
    # ---- global settings --------------------------------------------------------------------------------------
    'set_seed': Row('settings', E, '`rb.set_seed` gets a negative or non-integer seed', run(lambda: rb.set_seed(-1)),
                    ('`seed`', '-1')),
    'set_floatx': Row('settings', E, '`rb.set_floatx` gets a dtype other than float16/32/64',
                      run(lambda: rb.set_floatx('int32')), ('floatx', "'int32'")),
    'to_device': Row('settings', E, '`rb.to_device` gets an unknown device name', run(lambda: rb.to_device(np.ones(2), 'tpu')),
                     ('`device`', "'tpu'")),
    # ---- any layer's constructor --------------------------------------------------------------------------------
    'layer_unknown_kwarg': Row('layer constructor', L.Layer.__init__.__globals__['UnrecognizedArgumentError'],
                               'an unknown keyword argument (a ValueError and a TypeError)',
                               run(lambda: L.LSTM(2, colour='red')), ('passed to LSTM:', "'colour': 'red'")),
    'layer_name': Row('layer constructor', E, '`name` is not a string', run(lambda: L.Dense(2, name=3)), ('`name`', '3')),
    'layer_dtype': Row('layer constructor', E, '`dtype` is not a float dtype (InputLayer: any real dtype)',
                       run(lambda: L.GRU(2, dtype='int32')), ('`dtype`', "'int32'")),
    'layer_dtype_unknown': Row('layer constructor', E, '`dtype` is no dtype at all', run(lambda: L.GRU(2, dtype='foo')),
                               ('dtype', "'foo'")),
    'layer_input_shape': Row('layer constructor', E, '`input_shape` is not a tuple of non-negative ints or None',
                             run(lambda: L.LSTM(2, input_shape=(None, -3))), ('`input_shape`', '(None, -3)')),
    'layer_batch_input_shape': Row('layer constructor', E, '`batch_input_shape` is not a shape tuple',
                                   run(lambda: L.Dense(2, batch_input_shape=3)), ('`batch_input_shape`', '3')),
    'activation_unknown': Row('layer constructor', E, 'an activation name that does not exist',
                              run(lambda: L.LSTM(2, activation='tahn')), ('activation', "'tahn'")),
    'activation_type': Row('layer constructor', E, 'an activation that is neither a name nor a callable',
                           run(lambda: L.SimpleRNN(2, activation=3)), ('activation', '3')),
    'initializer_unknown': Row('layer constructor', E, 'an initializer name that does not exist',
                               run(lambda: L.GRU(2, kernel_initializer='glorot')), ('initializer', "'glorot'")),
    'initializer_type': Row('layer constructor', E, 'an initializer that is neither a name, a config nor a callable',
                            run(lambda: L.Dense(2, kernel_initializer=3)), ('initializer', '3')),
    'initializer_args': Row('initializers', E, 'VarianceScaling with a bad `scale`, `mode` or `distribution`',
                            run(lambda: initializers.VarianceScaling(mode='fan_sideways')), ('`mode`', "'fan_sideways'")),
    'initializer_shape': Row('initializers', E, 'Orthogonal for a shape of rank < 2',
                             run(lambda: initializers.Orthogonal()((3,))), ('shape', '(3,)')),
    'initializer_identity': Row('initializers', E, 'Identity for a shape that is not 2-D',
                                run(lambda: initializers.Identity()((2, 2, 2))), ('shape', '(2, 2, 2)')),
    'initializer_seed': Row('initializers', E, 'a negative or non-integer initializer seed',
                            run(lambda: initializers.GlorotUniform(seed='a')), ('`seed`', "'a'")),
    'regularizer_unknown': Row('layer constructor', E, 'a regularizer name that does not exist',
                               run(lambda: L.LSTM(2, kernel_regularizer='l3')), ('regularizer', "'l3'")),
    'regularizer_value': Row('regularizers', E, 'a negative or non-finite penalty factor',
                             run(lambda: regularizers.L2(-1.0)), ('`l2`', '-1.0')),
    'constraint_unknown': Row('layer constructor', E, 'a constraint name that does not exist',
                              run(lambda: L.Dense(2, kernel_constraint='maxnorm')), ('constraint', "'maxnorm'")),
    # ---- recurrent layers and cells: constructors ---------------------------------------------------------------
    'units': Row('recurrent constructor', E, '`units` is not a positive integer', run(lambda: L.LSTM(0)),
                 ('`units`', '0')),
    'units_float': Row('recurrent constructor', E, '`units` is a float (or a bool, a string, ...)',
                       run(lambda: L.GRUCell(2.5)), ('`units`', '2.5')),
    'dropout': Row('recurrent constructor', E, '`dropout` is not in [0, 1)', run(lambda: L.GRU(2, dropout=1.0)),
                   ('`dropout`', '1.0')),
    'recurrent_dropout': Row('recurrent constructor', E, '`recurrent_dropout` is not in [0, 1)',
                             run(lambda: L.SimpleRNN(2, recurrent_dropout=-0.1)), ('`recurrent_dropout`', '-0.1')),
    'flag': Row('recurrent constructor', E, 'a flag (`return_sequences`, `return_state`, `go_backwards`, `stateful`, '
                '`unroll`, `zero_output_for_mask`, `use_bias`, `reset_after`, `unit_forget_bias`) is not True/False',
                run(lambda: L.LSTM(2, return_sequences='yes')), ('`return_sequences`', "'yes'")),
    'implementation': Row('recurrent constructor', E, '`implementation` is not 1 or 2 (0 means 1)',
                          run(lambda: L.LSTM(2, implementation=3)), ('`implementation`', '3')),
    'use_cudnn': Row('recurrent constructor', E, "`use_cudnn` is not 'auto', True or False",
                     run(lambda: L.GRU(2, use_cudnn='sometimes')), ('`use_cudnn`', "'sometimes'")),
    'seed': Row('recurrent constructor', E, '`seed` is not None or a non-negative integer',
                run(lambda: L.LSTM(2, seed=-5)), ('`seed`', '-5')),
    'rnn_cell': Row('recurrent constructor', E, '`RNN(cell)` gets an object without `call`', run(lambda: L.RNN(3)),
                    ('`cell`', 'cell=3')),
    'rnn_state_size': Row('recurrent constructor', E, '`RNN(cell)` gets a cell without `state_size`',
                          run(lambda: L.RNN(type('NoState', (), {'call': lambda self, x, s: (x, s)})())),
                          ('`state_size`', 'NoState')),
    'stacked_cells': Row('recurrent constructor', E, '`StackedRNNCells` gets an empty list (or not a list)',
                         run(lambda: L.StackedRNNCells([])), ('`cells`', '[]')),
    'stacked_cell_type': Row('recurrent constructor', E, '`StackedRNNCells` gets an entry that is not a cell',
                             run(lambda: L.StackedRNNCells([L.GRUCell(2), 'lstm'])), ('`call`', "'lstm'")),
    # ---- recurrent layers: calls --------------------------------------------------------------------------------
    'input_rank': Row('recurrent call', E, 'inputs that are not `(batch, timesteps, features)`',
                      call(lambda: L.LSTM(3, name='lstm'), x3()[0]), ('Input 0', 'ndim=2', '(3, 4)')),
    'input_rank_first_call': Row('recurrent call', E, 'a first call on a scalar (the layer stays unbuilt); None is an '
                                 'object array: the `input_dtype` error', call(lambda: L.GRU(3, name='gru'), 3.0),
                                 ('Input 0', 'ndim=0')),
    'input_features': Row('recurrent call', E, 'a feature size other than the one the layer was built for',
                          call(lambda: L.LSTM(3, name='lstm'), x3(D=5), build=x3()), ('axis -1', '4', '(2, 3, 5)')),
    'input_dtype': Row('recurrent call', E, 'inputs of strings, objects or complex numbers',
                       call(lambda: L.LSTM(3, name='lstm'), x3().astype(complex)), ('`inputs`', 'complex128')),
    'input_nest': Row('recurrent call', E, 'a list or dict of arrays where the layer takes one array',
                      call(lambda: L.GRU(3, name='gru'), [x3(), x3()]), ('`inputs`', 'list of 2')),
    'input_dict': Row('recurrent call', E, '`RNN(cell)` gets a dict of inputs',
                      call(lambda: L.RNN(L.LSTMCell(3), name='rnn'), {'a': x3()}), ('`inputs`', "['a']")),
    'input_zero_features': Row('recurrent call', E, 'inputs with 0 features (the weights would be empty)',
                               call(lambda: L.SimpleRNN(3, name='rnn'), np.ones((2, 3, 0))), ('input_shape', '(2, 0)')),
    'rnn_state_size_negative': Row('recurrent call', E, 'a cell\'s `state_size` holds a negative size once built',
                                   call(lambda: L.RNN(type('NegState', (), {'state_size': [3, -2],
                                                                            'call': lambda self, x, s: (x, s)})()), x3()),
                                   ('`state_size`', 'received -2')),
    'input_ragged': Row('layer call', E, 'a ragged nested list of numbers as the inputs of any layer',
                        call(lambda: L.Dense(2, name='dense'), [[1., 2.], [3.]]), ('`inputs`', '[[1.0, 2.0], [3.0]]')),
    'mask_shape': Row('masks', E, 'a mask that is not `(batch, timesteps)`',
                      call(lambda: L.LSTM(3, name='lstm'), x3(), mask=np.ones((2, 4), bool), build=x3()),
                      ('`mask`', '(2, 4)')),
    'mask_string': Row('masks', E, 'a mask that is not an array of booleans or 0/1',
                       call(lambda: L.GRU(3, name='gru'), x3(), mask='all', build=x3()), ('`mask`', 'shape ()')),
    'mask_values': Row('masks', E, 'a mask holding numbers other than 0 and 1 (0.5, 2, -1, NaN) or complex numbers',
                       call(lambda: L.GRU(3, name='gru'), x3(), mask=np.full((2, 3), 0.5), build=x3()),
                       ('`mask`', 'values such as 0.5')),
    'mask_ragged': Row('masks', E, 'a mask given as a ragged nested list',
                       call(lambda: L.GRU(3, name='gru'), x3(), mask=[[1, 1, 1], [1, 0]], build=x3()),
                       ('`mask`', '[[1, 1, 1], [1, 0]]')),
    'initial_state_count': Row('initial states', E, 'the wrong number of initial states',
                               call(lambda: L.LSTM(3, name='lstm'), x3(), initial_state=[np.zeros((2, 3))], build=x3()),
                               ('initial state', 'received 1')),
    'initial_state_shape': Row('initial states', E, 'an initial state of the wrong shape',
                               call(lambda: L.GRU(3, name='gru'), x3(), initial_state=[np.zeros((2, 5))], build=x3()),
                               ('`initial_state`', '(2, 5)')),
    'initial_state_dtype': Row('initial states', E, 'an initial state of complex numbers (or strings, objects)',
                               call(lambda: L.LSTM(3, name='lstm'), x3(), initial_state=[np.zeros((2, 3), complex)] * 2,
                                    build=x3()), ('`initial_state`', 'complex128')),
    'initial_state_string': Row('initial states', E, 'an initial state of strings',
                                call(lambda: L.GRU(3, name='gru'), x3(), initial_state=[np.full((2, 3), 'x')],
                                     build=x3()), ('`initial_state`', '<U1')),
    'stateful_batch': Row('initial states', E, 'a stateful layer called on another batch size',
                          run(lambda: stateful_lstm()(x3(B=5)), stateful_lstm), ('batch size', '5')),
    'constants_unsupported': Row('recurrent call', E, '`constants` for a cell whose `call` takes none',
                                 call(lambda: L.RNN(L.GRUCell(2), name='rnn'), x3(), constants=[np.ones((2, 2))],
                                      build=x3()), ('constants', 'Received: constants=')),
    'stacked_unused_kwarg': Row('recurrent call', E, '`StackedRNNCells` gets a keyword argument none of its cells takes',
                                run(lambda: L.StackedRNNCells([L.SimpleRNNCell(2)], name='stack').call(
                                    np.ones((2, 3)), [np.zeros((2, 2))], constants=[1])), ('constants', '[1]')),
    'use_cudnn_true': Row('recurrent call', E, '`use_cudnn=True` where cuDNN cannot serve the call (NumPy data, no '
                          'cuDNN, an argument or mask cuDNN does not take); the message ends with the reason',
                          call(lambda: L.LSTM(3, use_cudnn=True, name='lstm'), x3()),
                          ('use_cudnn=True', "'auto'", 'not CuPy arrays')),
    'cell_step_input': Row('recurrent call', E, 'a cell called on a step input that is not `(batch, input_dim)`',
                           call(lambda: L.LSTMCell(3, name='cell'), x3()[:, :, :3], [np.zeros((2, 3))] * 2),
                           ('Input 0', '(2, 3, 3)')),
    'cell_states': Row('recurrent call', E, 'a cell called with states of the wrong number or shape',
                       call(lambda: L.GRUCell(3, name='cell'), x3()[:, 0], [np.zeros((2, 4))]), ('`states`', '(2, 4)')),
    'reset_states_not_stateful': Row('stateful states', AttributeError, '`reset_states(states)` on a layer that is not '
                                     'stateful', run(lambda: L.LSTM(2, name='lstm').reset_states([np.zeros((1, 2))] * 2)),
                                     ('stateful', 'lstm')),
    'reset_states_count': Row('stateful states', E, '`reset_states` gets the wrong number of states',
                              run(lambda: stateful_lstm().reset_states([np.zeros((2, 3))])), ('state(s)', 'received 1')),
    'reset_states_shape': Row('stateful states', E, '`reset_states` gets a state of the wrong shape',
                              run(lambda: stateful_lstm().reset_states([np.zeros((2, 3)), np.zeros((2, 7))])),
                              ('State 1', '(2, 7)')),
    'reset_states_dtype': Row('stateful states', E, '`reset_states` gets states of complex numbers, strings or objects',
                              run(lambda: stateful_lstm().reset_states([np.zeros((2, 3)), np.full((2, 3), 'x')])),
                              ('`states`', '<U1')),
    # ---- weights ------------------------------------------------------------------------------------------------
    'set_weights_type': Row('set_weights', E, '`set_weights` gets something other than a list of arrays',
                            run(lambda: built(L.Dense(2, name='dense'), np.ones((1, 3))).set_weights(3)),
                            ('`weights`', '3')),
    'set_weights_count': Row('set_weights', E, '`set_weights` gets the wrong number of arrays',
                             run(lambda: built(L.Dense(2, name='dense'), np.ones((1, 3))).set_weights([np.ones((3, 2))])),
                             ('length 1', 'expecting 2')),
    'set_weights_shape': Row('set_weights', E, 'an array of the wrong shape',
                             run(lambda: built(L.Dense(2, name='dense'), np.ones((1, 3))).set_weights(
                                 [np.ones((2, 3)), np.ones(2)])), ('(3, 2)', '(2, 3)')),
    'set_weights_dtype': Row('set_weights', E, 'an array of strings or objects',
                             run(lambda: built(L.Dense(2, name='dense'), np.ones((1, 3))).set_weights(
                                 [np.full((3, 2), 'a'), np.ones(2)])), ('`weights`', '<U1')),
    'count_params_unbuilt': Row('set_weights', E, '`count_params` before the layer is built',
                                run(lambda: L.LSTM(2, name='lstm').count_params()), ('count_params', "'lstm'")),
    'variable_assign': Row('set_weights', E, '`Variable.assign` with a value of another shape',
                           run(lambda: rb.Variable(np.ones(3), name='v').assign(np.ones(4))), ('`v`', '(4,)')),
    # ---- core layers ------------------------------------------------------------------------------------------
    'dense_units': Row('Dense', E, '`units` is not a positive integer', run(lambda: L.Dense(-1)), ('`units`', '-1')),
    'dense_lora': Row('Dense', E, '`lora_rank` (rnnbook has no LoRA)', run(lambda: L.Dense(2, lora_rank=4)),
                      ('`lora_rank`', '4')),
    'dense_rank': Row('Dense', E, 'inputs of rank < 2', call(lambda: L.Dense(2, name='dense'), np.ones(3)),
                      ('min_ndim=2', '(3,)')),
    'dense_features': Row('Dense', E, 'another feature size than at build',
                          call(lambda: L.Dense(2, name='dense'), np.ones((1, 5)), build=np.ones((1, 3))),
                          ('axis -1', '(1, 5)')),
    'dense_dtype': Row('Dense', E, 'inputs of strings', call(lambda: L.Dense(2, name='dense'), np.array([['a', 'b']])),
                       ('`inputs`', '<U1')),
    'dense_zero_features': Row('Dense', E, 'inputs with 0 features (as the recurrent layers; Keras 3 returns the bias)',
                               call(lambda: L.Dense(2, name='dense'), np.ones((2, 0))), ('input_shape', '(2, 0)')),
    'dropout_rate': Row('Dropout', E, '`rate` is not in [0, 1]', run(lambda: L.Dropout(1.5)), ('`rate`', '1.5')),
    'dropout_noise_shape': Row('Dropout', E, '`noise_shape` is not a tuple of positive ints or None',
                               run(lambda: L.Dropout(0.5, noise_shape=(0, 1))), ('`noise_shape`', '0')),
    'dropout_noise_rank': Row('Dropout', E, '`noise_shape` of another rank than the inputs',
                              call(lambda: L.Dropout(0.5, noise_shape=(1, 1), name='drop'), x3(), training=True),
                              ('`noise_shape`', '(1, 1)')),
    'dropout_noise_size': Row('Dropout', E, 'a `noise_shape` entry that is neither None, 1 nor the input size',
                              call(lambda: L.Dropout(0.5, noise_shape=(2, 5, 4), name='drop'), x3(), training=True),
                              ('`noise_shape`', '(2, 5, 4)')),
    'embedding_dims': Row('Embedding', E, '`input_dim` or `output_dim` is not a positive integer',
                          run(lambda: L.Embedding(0, 3)), ('`input_dim`', 'input_dim=0')),
    'embedding_ids_range': Row('Embedding ids', E, 'a token id outside [0, input_dim)',
                               call(lambda: L.Embedding(10, 3, name='emb'), np.array([[1, 12]])), ('`inputs`', 'id 12')),
    'embedding_ids_huge': Row('Embedding ids', E, 'float ids of 2^63 or more (reported as themselves)',
                              call(lambda: L.Embedding(10, 2, name='emb'), np.array([[1., 1e20]])),
                              ('`inputs`', 'received id 100000000000000000000')),
    'embedding_ids_negative': Row('Embedding ids', E, 'a negative token id',
                                  call(lambda: L.Embedding(10, 3, name='emb'), np.array([[-1, 2]])), ('`inputs`', 'id -1')),
    'embedding_ids_float': Row('Embedding ids', E, 'non-integral (or NaN/inf) float ids',
                               call(lambda: L.Embedding(10, 3, name='emb'), np.array([[1.5]])), ('`inputs`', '1.5')),
    'embedding_ids_nan': Row('Embedding ids', E, 'NaN or infinite ids',
                             call(lambda: L.Embedding(10, 3, name='emb'), np.array([[np.inf]])), ('`inputs`', 'inf')),
    'embedding_ids_dtype': Row('Embedding ids', E, 'ids of dtype bool, string or object',
                               call(lambda: L.Embedding(10, 3, name='emb'), np.array([[True]])), ('`inputs`', 'bool')),
    'masking_value': Row('Masking', E, '`mask_value` is not a number', run(lambda: L.Masking('pad')),
                         ('`mask_value`', "'pad'")),
    'batchnorm_axis': Row('BatchNormalization', E, '`axis` is out of range for the inputs',
                          call(lambda: L.BatchNormalization(axis=4, name='bn'), x3()), ('axis', '4')),
    'batchnorm_args': Row('BatchNormalization', E, '`axis`, `momentum` or `epsilon` of the wrong type',
                          run(lambda: L.BatchNormalization(momentum='fast')), ('`momentum`', "'fast'")),
    'batchnorm_renorm': Row('BatchNormalization', E, '`renorm=True` or `synchronized=True` (not implemented)',
                            run(lambda: L.BatchNormalization(renorm=True)), ('`renorm`', 'renorm=True')),
    'batchnorm_mask': Row('BatchNormalization', E, 'a mask that is not the inputs\' shape without the last axis',
                          call(lambda: L.BatchNormalization(name='bn'), x3(), mask=np.ones((2, 4), bool), build=x3()),
                          ('mask.shape=(2, 4)', 'inputs.shape=(2, 3, 4)')),
    # ---- wrappers ---------------------------------------------------------------------------------------------
    'bidirectional_layer': Row('Bidirectional', E, 'the wrapped object is not a Layer', run(lambda: L.Bidirectional('lstm')),
                               ('Bidirectional', "'lstm'")),
    'bidirectional_not_recurrent': Row('Bidirectional', E, 'the wrapped layer is not recurrent',
                                       run(lambda: L.Bidirectional(L.Dense(2))), ('`layer`', 'Dense')),
    'bidirectional_merge_mode': Row('Bidirectional', E, '`merge_mode` is not concat/sum/mul/ave/None',
                                    run(lambda: L.Bidirectional(L.LSTM(2), merge_mode='max')), ('merge mode', "'max'")),
    'bidirectional_backward_layer': Row('Bidirectional', E, '`backward_layer` is not a Layer',
                                        run(lambda: L.Bidirectional(L.LSTM(2), backward_layer=3)),
                                        ('`backward_layer`', '3')),
    'bidirectional_pair': Row('Bidirectional', E, 'forward and backward layers with the same `go_backwards`, or '
                              'different `return_sequences`/`return_state`/`stateful`',
                              run(lambda: L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2))),
                              ('`go_backwards`', 'backward_layer.go_backwards=False')),
    'bidirectional_initial_state': Row('Bidirectional', E, 'initial states not 2 x the wrapped layer\'s',
                                       call(lambda: L.Bidirectional(L.LSTM(3), name='bi'), x3(),
                                            initial_state=[np.zeros((2, 3))] * 2, build=x3()),
                                       ('`initial_state`', 'received 2')),
    'bidirectional_reset_odd': Row('Bidirectional', E, '`reset_states` gets an odd number of states',
                                   run(lambda: built(L.Bidirectional(L.GRU(3, stateful=True), name='bi'), x3())
                                       .reset_states([np.zeros((2, 3))] * 3)), ('even number', 'received 3')),
    'bidirectional_reset_not_stateful': Row('Bidirectional', AttributeError, '`reset_states` on a Bidirectional that '
                                            'is not stateful', run(lambda: L.Bidirectional(L.GRU(3), name='bi')
                                                                   .reset_states()), ('stateful', 'bi')),
    'time_distributed_layer': Row('TimeDistributed', E, 'the wrapped object is not a Layer',
                                  run(lambda: L.TimeDistributed(L.Dense)), ('TimeDistributed', 'Dense')),
    'time_distributed_rank': Row('TimeDistributed', E, 'inputs of rank < 3',
                                 call(lambda: L.TimeDistributed(L.Dense(2), name='td'), np.ones((2, 3))),
                                 ('input_shape', '(2, 3)')),
    'time_distributed_mask': Row('TimeDistributed', E, 'a mask whose first two axes are not `(batch, timesteps)`',
                                 call(lambda: L.TimeDistributed(L.Dense(2), name='td'), x3(), mask=np.ones((3, 3), bool),
                                      build=x3()), ('`mask`', '(3, 3)')),
    'time_distributed_mask_rank': Row('TimeDistributed', E, 'a mask of rank < 2',
                                      call(lambda: L.TimeDistributed(L.Dense(2), name='td'), x3(),
                                           mask=np.ones(2, bool), build=x3()), ('`mask`', '(2,)')),
    # ---- ConvLSTM ----------------------------------------------------------------------------------------------
    'conv_filters': Row('ConvLSTM', E, '`filters` is not a positive integer', run(lambda: L.ConvLSTM2D(0, 3)),
                        ('`filters`', '0')),
    'conv_kernel_size': Row('ConvLSTM', E, '`kernel_size`, `strides` or `dilation_rate` not rank ints > 0',
                            run(lambda: L.ConvLSTM2D(2, (3, 3, 3))), ('`kernel_size`', '(3, 3, 3)')),
    'conv_padding': Row('ConvLSTM', E, "`padding` is not 'valid' or 'same'", run(lambda: L.ConvLSTM1D(2, 3, padding='full')),
                        ('`padding`', "'full'")),
    'conv_data_format': Row('ConvLSTM', E, '`data_format` is not channels_first/channels_last',
                            run(lambda: L.ConvLSTM2D(2, 3, data_format='nhwc')), ('`data_format`', 'nhwc')),
    'conv_strides_dilation': Row('ConvLSTM', E, '`strides > 1` together with `dilation_rate > 1`',
                                 run(lambda: L.ConvLSTM2D(2, 3, strides=2, dilation_rate=2)),
                                 ('`dilation_rate', 'dilation_rate=(2, 2)')),
    'conv_rank': Row('ConvLSTM', E, 'inputs not of rank 3 + the number of spatial axes',
                     call(lambda: L.ConvLSTM2D(2, 3, name='conv'), np.ones((2, 3, 4, 4))), ('ndim=5', '(2, 3, 4, 4)')),
    'conv_output_size': Row('ConvLSTM', E, 'a spatial size too small for the kernel (output size <= 0)',
                            call(lambda: L.ConvLSTM2D(2, 3, name='conv'), np.ones((2, 3, 2, 2, 1))),
                            ('kernel_size=(3, 3)', '(2, 2, 2, 1)')),
    'conv_channels': Row('ConvLSTM', E, 'another channel count (or spatial size) than at build',
                         call(lambda: L.ConvLSTM2D(2, 3, padding='same', name='conv'), np.ones((2, 3, 4, 4, 2)),
                              build=np.ones((2, 3, 4, 4, 1))), ('channels', 'found 2')),
    'conv_nested': Row('ConvLSTM', E, 'a list of inputs', call(lambda: L.ConvLSTM1D(2, 3, name='conv'),
                                                             [np.ones((2, 3, 5, 1))] * 2), ('`inputs`', 'list of 2')),
    'cudnn_kwargs': Row('CuDNN layers', L.Layer.__init__.__globals__['UnrecognizedArgumentError'],
                        'an argument Keras 2\'s cuDNN layers do not have (activation, dropout, ...)',
                        run(lambda: L.CuDNNLSTM(2, dropout=0.1)), ('CuDNNLSTM', "'dropout'")),
    'cudnn_mask': Row('CuDNN layers', E, 'a mask (cuDNN layers take none)',
                      call(lambda: L.CuDNNGRU(2, name='cudnn'), x3(), mask=np.ones((2, 3), bool), build=x3()),
                      ('Masking', "'cudnn'")),
    'cudnn_weight_shape': Row('cuDNN', E, 'Keras weights that do not fit the cuDNN weight table',
                              run(lambda: rb.cudnn.keras_to_flat('LSTM', [[np.ones((3, 8)), np.ones((2, 8)), np.ones(8)]],
                                                                 rb.cudnn.emulated_weight_table('LSTM', 4, 2))),
                              ('matrix of shape (2, 4)', 'shape (2, 3)')),
    'cudnn_kind': Row('cuDNN', E, 'a cell kind cuDNN does not have', run(lambda: rb.cudnn.emulated_weight_table('RNN', 3, 2)),
                      ('`kind`', "'RNN'")),
    # ---- models -------------------------------------------------------------------------------------------------
    'input_shape_and_batch_shape': Row('models', E, '`Input` gets both `shape` and `batch_shape`, or neither',
                                       run(lambda: rb.Input(shape=(3,), batch_shape=(2, 3))), ('`shape`', '`batch_shape`')),
    'input_bad_shape': Row('models', E, '`Input` gets a negative or non-integer dimension',
                           run(lambda: rb.Input(shape=(None, -2))), ('`shape`', '(None, None, -2)')),
    'input_sparse': Row('models', E, '`Input(sparse=True)` or ragged/optional/tensor inputs',
                        run(lambda: rb.Input(shape=(3,), sparse=True)), ('`sparse`', 'sparse=True')),
    'model_not_placeholders': Row('models', E, '`Model(inputs, outputs)` gets arrays instead of placeholders',
                                  run(lambda: rb.Model(np.ones(3), np.ones(3))), ('`inputs`', 'array')),
    'model_args': Row('models', E, '`Model` gets only one of `inputs` and `outputs`',
                      run(lambda: rb.Model(inputs=rb.Input((3,), name='inp'))), ('`inputs`', 'outputs=None')),
    'sequential_add': Row('models', E, '`Sequential.add` gets something that is not a Layer',
                          run(lambda: rb.Sequential([L.Dense(2), 'relu'])), ('Layer', "'relu'")),
    'sequential_names': Row('models', E, 'two layers with the same name', run(lambda: rb.Sequential(
        [L.Dense(2, name='d'), L.Dense(2, name='d')])), ('unique names', '"d"')),
    'model_input_count': Row('models', E, 'a model called on a list of arrays where it takes one',
                             on_model('predict', [x3(), x3()], verbose=0), ('`inputs`', 'list of 2')),
    'model_get_layer': Row('models', E, '`get_layer` with an unknown name or index',
                           on_model('get_layer', 'lstm2'), ('No such layer', 'lstm2')),
    'compile_first': Row('compile and fit', E, '`fit`/`evaluate`/`train_on_batch` before `compile`',
                         on_model('fit', x3(), np.ones((2, 2)), compiled=False), ('compile()', 'fit')),
    'compile_optimizer': Row('compile and fit', E, 'an optimizer name that does not exist (or None)',
                             on_model('compile', 'adamw2', 'mse'), ('optimizer', "'adamw2'")),
    'compile_loss': Row('compile and fit', E, 'a loss name that does not exist',
                        on_model('compile', 'adam', 'mse2'), ('loss', "'mse2'")),
    'compile_loss_list': Row('compile and fit', E, 'a list of losses (or loss weights) of another length than the '
                             'outputs (found by the first `fit`, before any update)',
                             on_model('fit', x3(), np.ones((2, 2)), loss=['mse', 'mae'], verbose=0),
                             ('`loss`', "['mse', 'mae']")),
    'compile_metric': Row('compile and fit', E, 'a metric name that does not exist',
                          on_model('compile', 'adam', 'mse', metrics=['acc2']), ('metric', "'acc2'")),
    'compile_loss_weights': Row('compile and fit', E, 'loss weights that are not numbers',
                                on_model('compile', 'adam', 'mse', loss_weights='a'), ('`loss_weights`', "'a'")),
    'compile_weighted_metrics': Row('compile and fit', E, '`weighted_metrics` (give them in `metrics`)',
                                    on_model('compile', 'adam', 'mse', weighted_metrics=['mae']),
                                    ('`weighted_metrics`', 'metrics')),
    'fit_counts': Row('compile and fit', E, '`batch_size`, `epochs`, `steps_per_epoch`, `validation_freq`, ... not '
                      'integers of the allowed range', on_model('fit', x3(), np.ones((2, 2)), batch_size=0),
                      ('`batch_size`', '0')),
    'fit_verbose': Row('compile and fit', E, "`verbose` is not 'auto', 0, 1 or 2",
                       on_model('fit', x3(), np.ones((2, 2)), verbose='loud'), ('`verbose`', "'loud'")),
    'fit_validation_split': Row('compile and fit', E, '`validation_split` not in (0, 1), or leaving no sample on a side',
                                on_model('fit', x3(), np.ones((2, 2)), validation_split=1.5, verbose=0),
                                ('`validation_split`', '1.5')),
    'fit_validation_data': Row('compile and fit', E, '`validation_data` is not `(x, y)` or `(x, y, sample_weight)`',
                               on_model('fit', x3(), np.ones((2, 2)), validation_data=x3(), verbose=0),
                               ('`validation_data`', 'ndarray')),
    'fit_validation_targets': Row('compile and fit', E, 'validation targets that do not fit the outputs (found before '
                                  'training starts)', on_model('fit', x3(), np.ones((2, 2)), verbose=0,
                                                               validation_data=(x3(), np.ones((2, 5)))),
                                  ('`y_true`', '(2, 5)')),
    'fit_cardinality': Row('compile and fit', E, '`x`, `y` and `sample_weight` with different numbers of samples',
                           on_model('fit', x3(), np.ones((3, 2)), verbose=0), ('cardinality', '[2, 3]')),
    'fit_empty': Row('compile and fit', E, 'no samples at all', on_model('fit', x3(B=0), np.ones((0, 2)), verbose=0),
                     ('`x`', 'received 0')),
    'fit_y_dtype': Row('compile and fit', E, 'targets of strings or objects',
                       on_model('fit', x3(), np.array([['a', 'b']] * 2), verbose=0), ('`y`', '<U1')),
    'fit_y_none': Row('compile and fit', E, 'no targets for a compiled loss',
                      on_model('train_on_batch', x3(), None), ('`y`', 'received None')),
    'fit_y_shape': Row('compile and fit', E, 'targets whose shape does not fit the outputs (nothing is updated)',
                       on_model('train_on_batch', x3(), np.ones((2, 7))), ('`y_true`', '(2, 7)')),
    'fit_class_weight': Row('compile and fit', E, '`class_weight` is not a dict of numbers',
                            on_model('fit', x3(), np.ones((2, 2)), class_weight='balanced', verbose=0),
                            ('`class_weight`', "'balanced'")),
    'fit_sample_weight': Row('compile and fit', E, 'a `sample_weight` that does not broadcast against the losses',
                             on_model('train_on_batch', x3(), np.ones((2, 2)), sample_weight=np.ones((2, 9))),
                             ('`sample_weight`', '(2, 9)')),
    'fit_stateful_batches': Row('compile and fit', E, 'a stateful model with batches of another size (or a sample '
                                'count not divisible by it)', on_model('fit', x3(B=5), np.ones((5, 2)), batch_size=2,
                                                                       stateful=True, verbose=0),
                                ('`batch_size`', 'batch_size=2')),
    'fit_callbacks': Row('compile and fit', E, '`callbacks` holds something that is not a Callback',
                         on_model('fit', x3(), np.ones((2, 2)), callbacks=['early'], verbose=0),
                         ('`callbacks`', "'early'")),
    'early_stopping_mode': Row('compile and fit', E, '`EarlyStopping` cannot tell whether to maximize its monitor',
                               on_model('fit', x3(), np.ones((2, 2)), verbose=0, callbacks=[
                                   rb.callbacks.EarlyStopping(monitor='f1')]), ('monitor=f1', "mode='max'")),
    'predict_empty': Row('compile and fit', E, '`predict` on no samples', on_model('predict', x3(B=0), verbose=0),
                         ('`x`', 'at least one sample')),
    # ---- losses and metrics ----------------------------------------------------------------------------------
    'loss_shapes': Row('losses', E, '`y_true` and `y_pred` whose shapes do not broadcast (or differ, for cross-entropy)',
                       run(lambda: losses.MeanSquaredError()(np.ones((2, 3)), np.ones((2, 4)))), ('`y_true`', '(2, 3)')),
    'loss_dtype': Row('losses', E, '`y_true` or `y_pred` of strings, objects or None',
                      run(lambda: losses.MeanAbsoluteError()(np.array(['a']), np.ones(1))), ('`y_true`', '<U1')),
    'sparse_ids': Row('losses', E, 'a class id outside [0, classes)',
                      run(lambda: losses.SparseCategoricalCrossentropy()(np.array([3]), np.ones((1, 3)) / 3)),
                      ('`y_true`', 'received 3')),
    'sparse_ids_nan': Row('losses', E, 'NaN or infinite class ids',
                          run(lambda: losses.SparseCategoricalCrossentropy()(np.array([np.nan]), np.ones((1, 3)) / 3)),
                          ('`y_true`', 'nan')),
    'sparse_shapes': Row('losses', E, 'class ids whose shape is not `y_pred`\'s without the last axis',
                         run(lambda: losses.SparseCategoricalCrossentropy()(np.zeros((2, 2)), np.ones((2, 3)))),
                         ('y_true.shape=(2, 2)', 'y_pred.shape=(2, 3)')),
    'loss_reduction': Row('losses', E, 'an unknown `reduction`', run(lambda: losses.MeanSquaredError(reduction='avg')),
                          ('`reduction`', "'avg'")),
    'loss_label_smoothing': Row('losses', E, '`label_smoothing` not in [0, 1]',
                                run(lambda: losses.binary_crossentropy(np.ones(2), np.ones(2), label_smoothing=2)),
                                ('`label_smoothing`', '2')),
    'loss_axis': Row('losses', E, '`axis` is not an integer',
                     run(lambda: losses.categorical_crossentropy(np.ones((1, 2)), np.ones((1, 2)), axis='last')),
                     ('`axis`', "'last'")),
    'loss_unknown': Row('losses', E, 'a loss name that does not exist', run(lambda: losses.get('hinge2')),
                        ('loss', "'hinge2'")),
    'metric_unknown': Row('metrics', E, 'a metric name that does not exist', run(lambda: metrics.get('f1')),
                          ('metric', "'f1'")),
    'metric_shapes': Row('metrics', E, 'labels and predictions a metric cannot line up',
                         run(lambda: metrics.SparseCategoricalAccuracy().update_state(np.zeros((2, 4)), np.ones((2, 3)))),
                         ('y_true.shape=(2, 4)', 'y_pred.shape=(2, 3)')),
    'metric_sample_weight': Row('metrics', E, 'a metric `sample_weight` that does not broadcast',
                                run(lambda: metrics.MeanSquaredError().update_state(np.ones((2, 3)), np.ones((2, 3)),
                                                                                    sample_weight=np.ones((2, 5)))),
                                ('`sample_weight`', '(2, 5)')),
    # ---- optimizers --------------------------------------------------------------------------------------------
    'optimizer_unknown': Row('optimizers', E, 'an optimizer name that does not exist',
                             run(lambda: optimizers.get('adamax2')), ('optimizer', "'adamax2'")),
    'optimizer_learning_rate': Row('optimizers', E, '`learning_rate` is not a float, a schedule or a callable',
                                   run(lambda: optimizers.Adam(learning_rate='fast')), ('`learning_rate`', "'fast'")),
    'optimizer_clip': Row('optimizers', E, '`clipnorm`, `clipvalue`, `global_clipnorm` or `weight_decay` negative',
                          run(lambda: optimizers.SGD(clipnorm=-1)), ('`clipnorm`', '-1')),
    'optimizer_two_clips': Row('optimizers', E, 'more than one of `clipnorm`, `clipvalue`, `global_clipnorm`',
                               run(lambda: optimizers.SGD(clipnorm=1, clipvalue=1)), ('`clipnorm`', 'clipvalue=1')),
    'optimizer_fraction': Row('optimizers', E, '`beta_1`, `beta_2`, `rho` or `momentum` outside [0, 1)',
                              run(lambda: optimizers.Adam(beta_1=1.5)), ('`beta_1`', '1.5')),
    'optimizer_epsilon': Row('optimizers', E, '`epsilon` or `initial_accumulator_value` negative or not a number',
                             run(lambda: optimizers.RMSprop(epsilon='tiny')), ('`epsilon`', "'tiny'")),
    'optimizer_sgd_momentum': Row('optimizers', E, 'SGD `momentum` outside [0, 1]', run(lambda: optimizers.SGD(momentum=2)),
                                  ('`momentum`', 'momentum=2')),
    'optimizer_keras_only': Row('optimizers', E, '`use_ema=True` or `gradient_accumulation_steps` (not implemented)',
                                run(lambda: optimizers.Adam(use_ema=True)), ('`use_ema`', 'True')),
    'optimizer_kwargs': Row('optimizers', E, 'an unknown keyword argument', run(lambda: optimizers.SGD(lr2=0.1)),
                            ('not recognized', "'lr2'")),
    'optimizer_grad_pairs': Row('optimizers', E, '`apply_gradients` gets something else than (gradient, variable) pairs',
                                optimizer_apply(lambda v: ([np.ones((2, 3)), np.ones(2)], [v])),
                                ('`grads_and_vars`', 'received [<rb.Variable path=v')),
    'optimizer_grad_count': Row('optimizers', E, '`apply` with a gradient count other than the variables\'',
                                optimizer_apply(lambda v: ([np.ones((2, 3)), np.ones(2)], [v]), 'apply'),
                                ('2 gradients', '1 variables')),
    'optimizer_not_variables': Row('optimizers', E, '`apply` with arrays where `rb.Variable`s are expected',
                                   optimizer_apply(lambda v: ([np.ones(3)], [np.zeros(3)]), 'apply'),
                                   ('`variables`', 'ndarray')),
    'optimizer_grad_shape': Row('optimizers', E, 'a gradient of another shape than its variable',
                                optimizer_apply(lambda v: [(np.ones((3, 2)), v)]), ('`v`', '(3, 2)')),
    # ---- files ------------------------------------------------------------------------------------------------
    'save_filepath': Row('files', E, '`filepath` is not a path', run(lambda: model().save_weights(3)),
                         ('`filepath`', 'received 3')),
    'save_overwrite': Row('files', FileExistsError, 'the file exists and `overwrite=False`',
                          run(lambda: (model().save_weights(tmp('exists.npz')),
                                       model().save_weights(tmp('exists.npz'), overwrite=False))),
                          ('`filepath`', 'overwrite=False')),
    'save_unbuilt': Row('files', E, '`save_weights` on a model without weights yet',
                        run(lambda: rb.Sequential([L.Dense(2)], name='unbuilt').save_weights(tmp('u.npz'))),
                        ('save_weights', "'unbuilt'")),
    'load_truncated': Row('files', E, 'a truncated or corrupted file (nothing is changed)',
                          load_into_model(lambda: weights_file('truncated.npz', saved_bytes()[:-200])),
                          ('truncated.npz', 'truncated or corrupted')),
    'load_not_npz': Row('files', E, 'a file that is no .npz (nor .npy): never unpickled',
                        load_into_model(lambda: weights_file('notes.npz', b'just some text')),
                        ('notes.npz', 'never unpickles')),
    'load_pickled_objects': Row('files', E, 'an .npz holding object arrays (pickles): refused, never run',
                                load_into_model(lambda: weights_file('objects.npz', arrays={
                                    '__meta__': meta(1), 'w0000': object_array()})), ("'w0000'", 'allow_pickle=False')),
    'load_not_rnnbook': Row('files', E, 'an .npz without rnnbook\'s `__meta__` record',
                            load_into_model(lambda: weights_file('plain.npz', arrays={'x': np.ones(3)})),
                            ('plain.npz', '`__meta__`')),
    'load_newer': Row('files', E, 'a file written by a newer weights format version',
                      load_into_model(lambda: weights_file('newer.npz', arrays={'__meta__': meta(0, version=9)})),
                      ('newer.npz', 'version 9')),
    'load_missing_arrays': Row('files', E, 'a file whose record lists arrays it does not hold',
                               load_into_model(lambda: weights_file('missing.npz', arrays={'__meta__': meta(2)})),
                               ('missing.npz', "['w0000', 'w0001']")),
    'load_count': Row('files', E, 'a file with another number of weights than the model',
                      load_into_model(lambda: weights_file('count.npz', arrays={
                          '__meta__': meta(1), 'w0000': np.ones(1, 'float32')})), ('holds 1 weights', 'has 5')),
    'load_shapes': Row('files', E, 'weights whose names or shapes differ from the model\'s (position by position)',
                       load_into_model(lambda: weights_file('shapes.npz', arrays={
                           '__meta__': meta(5), **{f'w{i:04d}': np.ones(1, 'float32') for i in range(5)}})),
                       ("shape (4, 12)", 'Nothing was changed')),
    'load_model_no_config': Row('files', E, '`load_model` on a file written by `save_weights`',
                                load_into_model(lambda: weights_file('weights_only.npz', saved_bytes()), 'load_model'),
                                ('weights_only.npz', 'no model config')),
    'save_nul_path': Row('files', E, '`filepath` holds a NUL character (no file name can)',
                         run(lambda: model().save_weights('w\0.npz')), ('`filepath`', "received 'w\\x00.npz'")),
    'load_nul_path': Row('files', E, '`load_weights` or `load_model` gets a `filepath` holding a NUL character',
                         load_into_model(lambda: 'w\0.npz'), ('`filepath`', "received 'w\\x00.npz'")),
    'load_not_regular': Row('files', E, 'a FIFO, a device or any file that is not a regular file (never opened)',
                            load_into_model(lambda: '/dev/zero'), ("'/dev/zero'", 'received a character device')),
    'load_unlisted_member': Row('files', E, 'a file holding members its `__meta__` record does not list',
                                load_into_model(lambda: weights_file('extra.npz', arrays={
                                    '__meta__': meta(0), 'payload': np.zeros(3)})), ('extra.npz', "['payload.npy']")),
    'load_deep_meta': Row('files', E, 'a `__meta__` record nested too deep for Python to decode',
                          load_into_model(lambda: weights_file('deep.npz', arrays={'__meta__': np.array('[' * 100_000)})),
                          ('deep.npz', 'nests deeper')),
    'load_header_size': Row('files', E, 'an array header declaring more data than the file holds (10**12 elements)',
                            load_into_model(lambda: forged_npz('huge.npz', (10**12,))),
                            ('huge.npz', 'declares shape (1000000000000,)')),
    'load_header_meta': Row('files', E, "an array header that disagrees with the `__meta__` record's dtype or shape",
                            load_into_model(lambda: weights_file('disagree.npz', arrays={
                                '__meta__': meta(1), 'w0000': np.ones(2, 'float32')})), ('disagree.npz', 'shape (2,)')),
    # ---- Keras files and configs ------------------------------------------------------------------------------
    'save_extension': Row('Keras files', E, '`save` to a name that is neither `.keras` nor `.npz`',
                          run(lambda: model().save(tmp('model.pt'))), ('Invalid filepath extension', 'model.pt')),
    'save_legacy_h5': Row('Keras files', E, "`save` to Keras 2's `.h5`, which rnnbook reads but does not write",
                          run(lambda: model().save(tmp('model.h5'))), ('does not write them', 'model.h5')),
    'save_weights_extension': Row('Keras files', E, '`save_weights` to a name that is neither `.weights.h5` nor `.npz`',
                                  run(lambda: model().save_weights(tmp('w.h5'))), ('`.weights.h5`', 'w.h5')),
    'load_weights_only_as_model': Row('Keras files', E, "`load_model` on Keras 3's weights-only `.weights.h5`",
                                      load_into_model(lambda: (model().save_weights(tmp('only.weights.h5')),
                                                               tmp('only.weights.h5'))[1], method='load_model'),
                                      ('No model config found', 'only.weights.h5')),
    'load_keras_lambda': Row('Keras files', E, 'a `.keras` file whose config names a `Lambda` layer (`safe_mode=True`)',
                             load_into_model(lambda: keras_archive('lambda.keras', {'class_name': 'Lambda',
                                                                                     'config': {}}),
                                             method='load_model'), ('Lambda', 'safe_mode')),
    'load_keras_member': Row('Keras files', E, 'a `.keras` zip without the members Keras writes',
                             load_into_model(lambda: zip_file('members.keras', {'config.json': '{}'}),
                                             method='load_model'), ('members.keras', 'metadata.json')),
    'config_unknown_key': Row('Keras files', E, "a key in an initializer's (or regularizer's...) config that it has no "
                              'argument for', run(lambda: L.Dense(2, kernel_initializer={
                                  'class_name': 'GlorotUniform', 'config': {'sed': 3}})), ("'sed'", 'GlorotUniform')),
    'config_time_major': Row('Keras files', E, "Keras 2's `time_major=True` (its configs hold False)",
                             run(lambda: L.LSTM(2, time_major=True)), ('`time_major`', 'time_major=True')),
    'config_quantization': Row('Keras files', E, 'a `quantization_config` other than None (rnnbook does not quantize)',
                               run(lambda: L.Dense(2, quantization_config={'mode': 'int8'})),
                               ('quantization_config', 'int8')),
    # ---- gradient tape -----------------------------------------------------------------------------------------
    'tape_second_gradient': Row('GradientTape', RuntimeError, '`gradient` twice on a non-persistent tape',
                                fresh(second_gradient), ('persistent', 'persistent=True')),
    'tape_unconnected': Row('GradientTape', E, "`unconnected_gradients` is not 'zero' or 'none'",
                            fresh(unconnected), ('`unconnected_gradients`', "'nan'")),
    'tape_no_rule': Row('GradientTape', NotImplementedError, 'an op without a gradient rule is recorded',
                        fresh(no_gradient_rule), ('opaque', 'stop_gradient')),
}


# ---- the test ------------------------------------------------------------------------------------------------

def snapshot(subject):
    if subject is None: return None
    layers = [subject] + subject._all_sublayers()
    states = [np.array(v.numpy()) for l in layers for v in flatten(l.__dict__.get('states') or [])]
    return subject.built, [np.array(w.numpy()) for w in subject.weights], states


def trigger(row):
    "`(exception, subject, snapshot before)` of running the row."
    fn, subject = row.setup()
    before = snapshot(subject)
    with pytest.raises(row.exc) as info:
        fn()
    return info.value, subject, before


@pytest.mark.parametrize('key', list(ERRORS))
def test_error_row(key):
    row = ERRORS[key]
    error, subject, before = trigger(row)
    assert type(error) is row.exc, (type(error), row.exc)
    message = str(error)
    for text in row.names:
        assert text in message, f"{key}: {text!r} is not in the message {message!r}"
    if subject is not None:                                 # the error left the layer or model as it was
        after = snapshot(subject)
        assert after[0] == before[0] and len(after[1]) == len(before[1])
        for u, v in zip(after[1] + after[2], before[1] + before[2]): np.testing.assert_array_equal(u, v)


# ---- the docs table --------------------------------------------------------------------------------------------

def example(row) -> str:
    "The row's message, made machine-independent (temporary paths, object addresses) and kept short."
    error = trigger(row)[0]
    text = str(error).replace(str(TMP) + os.sep, '').replace(str(TMP), '')
    text = re.sub(r' at 0x[0-9a-f]+', '', text)
    text = re.sub(r'<(?:[\w]+\.)+(\w+) object>', r'<\1 object>', text)      # the module a class is defined in
    text = re.sub(r"(expected one of )\[[^\]]{60,}\]", r"\1[...]", text)
    text = ' '.join(text.split())
    if len(text) > 220: text = text[:217] + '...'
    return text.replace('|', '\\|')


def render() -> str:
    lines = ['# Errors for bad input', '',
             'Every error rnnbook raises for bad input: the exception type, when it is raised, and an example of its '
             'message. Messages name the argument and the value received. After any of these errors the layer or '
             "model's weights and stateful states are as they were (a failed first call also leaves a layer unbuilt), "
             'and a file that cannot be loaded changes nothing. Weight files are read with `allow_pickle=False`: '
             'nothing in a file can run code. Files are checked before their data is read (members, declared shapes '
             'and sizes against the model), so a hostile file is refused in bounded memory; a FIFO or a device is '
             'refused without being read.', '',
             'Interrupts and threads get the same promise. A training step, an optimizer update and a model call are '
             'all or nothing: Ctrl-C during `fit` waits for the current step to end (a second Ctrl-C stops it at once '
             'and the step is undone), so the model is left at the start or the end of a step, never half-way. An '
             'error in any epoch of `fit` puts back the weights, states and optimizer slots `fit` started from (and '
             'unbuilds a model it built). Layers may be shared between threads: a layer is built once, and the calls '
             'of a stateful layer (or of a model holding one) run one at a time (notebook 06, *Threads*).', '',
             'Types: `ValueError` for bad values (`UnrecognizedArgumentError` for unknown keyword arguments is a '
             '`ValueError` and a `TypeError`); `AttributeError` for `reset_states` on a layer that is not stateful; '
             '`FileExistsError`, `FileNotFoundError` (and other `OSError`s) from the file system; `RuntimeError` '
             'and `NotImplementedError` from `rb.GradientTape`.', '',
             'This page is generated from the list `ERRORS` in `tests/docs/test_errors.py`, whose test triggers every row '
             '(`.venv/bin/python tests/docs/test_errors.py --write` regenerates it).', '',
             '<!-- errors table: begin -->',
             '| id | area | exception | when | example message |', '|---|---|---|---|---|']
    for key, row in ERRORS.items():
        lines.append(f"| `{key}` | {row.area} | `{row.exc.__name__}` | {row.when.replace('|', '/')} | {example(row)} |")
    lines += ['<!-- errors table: end -->', '']
    return '\n'.join(lines)


def table_rows(text: str) -> list:
    "The id, area, exception and when columns of the table in `text`."
    body = text.split('<!-- errors table: begin -->')[1].split('<!-- errors table: end -->')[0]
    rows = [l for l in body.strip().splitlines()[2:]]
    return [tuple(c.strip() for c in re.split(r'(?<!\\)\|', r)[1:5]) for r in rows]


def test_docs_table_mirrors_the_list():
    doc = DOC.read_text()
    want = render()
    assert table_rows(doc) == table_rows(want), "docs/errors.md is out of date: run `python tests/docs/test_errors.py --write`"
    assert doc == want, "docs/errors.md is out of date (messages): run `python tests/docs/test_errors.py --write`"


if __name__ == '__main__':
    if '--write' in sys.argv:
        DOC.write_text(render())
        print(f"wrote {DOC} ({len(ERRORS)} rows)")
    else:
        for key, row in ERRORS.items():
            try: print(f"{key:32s} {example(row)}")
            except BaseException as e: print(f"{key:32s} !! {type(e).__name__}: {e}")


# ---- training steps that fail change nothing -------------------------------------------------------------------

def test_failed_training_changes_nothing():
    """Bad targets, weights or batches in fit/train_on_batch/evaluate/predict: weights (moving statistics included),
    stateful states, the optimizer and the compiled metrics are as before; the next good call works as usual."""
    rb.set_seed(0)
    m = rb.Sequential([L.LSTM(3, stateful=True, return_sequences=True, name='lstm'), L.BatchNormalization(name='bn'),
                       L.GRU(2, name='gru'), L.Dense(3, name='dense')], name='model')
    x, y = x3(B=4), np.array([0, 2, 1, 1])
    m(x)
    m.compile('adam', losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
    m(x)                                                     # states that are not zero
    def state():
        return ([w.copy() for w in m.get_weights()], [v.numpy().copy() for v in m.layers[0].states],
                [v.numpy().copy() for v in m.optimizer.variables])
    before = state()
    bad_calls = [lambda: m.fit(x, np.array([0, 5, 1, 1]), batch_size=4, verbose=0),        # a class id out of range
                 lambda: m.fit(x, np.ones((4, 2)), batch_size=4, verbose=0),                # targets of another shape
                 lambda: m.train_on_batch(x, np.ones((4, 7))),
                 lambda: m.train_on_batch(x, y, sample_weight=np.ones((4, 5))),
                 lambda: m.fit(x, y, batch_size=4, verbose=0, validation_data=(x, np.ones((4, 9)))),
                 lambda: m.fit(np.concatenate([x, x[:2]]), np.concatenate([y, y[:2]]), batch_size=4, verbose=0),
                 lambda: m.evaluate(x, np.ones((4, 7)), batch_size=4, verbose=0),
                 lambda: m.predict(np.concatenate([x, x[:2]]), batch_size=4, verbose=0),
                 lambda: m.train_on_batch(x[:2], y[:2])]                                   # another batch size
    for bad in bad_calls:
        with pytest.raises(ValueError):
            bad()
        after = state()
        for u, v in zip(sum(after, []), sum(before, [])): np.testing.assert_array_equal(u, v)
        assert not m._objectives.built                       # 'accuracy' not resolved from bad targets
    history = m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert type(m._objectives.metrics[0][1]).__name__ == 'SparseCategoricalAccuracy'
    assert np.isfinite(history.history['loss']).all()


def test_fit_failing_on_a_later_batch_puts_the_model_back():
    """Bad data found only in a later batch (an id out of range): until every batch was seen once, fit restores
    weights, optimizer state (slots, iterations) and states; after that, the training done is kept."""
    rb.set_seed(1)
    m = rb.Sequential([L.GRU(3, name='gru'), L.BatchNormalization(name='bn'), L.Dense(3, name='dense')], name='m')
    x, y = x3(B=8), np.array([0, 1, 2, 0, 1, 2, 7, 0])              # batch 4 of 4 holds the bad id
    m(x)
    m.compile('adam', losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(ValueError, match='received 7'):
        m.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    for u, v in zip(m.get_weights(), before): np.testing.assert_array_equal(u, v)
    assert int(m.optimizer.iterations.numpy()) == 0 and len(m.optimizer.variables) == 2   # no slots left behind
    with pytest.raises(ValueError, match='received 9'):              # bad validation data past its first batch
        m.fit(x[:4], y[:4], batch_size=2, shuffle=False, verbose=0,
              validation_data=(x, np.array([0, 1, 2, 0, 1, 2, 9, 0])))
    for u, v in zip(m.get_weights(), before): np.testing.assert_array_equal(u, v)
    y[6] = 1
    a = m.fit(x, y, batch_size=2, shuffle=False, epochs=2, verbose=0).history['loss']
    fresh = rb.Sequential([L.GRU(3), L.BatchNormalization(), L.Dense(3)])
    fresh(x); fresh.set_weights(before)
    fresh.compile('adam', losses.SparseCategoricalCrossentropy(from_logits=True))
    b = fresh.fit(x, y, batch_size=2, shuffle=False, epochs=2, verbose=0).history['loss']
    assert a == b                                                   # as if the failed fits never happened
