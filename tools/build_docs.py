#!/usr/bin/env python
"""Build the offline documentation site from the notebooks: `python tools/build_docs.py [--site-dir DIR]`.

Steps (all local; the only download is MathJax from the npm registry on the first build, then cached):
1. execute every notebook in `nbs/` (and `nbs/tutorials/`) with nbdev's own shell (execnb), skipping the cells
   flagged with `tst_flags` (`notest`, `slow`) like `nbdev_test`; results are cached in `build/docs_exec/`
   keyed by the notebook and the library source, so an unchanged book is not run again;
2. nbdev's notebook processing (`proc_nbs`, what `nbdev_proc_nbs` runs, without its Quarto install step) turns the
   executed notebooks into `_proc/`: `#| hide` cells dropped, `show_doc` rendered, front matter extracted;
3. nbconvert writes each processed notebook as Markdown (plots as PNG files, live widgets left out);
4. MkDocs (Material theme, built-in search, mkdocstrings API reference, MathJax vendored from npm) builds the site
   into `_docs/` (git-ignored, a build product), and the path of its `index.html` is printed.

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


def _lib_hash():
    h = hashlib.sha256()
    for p in sorted((ROOT / 'rnnbook').rglob('*.py')): h.update(p.read_bytes())
    return h.hexdigest()


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
        write_nb(nb, dest); return src, 0.0, []
    directives = {c.idx_: getattr(c, 'directives_', {}) or {} for c in NBProcessor(Path(src)).nb.cells}
    errors = []

    def _skip(cell):
        if cell.cell_type != 'code': return True
        d = directives.get(cell.idx_, {})
        if d.get('eval:', [''])[0].lower() == 'false': return True
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
    return src, time.time() - t0, errors


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
            for src, dt, errors in ex.map(_exec_one, jobs):
                rel = Path(src).relative_to(NBS).as_posix()
                _log(f'  {rel}: {dt:.1f}s' + (f' -- {len(errors)} failing cell(s): ' + '; '.join(errors)[:300]
                                              if errors else ''))
                if not errors: cache[rel] = keys[rel]     # a failing notebook is run again next time
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                cache_file.write_text(json.dumps(cache, indent=1))
    for extra in ('_quarto.yml', 'nbdev.yml', 'sidebar.yml', 'styles.css'):   # what proc_nbs copies along
        if (NBS / extra).exists(): shutil.copy2(NBS / extra, EXEC_DIR / extra)


# ---------------------------------------------------------------- 2. nbdev processing
def nbdev_process():
    "nbdev's `proc_nbs` on the executed notebooks, in this process; a failing show_doc cell is reported, not fatal."
    import nbdev.processors as P
    from nbdev.serve import proc_nbs
    failures = []
    orig = P.exec_show_docs.__call__

    def tolerant(self, cell):
        try: return orig(self, cell)
        except Exception as e:
            failures.append(str(e).splitlines()[0])
            self.k.exc = None
    P.exec_show_docs.__call__ = tolerant
    try:
        cache = proc_nbs(str(EXEC_DIR), n_workers=0)
    finally:
        P.exec_show_docs.__call__ = orig
    for f in failures: _log('  nbdev show_doc pass could not re-run a cell (kept as executed):', f)
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


def _page_name(nb_path, rel):
    "The page nbdev gives a notebook: its `output-file` (`cells.html` for 07_cells.ipynb), as a .md path."
    import nbformat
    fm = _front_matter(nbformat.read(nb_path, as_version=4))
    name = Path(fm.get('output-file') or Path(rel).with_suffix('.html').name).with_suffix('.md').name
    return (Path(rel).parent / name).as_posix()


def _md_of(nb_path, out_dir, rel, names):
    import warnings
    warnings.filterwarnings('ignore', message='.*(not able to be represented|missing an id field).*')
    import nbformat
    from nbconvert import MarkdownExporter
    nb = nbformat.read(nb_path, as_version=4)
    fm = _front_matter(nb)
    _strip_widgets(nb)
    _quarto_directives(nb)
    def nb_link(m):                       # links between notebooks point at their pages
        import posixpath
        target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), m.group(1) + '.ipynb'))
        if target not in names: return m.group(0)
        page = posixpath.relpath(names[target], posixpath.dirname(rel) or '.')
        return f'](' + page + (m.group(2) or '') + ')'
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = _NB_LINK.sub(nb_link, c.source)
    # the page name nbdev gives the notebook (`output-file`, e.g. `cells.html` for 07_cells.ipynb), so nbdev's
    # doc links (`{doc_host}{doc_baseurl}/cells.html#lstmcell`) can point at pages of this site
    stem = Path(names[rel]).stem
    depth = rel.count('/')
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = _local_links(c.source, depth)
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = _local_links(o['data']['text/markdown'], depth)
    body, res = MarkdownExporter().from_notebook_node(nb, resources={'output_files_dir': f'{stem}_files'})
    dest = out_dir / Path(rel).parent / f'{stem}.md'
    dest.parent.mkdir(parents=True, exist_ok=True)
    for name, data in res.get('outputs', {}).items():
        (dest.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (dest.parent / name).write_bytes(data)
    title = fm.get('title') or stem
    head = f'# {title}\n\n' + (f'> {fm["description"]}\n\n' if fm.get('description') else '')
    dest.write_text(f'---\ntitle: {json.dumps(str(title))}\n---\n\n' + head + body)
    return dest, title


def _api_pages(out_dir):
    "One API page per exported module (every name in its `__all__`), and one for `rnnbook.layers`."
    sys.path.insert(0, str(ROOT))
    import importlib
    import rnnbook
    pages = []
    mods = sorted(p.stem for p in (ROOT / 'rnnbook').glob('*.py') if not p.stem.startswith('_'))
    opts = ('    options:\n      show_root_heading: true\n      show_source: false\n'
            '      heading_level: 2\n      members_order: source\n')
    for m in mods:
        try: mod = importlib.import_module(f'rnnbook.{m}')
        except Exception as e:
            _log(f'  API: rnnbook.{m} not importable ({e}), left out'); continue
        import inspect
        names = []
        for n in getattr(mod, '__all__', []):
            obj = getattr(mod, n, None)
            if n.startswith('_') or not (inspect.isclass(obj) or inspect.isfunction(obj)): continue
            if getattr(obj, '__name__', n) != n and obj.__name__ in mod.__all__: continue   # an alias: once
            names.append(n)
        if not names: continue
        doc = (mod.__doc__ or '').strip().splitlines()
        text = f'# `rnnbook.{m}`\n\n' + (doc[0] + '\n\n' if doc else '')
        for n in names:
            text += f'::: rnnbook.{m}.{n}\n{opts}\n'
        (out_dir / 'api').mkdir(parents=True, exist_ok=True)
        (out_dir / 'api' / f'{m}.md').write_text(text)
        pages.append((f'rnnbook.{m}', f'api/{m}.md'))
    pages.sort(key=lambda p: (p[0] != 'rnnbook.layers', p[0]))
    index = '# API reference\n\nEvery public class and function, by module (the names in each `__all__`).\n\n'
    index += '\n'.join(f'- [`{t}`]({Path(p).name})' for t, p in pages) + '\n'
    (out_dir / 'api' / 'index.md').write_text(index)
    return [('Overview', 'api/index.md')] + pages


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


def write_sources(proc):
    if SRC_DIR.exists(): shutil.rmtree(SRC_DIR)
    SRC_DIR.mkdir(parents=True)
    book, tutorials, home, pages = [], [], None, {}
    nbs = {nb.relative_to(proc).as_posix(): nb for nb in sorted(proc.rglob('*.ipynb'))}
    nbs = {rel: nb for rel, nb in nbs.items() if not re.search(r'(^|/)[_.]', rel)}
    names = {rel: _page_name(nb, rel) for rel, nb in nbs.items()}      # notebook -> its page's .md path
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
    api = _api_pages(SRC_DIR)
    _vendor_mathjax(SRC_DIR)
    nav = [{'Home': home}, {'The book': [{t: p} for t, p in book]}]
    if tutorials: nav.append({'Tutorials': [{t: p} for t, p in tutorials]})
    nav.append({'API reference': [{t: p} for t, p in api]})
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
            'options': {'docstring_style': 'google', 'show_signature_annotations': True,
                        'separate_signature': True, 'show_root_full_path': False,
                        'merge_init_into_class': True, 'filters': ['!^_'], 'members': None}}}}}],
        'markdown_extensions': ['admonition', 'tables', 'attr_list', 'md_in_html', 'footnotes',
                                {'toc': {'permalink': True}},
                                {'pymdownx.arithmatex': {'generic': True}},
                                {'pymdownx.highlight': {'use_pygments': True}}, 'pymdownx.superfences'],
        'extra_javascript': ['assets/mathjax-config.js', 'assets/mathjax/tex-chtml.js'],
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
