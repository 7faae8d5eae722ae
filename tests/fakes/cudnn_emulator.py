"""cuDNN's RNN forward as documented, emulated with rnnbook's own recorded ops, for tests without a GPU.

Per sample, cuDNN reads the first `length` steps (padded IO), runs direction 0 forwards and direction 1 backwards
over them, writes each direction's output at the time step it read (zeros after the length), and returns the final
states `(directions, batch, units)`. Built from recorded primitives, so a GradientTape differentiates it."""
import numpy as np

from rnnbook import ops, activations
from rnnbook.backend import array_module, unwrap
from rnnbook.recurrent import lstm_fused, gru_fused, simple_rnn_fused


def emulated_cudnn_rnn(x, h0, c0, *weights, kind, activation='tanh', lengths=None):
    xp = array_module(x)
    B, T, _ = unwrap(x).shape
    P, _, U = unwrap(h0).shape
    dt = unwrap(x).dtype
    groups = [weights[i:i + 3] for i in range(0, len(weights), 3)]
    ys, hs, cs = [], [], []
    for p, (k, r, b) in enumerate(groups):
        seqs, hp, cp_ = [], [], []
        for s in range(B):
            L = T if lengths is None else int(lengths[s])
            xs = ops.getitem(x, (slice(s, s + 1), slice(0, L)))
            hs0 = ops.getitem(h0, (p, slice(s, s + 1)))
            opts = dict(go_backwards=p == 1, return_sequences=True)
            if kind == 'LSTM':
                cs0 = ops.getitem(c0, (p, slice(s, s + 1)))
                _, seq, states = lstm_fused(xs, hs0, cs0, k, r, b, **opts)
                cp_.append(states[1])
            elif kind == 'GRU':
                _, seq, states = gru_fused(xs, hs0, k, r, b, reset_after=True, **opts)
            else:
                _, seq, states = simple_rnn_fused(xs, hs0, k, r, b, activation=activations.get(activation), **opts)
            if p == 1: seq = ops.flip(seq, axis=1)               # written at the step it read
            if L < T: seq = ops.concatenate([seq, xp.zeros((1, T - L, U), dt)], axis=1)
            seqs.append(seq); hp.append(states[0])
        ys.append(ops.concatenate(seqs, axis=0))
        hs.append(ops.concatenate(hp, axis=0)); cs.append(ops.concatenate(cp_, axis=0) if cp_ else None)
    y = ops.concatenate(ys, axis=2) if P > 1 else ys[0]
    hy = ops.stack(hs, axis=0)
    cy = ops.stack(cs, axis=0) if kind == 'LSTM' else None
    return y, hy, cy
