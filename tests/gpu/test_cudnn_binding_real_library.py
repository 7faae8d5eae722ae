"""rnnbook.cudnn's ctypes binding against the REAL installed cuDNN 9, on the CPU.

cuDNN's library loads and its descriptor functions run without a GPU (only `cudnnCreate` needs one), so this
checks on any machine with the `nvidia-cudnn-cu13` (or -cu12) wheel:

* every `ENUMS` value and every `PROTOTYPES` signature against the wheel's own headers (`cudnn_graph.h`,
  `cudnn_ops.h`, `cudnn_adv.h`, parsed here): a wrong enum value or argument type would pass garbage to cuDNN,
  which no CPU test of the layers can see;
* that every symbol resolves, the version, the sub-library version checks;
* the descriptors rnnbook builds (`rnn_descriptor`, `tensor_desc`, an RNN data descriptor), read back from cuDNN;
* errors: cuDNN's own text in `CuDNNError`, `CuDNNUnavailable` with an install hint.

The module is skipped (with the reason) where cuDNN cannot be loaded."""
import ctypes
import ctypes.util
import gc
import os
import re

import numpy as np
import pytest

import rnnbook.cudnn as cudnn
from rnnbook.cudnn import CuDNNError, CuDNNUnavailable

_REASON = cudnn.library_reason()
if _REASON is not None:
    pytest.skip(f'cuDNN 9 cannot be loaded here: {_REASON}', allow_module_level=True)

LIB = cudnn.library()
HEADER_FILES = ('cudnn_graph.h', 'cudnn_ops.h', 'cudnn_adv.h')


# ---- a small parser of cuDNN's C headers ------------------------------------------------------------------------

def include_dir():
    "The headers installed beside the loaded library (`<wheel>/nvidia/cudnn/lib/../include`)."
    return os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(LIB.path)), '..', 'include'))


def _strip_comments(text):
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    return re.sub(r'//[^\n]*', ' ', text)


_SUFFIX = re.compile(r'\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b')


def _evaluate(expr, env):
    "The value of a C integer constant expression over known names, or None when it is not one."
    expr = _SUFFIX.sub(r'\1', expr.strip())
    expr = re.sub(r'\(\s*(?:unsigned|int|int32_t|uint32_t|long|size_t)\s*\)', '', expr)    # integer casts
    names = set(re.findall(r'[A-Za-z_]\w*', expr))
    if any(n not in env for n in names): return None
    try:
        value = eval(expr, {'__builtins__': {}}, {n: env[n] for n in names})   # noqa: S307 - header constants
    except Exception:  # noqa: BLE001 - anything not a plain integer expression
        return None
    return value if isinstance(value, int) else None


class Headers:
    "Enum members, `#define` integers, enum and pointer typedef names and function declarations of the headers."

    def __init__(self, paths):
        self.constants, self.enum_types, self.pointer_types, self.functions = {}, set(), {'cudaStream_t'}, {}
        texts = []
        for path in paths:
            with open(path, encoding='utf-8', errors='replace') as f: texts.append(_strip_comments(f.read()))
        defines = []
        for text in texts:
            for m in re.finditer(r'^[ \t]*#[ \t]*define[ \t]+(\w+)(?!\()[ \t]+([^\n]+)$', text, flags=re.M):
                defines.append((m.group(1), m.group(2)))
            for m in re.finditer(r'typedef\s+enum\s*\w*\s*\{(.*?)\}\s*(\w+)\s*;', text, flags=re.S):
                self.enum_types.add(m.group(2))
                nxt = 0
                for item in m.group(1).split(','):
                    item = item.replace('CUDNN_DEPRECATED_ENUM', ' ').strip()
                    if not item: continue
                    name, _, expr = item.partition('=')
                    name = name.split()[0]
                    value = _evaluate(expr, self.constants) if expr else nxt
                    self.constants[name] = value
                    nxt = None if value is None else value + 1
            for m in re.finditer(r'typedef\s+(?:struct\s+\w+|void)\s*\*\s*(\w+)', text):
                self.pointer_types.add(m.group(1))
            flat = ' '.join(text.split())
            for m in re.finditer(r'((?:const\s+)?\w+(?:\s*\*)*)\s*CUDNNWINAPI\s+(\w+)\s*\(([^()]*)\)\s*;', flat):
                params = [p.strip() for p in m.group(3).split(',')]
                if params == ['void'] or params == ['']: params = []
                self.functions[m.group(2)] = (' '.join(m.group(1).replace('*', ' * ').split()), params)
        for _ in range(3):                   # #defines may use each other (e.g. CUDNN_VERSION)
            for name, expr in defines:
                if self.constants.get(name) is None: self.constants[name] = _evaluate(expr, self.constants)


