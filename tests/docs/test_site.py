"""The documentation site in a real browser: `tools/build_docs.py` builds it into a temporary folder, a local
http.server serves it on 127.0.0.1, and Playwright drives Debian's Chromium (`/usr/bin/chromium`, never a
downloaded browser) over every page reachable from the home page.

Every request that leaves 127.0.0.1 is aborted and recorded (none is expected: the site vendors MathJax and uses no
web fonts); every request must succeed; math must be typeset by MathJax (no raw `$...$` or `\\(...\\)` left in the
text, and no `$` at all in any page's prose); at least 90% of the code blocks are syntax-highlighted (the code cells
as Python); each tutorial shows its whole subtitle and its opening paragraph; a block wider than the content column
scrolls inside its own box; every image must load; every internal link must resolve; the API page must list every
public class of `rnnbook.layers`, and the API entries of the recurrent layers, cells, wrappers and ConvLSTM describe
every constructor argument in their parameters table; the Demo page shows the tour's printout and pictures; the
search index holds no raw TeX; the build prints no warning. One screenshot per page goes to
`tests/artifacts/site/` (git-ignored), and a few named ones (`shot-*.png`: the home page, a layer's page, the API
entry of `LSTM`, each tutorial) at a taller window.
"""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / 'tests' / 'artifacts' / 'site'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--disable-background-networking', '--disable-component-update', '--no-first-run']
LOCAL_HOSTS = {'127.0.0.1', 'localhost'}
MATH_PAGE = 'cells.html'           # nbs/07_cells.ipynb: a notebook with equations
BUILD_TIMEOUT_S = 900              # a cold build executes every notebook; later builds use the cache
# Classes whose API entry must describe every constructor argument (issue 17): recurrent layers, cells, wrappers,
# ConvLSTM.
API_ARG_CLASSES = ('SimpleRNN', 'GRU', 'LSTM', 'RNN', 'SimpleRNNCell', 'GRUCell', 'LSTMCell', 'StackedRNNCells',
                   'Bidirectional', 'TimeDistributed', 'ConvLSTM1D', 'ConvLSTM2D', 'ConvLSTM3D', 'CuDNNLSTM', 'CuDNNGRU')
SHOTS = {'home': 'index.html', 'layer': 'recurrent.html', 'api-LSTM': 'api/layers.html#rnnbook.layers.LSTM'}

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: install Debian's Chromium "
                              "(apt-get install -y --no-install-recommends chromium); .ci/run does"),
    pytest.mark.skipif(not shutil.which('npm') and not list((ROOT / 'build' / 'vendor').glob('mathjax-*.tgz')),
                       reason='npm is missing: the build fetches MathJax from the npm registry with it'),
]

