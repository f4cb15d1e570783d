"""A lecture room in a real browser: a projector at 1280x720, a link shared with the room, and
a shared run that only stops when everyone who asked for it pressed Stop.

The lecturer and a student are two browser contexts (two Streamlit sessions) on the same
server. Screenshots of every page at 1280x720 land in test-artifacts/projector-*.png.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import FIRST, bottom_of, loss_chart_points, screenshot_viewport, wait_for_app_idle
from .test_user_flow import nav_link, wait_until

pytestmark = pytest.mark.browser

PROJECTOR = {"width": 1280, "height": 720}
SHARED_LINK = "/train?code=8&epochs=200&digits=60000&seed=3"  # over a minute of training: still running when stopped

# Elements whose text is cut (ellipsis or overflow).
CUT_TEXT = """() => [...document.querySelectorAll(
        '[data-testid="stButton"] p, [data-testid="stMetricValue"] div, [data-testid="stMetricLabel"] p, h1, h2, h3, h4')]
    .filter(el => el.getBoundingClientRect().height > 0 && el.scrollWidth > el.clientWidth + 1)
    .map(el => el.innerText.slice(0, 60))"""


def open_at(context, url: str):
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    wait_for_app_idle(page)
    return page


def assert_fits(page, name: str, selectors: dict[str, str]) -> None:
    """Every named part is drawn within the 720 px screen, and no text is cut."""
    for part, selector in selectors.items():
        bottom = bottom_of(page, selector)
        assert 0 < bottom <= PROJECTOR["height"], f"{name}: the {part} ends at {bottom:.0f} px, below a 720 px screen"
    assert page.evaluate(CUT_TEXT) == [], f"{name}: text cut short: {page.evaluate(CUT_TEXT)}"


def test_a_room_shares_a_link_a_run_and_a_projector(browser, app_server):
    lecturer_context = browser.new_context(viewport=PROJECTOR)
    student_context = browser.new_context(viewport=PROJECTOR)
    try:
        # A student opens Train before anything runs; the lecturer opens the shared link: the
        # controls show exactly its settings.
        early = open_at(student_context, app_server + "/train")
        lecturer = open_at(lecturer_context, app_server + SHARED_LINK)
        expect(lecturer.get_by_role("spinbutton", name="Code size (1 to 784)")).to_have_value("8")
        expect(lecturer.get_by_role("spinbutton", name="Epochs (1 to 200)")).to_have_value("200")
        lecturer.get_by_role("button", name="Train", exact=True).click()
        expect(lecturer.get_by_text(re.compile(r"Epoch \d+ of 200")).first).to_be_visible(timeout=60_000)
        # The early student sees the run start without reloading.
        expect(early.get_by_text(re.compile(r"Epoch \d+ of 200")).first).to_be_visible(timeout=30_000)
        early.close()
        wait_until(lambda: loss_chart_points(lecturer) > 0, 60, "the loss chart stayed empty")
        wait_for_app_idle(lecturer)

        # Projector: progress, Stop, loss chart and digits on one 1280x720 screen, nothing cut.
        screenshot_viewport(lecturer, "projector-train-running")
        assert_fits(lecturer, "Train (running)", {
            "progress bar": '[data-testid="stProgress"]', "Stop button": '.st-key-stop_button',
            "loss chart": ".js-plotly-plot", "digit panel": '[data-testid="stImage"]',
        })

        # A student who did not ask for the run sees it, but cannot stop it, and is told why.
        student = open_at(student_context, app_server + "/train")
        expect(student.get_by_text(re.compile(r"Epoch \d+ of 200")).first).to_be_visible(timeout=30_000)
        expect(student.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
        expect(student.get_by_text(re.compile(r"Started by 1 session, who can stop it")).first).to_be_visible()

        # The student opens the same link and presses Train: now the run is theirs too.
        student.goto(app_server + SHARED_LINK)
        wait_for_app_idle(student)
        student.get_by_role("button", name="Train", exact=True).click()
        expect(student.get_by_role("button", name="Stop", exact=True)).to_be_enabled(timeout=30_000)

        # The lecturer's Stop alone does not stop the student's run...
        lecturer.get_by_role("button", name="Stop", exact=True).click()
        expect(lecturer.get_by_text(re.compile(r"1 other session asked for this run too")).first).to_be_visible(timeout=30_000)
        expect(lecturer.get_by_text(re.compile(r"Epoch \d+ of 200")).first).to_be_visible()
        # ...the student's Stop, the last one, does.
        student.get_by_role("button", name="Stop", exact=True).click()
        for page in (student, lecturer):
            expect(page.get_by_text(re.compile(r"Stopped after [\d.]+ of 200 epochs")).first).to_be_visible(timeout=60_000)

        # Every page on the projector: the title, and no text cut short.
        wait_for_app_idle(lecturer)
        screenshot_viewport(lecturer, "projector-train-stopped")
        expect(lecturer.get_by_role("button", name="Resume to 200")).to_be_enabled(timeout=30_000)  # after the page reruns
        for title, link, parts in (
            ("Reconstructions", "Reconstructions", {"first row of digits": FIRST + '[data-testid="stImage"]'}),
            ("Latent space", "Latent space", {"map": ".st-key-latent_map .js-plotly-plot", "digit labels": ".st-key-latent_map .annotation"}),
            ("Your digit", "Your digit", {"canvas": "canvas[aria-label^='Drawing area']"}),
            ("Code size", "Code size", {"Start sweep": ".st-key-start_sweep"}),
            ("How it learns, step by step", "Step by step", {"Next step": ".st-key-next_step"}),
            ("Few labels", "Few labels", {"title": "h1"}),
            ("Autoencoder Explorer", "Home", {"current model": '[data-testid="stMetric"]'}),
        ):
            nav_link(lecturer, link).click()
            expect(lecturer.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=60_000)
            try:
                wait_until(lambda: all(bottom_of(lecturer, selector) > 0 for selector in parts.values()), 180,
                           f"{title} never drew its {', '.join(parts)}")
                wait_for_app_idle(lecturer, timeout=180_000)
            finally:
                screenshot_viewport(lecturer, f"projector-{link.lower().replace(' ', '-')}")
            assert_fits(lecturer, title, parts)

        # Back on Train, the session's settings are still the shared link's.
        nav_link(lecturer, "Train").click()
        wait_for_app_idle(lecturer)
        expect(lecturer.get_by_role("spinbutton", name="Code size (1 to 784)")).to_have_value("8")
    finally:
        student_context.close()
        lecturer_context.close()
