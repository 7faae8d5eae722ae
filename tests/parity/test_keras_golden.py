"""Golden-value tests ported from Keras 3's own RNN test-suite.

Source: keras-team/keras, ``keras/src/layers/rnn/{simple_rnn,gru,lstm,
stacked_rnn_cells,rnn}_test.py``.  The inputs (``np.arange`` sequences,
constant initializers 0.01 / 0.02 / 0.03, ``"ones"`` custom cells) and the
expected arrays are copied verbatim; here they run through rnnbook only (no
Keras import).  Tolerances are Keras' ``assertAllClose`` ones: ``atol=rtol=
1e-6`` unless the original test passes something else (1e-5 for most GRU/LSTM
cases, 1e-4 for the stacked LSTMCell mask test).

Ported: all ``test_correctness`` variants (incl. go_backwards, unroll,
reset_after=False, unit_forget_bias=False, use_bias=False, implementation 1
and 2), ``test_statefulness``, ``test_pass_initial_state``,
``test_pass_return_state``, ``test_masking`` (incl. zero_output_for_mask and
go_backwards with masks), GRU's ``test_legacy_implementation_argument``, the
stacked-cells correctness / statefulness / return_state / mask tests, and
rnn_test's forward-pass, initial-state, statefulness, go_backwards, masking and
stateful-batch-size-mismatch tests.  The custom ``OneStateRNNCell`` is run both
as a custom ``rb.layers.Layer`` subclass (as in Keras) and as its exact
built-in equivalent ``SimpleRNNCell(units, activation="linear",
use_bias=False, kernel_initializer="ones", recurrent_initializer="ones")``;
``TwoStatesRNNCell`` has no built-in equivalent and is only run as a custom
cell.  The batch-size-mismatch test calls the stateful layer directly instead
of through a Functional model.

Skipped (out of scope or no fixed numbers):
* every ``test_basics`` (``run_layer_test``: training/fit, regularizer losses,
  seed-generator counts, mixed precision, symbolic tensors),
* rnn_test ``test_compute_output_shape_*`` / ``test_dynamic_shapes``
  (symbolic ``None`` shapes, ``compute_output_shape``) and
  ``test_serialization`` (Keras serialization of custom classes; config
  round-trips are covered in test_keras_parity.py) and the
  ``compute_output_shape`` half of ``test_return_state_stacked_lstm_cell``,
* GRU ``test_stateful_with_symbolic_batch_size`` (tf.function) and
  ``test_torch_cudnn_dispatch_fires`` (CUDA),
* dropout_rnn_cell_test (seed-generator tracking, training=True randomness),
* bidirectional_test, conv_lstm*_test, time_distributed_test (layers out of
  scope).
"""

import numpy as np
import pytest

import rnnbook as rb

L = rb.layers
initializers = rb.initializers
_matmul = np.matmul


def close(actual, desired, atol=1e-6, rtol=1e-6):
    """Keras' ``assertAllClose`` (defaults atol=rtol=1e-6) incl. shape check."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"shape {actual.shape} != {desired.shape}"
    np.testing.assert_allclose(actual, desired, atol=atol, rtol=rtol)


def cinit():
    """Fresh constant initializers as used by all Keras golden tests."""
    return dict(
        kernel_initializer=initializers.Constant(0.01),
        recurrent_initializer=initializers.Constant(0.02),
        bias_initializer=initializers.Constant(0.03),
    )


def seq_2x3x4():
    return np.arange(24).reshape((2, 3, 4)).astype("float32")


def seq_2x4x3():
    return np.arange(24).reshape((2, 4, 3)).astype("float32")


def seq_3x6x4():
    return np.arange(72).reshape((3, 6, 4)).astype("float32")


def rows(values, width):
    """[[v0]*width, [v1]*width, ...] -- Keras' expected arrays are constant rows."""
    return np.array([[v] * width for v in values])


