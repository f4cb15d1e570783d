"""Real-browser fixtures: one `streamlit run` server per session, Debian's chromium via Playwright.

Pattern from Streamlit's own e2e_playwright/conftest.py: start the app on a free port with
`--server.headless true`, poll /_stcore/health, then wait for the app's script state to read
"notRunning" before looking at the page. Playwright's own browser download needs internet
access, so the tests drive Debian's chromium (`apt-get install chromium`) through
`executable_path`. Screenshots and the server log go to <repo>/test-artifacts/.
"""
from __future__ import annotations

import contextlib
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ae.serve import free_port, healthy

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # chromium as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEALTH_TIMEOUT_S = 60
IDLE_SELECTOR = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def pytest_collection_modifyitems(config, items):
    """Every test under tests/browser carries the `browser` mark (deselect with -m 'not browser')."""
    for item in items:
        if BROWSER_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def end_process_group(group: int) -> None:
    """Kill what a server left in its process group (its training service, slots, map process):
    they would end on their own once they notice, but a test run must not leave them behind."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def serve_app(cache_dir: Path, log_name: str = "server.log", extra_env: dict | None = None):
    """`streamlit run app.py` on a free port with its own model cache and the full MNIST; yields the URL."""
    port = free_port()
    url = f"http://localhost:{port}"
    env = dict(os.environ, AE_CACHE_DIR=str(cache_dir), AE_WARM_UMAP="0", **(extra_env or {}))
    env.pop("AE_DATA_PATH", None)  # the real, full MNIST
    log_file = tempfile.TemporaryFile(mode="w+b")
    # The app's .streamlit/config.toml already turns the file watcher off (a reload would
    # orphan running jobs); the flag keeps the tests safe from a different config too.
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py",
         "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the training and map processes end with it
    )

    def save_log() -> str:
        log_file.flush()
        log_file.seek(0)
        text = log_file.read().decode(errors="replace")
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / log_name).write_text(text)
        return text

    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not healthy(url):
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode} before it was healthy:\n{save_log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit was not healthy after {HEALTH_TIMEOUT_S} s:\n{save_log()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        end_process_group(server.pid)
        save_log()
        log_file.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app served for the whole session, with a fresh model cache."""
    with serve_app(tmp_path_factory.mktemp("ae-cache")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, driven by Playwright. Missing chromium fails in CI and skips elsewhere."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        message = "CI needs Debian's chromium: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"{CHROMIUM} not found; browser tests need Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        page.close()


# ---- helpers ------------------------------------------------------------------------------
def wait_for_app_idle(page, timeout: float = 60_000) -> None:
    """Wait until the app's script run is over (fragments polling on a timer may still run)."""
    page.wait_for_selector(IDLE_SELECTOR, timeout=timeout)


def wait_for_no_skeletons(page, timeout: float = 10_000) -> None:
    """Wait until no element shows a loading placeholder.

    Streamlit loads most element types' code lazily, the first time one is drawn in a
    session; until then a grey `stSkeleton` box stands in for it.
    """
    page.wait_for_function(
        """() => ![...document.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')]
            .some(el => el.getBoundingClientRect().height > 0)""",
        timeout=timeout,
    )


def screenshot(page, name: str) -> Path:
    """A full-page PNG at <repo>/test-artifacts/<name>.png.

    Streamlit scrolls inside its main container, not the document, so Playwright's
    `full_page` alone captures one viewport: the viewport is stretched to the content's
    height for the shot, then restored.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    wait_for_no_skeletons(page)
    size = page.viewport_size or {"width": 1600, "height": 1000}
    content_height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stSidebarContent"]')]
                .map(el => el.scrollHeight))"""
    )
    tall = min(max(size["height"], int(content_height)), 8000)
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": tall})
        page.wait_for_timeout(500)  # charts re-lay themselves out on resize
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall > size["height"]:
            page.set_viewport_size(size)
    return path


def screenshot_viewport(page, name: str) -> Path:
    """What the screen shows, as is (a projector shows no more): <repo>/test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    wait_for_no_skeletons(page)
    page.wait_for_timeout(300)  # charts finish their layout
    page.screenshot(path=str(path))
    return path


def plotly_traces(page, index: int = 0) -> list[dict]:
    """Name, number of points and marker colour of each trace of the index-th shown Plotly chart ([] if absent).

    While a fragment reruns, Streamlit keeps the previous chart in the DOM for a moment,
    hidden (zero height) inside a stale container: only charts with a height count.
    """
    return page.evaluate(
        """(index) => {
            const shown = [...document.querySelectorAll('.js-plotly-plot')]
                .filter(plot => plot.getBoundingClientRect().height > 0);
            const plot = shown[index];
            if (!plot || !Array.isArray(plot.data)) return [];
            // Plotly may keep numpy arrays base64-encoded ({dtype, bdata}) in .data; _fullData holds them decoded.
            const count = (x) => (x && typeof x.length === 'number') ? x.length : null;
            return plot.data.map((trace, i) => ({
                name: trace.name ?? null,
                points: count(trace.x) ?? count(plot._fullData?.[i]?.x) ?? 0,
                colour: plot._fullData?.[i]?.marker?.color ?? trace.marker?.color ?? null,
            }));
        }""",
        index,
    )


def loss_chart_points(page) -> int:
    """Points plotted on the Train page's loss chart (all traces), 0 when there is no chart yet."""
    return sum(trace["points"] for trace in plotly_traces(page, 0))


# Where a named part of a page ends on screen: its lowest element, or with FIRST its topmost one.
BOTTOM_OF = """(selector) => Math.max(0, ...[...document.querySelectorAll(selector)]
    .filter(el => el.getBoundingClientRect().height > 0).map(el => el.getBoundingClientRect().bottom))"""
# The bottom of the topmost such element: "the first row of digits", not all of them.
FIRST_BOTTOM_OF = """(selector) => [...document.querySelectorAll(selector)]
    .filter(el => el.getBoundingClientRect().height > 0).map(el => el.getBoundingClientRect())
    .sort((a, b) => a.top - b.top)[0]?.bottom ?? 0"""
FIRST = "first:"  # a part's selector with this prefix: only its topmost element must fit


def bottom_of(page, selector: str) -> float:
    if selector.startswith(FIRST):
        return page.evaluate(FIRST_BOTTOM_OF, selector.removeprefix(FIRST))
    return page.evaluate(BOTTOM_OF, selector)
