"""The explorers in a real browser: Voilà serves `nbs/tutorials/explorers.ipynb` on 127.0.0.1, Playwright drives
Debian's Chromium (`/usr/bin/chromium`, never a downloaded browser) and moves the controls.

The page is judged by the marker each explorer sets *after* it has drawn (`span.rnnbook-drawn`, with
`data-draws`, one `data-<control>` attribute per control and the kernel's redraw time in `data-ms`), never by
waiting for "the picture changed". The marker is invisible: a reader sees no debug text.
Every request that leaves 127.0.0.1/localhost is aborted and recorded; Voilà is started with the template in
`tests/docs/jupyter/voila/templates/rnnbook-offline` (the lab template without its CDN stylesheets), so none is
expected. Screenshots go to `tests/artifacts/browser/` (git-ignored), with Voilà's log and the timings.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / 'nbs' / 'tutorials' / 'explorers.ipynb'
JUPYTER_PATH = ROOT / 'tests' / 'docs' / 'jupyter'        # holds the rnnbook-offline Voilà template
ARTIFACTS = ROOT / 'tests' / 'artifacts' / 'browser'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--disable-background-networking', '--disable-component-update', '--no-first-run']
LOCAL_HOSTS = {'127.0.0.1', 'localhost'}
START_TIMEOUT_S = 60          # Voilà listening
FIRST_DRAW_TIMEOUT_S = 90     # page loaded, kernel started, notebook executed, both explorers drawn
UPDATE_TIMEOUT_S = 20         # one control change to its marker

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing: install Debian's Chromium "
                                       "(apt-get install -y --no-install-recommends chromium); .ci/run does")


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _stop(proc):
    "Stop Voilà by its process group; then any kernel it started (each in its own session) that outlived it."
    try:
        import psutil
        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        children = []
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)            # Voilà shuts its kernels down on SIGTERM
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    for child in children:
        try:
            if child.is_running() and child.status() != 'zombie': os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, Exception): pass


@pytest.fixture(scope='module')
def artifacts():
    "The artefact folder: files are overwritten run by run (not emptied, so two runs in one tree don't collide)."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / 'failure.png').unlink(missing_ok=True)
    return ARTIFACTS


@pytest.fixture(scope='module')
def voila_url(artifacts, tmp_path_factory):
    pytest.importorskip('voila')
    pytest.importorskip('ipykernel')
    port, tmp = _free_port(), tmp_path_factory.mktemp('jupyter')
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONUNBUFFERED': '1',
           'JUPYTER_PATH': str(JUPYTER_PATH),                # finds the rnnbook-offline template
           'JUPYTER_RUNTIME_DIR': str(tmp / 'runtime'), 'JUPYTER_DATA_DIR': str(tmp / 'data'),
           'JUPYTER_CONFIG_DIR': str(tmp / 'config'), 'JUPYTER_PLATFORM_DIRS': '1'}
    cmd = [sys.executable, '-m', 'voila', str(NOTEBOOK), '--no-browser', f'--port={port}', '--Voila.ip=127.0.0.1',
           '--Voila.port_retries=0', '--template=rnnbook-offline', '--VoilaConfiguration.show_tracebacks=True']
    log = open(artifacts / 'voila.log', 'w')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Voilà exited with {proc.returncode}:\n{(artifacts / 'voila.log').read_text()[-3000:]}")
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline: pytest.fail(f"Voilà did not listen on port {port} in {START_TIMEOUT_S} s")
                time.sleep(0.2)
        yield f'http://127.0.0.1:{port}/'
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try: yield b
        finally: b.close()


# The marker's data-* attributes (`ms`: the kernel's own redraw time), its text and whether it is shown.
MARKER_JS = """sel => { const e = document.querySelector(sel);
    return e ? {...e.dataset, text: e.textContent, shown: e.getClientRects().length > 0} : null; }"""
# Wait until the marker has at least `draws` draws and the given data-* values (dataset names, as strings).
WAIT_JS = """([sel, draws, want]) => {
    const e = document.querySelector(sel);
    if (!e || +e.dataset.draws < draws) return false;
    return Object.entries(want).every(([k, v]) => e.dataset[k] === v);
}"""


def _marker(page, explorer):
    return page.evaluate(MARKER_JS, f'.{explorer} span.rnnbook-drawn')


def _wait_marker(page, explorer, draws, timeout_s=UPDATE_TIMEOUT_S, **want):
    page.wait_for_function(WAIT_JS, arg=[f'.{explorer} span.rnnbook-drawn', draws, want], timeout=timeout_s * 1e3,
                           polling='raf')
    return _marker(page, explorer)


def _kernel_ms(marker):
    "The redraw time the kernel measured, from the marker's `data-ms`."
    return float(marker['ms']) if marker.get('ms') else None


def _image_src(page, explorer):
    return page.eval_on_selector(f'.{explorer} img', 'e => e.src')


def test_explorers_in_chromium(voila_url, browser, artifacts):
    "The page draws both explorers; the timestep slider and the merge-mode selector redraw them, offline."
    blocked, served = [], []
    context = browser.new_context(viewport={'width': 1280, 'height': 1000}, service_workers='block')

    def route(r):
        url = r.request.url
        if urlsplit(url).scheme in ('data', 'blob') or urlsplit(url).hostname in LOCAL_HOSTS:
            served.append(url)
            r.continue_()
        else:
            blocked.append(f'{r.request.resource_type} {url}')
            r.abort('blockedbyclient')
    context.route('**/*', route)
    page = context.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    timings = {}
    try:
        t0 = time.perf_counter()
        page.goto(voila_url, wait_until='domcontentloaded', timeout=FIRST_DRAW_TIMEOUT_S * 1e3)
        gates = _wait_marker(page, 'demo-gates', 1, FIRST_DRAW_TIMEOUT_S)
        merges = _wait_marker(page, 'demo-merges', 1, FIRST_DRAW_TIMEOUT_S)
        timings['page_to_first_markers_s'] = round(time.perf_counter() - t0, 2)
        page.screenshot(path=str(artifacts / '01-loaded.png'))
        page.locator('.demo-gates').screenshot(path=str(artifacts / '02-gates-before.png'))
        assert gates['timestep'] == '0', gates
        assert merges['mergeMode'] == 'concat', merges
        assert merges['sample'] == '2', f"the bidirectional explorer should open on a padded sample: {merges}"
        for m in (gates, merges):                                   # the markers are there for tests, not readers
            assert not m['shown'] and not m['text'].strip() and m['ms'], m
        assert not re.search(r'drawn \d+ \(', page.inner_text('body')), "debug text on the page"
        label = page.locator('.demo-merge-mode label').first     # the widget's description, in full
        assert label.inner_text().strip() == 'merge mode'
        assert label.evaluate('e => e.scrollWidth <= e.clientWidth'), "the 'merge mode' label is cut"

        # The timestep slider, by keyboard on its handle: each ArrowRight is one step and one redraw.
        handle = page.locator('.demo-timestep .noUi-handle')
        handle.focus()
        src, draws, step = _image_src(page, 'demo-gates'), int(gates['draws']), int(gates['timestep'])
        moves_ms, kernel_ms = [], []
        for k in range(1, 4):
            t1 = time.perf_counter()
            handle.press('ArrowRight')
            gates = _wait_marker(page, 'demo-gates', draws + 1, timestep=str(step + k))
            moves_ms.append((time.perf_counter() - t1) * 1e3)
            kernel_ms.append(_kernel_ms(gates))
            assert int(gates['draws']) > draws, gates
            draws = int(gates['draws'])
        assert _image_src(page, 'demo-gates') != src, "the marker moved but the picture was not replaced"
        assert page.locator('.demo-timestep .widget-readout').inner_text().strip() == str(step + 3)
        timings['slider_move_to_marker_ms'] = [round(m, 1) for m in moves_ms]
        timings['slider_kernel_redraw_ms'] = kernel_ms
        page.locator('.demo-gates').screenshot(path=str(artifacts / '03-gates-timestep.png'))

        # The merge-mode selector.
        src, draws = _image_src(page, 'demo-merges'), int(merges['draws'])
        for mode in ('sum', 'None'):
            t1 = time.perf_counter()
            page.locator('.demo-merge-mode select').select_option(label=mode)
            merges = _wait_marker(page, 'demo-merges', draws + 1, mergeMode=mode)
            timings[f'merge_mode_{mode}_to_marker_ms'] = round((time.perf_counter() - t1) * 1e3, 1)
            timings[f'merge_mode_{mode}_kernel_redraw_ms'] = _kernel_ms(merges)
            shown = page.locator('.demo-merge-mode select').evaluate('e => e.selectedIndex < 0 ? "" : e.value')
            timings[f'merge_mode_{mode}_select_shows'] = shown
            assert shown == mode, f"the selector shows {shown!r} after choosing {mode!r}"
            assert _image_src(page, 'demo-merges') != src
            src, draws = _image_src(page, 'demo-merges'), int(merges['draws'])
            page.locator('.demo-merges').screenshot(path=str(artifacts / f'04-merge-{mode}.png'))
        page.screenshot(path=str(artifacts / '05-final.png'))
    except Exception:
        try: page.screenshot(path=str(artifacts / 'failure.png'))
        except Exception: pass
        raise
    finally:
        report = {'url': voila_url, 'timings': timings, 'blocked_requests': blocked,
                  'local_requests': len(served), 'page_errors': errors}
        (artifacts / 'report.json').write_text(json.dumps(report, indent=1))
        print(f"\nbrowser: first markers {timings.get('page_to_first_markers_s')} s after navigation; "
              f"slider move -> marker {timings.get('slider_move_to_marker_ms')} ms "
              f"(kernel redraw {timings.get('slider_kernel_redraw_ms')} ms); "
              f"merge mode -> marker {[v for k, v in timings.items() if k.endswith('to_marker_ms') and 'merge' in k]} ms; "
              f"{len(served)} local requests, {len(blocked)} blocked: {blocked}")
        context.close()
    assert not blocked, f"the page asked for non-local resources (blocked; it worked without them): {blocked}"
