"""Code-size sweep in a real browser: two sizes, one epoch each, both curves drawn."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import plotly_traces, screenshot, wait_for_app_idle
from .test_user_flow import nav_link, wait_until

pytestmark = pytest.mark.browser


def test_two_size_sweep_draws_autoencoder_and_pca_curves(browser, app_server, page):
    page.goto(app_server)
    wait_for_app_idle(page)
    nav_link(page, "Code size").click()
    expect(page.get_by_role("heading", name="Code size", exact=True)).to_be_visible(timeout=30_000)
    wait_for_app_idle(page)

    # Keep only 8 and 32 in the multiselect: clear the defaults, then pick two sizes.
    sizes = page.get_by_test_id("stMultiSelect").first  # the second one picks architectures
    sizes.get_by_role("button", name=re.compile("Clear all", re.I)).click()
    for size in ("8", "32"):
        sizes.locator("input").fill(size)
        page.get_by_role("option", name=size, exact=True).click()
    page.keyboard.press("Escape")
    epochs = page.get_by_role("spinbutton", name="Epochs each")
    epochs.fill("1")
    epochs.press("Enter")
    page.wait_for_timeout(500)  # let the rerun that Enter starts begin before waiting for idle
    wait_for_app_idle(page)
    page.get_by_role("button", name="Start sweep").click()
    expect(page.get_by_text(re.compile(r"Sweep: \d of 2 models done")).first).to_be_visible(timeout=30_000)

    def curves():
        traces = plotly_traces(page)
        names = [trace["name"] for trace in traces]
        if names == ["PCA (same number of components)", "Dense (article)"] and all(t["points"] == 2 for t in traces):
            return traces
        return None

    try:
        wait_until(curves, 180, lambda: f"the rate-distortion chart never showed two curves of two points: {plotly_traces(page)}")
    except BaseException:
        screenshot(page, "code_size_failed")  # what the user saw when it went wrong
        raise
    expect(page.get_by_text("2 of 2 models done").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"(beats PCA|PCA reconstructs better)")).first).to_be_visible()
    wait_for_app_idle(page)
    screenshot(page, "code_size")

    nav_link(page, "Few labels").click()
    expect(page.get_by_role("heading", name="Few labels", exact=True)).to_be_visible(timeout=30_000)
    wait_until(lambda: len(plotly_traces(page)) == 3, 180, lambda: f"the probe chart did not draw three lines: {plotly_traces(page)}")
    wait_for_app_idle(page)
    screenshot(page, "few_labels")