# ----------------------------------------------------------------------------
# simple_rnn_test.py
# ----------------------------------------------------------------------------
class TestSimpleRNNGolden:
    FWD = rows([0.405432, 0.73605347], 4)
    BWD = rows([0.11144729, 0.5528889], 4)

    @pytest.mark.parametrize(
        "kwargs,expected",
        [({}, "FWD"), ({"unroll": True}, "FWD"),
         ({"go_backwards": True}, "BWD"),
         ({"go_backwards": True, "unroll": True}, "BWD")],
        ids=["plain", "unroll", "go_backwards", "go_backwards-unroll"],
    )
    def test_correctness(self, kwargs, expected):
        layer = L.SimpleRNN(4, **cinit(), **kwargs)
        close(layer(seq_2x3x4()), getattr(self, expected))

    def test_statefulness(self):
        sequence = seq_2x3x4()
        layer = L.SimpleRNN(4, stateful=True, **cinit())
        expected = rows([0.40559256, 0.7361247], 4)
        layer(sequence)
        close(layer(sequence), expected)
        layer.reset_state()
        layer(sequence)
        close(layer(sequence), expected)

    def test_pass_initial_state(self):
        sequence = seq_2x4x3()
        initial_state = np.arange(8).reshape((2, 4)).astype("float32")
        layer = L.SimpleRNN(4, **cinit())
        close(layer(sequence, initial_state=initial_state),
              rows([0.33621645, 0.6262637], 4))
        layer = L.SimpleRNN(4, go_backwards=True, **cinit())
        close(layer(sequence, initial_state=initial_state),
              rows([0.07344437, 0.43043602], 4))

    MASK = np.array([[True, True, False, True], [True, False, False, True]])

    def test_masking_unroll(self):
        layer = L.SimpleRNN(4, unroll=True, **cinit())
        close(layer(seq_2x4x3(), mask=self.MASK), rows([0.32951632, 0.61799484], 4))

    def test_masking_return_sequences(self):
        layer = L.SimpleRNN(2, return_sequences=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.0599281, 0.15122814, 0.15122814, 0.32394567], 2))
        close(output[1], rows([0.3969304, 0.3969304, 0.3969304, 0.608085], 2))

    def test_masking_zero_output_for_mask(self):
        layer = L.SimpleRNN(2, return_sequences=True, zero_output_for_mask=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.0599281, 0.15122814, 0.0, 0.32394567], 2))
        close(output[1], rows([0.3969304, 0.0, 0.0, 0.608085], 2))

    def test_masking_go_backwards(self):
        layer = L.SimpleRNN(4, go_backwards=True, **cinit())
        close(layer(seq_2x4x3(), mask=self.MASK), rows([0.07376196, 0.43645123], 4))


# ----------------------------------------------------------------------------
# gru_test.py
# ----------------------------------------------------------------------------
class TestGRUGolden:
    FWD = rows([0.5217289, 0.6371659, 0.39384964], 3)
    FWD[2, 2] = 0.3938496  # verbatim from Keras

    @pytest.mark.parametrize(
        "kwargs,expected",
        [
            ({}, "FWD"),
            ({"go_backwards": True}, rows([0.24406259, 0.611516, 0.3928808], 3)),
            ({"unroll": True}, "FWD"),
            ({"reset_after": False}, rows([0.51447755, 0.6426879, 0.40208298], 3)),
            ({"use_bias": False}, rows([0.49988455, 0.64701194, 0.4103359], 3)),
        ],
        ids=["plain", "go_backwards", "unroll", "reset_after_False", "no_bias"],
    )
    @pytest.mark.parametrize("implementation", [1, 2])
    def test_correctness(self, implementation, kwargs, expected):
        if isinstance(expected, str):
            expected = getattr(self, expected)
        layer = L.GRU(3, implementation=implementation, **cinit(), **kwargs)
        close(layer(seq_3x6x4()), expected, atol=1e-5, rtol=1e-5)

    def test_statefulness(self):
        sequence = seq_2x3x4()
        layer = L.GRU(4, stateful=True, **cinit())
        expected = rows([0.29542392, 0.5885018], 4)
        layer(sequence)
        close(layer(sequence), expected)
        layer.reset_state()
        layer(sequence)
        close(layer(sequence), expected)

    INIT = np.arange(4).reshape((2, 2)).astype("float32")
    INIT_FWD = np.array([[0.23774096, 0.33508456], [0.83659905, 1.0227708]])
    INIT_BWD = np.array([[0.13486053, 0.23261218], [0.78257304, 0.9691353]])

    def test_pass_initial_state(self):
        layer = L.GRU(2, **cinit())
        close(layer(seq_2x4x3(), initial_state=self.INIT), self.INIT_FWD)
        layer = L.GRU(2, go_backwards=True, **cinit())
        close(layer(seq_2x4x3(), initial_state=self.INIT), self.INIT_BWD)

    @pytest.mark.parametrize("go_backwards", [False, True])
    def test_pass_return_state(self, go_backwards):
        layer = L.GRU(2, return_state=True, go_backwards=go_backwards, **cinit())
        output, state = layer(seq_2x4x3(), initial_state=self.INIT)
        close(output, self.INIT_BWD if go_backwards else self.INIT_FWD)
        close(output, state)

    MASK = np.array([[True, True, False, True], [True, False, False, True]])

    def test_masking_unroll(self):
        layer = L.GRU(2, unroll=True, **cinit())
        close(layer(seq_2x4x3(), mask=self.MASK), rows([0.19393763, 0.30818558], 2))

    def test_masking_return_sequences(self):
        layer = L.GRU(2, return_sequences=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.03606692, 0.09497581, 0.09497581, 0.19393763], 2))
        close(output[1], rows([0.16051409, 0.16051409, 0.16051409, 0.30818558], 2))

    def test_masking_zero_output_for_mask(self):
        layer = L.GRU(2, return_sequences=True, zero_output_for_mask=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.03606692, 0.09497581, 0.0, 0.19393763], 2))
        close(output[1], rows([0.16051409, 0.0, 0.0, 0.30818558], 2))

    def test_masking_go_backwards(self):
        layer = L.GRU(2, go_backwards=True, **cinit())
        close(layer(seq_2x4x3(), mask=self.MASK), rows([0.11669192, 0.28380975], 2))

    def test_legacy_implementation_argument(self):
        layer = L.GRU(3, **cinit())
        config = layer.get_config()
        config["implementation"] = 0  # Add legacy argument
        layer = L.GRU.from_config(config)
        close(layer(seq_3x6x4()), self.FWD)


