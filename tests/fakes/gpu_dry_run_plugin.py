"""pytest plugin: run tests/gpu/test_gpu_real_device.py on the CPU, with fake_cupy.py as `cupy` and
fake_cudnn.FakeCuDNN as libcudnn.

Used by tests/gpu/test_gpu_real_device_dry_run.py (`pytest -p gpu_dry_run_plugin tests/gpu/test_gpu_real_device.py`,
with tests/fakes/ on PYTHONPATH), so that the GPU suite itself is known to run, and to pass on cuDNN's documented
semantics, before it meets a GPU."""
import torch  # noqa: F401 - imported before the emulator is installed as `cupy` (torch looks for CuPy on import)

import fake_cupy
from fake_cudnn import FakeCuDNN

_installed = fake_cupy.installed()
_installed.__enter__()

import rnnbook.cudnn as _cudnn  # noqa: E402

_cudnn._LIB, _cudnn._LIB_ERROR, _cudnn._HANDLES, _cudnn._PLANS = FakeCuDNN(), None, {}, {}
