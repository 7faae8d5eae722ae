#!/usr/bin/env python
"""Build the offline documentation site from the notebooks: `python tools/build_docs.py [--site-dir DIR]`.

Steps (all local; the only download is MathJax from the npm registry on the first build, then cached):
1. execute every notebook in `nbs/` (and `nbs/tutorials/`) with nbdev's own shell (execnb), skipping the cells
   flagged with `tst_flags` (`notest`, `slow`) like `nbdev_test`, and the cells that import a package of the test
   stack (torch, Keras) when only the `docs` extra is installed; results are cached in `build/docs_exec/` keyed by
   the notebook and the library source, so an unchanged book is not run again;
2. nbdev's notebook processing (`proc_nbs`, what `nbdev_proc_nbs` runs, without its Quarto install step) turns the
   executed notebooks into `_proc/`: `#| hide` cells dropped, `show_doc` rendered, front matter extracted;
3. nbconvert writes each processed notebook as Markdown: code cells fenced as Python, printed output as text
   (every block highlighted, wide ones scroll), display math on its own lines, plots as PNG files, live widgets
   left out; a show_doc output keeps its summary and links to the API entry for the arguments, shapes and
   example; the Demo page gets what `python -m rnnbook.demo` prints and draws (run once, cached in `build/tour/`);
4. MkDocs (Material theme, built-in search, MathJax vendored from npm) builds the site into `_docs/` (git-ignored,
   a build product), and the path of its `index.html` is printed. The API reference is mkdocstrings reading the
   imported objects (Griffe inspection, `tools/griffe_rnnbook.py`): methods added with `@patch` under their class,
   the `Args:` that `rnnbook.argdocs.document` fills at import as a table, "Bases" naming public classes; the
   public namespaces first (`rnnbook.layers` with the recurrent layers on top), each module's helpers under
   "Internals". The search index gets math as plain text.

Nothing on the built pages comes from a CDN: the theme's Google fonts are off and MathJax is served from the site.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
BUILD = ROOT / 'build'
EXEC_DIR = BUILD / 'docs_exec'          # executed notebooks (cache)
SRC_DIR = BUILD / 'docs_src'            # the MkDocs source tree, written anew each build
VENDOR = BUILD / 'vendor'               # downloaded MathJax tarball (cache)
MATHJAX = 'mathjax@3.2.2'
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
EXTRA_PAGES = ('benchmarks.md', 'errors.md')   # hand-written pages in docs/


def _log(*a): print('[build_docs]', *a, flush=True)


def _notebooks():
    return sorted(p for p in NBS.rglob('*.ipynb')
                  if not any(part.startswith(('.', '_')) for part in p.relative_to(NBS).parts))


OPTIONAL = ('torch', 'keras', 'tensorflow')    # the test stack's packages: not in the `docs` install


def _lib_hash():
    "The library's source and which optional packages are installed (a cell that needs a missing one is skipped)."
    import importlib.util
    h = hashlib.sha256()
    for p in sorted((ROOT / 'rnnbook').rglob('*.py')): h.update(p.read_bytes())
    h.update(repr([m for m in OPTIONAL if importlib.util.find_spec(m)]).encode())
    return h.hexdigest()


def _missing_imports(source):
    "The optional packages (`OPTIONAL`) that `source` imports at its top level and that are not installed."
    import ast
    import importlib.util
    try: tree = ast.parse('\n'.join(l for l in source.splitlines() if not l.lstrip().startswith(('%', '!'))))
    except SyntaxError: return []
    top = tree.body          # the cell's own imports (one inside a function or a `try` is the code's business)
    names = {a.name.split('.')[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split('.')[0] for n in top if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    return sorted(m for m in names & set(OPTIONAL) if importlib.util.find_spec(m) is None)


# ---------------------------------------------------------------- 1. execute
def _exec_one(args):
    src, dest, skip_flags = args
    os.environ.setdefault('MPLBACKEND', 'Agg')
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    t0 = time.time()
    nb = NBProcessor(Path(src), procs=FrontmatterProc, process=True).nb
    fm = getattr(nb, 'frontmatter_', {}) or {}
    nb = read_nb(src)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    if str(fm.get('skip_exec', '')).lower() in ('true', '1', 'yes'):   # as nbdev_test: not run
        write_nb(nb, dest); return src, 0.0, [], []
    directives = {c.idx_: getattr(c, 'directives_', {}) or {} for c in NBProcessor(Path(src)).nb.cells}
    errors, skipped = [], []

    def _skip(cell):
        if cell.cell_type != 'code': return True
        d = directives.get(cell.idx_, {})
        if d.get('eval:', [''])[0].lower() == 'false': return True
        if missing := _missing_imports(cell.source):        # e.g. torch, in the `docs` install: shown, not run
            skipped.append(f'cell {cell.idx_} needs {", ".join(missing)}')
            return True
        return bool(set(skip_flags) & d.keys())

    def _after(cell):
        if k.exc is not None:
            errors.append(f'cell {cell.idx_}: {type(k.exc).__name__}: {k.exc}')
            k.exc = None

    k = CaptureShell(src)
    with working_directory(Path(src).parent):
        k.run_all(nb, exc_stop=False, preproc=_skip, postproc=_after)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dest)
    return src, time.time() - t0, errors, skipped


def execute(n_workers):
    from nbdev.config import get_config
    skip_flags = get_config().tst_flags.split('|') if '|' in get_config().tst_flags else get_config().tst_flags.split()
    cache_file = EXEC_DIR / 'cache.json'
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    lib = _lib_hash()
    jobs, keys = [], {}
    for nb in _notebooks():
        rel = nb.relative_to(NBS).as_posix()
        key = hashlib.sha256(nb.read_bytes() + lib.encode()).hexdigest()
        keys[rel] = key
        if cache.get(rel) == key and (EXEC_DIR / rel).exists(): continue
        jobs.append((str(nb), str(EXEC_DIR / rel), skip_flags))
    for stale in set(cache) - set(keys):                    # notebooks that were removed
        (EXEC_DIR / stale).unlink(missing_ok=True); cache.pop(stale, None)
    _log(f'executing {len(jobs)} of {len(keys)} notebooks ({len(keys) - len(jobs)} cached)')
    if jobs:
        import multiprocessing as mp
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context('spawn'),
                                 max_tasks_per_child=1) as ex:   # IPython replaces __main__ in its worker
            for src, dt, errors, skipped in ex.map(_exec_one, jobs):
                rel = Path(src).relative_to(NBS).as_posix()
                _log(f'  {rel}: {dt:.1f}s' + (f' -- {len(errors)} failing cell(s): ' + '; '.join(errors)[:300]
                                              if errors else '')
                     + (f' ({"; ".join(skipped)}, not installed: shown without output)' if skipped else ''))
                if not errors: cache[rel] = keys[rel]     # a failing notebook is run again next time
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                cache_file.write_text(json.dumps(cache, indent=1))
    for extra in ('_quarto.yml', 'nbdev.yml', 'sidebar.yml', 'styles.css'):   # what proc_nbs copies along
        if (NBS / extra).exists(): shutil.copy2(NBS / extra, EXEC_DIR / extra)


# ---------------------------------------------------------------- 2. nbdev processing
def _imports_only(source):
    "The top-level import statements of a cell's source (directives and magics dropped)."
    import ast
    code = '\n'.join(l for l in source.splitlines() if not l.lstrip().startswith(('#|', '%', '!')))
    try: tree = ast.parse(code)
    except SyntaxError: return ''
    return '\n'.join(ast.get_source_segment(code, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def nbdev_process():
    """nbdev's `proc_nbs` on the executed notebooks, in this process. Its show_doc pass re-runs, in a fresh shell,
    the export cells, the show_doc cells and every cell with an import; a cell mixing imports with a demo or test
    (nbdev warns about each) has only its imports re-run here, keeping the outputs step 1 recorded. A cell that
    still fails is reported, not fatal."""
    import warnings
    import nbdev.processors as P
    from fastcore.basics import str2bool
    from nbdev.serve import proc_nbs
    failures = []
    orig = P.exec_show_docs.__call__
    shows = {'export', 'exports', 'exporti', 'exec_doc'}

    def call(self, cell):
        if not self.nb.has_docs_ or not hasattr(self, 'k'): return
        fm = getattr(self.nb, 'frontmatter_', {})
        if str2bool(fm.get('skip_showdoc', False)): return
        with warnings.catch_warnings():                # "Found cells containing imports and other code": handled
            warnings.simplefilter('ignore', UserWarning)
            if not P._do_eval(cell): return
        if cell.directives_.keys() & shows or P._is_showdoc(cell): self.k.cell(cell)
        else: self.k.run_cell(_imports_only(cell.source))
        if self.k.exc:
            failures.append(f"{fm.get('title', '')}: cell {cell.idx_}: {type(self.k.exc).__name__}: {self.k.exc}")
            self.k.exc = None
    P.exec_show_docs.__call__ = call
    try:
        cache = proc_nbs(str(EXEC_DIR), n_workers=0)
    finally:
        P.exec_show_docs.__call__ = orig
    for f in failures: _log('  nbdev show_doc pass could not re-run a cell (kept as executed):', f[:300])
    return Path(cache)


# ---------------------------------------------------------------- 3. notebooks -> Markdown
_NB_LINK = re.compile(r'\]\(((?![a-z]+:)[^)\s]+?)\.ipynb(#[^)\s]*)?\)')
_FM = re.compile(r'^---\s*\n(.*?)\n---\s*$', re.S)


def _front_matter(nb):
    "nbdev puts the title/description into a leading raw cell of YAML front matter: take it out."
    import yaml
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'raw' and (m := _FM.match(c.source.strip())):
            del nb.cells[i]
            return yaml.safe_load(m.group(1)) or {}
    return {}


def _strip_widgets(nb):
    for c in nb.cells:
        if c.cell_type != 'code': continue
        keep = []
        for o in c.get('outputs', []):
            if o.get('output_type') in ('display_data', 'execute_result') and WIDGET_MIME in o.get('data', {}):
                data = {k: v for k, v in o['data'].items() if k.startswith('image/')}
                if not data: continue                          # a live widget with no static picture: left out
                o['data'] = data
            keep.append(o)
        c.outputs = keep
    nb.metadata.pop('widgets', None)


def _local_links(text, depth):
    "nbdev's absolute doc links (the Quarto site's address) as relative links to this site's pages."
    from nbdev.config import get_config
    cfg = get_config()
    base = (cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/')).rstrip('/') + '/'
    pat = re.compile(re.escape(base) + r'([\w./-]+?)\.html')
    return pat.sub(lambda m: '../' * depth + m.group(1) + '.md', text)


_DIREC = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')


def _quarto_directives(nb):
    "What Quarto does with the cell options nbdev leaves in `_proc/`: echo, output, include; the `#|` lines go."
    cells = []
    for c in nb.cells:
        if c.cell_type != 'code': cells.append(c); continue
        lines, opts = c.source.splitlines(), {}
        while lines and (m := _DIREC.match(lines[0])):
            opts[m.group(1)] = m.group(2).lower(); lines.pop(0)
        if opts.get('include') == 'false': continue
        c.source = '\n'.join(lines).strip('\n')
        if opts.get('echo') == 'false':
            c.source = ''
            c.metadata.setdefault('transient', {})['remove_source'] = True     # nbconvert's templates honour it
        if opts.get('output') == 'false': c.outputs = []
        if not c.source and not c.get('outputs'): continue
        cells.append(c)
    nb.cells = cells


def _read_nb(nb_path):
    "A notebook as nbformat reads it, every cell given an id first (nbdev's `_proc/` copies have none)."
    import nbformat
    raw = json.loads(Path(nb_path).read_text())
    for i, c in enumerate(raw.get('cells', [])): c.setdefault('id', f'cell-{i}')
    if (raw.get('nbformat'), raw.get('nbformat_minor', 0)) < (4, 5): raw['nbformat_minor'] = 5
    return nbformat.reads(json.dumps(raw), as_version=4)


def _page_name(nb_path, rel):
    "The page nbdev gives a notebook: its `output-file` (`cells.html` for 07_cells.ipynb), as a .md path."
    fm = _front_matter(_read_nb(nb_path))
    name = Path(fm.get('output-file') or Path(rel).with_suffix('.html').name).with_suffix('.md').name
    return (Path(rel).parent / name).as_posix()


_FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})(.*)$')
_DISPLAY = re.compile(r'\$\$(.+?)\$\$', re.S)
_SHELL = re.compile(r'^(\$ |\.venv/|python3? -m |pip3? |cd |npm |apt(-get)? |bash |sudo |git )')


def _display_math(text):
    "Each `$$...$$` as a display block on its own lines (written inside a paragraph, MathJax never sees it)."
    spans = []                                     # inline code is left alone: `$$` there is text

    def keep(m):
        spans.append(m.group(0))
        return f'\x00{len(spans) - 1}\x00'
    text = re.sub(r'(`+)[^`]*?\1', keep, text)

    def block(m):
        before, after = text[:m.start()], text[m.end():]
        alone = (before == '' or before.endswith('\n\n')) and (after in ('', '\n') or after.startswith('\n\n'))
        return m.group(0) if alone else '\n\n$$\n' + m.group(1).strip() + '\n$$\n\n'
    text = _DISPLAY.sub(block, text)
    return re.sub('\x00(\\d+)\x00', lambda m: spans[int(m.group(1))], text)


def _fix_markdown(src):
    "A markdown cell for MkDocs: fences without a language are Python; display math stands alone (outside code)."
    out, prose, fence, lines = [], [], None, src.splitlines()

    def flush():
        if prose: out.append(_display_math('\n'.join(prose)))
        prose.clear()
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if fence is None and m:
            flush()
            fence = m.group(2)
            first = lines[i + 1].strip() if i + 1 < len(lines) else ''
            lang = 'sh' if _SHELL.match(first) else 'python'        # a command line shown as a shell one
            out.append(line if m.group(3).strip() else f'{m.group(1)}{m.group(2)}{lang}')
        elif fence is not None:
            out.append(line)
            if m and m.group(2).startswith(fence) and not m.group(3).strip(): fence = None
        else:
            prose.append(line)
    flush()
    return '\n'.join(out)


def _fence(text, lang='text'):
    "`text` as a fenced block (a fence longer than any run of backticks inside)."
    text = str(text).rstrip('\n')
    if not text.strip(): return ''
    n = max([3] + [len(r) + 1 for r in re.findall(r'`{3,}', text)])
    return f"{'`' * n}{lang}\n{text}\n{'`' * n}"


# nbconvert's Markdown template, with code cells fenced as Python and printed output as text: every block
# highlighted, and a wide printout (summary()) scrolls in its own box.
TEMPLATE = r"""{% extends 'index.md.j2' %}
{% block input %}
{{ cell.source | rnnbook_fence('python') }}
{% endblock input %}
{% block stream %}
{{ output.text | strip_ansi | rnnbook_text | rnnbook_fence('text') }}
{% endblock stream %}
{% block data_text scoped %}
{{ output.data['text/plain'] | strip_ansi | rnnbook_fence('text') }}
{% endblock data_text %}
{% block error %}
{{ output.traceback | join('\n') | strip_ansi | rnnbook_fence('text') }}
{% endblock error %}
"""


def _carriage_returns(text):
    "What a terminal shows of a progress bar: each line's text after its last carriage return."
    return '\n'.join(l.rsplit('\r', 1)[-1] for l in text.split('\n'))


def _exporter():
    import jinja2
    from nbconvert import MarkdownExporter
    return MarkdownExporter(extra_loaders=[jinja2.DictLoader({'rnnbook.md.j2': TEMPLATE})],
                            template_file='rnnbook.md.j2',
                            filters={'rnnbook_fence': _fence, 'rnnbook_text': _carriage_returns})


_SECTION_HEAD = re.compile(r'^(Args|Arguments|Call arguments|Keyword [Aa]rgs|Parameters|Input shape|Output shape|'
                           r'Returns|Yields|Raises|Example|Examples|Attributes|Notes?|References?):\s*$')
_SRC_LINK = re.compile(r'\[source\]\([^)\s]*?/rnnbook/(\w+)\.py#L\w*\)')
_SHOWDOC_NAME = re.compile(r'^#{2,6} (\S+)\s*$', re.M)
API_ANCHORS = {}      # 'rnnbook.recurrent.LSTM' (defining module, qualname) -> 'api/layers.md#rnnbook.layers.LSTM'


def _api_link(md):
    "The API page anchor of the object a show_doc output documents, or None."
    name = _SHOWDOC_NAME.search(md)
    if not name: return None
    qual = name.group(1).replace('\\', '')
    src = _SRC_LINK.search(md)
    keys = [f'rnnbook.{src.group(1)}.{qual}'] if src else []
    keys += [k for k in API_ANCHORS if k.endswith('.' + qual)] if not src else []
    for key in keys + [k.rsplit('.', 1)[0] for k in keys if '.' in qual]:   # a method: its own entry, else its class
        if key in API_ANCHORS: return API_ANCHORS[key]
    return None


def _readable_sections(lines):
    "Google-style sections as Markdown: a bold title, then one bullet per item (`name (type): text`)."
    out, item = [], None
    for line in lines:
        if _SECTION_HEAD.match(line):
            out += ['', f'**{line.strip().rstrip(":")}**', '']; continue
        body = line[4:] if line.startswith('    ') else line.lstrip()
        if not line.strip(): out.append(''); continue
        if _FENCE.match(body) or (out and out[-1].startswith(('```', '    '))): out.append(body); continue
        m = re.match(r'^(\**\w+)\s*(\([^)]*\))?\s*:\s*(.*)$', body)
        if m and not line.startswith('        '): out.append(f'- `{m.group(1)}` {m.group(2) or ""}: {m.group(3)}')
        else: out.append(body)
    return out


def _showdoc_md(md, depth):
    """A show_doc output without raw Google sections (`Args:` would show as an indented code block): the summary and
    text stay, the sections become a link to the object's API page, or readable Markdown without one."""
    lines = md.split('\n')
    first = next((i for i, l in enumerate(lines) if _SECTION_HEAD.match(l)), None)
    if first is None: return md
    end = first
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((' ', '\t'))
                                or _SECTION_HEAD.match(lines[end]) or _FENCE.match(lines[end])):
        end += 1
    titles = [l.strip().rstrip(':') for l in lines[first:end] if _SECTION_HEAD.match(l)]
    link = _api_link(md)
    if link:
        said = ', '.join(dict.fromkeys(t.lower().replace('args', 'arguments') for t in titles))
        mid = ['', f'*{said[0].upper() + said[1:]}: see the [API reference]({"../" * depth}{link}).*', '']
    else:
        mid = _readable_sections(lines[first:end])
    return '\n'.join(lines[:first] + mid + lines[end:])


