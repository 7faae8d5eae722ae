"""A strict CuPy emulator for tests on machines without a GPU.

`fake_cupy.installed()` makes `import cupy` (and `rnnbook.backend.cupy_module()`) return this module for
the duration of a `with` block (or the `fake_cp` fixture of tests/gpu/test_cupy_path_emulated.py).  Its `ndarray`
wraps a NumPy array (sharing memory, so views, in-place writes and `out=` behave as on a GPU) and reports
`type(x).__module__ == 'cupy'`.  Where real CuPy refuses NumPy data -- implicit conversion
(`np.asarray(cp_x)`), mixing a NumPy array with a CuPy array in an operator, ufunc or function -- so does
this emulator, with a TypeError; the emulator is stricter than CuPy for NumPy index arrays and NumPy values
assigned with `cp_x[...] = np_y`: CuPy copies those to the device silently (`_prepare_slice_list`); here NumPy
values are refused, and NumPy index arrays are recorded in `host_index_uses` (refused with `STRICT_INDEX = True`),
since a host array inside a GPU loop is a transfer per step.  Python and NumPy scalars are accepted, as in CuPy;
`cupy.asarray`/`cupy.array` copy NumPy input explicitly.
"""
import contextlib
import sys
import types

import numpy as np

_MSG = ('Implicit conversion to a NumPy array is not allowed. '
        'Please use `.get()` to construct a NumPy array explicitly.')


def _is_host_array(x):
    "A NumPy array that CuPy would refuse (0-d arrays pass, as scalars)."
    return isinstance(x, np.ndarray) and x.ndim >= 1


def _unwrap(x, what='argument'):
    "The NumPy data of a fake array; a TypeError for NumPy arrays; nests handled."
    if isinstance(x, ndarray): return x._a
    if _is_host_array(x):
        raise TypeError(f"Unsupported type <class 'numpy.ndarray'> (a NumPy array mixed with CuPy arrays as {what}; "
                        f"shape {x.shape})")
    if isinstance(x, (list, tuple)) and type(x) in (list, tuple):
        return type(x)(_unwrap(v, what) for v in x)
    if isinstance(x, dict): return {k: _unwrap(v, what) for k, v in x.items()}
    return x


def _wrap(r):
    "Wrap NumPy results as fake arrays (NumPy scalars become 0-d arrays, as CuPy returns)."
    if isinstance(r, ndarray): return r
    if isinstance(r, np.ndarray): return ndarray._from(r)
    if isinstance(r, np.generic): return ndarray._from(np.asarray(r))
    if isinstance(r, tuple) and type(r) is tuple: return tuple(_wrap(v) for v in r)
    if isinstance(r, list): return [_wrap(v) for v in r]
    return r


_SCALARS = (int, float, bool, complex, np.generic)


def _check_operand(other):
    "NotImplemented for objects that take over (`__array_ufunc__ = None`, higher priority), else the data."
    if isinstance(other, ndarray): return other._a
    if isinstance(other, _SCALARS) or other is None: return other
    if isinstance(other, np.ndarray):
        if other.ndim == 0: return other
        raise TypeError(f"Unsupported type <class 'numpy.ndarray'>: a NumPy array (shape {other.shape}) in an "
                        f"operator with a CuPy array")
    if hasattr(type(other), '__array_ufunc__') and type(other).__array_ufunc__ is None: return NotImplemented
    if getattr(other, '__array_priority__', 0) > ndarray.__array_priority__: return NotImplemented
    if isinstance(other, (list, tuple)):
        raise TypeError(f"Unsupported type {type(other)} in an operator with a CuPy array")
    raise TypeError(f"Unsupported type {type(other)} in an operator with a CuPy array")


def _binop(name, reflected=False, inplace=False):
    op = getattr(np.ndarray, name)

    def method(self, other):
        o = _check_operand(other)
        if o is NotImplemented: return NotImplemented
        if inplace:
            op(self._a, o)
            return self
        return _wrap(op(self._a, o))
    method.__name__ = name
    return method


