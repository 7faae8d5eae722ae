"""Baseline-image comparison shared by the view tests (matplotlib's compare_images; RMS tolerance on 0-255)."""
import os
from pathlib import Path

from matplotlib.testing.compare import compare_images

BASELINE = Path(__file__).parent / "baseline"


def check_png(png: bytes, name: str, tmp_path, tol: float):
    "Compare PNG bytes with tests/views/baseline/<name>; RNNBOOK_UPDATE_BASELINES=1 rewrites the baseline instead."
    name = name if name.endswith(".png") else name + ".png"
    expected, actual = BASELINE / name, Path(tmp_path) / name
    actual.write_bytes(png)
    if os.environ.get("RNNBOOK_UPDATE_BASELINES") == "1":
        BASELINE.mkdir(exist_ok=True)
        expected.write_bytes(png)
        return
    assert expected.exists(), f"no baseline {expected}; create it with RNNBOOK_UPDATE_BASELINES=1"
    err = compare_images(str(expected), str(actual), tol)
    assert err is None, err