def _md_of(nb_path, out_dir, rel, names):
    nb = _read_nb(nb_path)
    fm = _front_matter(nb)
    _strip_widgets(nb)
    _quarto_directives(nb)
    nb.metadata['language_info'] = {'name': 'python'}
    def nb_link(m):                       # links between notebooks point at their pages
        import posixpath
        target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), m.group(1) + '.ipynb'))
        if target not in names: return m.group(0)
        page = posixpath.relpath(names[target], posixpath.dirname(rel) or '.')
        return f'](' + page + (m.group(2) or '') + ')'
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = _fix_markdown(_NB_LINK.sub(nb_link, c.source))
    # the page name nbdev gives the notebook (`output-file`, e.g. `cells.html` for 07_cells.ipynb), so nbdev's
    # doc links (`{doc_host}{doc_baseurl}/cells.html#lstmcell`) can point at pages of this site
    stem = Path(names[rel]).stem
    depth = rel.count('/')
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = _local_links(c.source, depth)
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}):
                o['data']['text/markdown'] = _showdoc_md(_local_links(o['data']['text/markdown'], depth), depth)
    body, res = _exporter().from_notebook_node(nb, resources={'output_files_dir': f'{stem}_files'})
    dest = out_dir / Path(rel).parent / f'{stem}.md'
    dest.parent.mkdir(parents=True, exist_ok=True)
    for name, data in res.get('outputs', {}).items():
        (dest.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (dest.parent / name).write_bytes(data)
    title = fm.get('title') or stem
    head = f'# {title}\n\n' + (f'> {fm["description"]}\n\n' if fm.get('description') else '')
    dest.write_text(f'---\ntitle: {json.dumps(str(title))}\n---\n\n' + head + body)
    return dest, title


# The API reference: the namespaces a user imports from first ('' is `rnnbook` itself), then "Internals": for every
# module, what its `__all__` holds that the public pages do not show (helpers of the book's notebooks).
PUBLIC_API = ('layers', '', 'models', 'losses', 'metrics', 'optimizers', 'callbacks', 'initializers', 'regularizers',
              'constraints', 'activations', 'utils', 'saving', 'data', 'traces', 'views', 'gate_view', 'mask_view',
              'state_view', 'bidirectional_view', 'gradient_view')
LAYERS_FIRST = ('SimpleRNN', 'GRU', 'LSTM', 'RNN', 'Bidirectional', 'TimeDistributed', 'ConvLSTM1D', 'ConvLSTM2D',
                'ConvLSTM3D', 'SimpleRNNCell', 'GRUCell', 'LSTMCell', 'ConvLSTMCell', 'StackedRNNCells',
                'DropoutRNNCell', 'CuDNNLSTM', 'CuDNNGRU')
LAYERS_LAST = ('Layer', 'Input', 'InputLayer')
INTERNAL = {      # names in a public module's `__all__` that are the book's helpers, not Keras' API
    'models': {'is_symbolic', 'SymbolicTensor', 'Node', 'symbolic_call', 'functional_from_config',
               'functional_config', 'save_state', 'restore_state'},
    'losses': {'squeeze_or_expand_to_same_rank', 'standardize_reduction', 'apply_mask', 'reduce_values',
               'reduce_weighted_values', 'call_with_mask'},
    'metrics': {'reduce_to_samplewise_values', 'resolve_accuracy', 'get_metric'},
    'optimizers': {'clip_by_norm', 'global_norm', 'clip_by_global_norm'},
    'initializers': {'compute_fans', 'RandomInitializer'},
    'saving': {'check_path', 'atomic_write', 'open_npz', 'NpyHeader', 'read_header', 'read_array', 'read_record',
               'read_headers', 'read_weights', 'NpzArrays', 'read_npz'},
    'data': {'is_batch_source', 'ArrayBatches', 'SourceBatches'},
    'traces': {'lstm_step', 'gru_step', 'simple_rnn_step', 'cell_step'},
    'gate_view': {'cell_trace', 'update_arrays', 'state_update', 'gate_cmap', 'value_scale', 'saturated'},
    'mask_view': {'masked_outputs', 'sequence_outputs', 'output_rule', 'layer_copy'},
    'gradient_view': {'perturbed_output', 'state_gradients', 'make_layer', 'gradient_flow', 'task_input',
                      'gradient_flows'},
}
_API_OPTS = {'show_root_heading': True, 'show_source': False, 'heading_level': 2, 'members_order': 'source'}


def _api_names(mod, m):
    "The classes and functions `mod` exports, in the order of its page (an alias once, under its class's name)."
    import inspect
    if m == '':
        names = [n for n in dir(mod) if not n.startswith('_')]
    else:
        names = list(getattr(mod, '__all__', []))
    out = []
    for n in names:
        obj = getattr(mod, n, None)
        if n.startswith('_') or not (inspect.isclass(obj) or inspect.isfunction(obj)): continue
        if not getattr(obj, '__module__', '').startswith('rnnbook'): continue
        if getattr(obj, '__name__', n) != n and obj.__name__ in names: continue     # an alias: once
        out.append(n)
    if m == 'layers':
        first = [n for n in LAYERS_FIRST if n in out]
        last = [n for n in LAYERS_LAST if n in out]
        out = first + [n for n in out if n not in first and n not in last] + last
    return out


def _inherited_from_private(cls, public):
    "Public methods and properties `cls` inherits from private bases (`_BuiltinRNN`) before its first public one."
    names = []
    for k in cls.__mro__[1:]:
        if k is object or id(k) in public: break
        names += [n for n, v in vars(k).items() if not n.startswith('_') and n not in vars(cls) and n not in names
                  and (callable(v) or isinstance(v, (property, classmethod, staticmethod)))]
    return names


def _api_entry(path, obj, public):
    "The mkdocstrings block for `path` (`rnnbook.layers.LSTM`)."
    import inspect
    import yaml
    opts = dict(_API_OPTS)
    if inspect.isclass(obj) and (inherited := _inherited_from_private(obj, public)):
        opts['inherited_members'] = inherited
    body = yaml.safe_dump({'options': opts}, sort_keys=False, default_flow_style=None, width=1000)
    return f'::: {path}\n' + ''.join('    ' + l + '\n' for l in body.splitlines()) + '\n'


def _api_pages(out_dir):
    """The API reference: one page per public namespace (`PUBLIC_API`), then an "Internals" page per module for what
    its `__all__` exports beyond those. Each object once, on the first page that exports it; `API_ANCHORS` records
    where (the notebooks' show_doc outputs link there)."""
    sys.path.insert(0, str(ROOT))
    import importlib
    import inspect
    import rnnbook
    mods = sorted(p.stem for p in (ROOT / 'rnnbook').glob('*.py') if not p.stem.startswith('_'))
    loaded = {}
    for m in list(PUBLIC_API) + mods:
        if m in loaded: continue
        try: loaded[m] = importlib.import_module(f'rnnbook.{m}' if m else 'rnnbook')
        except Exception as e: _log(f'  API: rnnbook.{m} not importable ({e}), left out')
    public = {id(getattr(loaded[m], n)) for m in PUBLIC_API if m in loaded for n in _api_names(loaded[m], m)
              if inspect.isclass(getattr(loaded[m], n))}
    done, public_pages, internal_pages = set(), [], []
    (out_dir / 'api' / 'internals').mkdir(parents=True, exist_ok=True)

    def page(m, names, file, title, intro):
        mod = loaded[m]
        text = f'# {title}\n\n' + (intro + '\n\n' if intro else '')
        for n in names:
            obj, path = getattr(mod, n), f'rnnbook.{m}.{n}' if m else f'rnnbook.{n}'
            done.add(id(obj))
            text += _api_entry(path, obj, public)
            anchor = f'{file}#{path}'
            API_ANCHORS.setdefault(f'{obj.__module__}.{obj.__qualname__}', anchor)
            if inspect.isclass(obj):
                for member in [k for k in vars(obj) if not k.startswith('_')] + _inherited_from_private(obj, public):
                    API_ANCHORS.setdefault(f'{obj.__module__}.{obj.__qualname__}.{member}', f'{anchor}.{member}')
        (out_dir / file).write_text(text)

    for m in PUBLIC_API:
        if m not in loaded: continue
        names = [n for n in _api_names(loaded[m], m) if n not in INTERNAL.get(m, ())
                 and id(getattr(loaded[m], n)) not in done]
        if not names: continue
        doc = (loaded[m].__doc__ or '').strip().splitlines()
        title = f'`rnnbook.{m}`' if m else '`rnnbook`'
        intro = doc[0] if doc and m else 'The names `import rnnbook as rb` gives directly: `rb.trace`, `rb.info` ...'
        page(m, names, f'api/{m or "rnnbook"}.md', title, intro)
        public_pages.append((f'rnnbook.{m}' if m else 'rnnbook', f'api/{m or "rnnbook"}.md'))
    for m in mods:
        if m not in loaded: continue
        mod = loaded[m]
        names = [n for n in _api_names(mod, m) if id(getattr(mod, n)) not in done
                 and getattr(mod, n).__module__ == mod.__name__]
        if not names: continue
        doc = (mod.__doc__ or '').strip().splitlines()
        intro = 'Internals: helpers the notebook defines and the public API builds on.' + (
            ' ' + doc[0] if doc else '')
        page(m, names, f'api/internals/{m}.md', f'`rnnbook.{m}` (internals)', intro)
        internal_pages.append((f'rnnbook.{m}', f'api/internals/{m}.md'))
    index = ('# API reference\n\nEvery public class and function, by the namespace you import it from, with its '
             'arguments, shapes and an example:\n\n')
    index += '\n'.join(f'- [`{t}`]({Path(p).name})' for t, p in public_pages) + '\n'
    index += ('\nInternals: the helpers each notebook exports for the book and the tests, by module:\n\n'
              + '\n'.join(f'- [`{t}`](internals/{Path(p).name})' for t, p in internal_pages) + '\n')
    (out_dir / 'api' / 'index.md').write_text(index)
    return [{'Overview': 'api/index.md'}] + [{t: p} for t, p in public_pages] + [
        {'Internals': [{t: p} for t, p in internal_pages]}]


def _vendor_mathjax(out_dir):
    "MathJax from the npm registry (npm pack, cached in build/vendor/), unpacked into the site's assets."
    VENDOR.mkdir(parents=True, exist_ok=True)
    tgz = VENDOR / (MATHJAX.replace('@', '-') + '.tgz')
    if not tgz.exists():
        _log(f'fetching {MATHJAX} from the npm registry')
        r = subprocess.run(['npm', 'pack', MATHJAX, '--silent', '--pack-destination', str(VENDOR)],
                           capture_output=True, text=True)
        if r.returncode or not tgz.exists(): sys.exit(f'npm pack {MATHJAX} failed: {r.stderr or r.stdout}')
    dest = out_dir / 'assets' / 'mathjax'
    with tarfile.open(tgz) as tf:
        members = [m for m in tf.getmembers() if m.name.startswith('package/es5/') and m.isfile()
                   and '/sre/' not in m.name]
        for m in members:
            m.name = m.name[len('package/es5/'):]
        tf.extractall(dest, members=members, filter='data') if hasattr(tarfile, 'data_filter') \
            else tf.extractall(dest, members=members)
    (out_dir / 'assets' / 'mathjax-config.js').write_text(
        "window.MathJax = {\n"
        "  tex: {inlineMath: [['\\\\(', '\\\\)']], displayMath: [['\\\\[', '\\\\]']],\n"
        "        processEscapes: true, processEnvironments: true},\n"
        "  options: {ignoreHtmlClass: '.*|', processHtmlClass: 'arithmatex',\n"
        "            menuOptions: {settings: {assistiveMml: false}}},\n"
        "  startup: {typeset: true}\n"
        "};\n")


def _tour():
    "`python -m rnnbook.demo` run in `build/tour/` (cached by library source): its printout and its pictures."
    out = BUILD / 'tour'
    key, stamp = _lib_hash(), BUILD / 'tour' / 'key'
    if not (stamp.exists() and stamp.read_text() == key and (out / 'stdout.txt').exists()):
        if out.exists(): shutil.rmtree(out)
        out.mkdir(parents=True)
        t0 = time.time()
        r = subprocess.run([sys.executable, '-m', 'rnnbook.demo'], cwd=out, capture_output=True, text=True,
                           env={**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT)}, timeout=600)
        if r.returncode:
            _log(f'  the tour failed (rc {r.returncode}), the Demo page shows no printout: {r.stderr[-300:]}')
            return None, []
        (out / 'stdout.txt').write_text(r.stdout)
        stamp.write_text(key)
        _log(f'  tour run for the Demo page ({time.time() - t0:.0f}s)')
    text = _carriage_returns((out / 'stdout.txt').read_text()).replace(str(out) + os.sep, '')
    return text, sorted((out / 'tour').glob('*.png'))