def c_type(param):
    "`(kind, pointee)` of one C parameter (or return type): kind 'pointer', 'int32', 'uint32', 'size_t', 'char*', ..."
    depth = param.count('*') + param.count('[')
    tokens = [t for t in re.sub(r'\[[^\]]*\]', ' ', param).replace('*', ' ').split() if t not in ('const', 'volatile')]
    base = tokens[0]
    return (depth, base)


def _is_pointer(t):
    return t in (ctypes.c_void_p, ctypes.c_char_p) or (isinstance(t, type) and issubclass(t, ctypes._Pointer))


def _is_int32(t):
    return (isinstance(t, type) and issubclass(t, ctypes._SimpleCData) and getattr(t, '_type_', '') in 'ilhbq'
            and ctypes.sizeof(t) == 4 and t(-1).value == -1)


def scalar_problem(headers, base, t):
    "Why ctypes type `t` cannot carry a C value of type `base` (by value), or None."
    if base in headers.pointer_types:
        return None if _is_pointer(t) else f'{base} is a pointer typedef, ctypes has {t.__name__}'
    if base in headers.enum_types or base in ('int', 'int32_t'):
        return None if _is_int32(t) else f'{base} is a 4-byte signed int, ctypes has {t.__name__}'
    if base == 'uint32_t':
        return None if t is ctypes.c_uint32 else f'uint32_t wants c_uint32, ctypes has {t.__name__}'
    if base == 'size_t':
        return None if t is ctypes.c_size_t else f'size_t wants c_size_t, ctypes has {t.__name__}'
    return f'no rule for the C type {base!r}'


def param_problem(headers, param, t):
    "Why ctypes type `t` does not fit the C parameter declaration `param`, or None."
    depth, base = c_type(param)
    if depth == 0: return scalar_problem(headers, base, t)
    if not _is_pointer(t): return f'{param!r} is a pointer or array, ctypes has {t.__name__}'
    if t in (ctypes.c_void_p, ctypes.c_char_p) or base == 'void' and depth == 1: return None
    pointee = t._type_                                # POINTER(X): X must fit what the C pointer points to
    if depth > 1: return None if _is_pointer(pointee) else f'{param!r} points to a pointer, ctypes to {pointee.__name__}'
    return scalar_problem(headers, base, pointee)


@pytest.fixture(scope='module')
def headers():
    inc = include_dir()
    paths = [os.path.join(inc, name) for name in HEADER_FILES]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing: pytest.skip(f"cuDNN's headers are not installed beside {LIB.path}: missing {missing}")
    return Headers(paths + [p for p in [os.path.join(inc, 'cudnn_version.h')] if os.path.exists(p)])


# ---- the parser itself (so that a parser bug cannot hide a binding bug) -----------------------------------------

def test_parser_reads_the_headers(headers):
    assert len(headers.functions) > 100 and len(headers.constants) > 200
    assert headers.constants['CUDNN_STATUS_BAD_PARAM'] == 2000
    assert headers.constants['CUDNN_RNN_PADDED_IO_ENABLED'] == 1          # (1U << 0)
    assert {'cudnnStatus_t', 'cudnnDataType_t', 'cudnnRNNMode_t', 'cudnnForwardMode_t'} <= headers.enum_types
    assert {'cudnnHandle_t', 'cudnnTensorDescriptor_t', 'cudnnRNNDescriptor_t', 'cudnnRNNDataDescriptor_t',
            'cudnnDropoutDescriptor_t'} <= headers.pointer_types
    assert headers.functions['cudnnGetErrorString'][0] == 'const char *'
    assert headers.functions['cudnnGetVersion'] == ('size_t', [])
    assert c_type('const int32_t devSeqLengths[]') == (1, 'int32_t') and c_type('void **mAddr') == (2, 'void')
    # the type rules reject what they should
    assert param_problem(headers, 'size_t n', ctypes.c_int) and param_problem(headers, 'int32_t n', ctypes.c_uint32)
    assert param_problem(headers, 'uint32_t f', ctypes.c_int32) and param_problem(headers, 'int *n', ctypes.c_int)
    assert param_problem(headers, 'size_t *n', ctypes.POINTER(ctypes.c_int))
    assert param_problem(headers, 'cudnnRNNMode_t m', ctypes.c_int64)
    assert param_problem(headers, 'cudnnHandle_t h', ctypes.c_int)
    assert param_problem(headers, 'void **p', ctypes.POINTER(ctypes.c_int))
    assert param_problem(headers, 'const int32_t a[]', ctypes.POINTER(ctypes.c_int32)) is None