# ----------------------------------------------------------------------------
# lstm_test.py
# ----------------------------------------------------------------------------
class TestLSTMGolden:
    FWD = rows([0.6288687, 0.86899155, 0.9460773], 3)

    @pytest.mark.parametrize(
        "kwargs,expected",
        [
            ({}, "FWD"),
            ({"go_backwards": True}, rows([0.35622165, 0.74789524, 0.8872726], 3)),
            ({"unroll": True}, "FWD"),
            ({"unit_forget_bias": False}, rows([0.57019705, 0.8661914, 0.9459622], 3)),
            ({"use_bias": False}, rows([0.54986924, 0.86226785, 0.9443936], 3)),
        ],
        ids=["plain", "go_backwards", "unroll", "unit_forget_bias_False", "no_bias"],
    )
    @pytest.mark.parametrize("implementation", [1, 2])
    def test_correctness(self, implementation, kwargs, expected):
        if isinstance(expected, str):
            expected = getattr(self, expected)
        layer = L.LSTM(3, implementation=implementation, **cinit(), **kwargs)
        close(layer(seq_3x6x4()), expected, atol=1e-5, rtol=1e-5)

    def test_statefulness(self):
        sequence = seq_2x3x4()
        layer = L.LSTM(4, stateful=True, **cinit())
        expected = rows([0.3124785, 0.6863672], 4)
        layer(sequence)
        close(layer(sequence), expected, atol=1e-5, rtol=1e-5)
        layer.reset_state()
        layer(sequence)
        close(layer(sequence), expected, atol=1e-5, rtol=1e-5)

    def test_pass_initial_state(self):
        sequence = seq_2x4x3()
        initial_state = [
            np.arange(4).reshape((2, 2)).astype("float32"),
            np.arange(4).reshape((2, 2)).astype("float32"),
        ]
        layer = L.LSTM(2, **cinit())
        close(layer(sequence, initial_state=initial_state),
              np.array([[0.20574439, 0.3558822], [0.64930826, 0.66276]]),
              atol=1e-5, rtol=1e-5)
        layer = L.LSTM(2, go_backwards=True, **cinit())
        close(layer(sequence, initial_state=initial_state),
              np.array([[0.13281618, 0.2790356], [0.5839337, 0.5992567]]),
              atol=1e-5, rtol=1e-5)

    MASK = np.array([[True, True, True, False], [True, True, False, False]])

    def test_masking_unroll(self):
        layer = L.LSTM(2, unroll=True, **cinit())
        close(layer(seq_2x4x3(), mask=self.MASK), rows([0.11755939, 0.28556206], 2),
              atol=1e-5, rtol=1e-5)

    def test_masking_return_sequences(self):
        layer = L.LSTM(2, return_sequences=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.01588910, 0.05552048, 0.11755939, 0.11755939], 2),
              atol=1e-5, rtol=1e-5)
        close(output[1], rows([0.14185596, 0.28556206, 0.28556206, 0.28556206], 2),
              atol=1e-5, rtol=1e-5)

    def test_masking_zero_output_for_mask(self):
        layer = L.LSTM(2, return_sequences=True, zero_output_for_mask=True, **cinit())
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output[0], rows([0.01588910, 0.05552048, 0.11755939, 0.0], 2),
              atol=1e-5, rtol=1e-5)
        close(output[1], rows([0.14185596, 0.28556206, 0.0, 0.0], 2),
              atol=1e-5, rtol=1e-5)

    def test_masking_go_backwards(self):
        backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
        layer = L.LSTM(2, go_backwards=True, **cinit())
        close(layer(seq_2x4x3(), mask=backwards_mask), rows([0.15341201, 0.3844719], 2),
              atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------
# custom cells from rnn_test.py (ported to rnnbook's Layer; NumPy matmul)
# ----------------------------------------------------------------------------
class OneStateRNNCell(L.Layer):
    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="ones", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="ones", name="recurrent_kernel"
        )

    def call(self, inputs, states):
        prev_output = states[0]
        h = _matmul(inputs, self.kernel)
        output = h + _matmul(prev_output, self.recurrent_kernel)
        return output, [output]