def _tour_section(page):
    "The Demo page ends with what the tour printed and the pictures it drew."
    text, pictures = _tour()
    if text is None: return
    pics = page.parent / 'demo_files' / 'tour'
    pics.mkdir(parents=True, exist_ok=True)
    md = ('\n\n## The tour, run\n\nWhat `python -m rnnbook.demo` printed when this site was built (the timings are '
          "this machine's):\n\n" + _fence(text.strip(), 'text') + '\n')
    if pictures: md += '\nThe pictures of its LSTM it saved under `tour/`:\n'
    for png in pictures:
        shutil.copy2(png, pics / png.name)
        md += f'\n### {png.stem.capitalize()}\n\n![The tour\'s {png.stem} picture](demo_files/tour/{png.name})\n'
    page.write_text(page.read_text() + md)


# Wide printouts (summary() tables) and tables scroll inside their own box instead of being clipped.
EXTRA_CSS = """\
.md-typeset pre > code { overflow-x: auto; white-space: pre; }
.md-typeset table:not([class]) { display: block; max-width: 100%; overflow-x: auto; }
.md-typeset .doc-contents table { display: block; max-width: 100%; overflow-x: auto; }
.md-typeset .language-text pre code { line-height: 1.3; }
"""


def write_sources(proc):
    if SRC_DIR.exists(): shutil.rmtree(SRC_DIR)
    SRC_DIR.mkdir(parents=True)
    book, tutorials, home, pages = [], [], None, {}
    nbs = {nb.relative_to(proc).as_posix(): nb for nb in sorted(proc.rglob('*.ipynb'))}
    nbs = {rel: nb for rel, nb in nbs.items() if not re.search(r'(^|/)[_.]', rel)}
    names = {rel: _page_name(nb, rel) for rel, nb in nbs.items()}      # notebook -> its page's .md path
    api = _api_pages(SRC_DIR)                     # first: the notebooks' show_doc outputs link to its anchors
    for rel, nb in nbs.items():
        dest, title = _md_of(nb, SRC_DIR, rel, names)
        page = dest.relative_to(SRC_DIR).as_posix()
        pages[rel] = page[:-3] + '.html'
        if rel == 'index.ipynb': home = page
        elif rel.startswith('tutorials/'): tutorials.append((title, page))
        else: book.append((title, page))
    if home is None: sys.exit('nbs/index.ipynb is missing: it is the home page')
    if home != 'index.md': (SRC_DIR / home).rename(SRC_DIR / 'index.md'); home = 'index.md'
    pages['index.ipynb'] = 'index.html'
    (BUILD / 'docs_pages.json').write_text(json.dumps(pages, indent=1))   # notebook -> page (the test reads it)
    extra = []
    for name in EXTRA_PAGES:
        if (ROOT / 'docs' / name).exists():
            shutil.copy2(ROOT / 'docs' / name, SRC_DIR / name)
            first = (ROOT / 'docs' / name).read_text().lstrip().splitlines()[0]
            extra.append((first.lstrip('# ').strip() if first.startswith('#') else Path(name).stem, name))
    if 'demo.md' in [p for p in names.values()]: _tour_section(SRC_DIR / 'demo.md')
    _vendor_mathjax(SRC_DIR)
    (SRC_DIR / 'assets' / 'extra.css').write_text(EXTRA_CSS)
    nav = [{'Home': home}, {'The book': [{t: p} for t, p in book]}]
    if tutorials: nav.append({'Tutorials': [{t: p} for t, p in tutorials]})
    nav.append({'API reference': api})
    nav += [{t: p} for t, p in extra]
    return nav