# ---- ENUMS and PROTOTYPES against the headers ----------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(cudnn.ENUMS))
def test_enum_value_matches_header(headers, name):
    assert name in headers.constants, f'{name} is not declared in {HEADER_FILES}'
    assert cudnn.ENUMS[name] == headers.constants[name], \
        f'rnnbook.cudnn.ENUMS[{name!r}] = {cudnn.ENUMS[name]}, the header says {headers.constants[name]}'
    assert getattr(cudnn, name) == cudnn.ENUMS[name]


@pytest.mark.parametrize('name', sorted(cudnn.PROTOTYPES))
def test_prototype_matches_header(headers, name):
    assert name in headers.functions, f'{name} is not declared in {HEADER_FILES}'
    ret, params = headers.functions[name]
    restype, argtypes = cudnn.PROTOTYPES[name]
    assert len(argtypes) == len(params), \
        f'{name}: the header declares {len(params)} parameters ({params}), PROTOTYPES has {len(argtypes)}'
    problems = [f'parameter {i} ({p!r}): {why}' for i, (p, t) in enumerate(zip(params, argtypes))
                if (why := param_problem(headers, p, t))]
    assert not problems, f'{name}: ' + '; '.join(problems)
    expected_ret = {'cudnnStatus_t': ctypes.c_int, 'const char *': ctypes.c_char_p, 'size_t': ctypes.c_size_t}
    assert ret in expected_ret, f'{name}: no rule for the return type {ret!r}'
    assert restype is expected_ret[ret], f'{name} returns {ret}; PROTOTYPES has {restype.__name__}'


def test_version_matches_header(headers):
    assert LIB.version == headers.constants['CUDNN_VERSION']
    assert cudnn.version() == LIB.version


# ---- the library ----------------------------------------------------------------------------------------------------

def test_every_symbol_resolves_with_its_prototype():
    for name, (restype, argtypes) in cudnn.PROTOTYPES.items():
        f = getattr(LIB.dll, name)
        assert f.restype is restype and list(f.argtypes) == list(argtypes), name


def test_version_and_sublibrary_checks():
    assert LIB.version >= 90000
    assert cudnn.version() == LIB.version == int(LIB.dll.cudnnGetVersion())
    for name in ('cudnnGraphVersionCheck', 'cudnnOpsVersionCheck', 'cudnnAdvVersionCheck'):
        status = getattr(LIB.dll, name)()
        assert status == 0, f'{name} returned {status} ({LIB.error_string(status)})'
    assert LIB.error_string(0) == 'CUDNN_STATUS_SUCCESS'
    assert LIB.error_string(2000) == 'CUDNN_STATUS_BAD_PARAM'
    assert cudnn.library() is LIB and cudnn.library_reason() is None


# ---- RNN descriptors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('directions', [1, 2], ids=['uni', 'bidi'])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('kind,activation,mode', [('LSTM', 'tanh', 'CUDNN_LSTM'), ('GRU', 'tanh', 'CUDNN_GRU'),
                                                  ('SimpleRNN', 'tanh', 'CUDNN_RNN_TANH'),
                                                  ('SimpleRNN', 'relu', 'CUDNN_RNN_RELU')],
                         ids=['lstm', 'gru', 'simple_tanh', 'simple_relu'])