class TwoStatesRNNCell(L.Layer):
    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="ones", name="kernel"
        )
        self.recurrent_kernel_1 = self.add_weight(
            shape=(self.units, self.units), initializer="ones", name="recurrent_kernel_1"
        )
        self.recurrent_kernel_2 = self.add_weight(
            shape=(self.units, self.units), initializer="ones", name="recurrent_kernel_2"
        )

    def call(self, inputs, states):
        prev_1 = states[0]
        prev_2 = states[0]  # sic: Keras' test cell uses states[0] twice
        h = _matmul(inputs, self.kernel)
        output_1 = h + _matmul(prev_1, self.recurrent_kernel_1)
        output_2 = h + _matmul(prev_2, self.recurrent_kernel_2)
        output = output_1 + output_2
        return output, [output_1, output_2]


def builtin_one_state_cell(units):
    """Exact built-in equivalent of OneStateRNNCell."""
    return L.SimpleRNNCell(units, activation="linear", use_bias=False,
                           kernel_initializer="ones", recurrent_initializer="ones")


@pytest.fixture(params=["custom", "builtin"])
def one_state_cell(request):
    """Factory ``units -> cell`` for Keras' OneStateRNNCell."""
    return OneStateRNNCell if request.param == "custom" else builtin_one_state_cell