# ---------------------------------------------------------------- 4. MkDocs
def mkdocs_config(nav, site_dir):
    from nbdev.config import get_config
    cfg = get_config()
    return {
        'site_name': cfg.title, 'site_description': cfg.description,
        'docs_dir': str(SRC_DIR), 'site_dir': str(site_dir),
        'use_directory_urls': False,        # plain .html files: the site also opens from the file system
        'strict': False,
        'nav': nav,
        'theme': {'name': 'material', 'font': False,     # no Google Fonts: nothing from a CDN
                  'features': ['navigation.sections', 'navigation.top', 'search.highlight', 'content.code.copy'],
                  'palette': {'primary': 'indigo'}},
        'plugins': ['search', {'mkdocstrings': {'handlers': {'python': {
            'paths': [str(ROOT)],
            # the imported objects, not the source: @patch methods under their classes, docstrings that
            # rnnbook.argdocs.document completes at import
            'options': {'force_inspection': True, 'allow_inspection': True,
                        'extensions': [str(ROOT / 'tools' / 'griffe_rnnbook.py') + ':RnnbookDocs'],
                        'docstring_style': 'google', 'docstring_section_style': 'table',
                        'show_signature_annotations': True, 'show_bases': True,
                        'separate_signature': True, 'line_length': 88, 'show_root_full_path': False,
                        'merge_init_into_class': True, 'filters': ['!^_'], 'members': None}}}}}],
        'markdown_extensions': ['admonition', 'tables', 'attr_list', 'md_in_html', 'footnotes',
                                {'toc': {'permalink': True}},
                                {'pymdownx.arithmatex': {'generic': True}},
                                {'pymdownx.highlight': {'use_pygments': True, 'pygments_lang_class': True}}, 'pymdownx.superfences'],
        'extra_javascript': ['assets/mathjax-config.js', 'assets/mathjax/tex-chtml.js'],
        'extra_css': ['assets/extra.css'],
    }