def test_rnn_descriptor_reads_back(kind, activation, mode, dtype, directions):
    code = cudnn.rnn_mode(kind, activation)
    assert code == cudnn.ENUMS[mode]
    D, U = 3, 5
    desc = cudnn.rnn_descriptor(code, dtype, D, U, directions)
    got = cudnn.read_rnn_descriptor(desc)
    data = {'float32': cudnn.CUDNN_DATA_FLOAT, 'float64': cudnn.CUDNN_DATA_DOUBLE}[dtype]
    assert got == dict(algo=cudnn.CUDNN_RNN_ALGO_STANDARD, cell_mode=cudnn.ENUMS[mode],
                       bias_mode=cudnn.CUDNN_RNN_DOUBLE_BIAS,
                       dir_mode=cudnn.CUDNN_BIDIRECTIONAL if directions == 2 else cudnn.CUDNN_UNIDIRECTIONAL,
                       input_mode=cudnn.CUDNN_LINEAR_INPUT, data_type=data, math_prec=data,
                       math_type=cudnn.CUDNN_FMA_MATH if dtype == 'float32' else cudnn.CUDNN_DEFAULT_MATH,
                       input_size=D, hidden_size=U, proj_size=U, num_layers=1,
                       aux_flags=cudnn.CUDNN_RNN_PADDED_IO_ENABLED)
    assert got['math_type'] == (3 if dtype == 'float32' else 0)       # float32: no TF32 rounding on tensor cores


def test_simple_rnn_relu_mode_and_bad_kind():
    assert cudnn.rnn_mode('SimpleRNN', 'relu') == cudnn.CUDNN_RNN_RELU == 0
    assert cudnn.rnn_mode('SimpleRNN') == cudnn.CUDNN_RNN_TANH
    assert cudnn.rnn_mode('LSTM', 'relu') == cudnn.CUDNN_LSTM     # LSTM/GRU: the mode ignores the activation
    with pytest.raises(ValueError, match='kind'):
        cudnn.rnn_mode('Dense')


def test_bad_enum_raises_cudnn_error_with_its_text():
    desc = cudnn.rnn_descriptor(cudnn.CUDNN_LSTM, 'float32', 3, 4)
    with pytest.raises(CuDNNError, match='cudnnSetRNNDescriptor_v8.*2000.*CUDNN_STATUS_BAD_PARAM'):
        LIB.call('cudnnSetRNNDescriptor_v8', desc, cudnn.CUDNN_RNN_ALGO_STANDARD, 17, cudnn.CUDNN_RNN_DOUBLE_BIAS,
                 cudnn.CUDNN_UNIDIRECTIONAL, cudnn.CUDNN_LINEAR_INPUT, cudnn.CUDNN_DATA_FLOAT, cudnn.CUDNN_DATA_FLOAT,
                 cudnn.CUDNN_FMA_MATH, 3, 4, 4, 1, None, cudnn.CUDNN_RNN_PADDED_IO_ENABLED)
    assert LIB.error_string(2000) in str(pytest.raises(CuDNNError, LIB.call, 'cudnnSetTensorNdDescriptor',
                                                       cudnn._Desc('Tensor'), cudnn.CUDNN_DATA_FLOAT, 3,
                                                       cudnn._ints([2, -1, 4]), cudnn._ints([4, 4, 1])).value)


def test_cudnn_create_without_gpu_raises_cudnn_error():
    h = ctypes.c_void_p()
    status = LIB.dll.cudnnCreate(ctypes.byref(h))
    if status == 0:                                   # a usable GPU: nothing to check here
        LIB.dll.cudnnDestroy(h)
        pytest.skip('cudnnCreate succeeded (this machine has a usable GPU)')
    with pytest.raises(CuDNNError) as err:
        LIB.call('cudnnCreate', ctypes.byref(ctypes.c_void_p()))
    assert f'status {status}' in str(err.value) and LIB.error_string(status) in str(err.value)
    assert 'cudnnCreate' in str(err.value)


# ---- tensor and RNN data descriptors --------------------------------------------------------------------------------