# ----------------------------------------------------------------------------
# stacked_rnn_cells_test.py
# ----------------------------------------------------------------------------
class TestStackedRNNCellsGolden:
    SEQ_OUT = np.array([
        [[18.0, 18.0], [156.0, 156.0], [786.0, 786.0]],
        [[162.0, 162.0], [1020.0, 1020.0], [4386.0, 4386.0]],
    ])
    LAST = np.array([[786.0, 786.0], [4386.0, 4386.0]])
    STATE_1 = np.array([[158.0, 158.0, 158.0], [782.0, 782.0, 782.0]])

    def test_correctness_single_state_stack(self, one_state_cell):
        sequence = seq_2x3x4()
        layer = L.RNN([one_state_cell(3), one_state_cell(2)])
        close(layer(sequence), self.LAST)

        layer = L.RNN([one_state_cell(3), one_state_cell(2)], return_sequences=True)
        close(layer(sequence), self.SEQ_OUT)

        layer = L.RNN([one_state_cell(3), one_state_cell(2)], return_state=True)
        output, state_1, state_2 = layer(sequence)
        close(output, self.LAST)
        close(np.reshape(state_1, (2, 3)), self.STATE_1)
        close(np.reshape(state_2, (2, 2)), self.LAST)

        layer = L.RNN([one_state_cell(3), one_state_cell(2)],
                      return_sequences=True, return_state=True)
        output, state_1, state_2 = layer(sequence)
        close(output, self.SEQ_OUT)
        close(np.reshape(state_1, (2, 3)), self.STATE_1)
        close(np.reshape(state_2, (2, 2)), self.LAST)

    def test_correctness_two_states_stack(self):
        sequence = seq_2x3x4()
        layer = L.RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)])
        close(layer(sequence), np.array([[3144.0, 3144.0], [17544.0, 17544.0]]))

        layer = L.RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], return_sequences=True)
        close(layer(sequence), np.array([
            [[72.0, 72.0], [624.0, 624.0], [3144.0, 3144.0]],
            [[648.0, 648.0], [4080.0, 4080.0], [17544.0, 17544.0]],
        ]))

        layer = L.RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], return_state=True)
        output, state_1, state_2 = layer(sequence)
        close(output, np.array([[3144.0, 3144.0], [17544.0, 17544.0]]))
        close(state_1[0], self.STATE_1)
        close(state_1[1], self.STATE_1)
        close(state_2[0], np.array([[1572.0, 1572.0], [8772.0, 8772.0]]))
        close(state_2[1], np.array([[1572.0, 1572.0], [8772.0, 8772.0]]))

    def test_statefullness_single_state_stack(self, one_state_cell):
        sequence = seq_2x3x4()
        layer = L.RNN([one_state_cell(3), one_state_cell(2)], stateful=True)
        layer(sequence)
        close(layer(sequence), np.array([[34092.0, 34092.0], [173196.0, 173196.0]]))

    def test_statefullness_two_states_stack(self):
        sequence = seq_2x3x4()
        layer = L.RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], stateful=True)
        layer(sequence)
        close(layer(sequence), np.array([[136368.0, 136368.0], [692784.0, 692784.0]]))

    def test_return_state_stacked_lstm_cell(self):
        layer = L.RNN([L.LSTMCell(10), L.LSTMCell(10)], return_state=True)
        out = layer(np.zeros((2, 3, 5)))
        assert len(out) == 3
        assert out[0].shape == (2, 10)
        assert out[1][0].shape == (2, 10)
        assert out[1][1].shape == (2, 10)
        assert out[2][0].shape == (2, 10)
        assert out[2][1].shape == (2, 10)

    def test_stacked_lstm_cell_mask(self):
        sequence = np.ones((2, 3, 4))
        mask = np.array([[True, True, True], [True, True, False]])
        cell_kwargs = dict(units=1, kernel_initializer="ones", recurrent_initializer="ones")
        rnn_cells = [L.LSTMCell(**cell_kwargs) for _ in range(2)]
        stacked_rnn = L.RNN(rnn_cells)
        output = stacked_rnn(sequence, mask=mask)
        close(output, np.array([[0.7793], [0.5998]]), atol=1e-4)