class ndarray:
    "A CuPy-like array holding a NumPy array in `_a` (memory shared with views)."
    __array_priority__ = 100
    __slots__ = ('_a', '__weakref__')   # as `cupy.ndarray`: no attributes can be attached, weak references can

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order='C'):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from(cls, a):
        self = object.__new__(cls)
        self._a = a
        return self

    # ---- NumPy protocols ----------------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_MSG)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs:
            if not isinstance(x, ndarray) and not isinstance(x, _SCALARS) and x is not None \
                    and not (isinstance(x, np.ndarray) and x.ndim == 0):
                if _is_host_array(x):
                    raise TypeError(f"Unsupported type <class 'numpy.ndarray'> in ufunc {ufunc.__name__} "
                                    f"(a NumPy array of shape {x.shape} mixed with CuPy arrays)")
                return NotImplemented
        args = [_unwrap(x, f'an input of {ufunc.__name__}') for x in inputs]
        out = kwargs.get('out')
        if out is not None:
            for o in out:
                if not isinstance(o, ndarray):
                    raise TypeError(f"Unsupported type {type(o)} as `out` of ufunc {ufunc.__name__} with CuPy inputs")
            kwargs['out'] = tuple(o._a for o in out)
        for k in ('where',):
            if k in kwargs: kwargs[k] = _unwrap(kwargs[k], k)
        r = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(r)

    def __array_function__(self, func, types, args, kwargs):
        for t in types:
            if not issubclass(t, (ndarray, np.ndarray)): return NotImplemented
        name = getattr(func, '__name__', str(func))
        args = _unwrap(list(args), f'an argument of {name}')
        out = kwargs.get('out')
        kwargs = {k: (_unwrap(v, f'argument `{k}` of {name}') if k != 'out' else v) for k, v in kwargs.items()}
        if out is not None:
            if not isinstance(out, ndarray): raise TypeError(f"`out` of {name} must be a CuPy array")
            kwargs['out'] = out._a
            func(*args, **kwargs)
            return out
        return _wrap(func(*args, **kwargs))

    # ---- attributes -------------------------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._from(self._a.T))
    real = property(lambda self: ndarray._from(self._a.real))
    imag = property(lambda self: ndarray._from(self._a.imag))

    @property
    def device(self): return Device(0)

    @property
    def data(self):
        "CuPy's `MemoryPointer`: `.ptr` is the address of the first element (host memory here; see fake_cudnn.py)."
        return types.SimpleNamespace(ptr=self._a.ctypes.data)

    @shape.setter
    def shape(self, value): self._a.shape = value

    def get(self, stream=None, order='C', out=None):
        "A NumPy copy (device -> host)."
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        "Copy NumPy `arr` into this array (host -> device)."
        self._a[...] = arr

    def item(self, *args): return self._a.item(*args)
    def tolist(self): return self._a.tolist()
    def copy(self, order='C'): return ndarray._from(self._a.copy(order))
    def view(self, dtype=None): return ndarray._from(self._a.view() if dtype is None else self._a.view(dtype))
    def astype(self, dtype, order='K', casting=None, subok=None, copy=True):
        return ndarray._from(self._a.astype(dtype, order=order, copy=copy))
    def fill(self, value): self._a.fill(_check_scalar(value))

    def __getattr__(self, name):
        if name.startswith('__') or name == '_a': raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr): return _wrap(attr)

        def method(*args, **kwargs): return _call_unwrapped(attr, f'ndarray.{name}', args, kwargs)
        method.__name__ = name
        return method

    # ---- indexing ---------------------------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, ndarray): value = value._a
        elif _is_host_array(value):
            raise TypeError(f"Unsupported type <class 'numpy.ndarray'>: a NumPy array (shape {value.shape}) "
                            f"assigned into a CuPy array")
        elif isinstance(value, (list, tuple)):
            value = _unwrap(value, 'a value assigned into a CuPy array')
        elif not isinstance(value, _SCALARS) and not isinstance(value, np.ndarray):
            raise TypeError(f"Unsupported type {type(value)} assigned into a CuPy array")
        self._a[_index(key)] = value

    def __len__(self): return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0: raise TypeError('iteration over a 0-d array')
        return (ndarray._from(self._a[i]) for i in range(len(self._a)))

    def __bool__(self): return bool(self._a)
    def __float__(self): return float(self._a)
    def __int__(self): return int(self._a)
    def __complex__(self): return complex(self._a)

    def __index__(self):
        if self._a.ndim == 0 and self._a.dtype.kind in 'iu': return int(self._a)
        raise TypeError('only integer scalar arrays can be converted to a scalar index')

    def __repr__(self): return repr(self._a).replace('array(', 'fake_cupy.array(', 1)
    def __str__(self): return str(self._a)
    def __hash__(self): raise TypeError("unhashable type: 'cupy.ndarray'")

    def __reduce__(self): return (_rebuild, (self._a,))

    def __neg__(self): return _wrap(-self._a)
    def __pos__(self): return _wrap(+self._a)
    def __abs__(self): return _wrap(abs(self._a))
    def __invert__(self): return _wrap(~self._a)

    def __dlpack__(self, *a, **k): raise TypeError(_MSG)


