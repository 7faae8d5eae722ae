#!/usr/bin/env python
"""Redraw time of the view explorers after a control moves (the issue's target: well under 150 ms for T=100, U=64).

Usage::

    MPLBACKEND=Agg python bench/bench_views.py [--moves 20] [--only gate]

Each entry of ``ENTRIES`` is ``(name, build_explorer, control, values)``: the explorer is built once, then the
control is set to each value in turn and ``explorer.last_draw_ms`` (the callback's own measurement: update the
figure, render the PNG, set the status marker) is collected; the median is printed. Not a timed test: machines
are noisy, read the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

B, T, F, U = 4, 100, 16, 64


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, F)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 80:] = False
    mask[2, 40:55] = False
    return x, mask


def gate_lstm():
    from rnnbook.gate_view import gate_explorer
    from rnnbook.layers import LSTM
    x, mask = _data()
    return gate_explorer(LSTM(U, return_sequences=True), x, mask)


def mask_lstm():
    from rnnbook.mask_view import mask_explorer
    from rnnbook.layers import LSTM
    x, mask = _data()
    return mask_explorer(LSTM(U), x, mask)


# ---- the other views (their own modules; an entry whose view is missing or changed prints "skipped") -------------
def bidirectional_lstm():
    from rnnbook.bidirectional_view import bidirectional_explorer
    from rnnbook.layers import LSTM, Bidirectional
    x, mask = _data()
    return bidirectional_explorer(Bidirectional(LSTM(U, return_sequences=True)), x, mask)


def state_lstm():
    from rnnbook.state_view import state_explorer
    from rnnbook.layers import LSTM
    x, _ = _data()
    return state_explorer(LSTM(U, stateful=True, return_sequences=True), [x[:, :50], x[:, 50:]])


def gradient_flow():
    from rnnbook.gradient_view import gradient_explorer
    return gradient_explorer(T=T, units=U)


def _moves(n, lo, hi, seed=1):
    "n distinct-from-the-previous values in lo..hi (a slider dragged about)."
    rng = np.random.default_rng(seed)
    out, prev = [], None
    while len(out) < n:
        v = int(rng.integers(lo, hi + 1))
        if v != prev: out.append(v); prev = v
    return out


def entries(n):
    return [
        ("gate LSTM T=100 U=64: timestep", gate_lstm, "timestep", _moves(n, 0, T - 1)),
        ("gate LSTM T=100 U=64: sample", gate_lstm, "sample", [k % B for k in range(1, n + 1)]),
        ("gate LSTM T=100 U=64: units", gate_lstm, "units", [(k % 8, 40 + k % 8) for k in range(1, n + 1)]),
        ("mask LSTM T=100 U=64: unit", mask_lstm, "unit", _moves(n, 0, U - 1)),
        ("mask LSTM T=100 U=64: sample", mask_lstm, "sample", [k % B for k in range(1, n + 1)]),
        ("mask LSTM T=100 U=64: zero_output_for_mask", mask_lstm, "zero_output_for_mask",
         [bool(k % 2) for k in range(1, n + 1)]),
        ("bidirectional LSTM T=100 U=64: timestep", bidirectional_lstm, "timestep", _moves(n, 0, T - 1)),
        ("bidirectional LSTM T=100 U=64: merge_mode", bidirectional_lstm, "merge_mode",
         [["sum", "mul", "ave", "None", "concat"][k % 5] for k in range(n)]),
        ("state LSTM T=2x50 U=64: unit", state_lstm, "unit", _moves(n, 0, U - 1)),
        ("gradient flow T=100 U=64: timestep", gradient_flow, "timestep", _moves(n, 0, T - 1)),
    ]


def run(name, build, control, values):
    ex = build()
    times = []
    for v in values:
        ex.controls[control].value = v
        times.append(ex.last_draw_ms)
    return statistics.median(times), max(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20, help="control moves per entry (default 20)")
    p.add_argument("--only", default="", help="run only entries whose name contains this")
    a = p.parse_args(argv)
    print(f"{'view: control':55s} {'median ms':>10s} {'max ms':>8s}")
    for name, build, control, values in entries(a.moves):
        if a.only and a.only not in name: continue
        try:
            med, worst = run(name, build, control, values)
        except Exception as e:                     # another engineer's view absent or changed: say so, go on
            print(f"{name:55s} skipped ({type(e).__name__}: {e})", flush=True)
            continue
        print(f"{name:55s} {med:10.1f} {worst:8.1f}", flush=True)


if __name__ == "__main__":
    main()
