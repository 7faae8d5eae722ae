"""The documentation site in a real browser: `tools/build_docs.py` builds it into a temporary folder, a local
http.server serves it on 127.0.0.1, and Playwright drives Debian's Chromium (`/usr/bin/chromium`, never a
downloaded browser) over every page reachable from the home page.

Every request that leaves 127.0.0.1 is aborted and recorded (none is expected: the site vendors MathJax and uses no
web fonts); every request must succeed; math must be typeset by MathJax (no raw `$...$` or `\\(...\\)` left in the
text); every image must load; every internal link must resolve; the API page must list every public class of
`rnnbook.layers`. One screenshot per page goes to `tests/artifacts/site/` (git-ignored).
"""
import functools
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
})"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Build the site once for the module (the command the README gives), and time it."
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
    return out


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
    import json
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
    import json
    docs = json.loads((site / 'search' / 'search_index.json').read_text())['docs']
    text = ' '.join(d['text'] for d in docs)
    assert 'LSTMCell' in text and len(docs) > 100
