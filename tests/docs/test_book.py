"""The notebooks are the source: they run, and exporting/cleaning them changes nothing tracked."""
import os
import shutil
import subprocess
import sys
from pathlib import Path



ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(args, cwd, **kw):
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kw)


def test_export_and_clean_change_nothing(tmp_path):
    "nbdev_export and nbdev_clean on a copy of the project leave every notebook and module byte-identical."
    for name in ('settings.ini', 'setup.py', 'pyproject.toml', 'README.md'):
        if (ROOT / name).exists(): shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / 'nbs', tmp_path / 'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_*'))
    shutil.copytree(ROOT / 'rnnbook', tmp_path / 'rnnbook', ignore=shutil.ignore_patterns('__pycache__'))
    for tool in ('nbdev_export', 'nbdev_clean'):
        r = _run([str(BIN / tool)], tmp_path)
        assert r.returncode == 0, f"{tool} failed:\n{r.stdout}\n{r.stderr}"
    changed = []
    for sub, pattern in (('nbs', '*.ipynb'), ('rnnbook', '*.py')):
        produced = {p.name for p in (tmp_path / sub).glob(pattern)}
        tracked = {p.name for p in (ROOT / sub).glob(pattern)}
        changed += [f"{sub}/{n} (only after export)" for n in produced - tracked]
        changed += [f"{sub}/{n}" for n in produced & tracked
                    if (tmp_path / sub / n).read_bytes() != (ROOT / sub / n).read_bytes()]
    assert not changed, ("nbdev_export/nbdev_clean would change: " + ", ".join(changed) +
                         ". Edit the notebook, run nbdev_export and nbdev_clean, and commit both.")


def test_notebooks_run():
    "Every notebook executes top to bottom with its asserts (nbdev_test)."
    r = _run([str(BIN / 'nbdev_test'), '--n_workers', '2', '--do_print'], ROOT, timeout=900)
    assert r.returncode == 0, f"nbdev_test failed:\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}"


def test_import_is_light():
    "The core imports neither plotting, widgets, CuPy, nor the test-only peers."
    code = ("import sys, rnnbook as rb; bad = [m for m in ('matplotlib', 'ipywidgets', 'cupy', 'torch', 'keras') "
            "if m in sys.modules]; assert not bad, bad")
    r = _run([sys.executable, '-c', code], ROOT)
    assert r.returncode == 0, r.stderr


def test_demo_runs():
    "The README's main job runs and prints the guide's parameter counts."
    r = _run([sys.executable, '-m', 'rnnbook.demo'], ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    for n in ('98,816', '247,296', '49,280'): assert n in r.stdout
