#!/usr/bin/env python
"""The book's structure in figures, and the rules it keeps: `python tools/architecture.py [--check]`.

Read from the sources, never from an import of the package:
- the import graph of `rnnbook/*.py`: every `import` anywhere in a module (module level or inside a function),
  the import circles in it (strongly connected groups of more than one module) and the *upward* imports (a module
  importing one whose notebook comes later in the book, where the namespace modules `layers` and `__init__` are
  exempt: they exist to gather everything);
- the largest module, in lines of code;
- the export cells of the notebooks in `nbs/`: their number, mean and largest length in lines of code, and the share followed by a demo or a test (the next code cell is not an export cell and does more
  than import); an export cell that only imports has nothing to test and counts as followed.

Lines of code leave out blank lines, comments, directives and docstrings: the API reference asks every public
argument to be documented where it is defined, and that prose must not count against the size of the code.

`--check` exits 1, listing each breach, when any rule below is broken; `tests/docs/test_architecture.py` runs it.
"""
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT / 'rnnbook', ROOT / 'nbs'
NAMESPACE = {'layers', '__init__'}  # gather the whole library on purpose; exempt from the order rule
SKIP = {'_modidx'}                  # nbdev's generated index
MAX_MODULE_LINES = 500                    # lines of code (docstrings and comments left out)
MAX_CELL_LINES = 60
MAX_MEAN_CELL_LINES = 25
EXPORT = re.compile(r'^#\|\s*export[si]?\s*$')
DIRECTIVE = re.compile(r'^#\|')


def notebook_of(path):
    "The notebook a generated module comes from (its stem), from nbdev's header."
    m = re.search(r'File to edit: \.\./nbs/(\S+?)\.ipynb', path.read_text())
    return m.group(1) if m else None


def modules():
    "{module name: (notebook stem, path)} for every generated module."
    out = {}
    for p in sorted(LIB.glob('*.py')):
        if p.stem in SKIP: continue
        out[p.stem] = (notebook_of(p) or '', p)
    return out