def build_site(nav, site_dir):
    import yaml
    conf = BUILD / 'mkdocs.yml'
    conf.write_text(yaml.safe_dump(mkdocs_config(nav, site_dir), sort_keys=False))
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--clean', '-q', '-f', str(conf)],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: sys.exit(f'mkdocs build failed:\n{r.stdout}\n{r.stderr}')
    for line in (r.stdout + r.stderr).splitlines():
        if line.strip(): _log('  mkdocs:', line)
    index = site_dir / 'search' / 'search_index.json'
    if index.exists():
        data = json.loads(index.read_text())
        for d in data['docs']:
            d['text'] = _MATH_SPAN.sub(lambda m: _tex_text(next(g for g in m.groups() if g is not None)), d['text'])
            d['title'] = _MATH_SPAN.sub(lambda m: _tex_text(next(g for g in m.groups() if g is not None)), d['title'])
        index.write_text(json.dumps(data, ensure_ascii=False))


_MATH_SPAN = re.compile(r'\\\((.+?)\\\)|\\\[(.+?)\\\]|\$\$(.+?)\$\$', re.S)
_TEX = {'alpha': 'α', 'beta': 'β', 'gamma': 'γ', 'delta': 'δ', 'epsilon': 'ε', 'varepsilon': 'ε', 'eta': 'η',
        'theta': 'θ', 'lambda': 'λ', 'mu': 'μ', 'rho': 'ρ', 'sigma': 'σ', 'tau': 'τ', 'phi': 'φ', 'Delta': 'Δ',
        'Sigma': 'Σ', 'odot': '⊙', 'cdot': '·', 'times': '×', 'le': '≤', 'leq': '≤', 'ge': '≥', 'geq': '≥',
        'ne': '≠', 'neq': '≠', 'approx': '≈', 'to': '→', 'rightarrow': '→', 'leftarrow': '←', 'infty': '∞',
        'partial': '∂', 'nabla': '∇', 'sum': 'Σ', 'prod': 'Π', 'in': '∈', 'pm': '±', 'ldots': '…', 'dots': '…',
        'cdots': '…', 'quad': ' ', 'qquad': ' ', 'top': 'ᵀ', 'sqrt': '√', 'log': 'log', 'exp': 'exp',
        'tanh': 'tanh', 'max': 'max', 'min': 'min', 'frac': '', 'tfrac': '', 'dfrac': ''}


