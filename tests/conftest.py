"""Shared pytest configuration for the rnnbook test-suite (every folder under tests/).

Keras 3 is only used as a *reference* implementation (parity tests).  In this
environment it must run on the torch backend, and the backend has to be chosen
before the first ``import keras`` anywhere in the process -- hence the
environment variable is set at import time of this conftest, which pytest loads
before any test module.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Make the in-repo package importable even when pytest is started as
# ``pytest`` (not ``python -m pytest``) and rnnbook is not pip-installed.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

# The tests are in folders by kind (unit, parity, gradients, gpu, views, safety,
# docs); what they share is imported by module name from two folders:
# ``fakes/`` (the CuPy emulator, the cuDNN stand-in and their pytest plugin) and
# ``helpers/`` (code several kinds of test use).
_TESTS = Path(__file__).resolve().parent
for _shared in ("fakes", "helpers"):
    if str(_TESTS / _shared) not in sys.path:
        sys.path.insert(0, str(_TESTS / _shared))


def pytest_configure(config):
    # Keras 3.15's Variable.__array__ predates NumPy 2's ``copy`` keyword and
    # emits this for every weight read -- noise from the reference library.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword"
        ":DeprecationWarning",
    )


@pytest.fixture(autouse=True)
def _seed_numpy():
    """Seed NumPy's global RNG before every test (deterministic initializers)."""
    np.random.seed(1234)
    yield


@pytest.fixture
def rng():
    """A fresh, seeded NumPy Generator for test data."""
    return np.random.default_rng(20240611)


def _keras_to_numpy(value):
    import keras

    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_keras_to_numpy(v) for v in value]
    if isinstance(value, np.ndarray):
        return value
    # keras.Variable (e.g. the entries of ``layer.states``) -> its tensor.
    if isinstance(value, keras.Variable):
        value = value.value
    return keras.ops.convert_to_numpy(value)


@pytest.fixture(scope="session")
def k2np():
    """Convert (possibly nested) Keras outputs / variables to NumPy arrays."""
    return _keras_to_numpy