@pytest.mark.parametrize('dims', [(2, 3, 4), (1, 5, 1), (2, 7, 3, 5), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_tensor_desc_round_trip(dims, dtype):
    code = {'float32': cudnn.CUDNN_DATA_FLOAT, 'float64': cudnn.CUDNN_DATA_DOUBLE}[dtype]
    d = cudnn.tensor_desc(code, dims)
    assert cudnn.tensor_dims(d) == list(dims)
    dt, n = ctypes.c_int(), ctypes.c_int()
    got_dims, strides = (ctypes.c_int32 * 8)(), (ctypes.c_int32 * 8)()
    LIB.call('cudnnGetTensorNdDescriptor', d, 8, ctypes.byref(dt), ctypes.byref(n), got_dims, strides)
    assert dt.value == code and n.value == len(dims)
    assert list(strides[:n.value]) == [int(np.prod(dims[i + 1:])) for i in range(len(dims))]     # fully packed
    del d                                              # destroyed by __del__ without error


def test_descriptor_kinds_create_and_destroy():
    for kind in ('Tensor', 'RNN', 'RNNData'):
        d = cudnn._Desc(kind)
        assert d.ptr.value and d._as_parameter_ is d.ptr
        del d                                          # __del__ destroys it (once: a second destroy aborts)
    gc.collect()


def test_rnn_data_descriptor_batch_major_with_lengths():
    "What `Plan.data` does, on the CPU: a batch-major, padded RNN data descriptor with per-sample lengths."
    B, T, width = 4, 6, 5
    lengths = np.array([6, 3, 1, 4], np.int32)
    fill = ctypes.c_float(0)
    d = cudnn._Desc('RNNData')
    LIB.call('cudnnSetRNNDataDescriptor', d, cudnn.CUDNN_DATA_FLOAT, cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
             T, B, width, lengths.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), ctypes.byref(fill))
    # read back with cudnnGetRNNDataDescriptor (not part of the binding: declared here)
    get = LIB.dll.cudnnGetRNNDataDescriptor
    get.restype = ctypes.c_int
    get.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_int)] * 5 + [ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                                                           ctypes.c_void_p]
    vals = [ctypes.c_int() for _ in range(5)]
    seq = (ctypes.c_int * B)()
    back_fill = ctypes.c_float(7)
    status = get(d.ptr, *[ctypes.byref(v) for v in vals], B, seq, ctypes.byref(back_fill))
    assert status == 0, LIB.error_string(status)
    assert [v.value for v in vals] == [cudnn.CUDNN_DATA_FLOAT, cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                       T, B, width]
    assert list(seq) == lengths.tolist() and back_fill.value == 0
    # float64 with the double fill Plan.data passes
    d64, fill64 = cudnn._Desc('RNNData'), ctypes.c_double(0)
    LIB.call('cudnnSetRNNDataDescriptor', d64, cudnn.CUDNN_DATA_DOUBLE,
             cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, T, B, width,
             lengths.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), ctypes.byref(fill64))


def test_rnn_data_descriptor_refuses_a_length_over_max():
    lengths = np.array([3, 9], np.int32)
    with pytest.raises(CuDNNError, match='cudnnSetRNNDataDescriptor'):
        LIB.call('cudnnSetRNNDataDescriptor', cudnn._Desc('RNNData'), cudnn.CUDNN_DATA_FLOAT,
                 cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, 4, 2, 3,
                 lengths.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), ctypes.byref(ctypes.c_float(0)))


# ---- the weight table (host side) -----------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', cudnn.KINDS)
@pytest.mark.parametrize('directions', [1, 2])
def test_keras_weights_round_trip_through_the_emulated_table(kind, directions):
    rng = np.random.default_rng(0)
    D, U, n = 3, 4, cudnn.GATES[kind]
    table = cudnn.emulated_weight_table(kind, D, U, directions)
    assert cudnn.weight_space_size(table) == directions * (n * U * (D + U) + 2 * n * U)
    weights = [[rng.standard_normal((D, n * U)), rng.standard_normal((U, n * U)),
                rng.standard_normal((2, n * U) if kind == 'GRU' else (n * U,))] for _ in range(directions)]
    flat = cudnn.keras_to_flat(kind, weights, table)
    back = cudnn.flat_to_keras(kind, flat, table, D, U, directions)
    for a, b in zip(sum(back, []), sum(weights, [])): np.testing.assert_array_equal(a, b)


# ---- finding the library ----------------------------------------------------------------------------------------------

def test_library_candidates_honour_the_environment(monkeypatch):
    monkeypatch.setenv('RNNBOOK_CUDNN_LIBRARY', '/opt/somewhere/libcudnn.so.9')
    c = cudnn.library_candidates()
    assert c[0] == '/opt/somewhere/libcudnn.so.9' and c[-1] == 'libcudnn.so.9'
    monkeypatch.delenv('RNNBOOK_CUDNN_LIBRARY')
    c = cudnn.library_candidates()
    assert '/opt/somewhere/libcudnn.so.9' not in c and c[-1] == 'libcudnn.so.9'
    assert any(os.path.realpath(p) == os.path.realpath(LIB.path) for p in c)