def _tex_text(tex):
    "TeX as plain text for a search snippet: `\\sigma(W x_t)` -> `σ(W x_t)` (no delimiters, no backslashes)."
    t = re.sub(r'\\(?:text|mathrm|mathbf|mathit|operatorname|boldsymbol|bar|hat|tilde|vec)\s*\{([^{}]*)\}', r'\1', tex)
    t = re.sub(r'\\(?:left|right|big|Big|bigg|Bigg)\b\s*', '', t)
    t = re.sub(r'\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}', r'(\1)/(\2)', t)
    t = re.sub(r'\\([A-Za-z]+)', lambda m: _TEX.get(m.group(1), m.group(1)), t)
    t = t.replace('\\,', ' ').replace('\\;', ' ').replace('\\!', '').replace('\\\\', ' ')
    t = re.sub(r'\\(.)', r'\1', t)
    return re.sub(r'\s+', ' ', t.replace('{', '').replace('}', '')).strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--site-dir', default=str(ROOT / '_docs'), help='where the site goes (default: _docs/)')
    ap.add_argument('--n-workers', type=int, default=2, help='notebooks executed in parallel')
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    t0 = time.time()
    execute(a.n_workers)
    _log(f'executed ({time.time() - t0:.0f}s)')
    proc = nbdev_process()
    _log(f'nbdev processing done ({time.time() - t0:.0f}s)')
    nav = write_sources(proc)
    site = Path(a.site_dir).resolve()
    build_site(nav, site)
    _log(f'site built in {time.time() - t0:.0f}s')
    print(site / 'index.html')


if __name__ == '__main__':
    main()
