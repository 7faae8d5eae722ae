"""A stand-in for `libcudnn.so.9` at the C-API level, for running rnnbook's cuDNN code path on a machine without a GPU.

`FakeCuDNN.call(name, *args)` receives exactly what rnnbook would pass to the real library: every call is checked
against the binding's prototype (argument count, and each value converted by its ctypes type), descriptors are
kept as Python dicts, and device pointers are read and written as the memory of the (emulated) CuPy arrays they
point to. The RNN itself is computed by `cudnn_emulator` (in this folder: cuDNN's documented semantics in rnnbook's
recorded ops), its gradients by `rb.GradientTape`. The weight table it reports is shuffled and has gaps, so rnnbook must
use the offsets it is given.

What this checks: the binding's calls are well-formed and in a valid order (backward data before backward weights,
both with the reserve space of a training forward), the weight table is queried and used, data descriptors and
device lengths agree, and the results are wired back correctly. What it cannot check: the real library's
acceptance of these arguments on a GPU, and its numbers."""
import ctypes

import numpy as np

from rnnbook import cudnn
from rnnbook.autodiff import GradientTape
from rnnbook.layer import Variable
from rnnbook import ops
from cudnn_emulator import emulated_cudnn_rnn

_CT = {cudnn.CUDNN_DATA_FLOAT: (np.float32, ctypes.c_float), cudnn.CUDNN_DATA_DOUBLE: (np.float64, ctypes.c_double)}
_KIND = {cudnn.CUDNN_LSTM: 'LSTM', cudnn.CUDNN_GRU: 'GRU', cudnn.CUDNN_RNN_TANH: 'SimpleRNN',
         cudnn.CUDNN_RNN_RELU: 'SimpleRNN'}


def _val(a):
    "The integer a handle/pointer argument carries."
    a = getattr(a, '_as_parameter_', a)
    if isinstance(a, ctypes.c_void_p): return a.value or 0
    if a is None: return 0
    if isinstance(a, int): return a
    return ctypes.cast(a, ctypes.c_void_p).value or 0


def _out(ref):
    "The ctypes object behind `ctypes.byref(obj)`."
    return ref._obj


# cuDNN's gates by linear-layer id (cudnn_adv.h's cell formulas) and Keras' column blocks, written out here, apart
# from rnnbook's own mapping, so that this stand-in checks it
_CUDNN_GATES = {'LSTM': 'ifco', 'GRU': 'rzh', 'SimpleRNN': 'h'}
_KERAS_GATES = {'LSTM': 'ifco', 'GRU': 'zrh', 'SimpleRNN': 'h'}


def _keras_from_flat(kind, flat, table, D, U, P):
    "Keras `[kernel, recurrent_kernel, bias]` per direction from cuDNN's flat weights (biases of a gate summed)."
    n = len(_CUDNN_GATES[kind])
    out = [[np.zeros((D, n * U)), np.zeros((U, n * U)), np.zeros((2, n * U) if kind == 'GRU' else n * U)]
           for _ in range(P)]
    for (p, lin, part), e in table.items():
        rec, gate = lin >= n, _CUDNN_GATES[kind][lin % n]
        k = _KERAS_GATES[kind].index(gate)
        block = flat[e.offset:e.offset + int(np.prod(e.shape))].reshape(e.shape)
        kernel, recurrent, bias = out[p]
        if part == 'matrix': (recurrent if rec else kernel)[:, k * U:(k + 1) * U] = block.T
        elif kind == 'GRU': bias[int(rec), k * U:(k + 1) * U] = block
        else: bias[k * U:(k + 1) * U] += block
    return [[w.astype(flat.dtype) for w in g] for g in out]


