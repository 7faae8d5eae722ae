#!/usr/bin/env bash
# The whole GPU acceptance run, on a GPU machine, with nothing to fetch:
#   environment (nvidia-smi, CuPy, cuDNN, torch), the GPU test suite, then the GPU benchmark.
#
#   tools/gpu_check.sh                 # from anywhere; runs in the repo root
#   OUT=/some/dir tools/gpu_check.sh   # the benchmark table goes to $OUT/gpu_bench.md (default: ./gpu_bench.md)
#   PYTHON=/path/to/python tools/gpu_check.sh
#
# rnnbook is used from the checkout (PYTHONPATH), never installed; nothing is pip-installed or downloaded.
# Exit status: the tests' (non-zero when a test fails or errors); else 3 when no usable GPU was found (the GPU
# tests then skip: nothing was accepted); else the benchmark's (1 when a measurement failed or outputs disagreed).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT="$(pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PIP_NO_INDEX=1                       # belt and braces: nothing here may reach a package index

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3 || command -v python)"; fi
fi
OUT_DIR="${OUT:-.}"
mkdir -p "$OUT_DIR"

echo "==== environment ===================================================================="
echo "repo: $ROOT"
echo "python: $PYTHON ($("$PYTHON" --version 2>&1))"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "nvidia-smi failed (rc $?)"
else
    echo "nvidia-smi: not found"
fi
"$PYTHON" - <<'PY'
import rnnbook as rb
if hasattr(rb.backend, 'info'):
    try:
        print(rb.backend.info())
    except Exception as e:  # noqa: BLE001
        print(f"rnnbook.backend.info() failed: {type(e).__name__}: {e}")
try:
    import cupy as cp
    print("cupy", cp.__version__, "| CUDA runtime", cp.cuda.runtime.runtimeGetVersion(),
          "| devices", cp.cuda.runtime.getDeviceCount())
    p = cp.cuda.runtime.getDeviceProperties(0)
    print("device 0:", p["name"].decode() if isinstance(p["name"], bytes) else p["name"])
except Exception as e:  # noqa: BLE001
    print(f"cupy: unusable ({type(e).__name__}: {e})")
import rnnbook.cudnn as cudnn
why = cudnn.library_reason()
print("cuDNN (rnnbook.cudnn):", why if why else f"{cudnn.version()} at {cudnn.library().path}")
try:
    import torch
    print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| available", torch.cuda.is_available(),
          "| cuDNN", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
except Exception as e:  # noqa: BLE001
    print(f"torch: unusable ({type(e).__name__}: {e})")
PY

"$PYTHON" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" >/dev/null 2>&1
GPU_OK=$?

echo "==== tests =========================================================================="
TESTS=(tests/gpu/test_gpu_real_device.py tests/gpu/test_cudnn_binding_real_library.py)
[ -f tests/gpu/test_cupy_path_emulated.py ] && TESTS+=(tests/gpu/test_cupy_path_emulated.py)
"$PYTHON" -m pytest -q -rs "${TESTS[@]}"
TEST_RC=$?
echo "tests exit status: $TEST_RC"

echo "==== benchmark ======================================================================"
"$PYTHON" bench/bench_gpu.py --out "$OUT_DIR/gpu_bench.md"
BENCH_RC=$?
echo "benchmark exit status: $BENCH_RC"

if [ "$TEST_RC" -ne 0 ]; then
    echo "gpu_check: TESTS FAILED (exit status $TEST_RC)"
    exit "$TEST_RC"
fi
if [ "$GPU_OK" -ne 0 ]; then
    echo "gpu_check: NO USABLE GPU (CuPy missing or no CUDA device): the GPU tests were skipped, nothing was accepted"
    exit 3
fi
if [ "$BENCH_RC" -ne 0 ]; then
    echo "gpu_check: the benchmark reported failures (exit status $BENCH_RC)"
    exit "$BENCH_RC"
fi
echo "gpu_check: all passed"