def _rebuild(a): return ndarray._from(a)


for _n in ['add', 'sub', 'mul', 'truediv', 'floordiv', 'mod', 'pow', 'matmul', 'and', 'or', 'xor',
           'lshift', 'rshift', 'divmod']:
    setattr(ndarray, f'__{_n}__', _binop(f'__{_n}__'))
    setattr(ndarray, f'__r{_n}__', _binop(f'__r{_n}__', reflected=True))
    if _n != 'divmod': setattr(ndarray, f'__i{_n}__', _binop(f'__i{_n}__', inplace=True))
for _n in ['lt', 'le', 'gt', 'ge', 'eq', 'ne']:
    setattr(ndarray, f'__{_n}__', _binop(f'__{_n}__'))
ndarray.__module__ = 'cupy'
ndarray.__qualname__ = 'ndarray'


def _check_scalar(v):
    if _is_host_array(v): raise TypeError("Unsupported type <class 'numpy.ndarray'>")
    return v._a if isinstance(v, ndarray) else v


STRICT_INDEX = False      # True: refuse NumPy index arrays (real CuPy copies them to the device and goes on)
host_index_uses = []      # (shape, dtype) of every NumPy index array a fake array was indexed with


def _index(key):
    "An index with fake arrays unwrapped; NumPy index arrays recorded (refused under `STRICT_INDEX`)."
    def one(k):
        if isinstance(k, ndarray): return k._a
        if _is_host_array(k) and not STRICT_INDEX:
            host_index_uses.append((k.shape, k.dtype.name))
            return k
        if _is_host_array(k):
            raise TypeError(f"Unsupported type <class 'numpy.ndarray'>: a NumPy index array (shape {k.shape}, "
                            f"dtype {k.dtype}) used to index a CuPy array")
        return k
    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


# ---- module-level functions -------------------------------------------------------------------------------
_cupy = types.ModuleType('cupy')
_cupy.__doc__ = 'Strict CuPy emulator (tests/fakes/fake_cupy.py).'
_cupy.__path__ = []   # a package, so `import cupy.x` reaches the submodules below
_cupy.ndarray = ndarray
_cupy.__version__ = '13.0.0+fake'


def asarray(a, dtype=None, order=None, blocking=False):
    "Host -> device (explicit): NumPy input is copied; fake arrays pass through (cast where asked)."
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    if hasattr(a, '__array__') and not isinstance(a, (np.ndarray, np.generic)):
        # other objects are converted through their `__array__` (a CuPy array inside refuses)
        pass
    a = _unwrap(a, 'input of cupy.asarray') if isinstance(a, (list, tuple)) else a
    return ndarray._from(np.array(a, dtype=dtype, order=order or 'K', copy=True))


