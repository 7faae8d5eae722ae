"""The GPU acceptance suite (tests/gpu/test_gpu_real_device.py) run on the CPU through the CuPy emulator and the
cuDNN stand-in of tests/fakes/.

On a machine without a GPU test_gpu_real_device.py skips; this runs it in a subprocess with gpu_dry_run_plugin.py,
so a bug in the suite (or in rnnbook's GPU path, as far as the stand-ins reach) shows up here rather than on the GPU."""
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent                 # tests/gpu
FAKES = HERE.parent / 'fakes'                          # fake_cupy, fake_cudnn, gpu_dry_run_plugin
ROOT = HERE.parents[1]


def test_gpu_suite_passes_on_the_emulators():
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(FAKES), str(ROOT), os.environ.get('PYTHONPATH', '')])}
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'gpu_dry_run_plugin', '-p', 'no:cacheprovider',
                        str(HERE / 'test_gpu_real_device.py')], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=600)
    tail = r.stdout[-3000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    summary = r.stdout.strip().splitlines()[-1]
    passed = int(summary.split(' passed')[0].split()[-1])
    assert passed >= 400, summary            # the suite ran, not skipped


def test_gpu_benchmark_runs_on_the_emulators():
    "bench/bench_gpu.py end to end on the emulators (its timings mean nothing here; that it runs and checks does)."
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(FAKES), str(ROOT), os.environ.get('PYTHONPATH', '')])}
    code = ("import sys, runpy, gpu_dry_run_plugin; "
            "sys.argv = ['bench_gpu.py', '--quick', '--repeats', '1', '--warmup', '0']; "
            "runpy.run_path('bench/bench_gpu.py', run_name='__main__')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [l for l in r.stdout.splitlines() if l.startswith('| LSTM') or l.startswith('| GRU')]
    assert len(rows) == 4 and all('ms' in l for l in rows), r.stdout[-2000:]
