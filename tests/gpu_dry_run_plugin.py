"""pytest plugin: run tests/test_gpu.py on the CPU, with fake_cupy.py as `cupy` and fake_cudnn.FakeCuDNN as libcudnn.

Used by test_gpu_dry_run.py (`pytest -p gpu_dry_run_plugin tests/test_gpu.py`, with tests/ on PYTHONPATH), so that
the GPU suite itself is known to run, and to pass on cuDNN's documented semantics, before it meets a GPU."""
import torch  # noqa: F401 - imported before the emulator is installed as `cupy` (torch looks for CuPy on import)

import fake_cupy
from fake_cudnn import FakeCuDNN

_installed = fake_cupy.installed()
_installed.__enter__()

import rnnbook.cudnn as _cudnn  # noqa: E402

_cudnn._LIB, _cudnn._LIB_ERROR, _cudnn._HANDLES, _cudnn._PLANS = FakeCuDNN(), None, {}, {}