# Text of the article with code, typeset math and scripts removed: what a reader sees as prose.
PROSE_JS = """() => {
    const a = (document.querySelector('article') || document.body).cloneNode(true);
    a.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
    return a.innerText;
}"""
PAGE_JS = """() => ({
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    images: [...document.querySelectorAll('article img')].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    math: document.querySelectorAll('mjx-container').length,
    pending: document.querySelectorAll('.arithmatex:not(:has(mjx-container))').length,
    headings: [...document.querySelectorAll('[id]')].map(e => e.id),
    text: (document.querySelector('article') || document.body).innerText,
    pres: document.querySelectorAll('article pre').length,
    highlighted: document.querySelectorAll('article .highlight pre').length,
    python: document.querySelectorAll('article .language-python.highlight pre').length,
    text_blocks: document.querySelectorAll('article .language-text.highlight pre').length,
    raw_sections: [...document.querySelectorAll('article pre')].filter(p => !p.closest('.highlight')
        && /^\\s*\\**\\w+( \\([^)]*\\))?: \\S/m.test(p.innerText)).map(p => p.innerText.slice(0, 60)),
    clipped: [...document.querySelectorAll(
            'article pre > code, article table, article mjx-container[display="true"]')].filter(e => {
        if (e.scrollWidth <= e.clientWidth + 1) return false;
        for (let a = e; a && a.tagName !== 'ARTICLE'; a = a.parentElement)
            if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return false;
        return true;
    }).map(e => e.innerText.slice(0, 60)),
    params: Object.fromEntries([...document.querySelectorAll('.doc-class > .doc-heading[id]')].map(h => {
        const contents = h.parentElement.querySelector(':scope > .doc-contents');
        const title = contents && [...contents.querySelectorAll(':scope > p')].find(
            p => p.innerText.trim().startsWith('Parameters'));
        let t = title && title.nextElementSibling;
        while (t && t.tagName !== 'TABLE' && !t.querySelector('table')) t = t.nextElementSibling;
        if (t && t.tagName !== 'TABLE') t = t.querySelector('table');
        return [h.id, t ? [...t.querySelectorAll('tbody tr td:first-child')].map(c => c.innerText.trim()) : []];
    })),
})"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    "Build the site once for the module (the command the README gives), and time it: (site folder, its output)."
    out = tmp_path_factory.mktemp('site') / '_docs'
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--site-dir', str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                       env={**os.environ, 'MPLBACKEND': 'Agg'})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / 'build.log').write_text(f'{time.monotonic() - t0:.1f}s\n{r.stdout}\n{r.stderr}')
    assert r.returncode == 0, f"build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    index = Path(r.stdout.strip().splitlines()[-1])
    assert index == out / 'index.html' and index.exists(), r.stdout[-2000:]
    return out, r.stdout + r.stderr


@pytest.fixture(scope='module')
def site(build):
    return build[0]


@pytest.fixture(scope='module')
def server(site):
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    finally:
        httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope='module')
def crawl(server):
    "Visit every local page reachable from the home page; record what each requested and showed."
    sync_api = pytest.importorskip('playwright.sync_api')
    external, failed, pages = [], [], {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={'width': 1280, 'height': 900})

            def route(r):
                if urlsplit(r.request.url).hostname in LOCAL_HOSTS or r.request.url.startswith(('data:', 'blob:')):
                    r.continue_()
                else:
                    external.append(r.request.url); r.abort()
            ctx.route('**/*', route)
            page = ctx.new_page()
            aborted = []       # cancelled when the crawl moved on (e.g. the favicon): fetched again below
            page.on('requestfailed', lambda q: (aborted if 'ERR_ABORTED' in str(q.failure) else failed).append(
                q.url if 'ERR_ABORTED' in str(q.failure) else f'{q.url} ({q.failure})'))
            page.on('response', lambda s: s.status >= 400 and failed.append(f'{s.url} (HTTP {s.status})'))
            todo, seen = [server + 'index.html'], set()
            while todo:
                url = todo.pop(0)
                if url in seen: continue
                seen.add(url)
                resp = page.goto(url, wait_until='load')
                status = resp.status if resp else None
                info = {'status': status}
                if status == 200 and url.endswith('.html'):
                    page.wait_for_function(
                        "() => !document.querySelector('.arithmatex') || document.querySelector('mjx-container')",
                        timeout=15_000)
                    page.wait_for_function("() => [...document.querySelectorAll('article img')]"
                                           ".every(i => i.complete)", timeout=15_000)
                    info.update(page.evaluate(PAGE_JS), prose=page.evaluate(PROSE_JS))
                    rel = url[len(server):]
                    page.screenshot(path=str(ARTIFACTS / (rel.replace('/', '__') + '.png')))
                    for href in info['links']:
                        link, _ = urldefrag(href)
                        if link.startswith(server) and link not in seen: todo.append(link)
                pages[url[len(server):]] = info
            for url in dict.fromkeys(aborted):
                r = page.request.get(url)
                if r.status != 200: failed.append(f'{url} (aborted, then HTTP {r.status})')
            page.set_viewport_size({'width': 1280, 'height': 1400})
            pages_json = json.loads((ROOT / 'build' / 'docs_pages.json').read_text())
            shots = {**SHOTS, **{'tutorial-' + Path(nb).stem: p for nb, p in pages_json.items()
                                 if nb.startswith('tutorials/')}}
            for name, rel in shots.items():
                page.goto(server + rel, wait_until='load')
                page.wait_for_function("() => !document.querySelector('.arithmatex') || "
                                       "document.querySelector('mjx-container')", timeout=15_000)
                page.wait_for_timeout(500)
                page.screenshot(path=str(ARTIFACTS / f'shot-{name}.png'))
        finally:
            browser.close()
    return {'pages': pages, 'external': external, 'failed': failed}


def test_pages_load_offline(crawl):
    pages = crawl['pages']
    assert 'index.html' in pages and len(pages) > 40, sorted(pages)
    assert not crawl['external'], f"external URLs requested: {sorted(set(crawl['external']))[:20]}"
    assert not crawl['failed'], f"failed requests: {crawl['failed'][:20]}"
    bad = {p: i['status'] for p, i in pages.items() if i['status'] != 200}
    assert not bad, f"internal links that do not resolve: {bad}"


def test_navigation_covers_every_notebook(crawl):
    pages = set(crawl['pages'])
    nbs = {p.relative_to(ROOT / 'nbs').as_posix() for p in (ROOT / 'nbs').rglob('*.ipynb')
           if not any(s.startswith(('.', '_')) for s in p.relative_to(ROOT / 'nbs').parts)}
    page_of = json.loads((ROOT / 'build' / 'docs_pages.json').read_text())   # written by the build
    assert nbs - set(page_of) == set(), f"notebooks without a page: {sorted(nbs - set(page_of))}"
    unreached = {nb: page_of[nb] for nb in nbs if page_of[nb] not in pages}
    assert not unreached, f"pages the navigation does not reach: {unreached}"
    for extra in ('benchmarks.html', 'errors.html', 'api/index.html', 'api/layers.html'):
        assert extra in pages, extra


def test_math_is_rendered(crawl):
    pages = crawl['pages']
    assert pages[MATH_PAGE]['math'] > 0, f"no MathJax output on {MATH_PAGE}"
    raw = {}
    for p, i in pages.items():
        if 'prose' not in i: continue
        assert i['pending'] == 0, f"{p}: {i['pending']} math element(s) left untypeset"
        hits = re.findall(r'\$[^$\s][^$\n]*?\$|\\\(.+?\\\)|\\\[.+?\\\]', i['prose'])
        if hits: raw[p] = hits[:3]
    assert not raw, f"raw TeX left in the text: {raw}"


def test_images_present(crawl):
    pages = crawl['pages']
    broken = {p: [im['src'] for im in i['images'] if not im['ok']] for p, i in pages.items() if 'images' in i}
    broken = {p: v for p, v in broken.items() if v}
    assert not broken, f"images that did not load: {broken}"
    with_plots = [p for p, i in pages.items() if i.get('images')]
    assert len(with_plots) >= 5, f"too few pages with plots: {with_plots}"
    for view in ('gate_view.html', 'mask_view.html'):      # nbs/32_gate_view, nbs/33_mask_view
        assert pages[view]['images'], f"{view} shows no picture"


def test_api_lists_every_layer(crawl):
    import rnnbook.layers
    ids = set(crawl['pages']['api/layers.html']['headings'])
    documented = lambda n: ({f'rnnbook.layers.{n}', f'rnnbook.layers.{getattr(rnnbook.layers, n).__name__}'} & ids)
    missing = [n for n in rnnbook.layers.__all__ if not documented(n)]    # an alias (MaxPool1D): its class's entry
    assert not missing, f"API page lacks: {missing}"


def test_search_index(site):
    "The search index covers the site, and its snippets show math as text, not TeX source (`\\(m_t = 0\\)`)."
    docs = json.loads((site / 'search' / 'search_index.json').read_text())['docs']
    text = ' '.join(d['text'] for d in docs)
    assert 'LSTMCell' in text and len(docs) > 100
    raw = re.findall(r'.{0,30}(?:\\\(|\\\[|\$\$).{0,30}', text)
    assert not raw, f"raw TeX in the search index: {raw[:5]}"


def _prose_pages(crawl):
    return {p: i for p, i in crawl['pages'].items() if 'prose' in i}


def test_no_dollar_in_prose(crawl):
    "Every formula typeset: no `$` left in any page's prose (display math inside a paragraph shows its `$$`)."
    hits = {}
    for p, i in _prose_pages(crawl).items():
        where = [m.start() for m in re.finditer(r'\$', i['prose'])]
        if where: hits[p] = [i['prose'][max(0, k - 40):k + 40].replace('\n', ' ') for k in where[:3]]
    assert not hits, f"literal $ in the prose of {len(hits)} page(s): {hits}"


def test_code_is_highlighted(crawl):
    "At least 90% of the code blocks are syntax-highlighted, and the notebooks' code cells as Python."
    pages = _prose_pages(crawl)
    pres = sum(i['pres'] for i in pages.values())
    highlighted = sum(i['highlighted'] for i in pages.values())
    assert pres > 100 and highlighted >= 0.9 * pres, f"{highlighted} of {pres} code blocks highlighted"
    book = {p: i for p, i in pages.items() if not p.startswith('api/') and p.endswith('.html')}
    code = sum(i['highlighted'] - i['text_blocks'] for i in book.values())
    python = sum(i['python'] for i in book.values())
    assert python >= 0.9 * code, f"{python} of {code} code blocks on the book's pages highlighted as Python"


def _plain(md):
    "Markdown as the text a reader sees, roughly: no backticks, emphasis or link targets."
    md = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', md)
    return re.sub(r'\s+', ' ', md.replace('`', '').replace('**', '')).strip()


def test_tutorials_complete(crawl):
    "Each tutorial shows its whole subtitle and its opening paragraph (nbdev's front matter eats neither)."
    page_of = json.loads((ROOT / 'build' / 'docs_pages.json').read_text())
    missing = {}
    for nb, page in page_of.items():
        if not nb.startswith('tutorials/'): continue
        cells = [''.join(c['source']) for c in json.loads((ROOT / 'nbs' / nb).read_text())['cells']
                 if c['cell_type'] == 'markdown']
        text = re.sub(r'\s+', ' ', crawl['pages'][page]['text'])
        first = cells[0].strip().split('\n\n')
        subtitle = _plain(' '.join(l.lstrip('> ') for l in first[1].splitlines())) if len(first) > 1 else ''
        opening = next((c for c in cells[1:] if c.strip() and not c.lstrip().startswith('#')), '')
        opening = _plain(opening.split('\n\n')[0])
        opening = re.split(r'[$*_\\]', opening)[0][:80].strip()
        for what, want in (('subtitle', subtitle[:160]), ('opening paragraph', opening)):
            want = re.split(r'[$*_\\]', want)[0].strip()
            if len(want) >= 20 and want not in text: missing.setdefault(page, []).append(f'{what}: {want!r}')
        assert len(first) == 2 and first[1].startswith('> ') and '\n' not in first[1], (
            f"{nb}: the first cell must be the title and a one-line `> summary` only (nbdev's front matter "
            f"drops the rest): {cells[0][:200]!r}")
    assert not missing, f"tutorial text missing on the site: {missing}"


def test_wide_blocks_scroll(crawl):
    "A printout or table wider than the content column (summary()) scrolls inside its own box, none is clipped."
    clipped = {p: i['clipped'][:3] for p, i in _prose_pages(crawl).items() if i['clipped']}
    assert not clipped, f"blocks clipped by the content column: {clipped}"


def test_demo_page_shows_the_tour(crawl):
    "The Demo page shows what the tour printed and the pictures of its LSTM, not just signatures."
    demo = crawl['pages']['demo.html']
    for said in ("Parameter counts of the guide's models", 'Held-out accuracy', '98,816'):
        assert said in demo['text'], f"the Demo page lacks the tour's output {said!r}"
    tour = [im['src'] for im in demo['images'] if '/tour/' in im['src']]
    assert len(tour) >= 4 and all(im['ok'] for im in demo['images']), demo['images']


def test_api_describes_every_argument(crawl):
    "The API entries of the recurrent layers, cells, wrappers and ConvLSTM list every constructor argument."
    import inspect
    import rnnbook.layers
    params = {}
    for i in crawl['pages'].values(): params.update(i.get('params', {}))
    missing = {}
    for n in API_ARG_CLASSES:
        cls = getattr(rnnbook.layers, n)
        wanted = [q.name for q in inspect.signature(cls.__init__).parameters.values() if q.name != 'self']
        shown = {c.lstrip('*').split()[0] for c in params.get(f'rnnbook.layers.{n}', []) if c}
        lacking = [a for a in wanted if a not in shown]
        if lacking: missing[n] = lacking
    assert not missing, f"constructor arguments missing from the API parameters tables: {missing}"


def test_build_is_quiet(build):
    "The build prints no warning (nbformat, nbdev, MkDocs) and every show_doc cell re-runs."
    noisy = [l for l in build[1].splitlines() if re.search(r'warn|error|failing|could not|traceback', l, re.I)
             or l.startswith('[build_docs]   mkdocs:')]
    assert not noisy, "the build printed:\n" + '\n'.join(noisy[:20])


def test_no_raw_docstring_sections(crawl):
    "show_doc outputs show no Google `Args:` items as a plain code block (they link to the API entry instead)."
    raw = {p: i['raw_sections'][:2] for p, i in _prose_pages(crawl).items() if i['raw_sections']}
    assert not raw, f"docstring sections shown as raw code blocks: {raw}"