def array(obj, dtype=None, copy=True, order='K', subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray):
        return ndarray._from(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    obj = _unwrap(obj, 'input of cupy.array') if isinstance(obj, (list, tuple)) else obj
    return ndarray._from(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order='C', out=None, blocking=True):
    if isinstance(a, ndarray): return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return _cupy if any(isinstance(a, ndarray) for a in args) else np


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray): raise TypeError(f"Unsupported type {type(a)}")
    return ndarray._from(np.ascontiguousarray(a._a, dtype=dtype))


def _call_unwrapped(f, what, args, kwargs):
    "`f` (a NumPy function or method) on unwrapped data, its result wrapped; NumPy arrays (ndim >= 1) refused."
    args = _unwrap(list(args), f'an argument of {what}')
    out = kwargs.pop('out', None)
    kwargs = {k: _unwrap(v, f'argument `{k}` of {what}') for k, v in kwargs.items()}
    if out is not None:
        if not isinstance(out, ndarray): raise TypeError(f"`out` of {what} must be a CuPy array")
        f(*args, out=out._a, **kwargs)
        return out
    return _wrap(f(*args, **kwargs))


def _wrap_function(name, f):
    "A NumPy function on unwrapped data; NumPy array arguments (ndim >= 1) refused."
    def fn(*args, **kwargs): return _call_unwrapped(f, f'cupy.{name}', args, kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = 'cupy'
    return fn


class _ufunc:
    "A NumPy ufunc seen through CuPy: call, `.at`, `.reduce`, ... on unwrapped data."
    def __init__(self, uf): self._uf, self.__name__ = uf, uf.__name__
    def __call__(self, *args, **kwargs): return _wrap_function(self.__name__, self._uf)(*args, **kwargs)
    def __getattr__(self, name):
        attr = getattr(self._uf, name)
        return _wrap_function(f'{self.__name__}.{name}', attr) if callable(attr) else attr


def _module_getattr(name):
    if name.startswith('__'): raise AttributeError(name)
    try: attr = getattr(np, name)
    except AttributeError: raise AttributeError(f"module 'cupy' has no attribute {name!r}") from None
    if isinstance(attr, type) or isinstance(attr, (int, float, str, np.dtype)) or attr is None \
            or isinstance(attr, types.ModuleType):
        return attr            # dtypes (cupy.float32), constants (cupy.pi, cupy.newaxis)
    if isinstance(attr, np.ufunc): return _ufunc(attr)
    if callable(attr): return _wrap_function(name, attr)
    return attr


_cupy.__getattr__ = _module_getattr
for _f in (asarray, array, asnumpy, get_array_module, ascontiguousarray):
    setattr(_cupy, _f.__name__, _f)


# ---- cupy.random --------------------------------------------------------------------------------------------
class _Generator:
    "`cupy.random.default_rng(seed)`: a NumPy Generator whose draws land on the (fake) device."
    def __init__(self, seed=None): self._g = np.random.default_rng(seed)
    def __getattr__(self, name):
        attr = getattr(self._g, name)
        return _wrap_function(f'random.Generator.{name}', attr) if callable(attr) else attr


_random = types.ModuleType('cupy.random')
_random.default_rng = _Generator
_random.Generator = _Generator
for _n in ['seed', 'rand', 'randn', 'random', 'random_sample', 'uniform', 'normal', 'standard_normal', 'randint',
           'binomial', 'permutation', 'shuffle', 'choice', 'truncnorm']:
    if hasattr(np.random, _n): setattr(_random, _n, _wrap_function(f'random.{_n}', getattr(np.random, _n)))
_random.seed = np.random.seed
_cupy.random = _random

# ---- cupy.linalg --------------------------------------------------------------------------------------------
_linalg = types.ModuleType('cupy.linalg')
_linalg.__getattr__ = lambda name: _wrap_function(f'linalg.{name}', getattr(np.linalg, name))
_cupy.linalg = _linalg

# ---- cupy.cuda ----------------------------------------------------------------------------------------------
_DEVICE_STACK = [0]


class Device:
    "`cupy.cuda.Device(n)`: one device (0); a context manager."
    def __init__(self, device=None): self.id = 0 if device is None else int(device)
    def __enter__(self):
        if self.id != 0: raise RuntimeError(f'CUDA error: invalid device ordinal (device {self.id}; the emulator has 1)')
        _DEVICE_STACK.append(self.id)
        return self
    def __exit__(self, *exc): _DEVICE_STACK.pop()
    def use(self): pass
    def synchronize(self): pass
    def __eq__(self, other): return isinstance(other, Device) and other.id == self.id
    def __hash__(self): return hash(self.id)
    def __repr__(self): return f'<CUDA Device {self.id}>'


class _Stream:
    null = None
    ptr = 0                     # the default stream
    def synchronize(self): pass
    def __enter__(self): return self
    def __exit__(self, *exc): pass


_Stream.null = _Stream()
_cuda = types.ModuleType('cupy.cuda')
_cuda.Device = Device
_cuda.Stream = _Stream
_cuda.get_current_stream = lambda *a: _Stream.null
_cuda.get_device_id = lambda: _DEVICE_STACK[-1]
_runtime = types.ModuleType('cupy.cuda.runtime')
_runtime.getDeviceCount = lambda: 1
_runtime.getDeviceProperties = lambda i: {'name': b'CuPy emulator (host memory)', 'multiProcessorCount': 0}
_runtime.runtimeGetVersion = lambda: 0
_runtime.deviceSynchronize = lambda: None
_runtime.getDevice = lambda: _DEVICE_STACK[-1]
_cuda.runtime = _runtime
_cuda.is_available = lambda: True
_cupy.cuda = _cuda


class _MemoryPool:
    "CuPy's default memory pool, as far as benchmarks ask (host memory here: nothing is pooled)."
    def free_all_blocks(self): pass
    def used_bytes(self): return 0
    def total_bytes(self): return 0


_POOL = _MemoryPool()
_cupy.get_default_memory_pool = lambda: _POOL
_cupy.cuda.Device = Device

# cupyx: scatter_add (used for gradients of indexing) and scipy.special.erf
_cupyx = types.ModuleType('cupyx')
_cupyx.__path__ = []


def _scatter_add(a, slices, value):
    if not isinstance(a, ndarray): raise TypeError('cupyx.scatter_add: `a` must be a CuPy array')
    np.add.at(a._a, _index(slices), _check_scalar(value))


_cupyx.scatter_add = _scatter_add
_cupyx_scipy = types.ModuleType('cupyx.scipy')
_cupyx_scipy.__path__ = []
_cupyx_special = types.ModuleType('cupyx.scipy.special')


def _erf(x):
    import math
    if not isinstance(x, ndarray): raise TypeError(f'cupyx.scipy.special.erf: unsupported type {type(x)}')
    return ndarray._from(np.vectorize(math.erf, otypes=[x.dtype])(x._a))


_cupyx_special.erf = _erf
_cupyx_scipy.special = _cupyx_special
_cupyx.scipy = _cupyx_scipy

_MODULES = {'cupy': _cupy, 'cupy.random': _random, 'cupy.linalg': _linalg, 'cupy.cuda': _cuda,
            'cupy.cuda.runtime': _runtime, 'cupyx': _cupyx, 'cupyx.scipy': _cupyx_scipy,
            'cupyx.scipy.special': _cupyx_special}

module = _cupy


@contextlib.contextmanager
def installed():
    "Make `import cupy` and `rnnbook.backend.cupy_module()` give this emulator; restore both afterwards."
    import rnnbook.backend as backend
    saved = {k: sys.modules.get(k, None) for k in _MODULES}
    saved_backend = backend._cupy
    sys.modules.update(_MODULES)
    backend._cupy = _cupy
    try:
        yield _cupy
    finally:
        for k, v in saved.items():
            if v is None: sys.modules.pop(k, None)
            else: sys.modules[k] = v
        backend._cupy = saved_backend
