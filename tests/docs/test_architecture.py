"""The book's structure (tools/architecture.py): no import circle, no upward import, small modules and cells, each
export cell followed by its demo or test; and the checker itself catches what it claims to."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location('architecture', ROOT / 'tools' / 'architecture.py')
arch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arch)


@pytest.fixture(scope='module')
def figures(): return arch.figures()


def test_no_import_circle(figures):
    assert figures['circles'] == []


def test_no_upward_import(figures):
    assert figures['upward'] == [], arch.breaches(figures)


def test_no_module_over_the_code_limit(figures):
    assert figures['modules_over_limit'] == []


def test_export_cells_small_and_tested(figures):
    assert [c[:3] for c in figures['cells_over_limit']] == []
    assert figures['mean_cell'] <= arch.MAX_MEAN_CELL_LINES
    assert figures['untested'] == []


def test_check_exits_clean():
    assert arch.breaches(arch.figures()) == []


def test_imports_found_anywhere_in_a_module(tmp_path):
    src = tmp_path / 'm.py'
    src.write_text("from .ops import x\nimport rnnbook.cells\n\ndef f():\n    from rnnbook import traces\n"
                   "    from . import layer as L\n")
    found = arch.imports_of(src, {'ops', 'cells', 'traces', 'layer', 'rnn'})
    assert sorted(found) == ['cells', 'layer', 'ops', 'traces']
    assert found['traces'] == 5                                  # the line of the import inside the function


def test_circles_and_upward_imports_are_reported():
    edges = {'a': {'b': 1}, 'b': {'c': 2}, 'c': {'a': 3}, 'd': {'a': 4}, 'layers': {'d': 1}}
    assert arch.circles(edges) == [['a', 'b', 'c']]
    mods = {'a': ('01_a', None), 'b': ('02_b', None), 'c': ('03_c', None), 'd': ('04_d', None),
            'layers': ('90_layers', None)}
    assert arch.upward(mods, edges) == [('a', 'b', 1), ('b', 'c', 2)]   # `layers` gathers everything: exempt


def test_untested_and_oversized_cells_are_reported(tmp_path, monkeypatch):
    def cell(kind, text): return {'cell_type': kind, 'id': 'x' + str(len(text)), 'source': text.splitlines(True)}
    big = '#| export\n' + ''.join(f'a{i} = {i}\n' for i in range(arch.MAX_CELL_LINES + 1))
    nb = {'cells': [cell('code', '#| export\nimport numpy\n'), cell('code', big), cell('markdown', 'prose'),
                    cell('code', 'import os\n'), cell('code', '#| export\ndef f(): return 1\n'),
                    cell('code', 'assert f() == 1\n')]}
    (tmp_path / '01_t.ipynb').write_text(json.dumps(nb))
    monkeypatch.setattr(arch, 'NBS', tmp_path)
    cells = arch.export_cells()
    assert [(c[2], c[3]) for c in cells] == [(1, True), (arch.MAX_CELL_LINES + 1, False), (1, True)]   # imports only: nothing to test


def test_every_layer_build_is_scoped():
    "A layer's `build` must sit in its class body (not be added with `@patch`): `Layer` wraps it there so the weights"
    " it creates get their path (`lstm/lstm_cell/kernel`) and the device of the first call."
    import rnnbook  # noqa: F401  (registers every layer class)
    from rnnbook.layer import Layer
    def subclasses(c): return [c] + [s for d in c.__subclasses__() for s in subclasses(d)]
    unscoped = [c.__name__ for c in subclasses(Layer)
                if 'build' in c.__dict__ and c is not Layer and not hasattr(c.__dict__['build'], '__wrapped__')]
    assert unscoped == []


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    text = 'def f(x):\n    """Doc\n\n    more doc."""\n    # a comment\n\n    return x  # trailing\n"text"\n'
    assert arch.code_lines(text) == 2          # `def f(x):` and `return x`
    assert arch.code_lines('x = """not a\ndocstring"""\n') == 2