def test_library_on_a_bogus_path_raises_oserror():
    with pytest.raises(OSError):
        cudnn.Library('/nonexistent/dir/libcudnn.so.9')


def test_library_without_cudnn_raises_unavailable_with_a_hint(monkeypatch):
    libc = ctypes.util.find_library('c')                    # loads, but has no cuDNN symbols: AttributeError
    tried = ['/nonexistent/dir/libcudnn.so.9'] + ([libc] if libc else [])
    monkeypatch.setattr(cudnn, '_LIB', None)
    monkeypatch.setattr(cudnn, '_LIB_ERROR', None)
    monkeypatch.setattr(cudnn, 'library_candidates', lambda: list(tried))
    with pytest.raises(CuDNNUnavailable) as err:
        cudnn.library()
    text = str(err.value)
    assert 'pip install nvidia-cudnn-cu13' in text and 'RNNBOOK_CUDNN_LIBRARY' in text
    assert all(p in text for p in tried)
    assert cudnn.library_reason() == text and cudnn.version() is None
    with pytest.raises(CuDNNUnavailable):                  # the failure is remembered
        cudnn._Desc('Tensor')
    monkeypatch.undo()
    assert cudnn.library() is LIB and cudnn.library_reason() is None


# ---- the calls that need a GPU, marshalled as rnnbook marshals them ---------------------------------------------------

def test_gpu_calls_reach_cudnn_with_rnnbooks_argument_forms():
    """Every handle-taking call, with the argument forms Plan/_forward/cudnn_rnn_vjp use (descriptor objects, byref
    outputs, the lengths pointer cast), passes ctypes' conversion and reaches cuDNN, which answers BAD_PARAM for the
    NULL handle of this GPU-less machine (a marshalling mistake would raise ctypes.ArgumentError instead)."""
    h, P = ctypes.c_void_p(), ctypes.c_void_p
    rnn = cudnn.rnn_descriptor(cudnn.CUDNN_LSTM, 'float32', 5, 4, 2)
    lengths = np.array([3, 2, 1], np.int32)
    fill = ctypes.c_float(0)
    xd, yd = cudnn._Desc('RNNData'), cudnn._Desc('RNNData')
    for d, width in ((xd, 5), (yd, 8)):
        LIB.call('cudnnSetRNNDataDescriptor', d, cudnn.CUDNN_DATA_FLOAT, cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                 3, 3, width, lengths.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), ctypes.byref(fill))
    sd = cudnn.tensor_desc(cudnn.CUDNN_DATA_FLOAT, (2, 3, 4))
    m, b, ma, ba = cudnn._Desc('Tensor'), cudnn._Desc('Tensor'), P(), P()
    size, work, reserve = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
    dev_lengths = ctypes.cast(P(lengths.ctypes.data), cudnn._pi)
    buf = P(1 << 20)                                            # never dereferenced: cuDNN stops at the handle
    calls = [('cudnnGetRNNWeightSpaceSize', (h, rnn, ctypes.byref(size))),
             ('cudnnGetRNNWeightParams', (h, rnn, 0, 1024, buf, 0, m, ctypes.byref(ma), b, ctypes.byref(ba))),
             ('cudnnGetRNNTempSpaceSizes', (h, rnn, cudnn.CUDNN_FWD_MODE_TRAINING, xd, ctypes.byref(work),
                                            ctypes.byref(reserve))),
             ('cudnnRNNForward', (h, rnn, cudnn.CUDNN_FWD_MODE_TRAINING, dev_lengths, xd, buf, yd, buf, sd, buf, buf,
                                  sd, buf, buf, 1024, buf, 256, buf, 64, buf)),
             ('cudnnRNNBackwardData_v8', (h, rnn, dev_lengths, yd, buf, buf, xd, buf, sd, buf, buf, buf, sd, None, None,
                                          None, 1024, buf, 256, buf, 64, buf)),
             ('cudnnRNNBackwardWeights_v8', (h, rnn, cudnn.CUDNN_WGRAD_MODE_ADD, dev_lengths, xd, buf, sd, buf, yd, buf,
                                             1024, buf, 256, buf, 64, buf))]
    for name, args in calls:
        with pytest.raises(CuDNNError, match=f'{name} failed with status 2000 \\(CUDNN_STATUS_BAD_PARAM\\)'):
            LIB.call(name, *args)