def _flat_from_keras_grads(kind, grads, table, size, dtype, U):
    "cuDNN's flat weight gradient from Keras-layout gradients (each of an LSTM's two biases gets the bias gradient)."
    n = len(_CUDNN_GATES[kind])
    flat = np.zeros(size, dtype)
    for (p, lin, part), e in table.items():
        rec, gate = lin >= n, _CUDNN_GATES[kind][lin % n]
        cols = slice(_KERAS_GATES[kind].index(gate) * U, (_KERAS_GATES[kind].index(gate) + 1) * U)
        kernel, recurrent, bias = (np.asarray(g) for g in grads[p])
        if part == 'matrix': block = (recurrent if rec else kernel)[:, cols].T
        elif kind == 'GRU': block = bias[int(rec), cols]
        else: block = bias[cols]
        flat[e.offset:e.offset + block.size] = block.ravel()
    return flat


def _view(addr, n, dtype):
    "The memory at `addr` as a writable NumPy array of `n` elements."
    assert addr, "a NULL pointer where data was needed"
    ct = np.ctypeslib.as_ctypes_type(np.dtype(dtype))
    return np.ctypeslib.as_array((ct * n).from_address(addr))


class FakeCuDNN:
    path, version = '<emulated cuDNN>', 92700

    def __init__(self, seed=0):
        self.objs, self.next_id, self.log = {}, 1000, []
        self.rng = np.random.default_rng(seed)
        self.reserves = {}
        self.dll = self

    # the Library interface rnnbook uses ------------------------------------------------------------------------
    def __getitem__(self, name): return lambda *a: 0           # destroy functions through `lib.dll[...]`
    def error_string(self, status): return f'FAKE_STATUS_{status}'

    def call(self, name, *args):
        res, types = cudnn.PROTOTYPES[name]
        assert len(args) == len(types), f"{name}: {len(args)} arguments, the prototype has {len(types)}"
        for i, (a, t) in enumerate(zip(args, types)):
            t.from_param(getattr(a, '_as_parameter_', a))       # raises as ctypes would for a wrong type
        self.log.append(name)
        getattr(self, name)(*args)

    def _new(self, ref, **kw):
        self.next_id += 8
        self.objs[self.next_id] = dict(kw)
        _out(ref).value = self.next_id

    def _obj(self, a): return self.objs[_val(a)]

    # handles and descriptors -------------------------------------------------------------------------------------
    def cudnnCreate(self, ref): self._new(ref, kind='handle')
    def cudnnSetStream(self, h, s): assert self._obj(h)['kind'] == 'handle'
    def cudnnCreateTensorDescriptor(self, ref): self._new(ref, kind='tensor')
    def cudnnCreateRNNDescriptor(self, ref): self._new(ref, kind='rnn')
    def cudnnCreateRNNDataDescriptor(self, ref): self._new(ref, kind='rnndata')

    def cudnnSetTensorNdDescriptor(self, d, dt, n, dims, strides):
        self._obj(d).update(dt=dt, dims=list(dims[:n]))

    def cudnnGetTensorNdDescriptor(self, d, n_req, dt, n, dims, strides):
        o = self._obj(d)
        _out(dt).value, _out(n).value = o.get('dt', 0), len(o['dims'])
        for i, v in enumerate(o['dims']): dims[i] = v

    def cudnnSetRNNDescriptor_v8(self, d, algo, mode, bias, direction, inmode, dt, prec, math, inp, hid, proj, layers,
                                 dropout, aux):
        assert (bias, inmode, layers, proj, aux) == (cudnn.CUDNN_RNN_DOUBLE_BIAS, cudnn.CUDNN_LINEAR_INPUT, 1, hid,
                                                     cudnn.CUDNN_RNN_PADDED_IO_ENABLED)
        assert dt == prec and math == (cudnn.CUDNN_FMA_MATH if dt == cudnn.CUDNN_DATA_FLOAT else cudnn.CUDNN_DEFAULT_MATH)
        o = self._obj(d)
        o.update(kind_name=_KIND[mode], activation='relu' if mode == cudnn.CUDNN_RNN_RELU else 'tanh', dt=dt,
                 D=inp, U=hid, P=2 if direction == cudnn.CUDNN_BIDIRECTIONAL else 1)
        # cuDNN's own order, then shuffled, with alignment gaps: rnnbook must read the offsets
        table = cudnn.emulated_weight_table(o['kind_name'], inp, hid, o['P'])
        order = self.rng.permutation(len(table))
        placed, off = {}, 5
        for i in order:
            e = table[i]
            placed[(e.pseudo_layer, e.lin_id, e.part)] = e._replace(offset=off)
            off += int(np.prod(e.shape)) + int(self.rng.integers(0, 4))
        o.update(table=placed, size=off + 3)

    def cudnnSetRNNDataDescriptor(self, d, dt, layout, T, B, width, lengths, fill):
        assert layout == cudnn.CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED
        lens = [lengths[i] for i in range(B)]
        assert all(1 <= v <= T for v in lens), lens
        assert ctypes.cast(fill, ctypes.POINTER(_CT[dt][1]))[0] == 0
        self._obj(d).update(dt=dt, T=T, B=B, width=width, lengths=lens)

    # the weight space ------------------------------------------------------------------------------------------------
    def cudnnGetRNNWeightSpaceSize(self, h, d, size):
        o = self._obj(d)
        _out(size).value = o['size'] * np.dtype(_CT[o['dt']][0]).itemsize

    def cudnnGetRNNWeightParams(self, h, d, p, wsize, space, lin, m_desc, m_addr, b_desc, b_addr):
        o = self._obj(d)
        item = np.dtype(_CT[o['dt']][0]).itemsize
        assert wsize == o['size'] * item and _val(space)
        m, b = o['table'][(p, lin, 'matrix')], o['table'][(p, lin, 'bias')]
        self._obj(m_desc).update(dims=[1, *m.shape]); self._obj(b_desc).update(dims=[1, m.shape[0], 1])
        _out(m_addr).value = _val(space) + m.offset * item
        _out(b_addr).value = _val(space) + b.offset * item

    def cudnnGetRNNTempSpaceSizes(self, h, d, mode, x_desc, work, reserve):
        _out(work).value = 256
        _out(reserve).value = 64 if mode == cudnn.CUDNN_FWD_MODE_TRAINING else 0

    # the computation -------------------------------------------------------------------------------------------------
    def _arrays(self, d, x_desc, y_desc, h_desc, dev_lengths, w, wsize):
        o, xd, yd, hd = self._obj(d), self._obj(x_desc), self._obj(y_desc), self._obj(h_desc)
        dt = _CT[o['dt']][0]
        B, T, D, U, P = xd['B'], xd['T'], o['D'], o['U'], o['P']
        assert (xd['width'], yd['width'], yd['B'], yd['T']) == (D, P * U, B, T) and hd['dims'] == [P, B, U]
        assert xd['lengths'] == yd['lengths'] == list(_view(_val(dev_lengths), B, np.int32))
        assert wsize == o['size'] * np.dtype(dt).itemsize
        table = list(o['table'].values())
        weights = _keras_from_flat(o['kind_name'], _view(_val(w), o['size'], dt), o['table'], D, U, P)
        lengths = None if all(v == T for v in xd['lengths']) else np.array(xd['lengths'])
        return o, dt, (B, T, D, U, P), table, weights, lengths

    def cudnnRNNForward(self, h, d, mode, dev_lengths, x_desc, x, y_desc, y, h_desc, hx, hy, c_desc, cx, cy, wsize, w,
                        work_size, work, reserve_size, reserve):
        o, dt, (B, T, D, U, P), table, weights, lengths = self._arrays(d, x_desc, y_desc, h_desc, dev_lengths, w, wsize)
        lstm = o['kind_name'] == 'LSTM'
        assert bool(_val(cx)) == bool(_val(cy)) == lstm
        xs, h0 = _view(_val(x), B * T * D, dt).reshape(B, T, D), _view(_val(hx), P * B * U, dt).reshape(P, B, U)
        c0 = _view(_val(cx), P * B * U, dt).reshape(P, B, U) if lstm else None
        flat_w = [w_ for g in weights for w_ in g]
        out_y, out_h, out_c = emulated_cudnn_rnn(xs.copy(), h0.copy(), None if c0 is None else c0.copy(), *flat_w,
                                                 kind=o['kind_name'], activation=o['activation'], lengths=lengths)
        _view(_val(y), B * T * P * U, dt)[:] = np.asarray(out_y).ravel()
        _view(_val(hy), P * B * U, dt)[:] = np.asarray(out_h).ravel()
        if lstm: _view(_val(cy), P * B * U, dt)[:] = np.asarray(out_c).ravel()
        if mode == cudnn.CUDNN_FWD_MODE_TRAINING:
            assert _val(reserve) and reserve_size == 64
            self.reserves[_val(reserve)] = dict(x=xs.copy(), h0=h0.copy(), c0=None if c0 is None else c0.copy(),
                                                weights=weights, state='forward')
        else:
            assert not _val(reserve) and reserve_size == 0

    def cudnnRNNBackwardData_v8(self, h, d, dev_lengths, y_desc, y, dy, x_desc, dx, h_desc, hx, dhy, dhx, c_desc, cx,
                                dcy, dcx, wsize, w, work_size, work, reserve_size, reserve):
        o, dt, (B, T, D, U, P), table, weights, lengths = self._arrays(d, x_desc, y_desc, h_desc, dev_lengths, w, wsize)
        saved = self.reserves[_val(reserve)]
        assert saved['state'] == 'forward', "backward data needs the reserve space of a training forward"
        lstm = o['kind_name'] == 'LSTM'
        xv, hv = Variable(saved['x']), Variable(saved['h0'])
        cv = Variable(saved['c0']) if lstm else None
        wv = [Variable(w_) for g in saved['weights'] for w_ in g]
        gy = _view(_val(dy), B * T * P * U, dt).reshape(B, T, P * U)
        gh = _view(_val(dhy), P * B * U, dt).reshape(P, B, U)
        with GradientTape() as tape:
            yy, hh, cc = emulated_cudnn_rnn(xv, hv, cv, *wv, kind=o['kind_name'], activation=o['activation'],
                                            lengths=lengths)
            terms = [ops.sum(ops.multiply(yy, gy.copy())), ops.sum(ops.multiply(hh, gh.copy()))]
            if lstm: terms.append(ops.sum(ops.multiply(cc, _view(_val(dcy), P * B * U, dt).reshape(P, B, U).copy())))
            loss = ops.sum(ops.stack(terms))
        grads = tape.gradient(loss, [xv, hv] + ([cv] if lstm else []) + wv)
        _view(_val(dx), B * T * D, dt)[:] = np.asarray(grads[0]).ravel()
        _view(_val(dhx), P * B * U, dt)[:] = np.asarray(grads[1]).ravel()
        if lstm: _view(_val(dcx), P * B * U, dt)[:] = np.asarray(grads[2]).ravel()
        wg = grads[3 if lstm else 2:]
        saved.update(state='data', weight_grads=[wg[i:i + 3] for i in range(0, len(wg), 3)])

    def cudnnRNNBackwardWeights_v8(self, h, d, add, dev_lengths, x_desc, x, h_desc, hx, y_desc, y, wsize, dw,
                                   work_size, work, reserve_size, reserve):
        o, dt, (B, T, D, U, P), table, weights, lengths = self._arrays(d, x_desc, y_desc, h_desc, dev_lengths, dw,
                                                                         wsize)
        assert add == cudnn.CUDNN_WGRAD_MODE_ADD
        saved = self.reserves[_val(reserve)]
        assert saved['state'] == 'data', "backward weights must follow backward data on the same reserve space"
        flat = _flat_from_keras_grads(o['kind_name'], saved['weight_grads'], o['table'], o['size'], dt, U)
        _view(_val(dw), o['size'], dt)[:] += flat
        saved['state'] = 'done'
