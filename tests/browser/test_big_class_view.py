"""A big-class server in a real browser: `ae.serve` with two web processes behind nginx, and the
live view that Chromium draws from the feed (pages/live_feed.py).

A student opens Train before the lecturer presses Train, on whichever web process nginx gives
them; both see the run move (progress line, metrics, loss chart, digits) without a reload, and
the finished job is drawn once by the page, not twice. Screenshots: test-artifacts/big-class-*.png.
"""
from __future__ import annotations

import os

import pytest

from ae.serve import BigClassServer, free_port, nginx_path

from .conftest import screenshot_viewport, wait_for_app_idle
from .test_user_flow import wait_until

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(nginx_path() is None and not os.environ.get("CI"), reason="needs Debian's nginx")]
LINK = "/train?code=8&epochs=60&batch=32"  # about 20 s on the small MNIST: long enough to watch
SCREEN = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def big_class_url(small_mnist_path, tmp_path_factory):
    server = BigClassServer(web=2, port=free_port(), log_folder=tmp_path_factory.mktemp("big-class-logs"),
                            environment={"AE_DATA_PATH": str(small_mnist_path), "AE_WARM_UMAP": "0",
                                         "AE_CACHE_DIR": str(tmp_path_factory.mktemp("ae-cache"))})
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def live_text(page) -> str:
    return page.evaluate("""() => { const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot
        && e.shadowRoot.querySelector('.ae-text')); const text = host && host.shadowRoot.querySelector('.ae-text');
        return text && text.offsetParent !== null ? text.textContent : ''; }""")


def feed_view_height(page) -> float:
    return page.evaluate("""() => { const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot
        && e.shadowRoot.querySelector('.ae-live')); return host ? host.shadowRoot.querySelector('.ae-live')
        .getBoundingClientRect().height : 0; }""")


def chart_lines(page) -> int:
    return page.evaluate("""() => { const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot
        && e.shadowRoot.querySelector('.ae-chart')); return host ? host.shadowRoot.querySelectorAll(
        '.ae-chart polyline').length : 0; }""")


def test_a_room_watches_a_run_drawn_from_the_feed(browser, big_class_url):
    student = browser.new_context(viewport=SCREEN).new_page()
    lecturer = browser.new_context(viewport=SCREEN).new_page()
    for page in (student, lecturer):
        page.set_default_timeout(60_000)
    student.goto(big_class_url + "/train")  # before the run: it must appear without a reload
    lecturer.goto(big_class_url + LINK)
    wait_for_app_idle(student), wait_for_app_idle(lecturer)
    lecturer.get_by_role("button", name="Train", exact=True).click()

    for page in (lecturer, student):
        wait_until(lambda p=page: "Epoch" in live_text(p), 60, "the live view to show an epoch")
    first = live_text(student)
    wait_until(lambda: live_text(student) not in ("", first), 20, "the student's view to move on")
    wait_until(lambda: chart_lines(student) >= 2, 30, "the loss chart's curves")
    assert student.get_by_text("(shared)").count() >= 1  # the student's page names the run as shared
    screenshot_viewport(student, "big-class-student-watching")

    wait_until(lambda: lecturer.get_by_text("Finished:").count() > 0, 90, "the run to finish")
    wait_for_app_idle(lecturer)
    assert live_text(lecturer) == "" and feed_view_height(lecturer) == 0  # the page draws the finished job, once
    screenshot_viewport(lecturer, "big-class-lecturer-finished")