def imports_of(path, names):
    "The rnnbook modules that `path` imports, anywhere in it, as {module: first line number}."
    found = {}
    def add(mod, line):
        if mod in names: found.setdefault(mod, line)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split('.')
                if parts[0] == 'rnnbook' and len(parts) > 1: add(parts[1], node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level == 1 or base.split('.')[0] == 'rnnbook':
                sub = base.split('.') if node.level == 1 else base.split('.')[1:]
                if sub and sub[0]: add(sub[0], node.lineno)
                else:  # `from . import x` / `from rnnbook import x`
                    for a in node.names: add(a.name, node.lineno)
    return found


def graph():
    mods = modules()
    return mods, {m: imports_of(p, mods) for m, (_, p) in mods.items()}


def circles(edges):
    "Strongly connected groups of more than one module (Tarjan), each sorted."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop(); on.discard(w); group.append(w)
                if w == v: break
            if len(group) > 1: out.append(sorted(group))
    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index: visit(v)
    return out


def upward(mods, edges):
    "[(module, imported module, line)] where the imported module's notebook comes later in the book."
    return [(m, t, line) for m, ts in sorted(edges.items()) if m not in NAMESPACE
            for t, line in sorted(ts.items()) if mods[t][0] > mods[m][0]]


def _export(cell): return cell['cell_type'] == 'code' and any(EXPORT.match(l.strip()) for l in cell['source'])


def _docstring_lines(tree):
    "The line numbers taken by docstrings and other bare string statements in a parsed module or cell."
    out = set()
    for node in ast.walk(tree):
        for stmt in getattr(node, 'body', []) if isinstance(getattr(node, 'body', None), list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                out.update(range(stmt.lineno, stmt.end_lineno + 1))
    return out


def code_lines(text):
    "How many lines of `text` hold code: not blank, not only a comment or directive, not in a docstring."
    lines = text.splitlines()
    try: docs = _docstring_lines(ast.parse(text))
    except SyntaxError: docs = set()
    return sum(1 for i, l in enumerate(lines, 1) if l.strip() and not l.lstrip().startswith('#') and i not in docs)


def _does_something(cell):
    "A code cell that runs more than imports, directives and comments."
    try: tree = ast.parse(''.join(l for l in cell['source'] if not l.lstrip().startswith(('%', '!'))))
    except SyntaxError: return True
    return any(not isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)


def export_cells():
    "[(notebook stem, cell id, lines, followed by a demo or test)] for every export cell of `nbs/*.ipynb`."
    out = []
    for nbp in sorted(NBS.glob('*.ipynb')):
        cells = json.loads(nbp.read_text())['cells']
        for i, c in enumerate(cells):
            if not _export(c): continue
            lines = code_lines(''.join(c['source']))
            nxt = next((d for d in cells[i + 1:] if d['cell_type'] == 'code'), None)
            tested = not _does_something(c) or (nxt is not None and not _export(nxt) and _does_something(nxt))
            out.append((nbp.stem, c.get('id'), lines, tested))
    return out


def figures():
    mods, edges = graph()
    cells = export_cells()
    sizes = {m: code_lines(p.read_text()) for m, (_, p) in mods.items()}
    big = max(sizes, key=sizes.get)
    longest = max(cells, key=lambda c: c[2])
    return dict(
        modules=len(mods), circles=circles(edges), upward=upward(mods, edges),
        largest_module=(big, sizes[big]), modules_over_limit=sorted(m for m, s in sizes.items() if s > MAX_MODULE_LINES),
        export_cells=len(cells), mean_cell=sum(c[2] for c in cells) / len(cells), largest_cell=longest,
        cells_over_limit=[c for c in cells if c[2] > MAX_CELL_LINES],
        tested_share=sum(c[3] for c in cells) / len(cells), untested=[c[:2] for c in cells if not c[3]])


def breaches(f):
    out = [f'import circle: {" -> ".join(g)}' for g in f['circles']]
    out += [f'upward import: rnnbook/{m}.py line {line} imports {t} (a later notebook)' for m, t, line in f['upward']]
    out += [f'module over {MAX_MODULE_LINES} lines: {m}' for m in f['modules_over_limit']]
    out += [f'export cell over {MAX_CELL_LINES} lines: nbs/{n}.ipynb cell {i} ({k} lines)' for n, i, k, _ in f['cells_over_limit']]
    if f['mean_cell'] > MAX_MEAN_CELL_LINES: out.append(f'mean export cell {f["mean_cell"]:.1f} lines > {MAX_MEAN_CELL_LINES}')
    out += [f'export cell not followed by a demo or test: nbs/{n}.ipynb cell {i}' for n, i in f['untested']]
    return out


def report(f):
    n, i, k, _ = f['largest_cell']
    in_circles = sorted({m for g in f['circles'] for m in g})
    return '\n'.join([
        f'modules: {f["modules"]}',
        f'import circles: {len(f["circles"])} ({len(in_circles)} modules{": " + ", ".join(in_circles) if in_circles else ""})',
        f'upward imports: {len(f["upward"])}',
        f'largest module: {f["largest_module"][0]} ({f["largest_module"][1]} lines of code); over {MAX_MODULE_LINES}: {len(f["modules_over_limit"])}',
        f'export cells: {f["export_cells"]}, mean {f["mean_cell"]:.1f} lines of code, largest {k} (nbs/{n}.ipynb {i}), over {MAX_CELL_LINES}: {len(f["cells_over_limit"])}',
        f'export cells followed by a demo or test: {f["tested_share"]:.0%}'])


if __name__ == '__main__':
    f = figures()
    print(report(f))
    if '--check' in sys.argv[1:]:
        b = breaches(f)
        for line in b: print('  ' + line)
        sys.exit(1 if b else 0)
