"""Presentation mode on a 1280x720 projector, in a real browser: on each page what matters is on
the first screen, no text is cut short, no two chart labels overlap, and the mode itself stays on
through reloads and navigation (it lives in the address of every page).

One browser context (one Streamlit session) walks the pages. The only model trained is the run
watched on Train, stopped after a few epochs; the Code size sweep trains one tiny size. The
viewport screenshots land in test-artifacts/present-*.png: look at them.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import FIRST, bottom_of, loss_chart_points, screenshot_viewport, wait_for_app_idle
from .test_user_flow import nav_link, wait_until
from .test_your_digit import SEVEN, draw, star_on_map

pytestmark = pytest.mark.browser

PROJECTOR = {"width": 1280, "height": 720}
PRESENT_FONT_PX = 21  # pages/presentation.py's root font size
# Long enough to be watched while it trains (about 2 s an epoch), stopped by the test.
LONG_RUN = "/train?code=3&epochs=150&digits=60000&batch=32&seed=5&present=1"

# Text cut short: an element that clips its text (an ellipsis, or hidden overflow on one line)
# whose text, laid out unclipped, is wider than the element. Its clone is measured offscreen,
# beside it, so it keeps its fonts; Chrome reports an ellipsized text's clipped width otherwise.
CUT_TEXT = """() => {
    const cut = [];
    for (const element of document.querySelectorAll('[data-testid="stMain"] *')) {
        const box = element.getBoundingClientRect();
        if (box.width === 0 || box.height === 0 || box.bottom < 0 || box.top > window.innerHeight) continue;
        if (!element.innerText || !element.innerText.trim() || element.closest('.js-plotly-plot')) continue;
        const style = getComputedStyle(element);
        const oneLine = style.whiteSpace.startsWith('nowrap') || style.whiteSpace === 'pre';
        const clips = style.textOverflow === 'ellipsis' || (oneLine && ['hidden', 'clip'].includes(style.overflowX));
        if (!clips) continue;
        const clone = element.cloneNode(true);
        clone.style.cssText += ';position:absolute;visibility:hidden;width:auto;max-width:none;min-width:0;'
            + 'overflow:visible;text-overflow:clip;left:-10000px;top:0';
        element.parentElement.appendChild(clone);
        const natural = clone.getBoundingClientRect().width;
        clone.remove();
        if (natural > element.clientWidth + 2 || element.scrollWidth > element.clientWidth + 2)
            cut.push(`${element.innerText.trim().slice(0, 40)} (${Math.round(natural)} px in ${element.clientWidth})`);
    }
    return cut;
}"""
# Chart titles and axis titles inside their chart; the legend clear of the title; digit labels,
# annotations and text points clear of each other (with a pixel's grace).
CHART_PROBLEMS = """() => {
    const problems = [];
    const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
        && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
    for (const plot of document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')) {
        const frame = plot.getBoundingClientRect();
        if (frame.height === 0 || frame.top > window.innerHeight) continue;
        const name = (plot.querySelector('.gtitle')?.textContent || plot.closest('[class*="st-key-"]')?.className.match(/st-key-\\S+/)?.[0] || 'a chart');
        for (const title of plot.querySelectorAll('.gtitle, .xtitle, .ytitle')) {
            const box = title.getBoundingClientRect();
            if (box.width && (box.left < frame.left - 1 || box.right > frame.right + 1 || box.top < frame.top - 1 || box.bottom > frame.bottom + 1))
                problems.push(`${name}: title "${title.textContent}" is cut by the chart's edge`);
        }
        const legend = plot.querySelector('g.legend')?.getBoundingClientRect();
        const chartTitle = plot.querySelector('.gtitle')?.getBoundingClientRect();
        if (legend && chartTitle && legend.width && chartTitle.width && overlap(legend, chartTitle))
            problems.push(`${name}: the legend covers the title`);
        const labels = [...plot.querySelectorAll('g.annotation, g.textpoint')]
            .map(element => ({text: element.textContent, box: element.getBoundingClientRect()}))
            .filter(label => label.box.width > 0 && label.text.trim());
        for (let i = 0; i < labels.length; i++)
            for (let j = i + 1; j < labels.length; j++)
                if (overlap(labels[i].box, labels[j].box))
                    problems.push(`${name}: "${labels[i].text}" overlaps "${labels[j].text}"`);
    }
    return problems;
}"""
ROOT_FONT = "() => getComputedStyle(document.documentElement).fontSize"


@pytest.fixture(scope="module")
def projector(browser, app_server):
    """One session on a 1280x720 screen, in presentation mode, for the whole module."""
    context = browser.new_context(viewport=PROJECTOR)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_server + "/?present=1")
    wait_for_app_idle(page)
    try:
        yield page
    finally:
        context.close()


def presenting(page) -> bool:
    return page.evaluate(ROOT_FONT) == f"{PRESENT_FONT_PX}px"


def url_keeps_present(page) -> bool:
    return "present=1" in page.url


def assert_fits(page, name: str, parts: dict[str, str]) -> None:
    """Presentation mode is on, every named part ends within the 720 px screen, no text is cut
    and no chart label is cut or hidden by another."""
    screenshot_viewport(page, f"present-{name.lower().replace(' ', '-')}")
    assert presenting(page), f"{name}: presentation mode is off"
    for part, selector in parts.items():
        bottom = bottom_of(page, selector)
        assert 0 < bottom <= PROJECTOR["height"], f"{name}: the {part} ends at {bottom:.0f} px, not on a 720 px screen"
    assert page.evaluate(CUT_TEXT) == [], f"{name}: text cut short"
    assert page.evaluate(CHART_PROBLEMS) == [], f"{name}: chart labels cut or overlapping"


def open_page(page, link: str, heading: str) -> None:
    nav_link(page, link).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=60_000)
    wait_for_app_idle(page, timeout=120_000)


def test_presentation_mode_stays_on_through_reloads_and_navigation(projector, app_server):
    page = projector
    page.goto(app_server + "/?present=1")
    wait_for_app_idle(page)
    assert presenting(page)
    for link, heading in (("Step by step", "How it learns, step by step"), ("Train", "Train")):
        open_page(page, link, heading)
        wait_until(lambda: url_keeps_present(page), 10, lambda: f"{link}: the address lost present=1 ({page.url})")
        page.reload()
        wait_for_app_idle(page)  # the first run may not have started yet: the mode is waited for
        wait_until(lambda: presenting(page), 20, f"{link}: presentation mode was lost on reload")
    # A page's own settings in the address stay beside it, through a reload and a round trip.
    page.goto(app_server + "/train?code=7&epochs=4&present=1")
    wait_for_app_idle(page)
    page.reload()
    wait_for_app_idle(page)
    wait_until(lambda: presenting(page), 20, "Train: presentation mode was lost on reload")
    expect(page.get_by_role("spinbutton", name="Code size (1 to 784)")).to_have_value("7")
    open_page(page, "Latent space", "Latent space")
    open_page(page, "Train", "Train")
    wait_until(lambda: url_keeps_present(page) and "code=7" in page.url, 10, lambda: f"Train's address: {page.url}")
    page.reload()
    wait_for_app_idle(page)
    wait_until(lambda: presenting(page), 20, "Train: presentation mode was lost on reload")
    expect(page.get_by_role("spinbutton", name="Code size (1 to 784)")).to_have_value("7")
    # Switched off on Home, it stays off.
    open_page(page, "Home", "Autoencoder Explorer")
    page.get_by_text("Presentation mode: larger text").click()
    wait_until(lambda: not presenting(page), 20, "the toggle did not switch presentation mode off")
    open_page(page, "Train", "Train")
    page.reload()
    wait_for_app_idle(page)
    assert not presenting(page) and "present=1" not in page.url
    page.goto(app_server + "/?present=1")  # on again for the tests below
    wait_for_app_idle(page)


def test_train_while_training_fits(projector, app_server):
    page = projector
    page.goto(app_server + LONG_RUN)
    wait_for_app_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"Epoch \d+ of 150")).first).to_be_visible(timeout=120_000)
    wait_until(lambda: loss_chart_points(page) > 0, 120, "the loss chart stayed empty")
    wait_until(lambda: bottom_of(page, '[data-testid="stImage"]') > 0, 60, "no digits drawn")
    try:
        assert_fits(page, "Train running", {
            "progress bar": '[data-testid="stProgress"]', "Stop button": ".st-key-stop_button",
            "loss chart": ".js-plotly-plot", "digits": '[data-testid="stImage"]',
        })
    finally:
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(page.get_by_text(re.compile(r"Stopped after")).first).to_be_visible(timeout=120_000)
    wait_for_app_idle(page)


def test_home_shows_the_presets_first(projector, app_server):
    page = projector
    open_page(page, "Home", "Autoencoder Explorer")
    assert_fits(page, "Home", {"presets": '[class*="st-key-preset_"]', "presentation toggle": ".st-key-present_toggle"})


def test_reconstructions_shows_digits_on_the_first_screen(projector, app_server):
    page = projector
    open_page(page, "Reconstructions", "Reconstructions")
    # The first row of digits (original, autoencoder, PCA) whole on the first screen.
    first_row = bottom_of(page, FIRST + '[data-testid="stImage"]')
    assert 0 < first_row <= PROJECTOR["height"], f"the first row of digits ends at {first_row:.0f} px"
    assert_fits(page, "Reconstructions", {"model picker": ".st-key-reconstructions_model"})


def test_your_digit_shows_canvas_verdict_and_map(projector, app_server):
    page = projector
    open_page(page, "Your digit", "Your digit")
    canvas = page.locator("canvas[aria-label^='Drawing area']")
    draw(page, canvas, SEVEN)
    verdict = page.get_by_text(re.compile(r"The code says \d, \d+%"))
    expect(verdict).to_be_visible(timeout=120_000)
    wait_for_app_idle(page, timeout=120_000)
    wait_until(lambda: star_on_map(page), 30, "no star on the map")
    box = verdict.bounding_box()
    assert box and box["y"] + box["height"] <= PROJECTOR["height"], "the verdict is below the first screen"
    assert_fits(page, "Your digit", {"canvas": "canvas[aria-label^='Drawing area']", "map": ".st-key-digit_map"})


def test_step_by_step_shows_controls_and_both_heatmaps(projector, app_server):
    page = projector
    open_page(page, "Step by step", "How it learns, step by step")
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_text("The last step: Ann")).to_be_visible(timeout=30_000)
    wait_for_app_idle(page)
    assert_fits(page, "Step by step", {
        "Next step": ".st-key-next_step", "Reset": ".st-key-steps_reset",
        "encoder heatmap": ".st-key-encoder_weights", "decoder heatmap": ".st-key-decoder_weights",
    })
    # Every customer and every product of the table in view: its grid does not scroll.
    scrolls = page.evaluate("""() => [...document.querySelectorAll('.st-key-purchase_table .dvn-scroller')]
        .map(el => [el.scrollHeight - el.clientHeight, el.scrollWidth - el.clientWidth])""")
    assert scrolls and all(down <= 1 and across <= 1 for down, across in scrolls), f"the table scrolls: {scrolls}"
    # The heatmaps' numbers are read from the back row: at least the body's font size.
    sizes = page.evaluate("""() => [...document.querySelectorAll('.st-key-encoder_weights text, .st-key-decoder_weights text')]
        .filter(t => /^-?\\d*\\.\\d+$/.test(t.textContent.trim())).map(t => parseFloat(getComputedStyle(t).fontSize))""")
    assert sizes, "the heatmaps show no numbers"
    assert min(sizes) >= PRESENT_FONT_PX - 0.5, f"heatmap numbers of {min(sizes)} px, smaller than the body's {PRESENT_FONT_PX}"


def test_code_size_shows_the_sweep_and_its_chart(projector, app_server):
    page = projector
    open_page(page, "Code size", "Code size")
    sizes = page.locator(".st-key-sweep_sizes")
    sizes.get_by_role("button", name="Clear all").click()  # every preselected size out, one small size in
    wait_for_app_idle(page)
    sizes.get_by_role("combobox").click()
    page.get_by_role("option", name="2", exact=True).click()
    page.keyboard.press("Escape")
    wait_for_app_idle(page)
    for name, value in (("Epochs each", "1"), ("Training digits", "2000")):
        box = page.get_by_role("spinbutton", name=name)
        box.fill(value)
        box.press("Enter")
        wait_for_app_idle(page)
    page.get_by_role("button", name="Start sweep").click()
    # Right after Start: the sweep's progress, not the invitation to start one.
    expect(page.get_by_text(re.compile(r"Sweep: \d of 1 models done")).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("No trained models for these settings yet")).to_have_count(0)
    wait_until(lambda: bottom_of(page, ".st-key-rate_distortion .js-plotly-plot") > 0, 180,
               "the sweep's chart never appeared")
    wait_for_app_idle(page, timeout=120_000)
    assert_fits(page, "Code size", {"chart": ".st-key-rate_distortion .js-plotly-plot", "Start sweep": ".st-key-start_sweep"})


def test_latent_space_fits(projector, app_server):
    page = projector
    open_page(page, "Latent space", "Latent space")
    wait_until(lambda: bottom_of(page, ".st-key-latent_map .annotation") > 0, 60, "the map drew no digit labels")
    assert_fits(page, "Latent space", {"colours": ".st-key-palette", "digit labels": ".st-key-latent_map .annotation"})