# ----------------------------------------------------------------------------
# rnn_test.py
# ----------------------------------------------------------------------------
class TestRNNGolden:
    def test_forward_pass_single_state(self, one_state_cell):
        sequence = np.ones((1, 2, 3))
        layer = L.RNN(one_state_cell(2), return_sequences=False)
        close(layer(sequence), np.array([[9.0, 9.0]]))

        layer = L.RNN(one_state_cell(2), return_sequences=True)
        close(layer(sequence), np.array([[[3.0, 3.0], [9.0, 9.0]]]))

        layer = L.RNN(one_state_cell(2), return_sequences=False, return_state=True)
        output, state = layer(sequence)
        close(output, np.array([[9.0, 9.0]]))
        close(state, np.array([[9.0, 9.0]]))

        layer = L.RNN(one_state_cell(2), return_sequences=True, return_state=True)
        output, state = layer(sequence)
        close(output, np.array([[[3.0, 3.0], [9.0, 9.0]]]))
        close(state, np.array([[9.0, 9.0]]))

    def test_forward_pass_two_states(self):
        sequence = np.ones((1, 2, 3))
        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=False)
        close(layer(sequence), np.array([[18.0, 18.0]]))

        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=True)
        close(layer(sequence), np.array([[[6.0, 6.0], [18.0, 18.0]]]))

        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=False, return_state=True)
        output, state1, state2 = layer(sequence)
        close(output, np.array([[18.0, 18.0]]))
        close(state1, np.array([[9.0, 9.0]]))
        close(state2, np.array([[9.0, 9.0]]))

        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=True, return_state=True)
        output, state1, state2 = layer(sequence)
        close(output, np.array([[[6.0, 6.0], [18.0, 18.0]]]))
        close(state1, np.array([[9.0, 9.0]]))
        close(state2, np.array([[9.0, 9.0]]))

    def test_passing_initial_state_single_state(self, one_state_cell):
        sequence = np.ones((2, 3, 2))
        state = np.ones((2, 2))
        layer = L.RNN(one_state_cell(2), return_sequences=False)
        close(layer(sequence, initial_state=state), np.array([[22.0, 22.0], [22.0, 22.0]]))

        layer = L.RNN(one_state_cell(2), return_sequences=False, return_state=True)
        output, state = layer(sequence, initial_state=state)
        close(output, np.array([[22.0, 22.0], [22.0, 22.0]]))
        close(state, np.array([[22.0, 22.0], [22.0, 22.0]]))

    def test_passing_initial_state_two_states(self):
        sequence = np.ones((2, 3, 2))
        state = [np.ones((2, 2)), np.ones((2, 2))]
        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=False)
        close(layer(sequence, initial_state=state), np.array([[44.0, 44.0], [44.0, 44.0]]))

        layer = L.RNN(TwoStatesRNNCell(2), return_sequences=False, return_state=True)
        output, state_1, state_2 = layer(sequence, initial_state=state)
        close(output, np.array([[44.0, 44.0], [44.0, 44.0]]))
        close(state_1, np.array([[22.0, 22.0], [22.0, 22.0]]))
        close(state_2, np.array([[22.0, 22.0], [22.0, 22.0]]))

    def test_statefulness_single_state(self, one_state_cell):
        sequence = np.ones((1, 2, 3))
        layer = L.RNN(one_state_cell(2), stateful=True)
        layer(sequence)
        close(layer(sequence), np.array([[45.0, 45.0]]))

        layer = L.RNN(one_state_cell(2), stateful=True, return_state=True)
        layer(sequence)
        output, state = layer(sequence)
        close(output, np.array([[45.0, 45.0]]))
        close(state, np.array([[45.0, 45.0]]))

    def test_statefulness_two_states(self):
        sequence = np.ones((1, 2, 3))
        layer = L.RNN(TwoStatesRNNCell(2), stateful=True)
        layer(sequence)
        close(layer(sequence), np.array([[90.0, 90.0]]))

        layer = L.RNN(TwoStatesRNNCell(2), stateful=True, return_state=True)
        layer(sequence)
        output, state_1, state_2 = layer(sequence)
        close(output, np.array([[90.0, 90.0]]))
        close(state_1, np.array([[45.0, 45.0]]))
        close(state_2, np.array([[45.0, 45.0]]))

    def test_go_backwards(self, one_state_cell):
        sequence = seq_2x3x4()
        layer = L.RNN(one_state_cell(2), go_backwards=True)
        layer(sequence)
        close(layer(sequence), np.array([[202.0, 202.0], [538.0, 538.0]]))

        layer = L.RNN(one_state_cell(2), stateful=True, return_state=True)
        layer(sequence)
        output, state = layer(sequence)
        close(output, np.array([[954.0, 954.0], [3978.0, 3978.0]]))
        close(state, np.array([[954.0, 954.0], [3978.0, 3978.0]]))

    @pytest.mark.parametrize("cell", ["TwoStatesRNNCell", "LSTMCell"])
    def test_stateful_batch_size_mismatch_raises(self, cell):
        batch_size, timesteps, features = 4, 5, 3
        rnn_cell = TwoStatesRNNCell(2) if cell == "TwoStatesRNNCell" else L.LSTMCell(2)
        layer = L.RNN(rnn_cell, stateful=True)
        rng = np.random.default_rng(0)
        # Call once with correct batch size
        layer(rng.uniform(size=(batch_size, timesteps, features)).astype("float32"))
        # Expect ValueError when called with incorrect batch size
        with pytest.raises(ValueError, match="batch size"):
            layer(rng.uniform(size=(1, timesteps, features)).astype("float32"))

    MASK = np.array([[True, True, True, False], [True, True, False, False]])
    MASK_LAST = np.array([[57.0, 57.0], [126.0, 126.0]])
    MASK_SEQ = np.array([
        [[3.0, 3.0], [18.0, 18.0], [57.0, 57.0], [57.0, 57.0]],
        [[39.0, 39.0], [126.0, 126.0], [126.0, 126.0], [126.0, 126.0]],
    ])

    @pytest.mark.parametrize("unroll", [False, True])
    @pytest.mark.parametrize("return_sequences", [False, True])
    def test_masking(self, one_state_cell, return_sequences, unroll):
        layer = L.RNN(one_state_cell(2), return_sequences=return_sequences, unroll=unroll)
        output = layer(seq_2x4x3(), mask=self.MASK)
        close(output, self.MASK_SEQ if return_sequences else self.MASK_LAST,
              atol=1e-5, rtol=1e-5)
