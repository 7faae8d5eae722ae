"""Keras' confusion-count metrics, precision and recall, against Keras 3 (torch backend)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pytest

import rnnbook as rb

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("name", ["TruePositives", "TrueNegatives", "FalsePositives", "FalseNegatives",
                                  "Precision", "Recall"])
@pytest.mark.parametrize("thresholds", [None, 0.3, [0.2, 0.5, 0.8]])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_keras(name, thresholds, weighted):
    ours, theirs = getattr(rb.metrics, name)(thresholds=thresholds), getattr(keras.metrics, name)(thresholds=thresholds)
    for _ in range(3):                                        # running over batches
        y_true = RNG.integers(0, 2, (8, 3))
        y_pred = RNG.random((8, 3)).astype("float32")
        w = RNG.random(8) if weighted else None
        ours.update_state(y_true, y_pred, sample_weight=w)
        theirs.update_state(y_true, y_pred, sample_weight=w)
    np.testing.assert_allclose(np.asarray(ours.result()), np.asarray(theirs.result()), rtol=1e-5, atol=1e-6)
    assert rb.metrics.get(name).__class__.__name__ == name


def test_in_compile_and_fit():
    m = rb.Sequential([rb.Input((3,)), rb.layers.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=[rb.metrics.FalseNegatives(), rb.metrics.FalsePositives()])
    h = m.fit(RNG.random((16, 3)), RNG.integers(0, 2, (16, 1)), epochs=1, verbose=0).history
    assert {"false_negatives", "false_positives"} <= set(h)
